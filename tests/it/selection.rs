//! Target selection (SPEC §1.3) and coadd-type handling (§1.1, §1.4) on synthetic
//! multi-target Redrock/coadd pairs written by the test itself.

use std::path::{Path, PathBuf};

use fastspecfit::io::desi::{read_targets, SelectOptions};
use fastspecfit::io::fits::{write_fits_atomic, Card, CardValue, ColData, OutColumn, OutHdu};

struct Row {
    tid: i64,
    z: f64,
    zwarn: i64,
    objtype: &'static str,
}

/// Write `redrock-test.fits` and `coadd-test.fits` in `dir` with the given rows.
fn make_pair(dir: &Path, coadd_type: &str, rows: &[Row]) -> PathBuf {
    let n = rows.len();
    let tid: Vec<i64> = rows.iter().map(|r| r.tid).collect();
    let rr = vec![
        OutHdu::Table {
            extname: "REDSHIFTS".into(),
            columns: vec![
                OutColumn::new("TARGETID", ColData::I64(tid.clone())),
                OutColumn::new("Z", ColData::F64(rows.iter().map(|r| r.z).collect())),
                OutColumn::new(
                    "ZWARN",
                    ColData::I64(rows.iter().map(|r| r.zwarn).collect()),
                ),
                OutColumn::new("SPECTYPE", ColData::Str(vec!["GALAXY".into(); n], 6)),
                OutColumn::new("SUBTYPE", ColData::Str(vec![String::new(); n], 20)),
                OutColumn::new("DELTACHI2", ColData::F64(vec![100.0; n])),
            ],
            cards: vec![],
        },
        OutHdu::Table {
            extname: "TSNR2".into(),
            columns: [
                "TSNR2_BGS",
                "TSNR2_LRG",
                "TSNR2_ELG",
                "TSNR2_QSO",
                "TSNR2_LYA",
            ]
            .iter()
            .map(|c| OutColumn::new(*c, ColData::F32((0..n).map(|i| i as f32).collect())))
            .collect(),
            cards: vec![],
        },
    ];
    let rrpath = dir.join("redrock-test.fits");
    write_fits_atomic(&rrpath, &[], &rr).unwrap();
    // Two exposures per target on tiles 2000+i and 1000 (pixel coadds list both, sorted).
    let mut etid = Vec::new();
    let mut etile = Vec::new();
    let mut efiber = Vec::new();
    for (i, t) in tid.iter().enumerate() {
        for tile in [2000 + i as i32, 1000] {
            etid.push(*t);
            etile.push(tile);
            efiber.push(100 + i as i32);
        }
    }
    let mut cards = vec![Card::new("SPGRP", CardValue::Str(coadd_type.into()), "")];
    match coadd_type {
        "healpix" => {
            cards.push(Card::new("SPGRPVAL", CardValue::Int(27247), ""));
            cards.push(Card::new("SURVEY", CardValue::Str("main".into()), ""));
            cards.push(Card::new("PROGRAM", CardValue::Str("dark".into()), ""));
        }
        _ => {
            cards.push(Card::new("TILEID", CardValue::Int(1000), ""));
            cards.push(Card::new("PETAL", CardValue::Int(3), ""));
            cards.push(Card::new("NIGHT", CardValue::Int(20210505), ""));
            cards.push(Card::new("EXPID", CardValue::Int(88888), ""));
        }
    }
    cards.push(Card::new("DEPNAM00", CardValue::Str("SPECPROD".into()), ""));
    cards.push(Card::new("DEPVER00", CardValue::Str("testprod".into()), ""));
    let npix = 8;
    let co = vec![
        OutHdu::Table {
            extname: "FIBERMAP".into(),
            columns: vec![
                OutColumn::new("TARGETID", ColData::I64(tid.clone())),
                OutColumn::new("TARGET_RA", ColData::F64(vec![105.49; n])),
                OutColumn::new("TARGET_DEC", ColData::F64(vec![56.67; n])),
                OutColumn::new("COADD_FIBERSTATUS", ColData::I32(vec![0; n])),
                OutColumn::new(
                    "OBJTYPE",
                    ColData::Str(rows.iter().map(|r| r.objtype.to_string()).collect(), 3),
                ),
                OutColumn::new("DESI_TARGET", ColData::I64((0..n as i64).collect())),
                OutColumn::new("PHOTSYS", ColData::Str(vec!["N".into(); n], 1)),
            ],
            cards: vec![],
        },
        OutHdu::Table {
            extname: "EXP_FIBERMAP".into(),
            columns: vec![
                OutColumn::new("TARGETID", ColData::I64(etid)),
                OutColumn::new("TILEID", ColData::I32(etile)),
                OutColumn::new("FIBER", ColData::I32(efiber)),
            ],
            cards: vec![],
        },
        OutHdu::ImageF32 {
            extname: "B_WAVELENGTH".into(),
            shape: vec![npix],
            data: vec![4000.0; npix],
            cards: vec![],
        },
        OutHdu::ImageF32 {
            extname: "B_FLUX".into(),
            shape: vec![n, npix],
            data: vec![1.0; n * npix],
            cards: vec![],
        },
        OutHdu::ImageF32 {
            extname: "B_IVAR".into(),
            shape: vec![n, npix],
            data: vec![1.0; n * npix],
            cards: vec![],
        },
        OutHdu::ImageF32 {
            extname: "B_RESOLUTION".into(),
            shape: vec![n, 11, npix],
            data: vec![0.0; n * 11 * npix],
            cards: vec![],
        },
    ];
    write_fits_atomic(&dir.join("coadd-test.fits"), &cards, &co).unwrap();
    rrpath
}

fn standard_rows() -> Vec<Row> {
    vec![
        Row {
            tid: 11,
            z: 0.5,
            zwarn: 0,
            objtype: "TGT",
        },
        Row {
            tid: 12,
            z: 0.0005,
            zwarn: 0,
            objtype: "TGT",
        }, // below zmin
        Row {
            tid: 13,
            z: 1.2,
            zwarn: 512,
            objtype: "TGT",
        }, // NODATA
        Row {
            tid: 14,
            z: 0.7,
            zwarn: 4,
            objtype: "SKY",
        }, // not a target
        Row {
            tid: 15,
            z: 2.0,
            zwarn: 4,
            objtype: "TGT",
        },
        Row {
            tid: 16,
            z: 99.5,
            zwarn: 0,
            objtype: "TGT",
        }, // above zmax
        Row {
            tid: 17,
            z: 0.1,
            zwarn: 0,
            objtype: "TGT",
        },
    ]
}

#[test]
fn default_cuts_select_good_targets_in_file_order() {
    let d = tempfile::tempdir().unwrap();
    let rr = make_pair(d.path(), "healpix", &standard_rows());
    let t = read_targets(&rr, &SelectOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(t.targetid, vec![11, 15, 17]);
    assert_eq!(t.rows, vec![0, 4, 6]);
    assert_eq!(t.header.healpix, Some(27247));
    assert_eq!(t.header.survey, "main");
    assert_eq!(t.tileid_list.as_ref().unwrap()[0], "1000 2000");
    assert_eq!(t.tileid_list.as_ref().unwrap()[1], "1000 2004");
    assert!(t.fiber.is_none());
    assert_eq!(t.tsnr2[0], vec![0.0, 4.0, 6.0]);
    // main survey: only the four default targeting columns are read
    assert_eq!(t.targeting.len(), 1);
    assert_eq!(t.targeting[0].1, vec![0, 4, 6]);
}

#[test]
fn zmin_ntargets_and_firsttarget() {
    let d = tempfile::tempdir().unwrap();
    let rr = make_pair(d.path(), "healpix", &standard_rows());
    let o = SelectOptions {
        zmin: 0.0001,
        ..Default::default()
    };
    assert_eq!(
        read_targets(&rr, &o).unwrap().unwrap().targetid,
        vec![11, 12, 15, 17]
    );
    let o = SelectOptions {
        firsttarget: 1,
        ntargets: Some(1),
        ..Default::default()
    };
    assert_eq!(read_targets(&rr, &o).unwrap().unwrap().targetid, vec![15]);
    let o = SelectOptions {
        firsttarget: 2,
        ntargets: Some(10),
        ..Default::default()
    };
    assert_eq!(read_targets(&rr, &o).unwrap().unwrap().targetid, vec![17]);
    let o = SelectOptions {
        firsttarget: 5,
        ..Default::default()
    };
    assert!(read_targets(&rr, &o).unwrap().is_none());
}

#[test]
fn targetids_bypass_cuts_keep_requested_order_and_take_input_redshifts() {
    let d = tempfile::tempdir().unwrap();
    let rr = make_pair(d.path(), "healpix", &standard_rows());
    let o = SelectOptions {
        targetids: Some(vec![16, 13, 11]),
        input_redshifts: Some(vec![0.3, 0.2, 0.1]),
        ..Default::default()
    };
    let t = read_targets(&rr, &o).unwrap().unwrap();
    assert_eq!(t.targetid, vec![16, 13, 11]);
    assert_eq!(t.z, vec![0.3, 0.2, 0.1]);
    assert_eq!(t.z_rr, vec![0.3, 0.2, 0.1]);
    let dup = SelectOptions {
        targetids: Some(vec![11, 11]),
        ..Default::default()
    };
    assert!(read_targets(&rr, &dup)
        .unwrap_err()
        .to_string()
        .contains("more than once"));
}

#[test]
fn duplicate_fibermap_targetids_are_an_error() {
    let d = tempfile::tempdir().unwrap();
    let mut rows = standard_rows();
    rows[6].tid = 11;
    let rr = make_pair(d.path(), "healpix", &rows);
    let e = read_targets(&rr, &SelectOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("duplicate TARGETID") && e.contains("coadd-test.fits"),
        "{e}"
    );
}

#[test]
fn perexp_coadds_carry_tile_night_expid_and_first_fiber() {
    let d = tempfile::tempdir().unwrap();
    let rr = make_pair(d.path(), "perexp", &standard_rows());
    let t = read_targets(&rr, &SelectOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(t.header.tileid, Some(1000));
    assert_eq!(t.header.night, Some(20210505));
    assert_eq!(t.header.expid, Some(88888));
    assert_eq!(t.fiber, Some(vec![100, 104, 106]));
    assert!(t.tileid_list.is_none());
    // no tiles table: SURVEY/PROGRAM are not written
    assert!(!t.header.has_survey);
    // not main/special: all 17 targeting columns are candidates; only DESI_TARGET exists
    assert_eq!(t.targeting.len(), 1);
}
