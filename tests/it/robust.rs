//! Robustness: one damaged target never stops a file. Each case damages target 2 of 3 (the
//! bundled 3-target copy of the real 80613 spectrum, tests/data/robust) and checks that the
//! run succeeds, the damaged target is named in the log, and the other targets' rows are
//! identical, HDU by HDU, to a clean run.

use std::path::{Path, PathBuf};

use fitsio::FitsFile;

use super::common::*;

const TID: [i64; 3] = [39633345008634465, 39633345008634466, 39633345008634467];
const NPIX: [(&str, usize); 3] = [("B", 2751), ("R", 2326), ("Z", 2881)];

fn robust() -> PathBuf {
    data().join("robust")
}

/// Copy the 3-target pair into `dir`.
fn copy_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let rr = dir.join("redrock-4-80613-thru20210324.fits");
    let co = dir.join("coadd-4-80613-thru20210324.fits");
    std::fs::copy(robust().join("redrock-4-80613-thru20210324.fits"), &rr).unwrap();
    std::fs::copy(robust().join("coadd-4-80613-thru20210324.fits"), &co).unwrap();
    (rr, co)
}

fn fit(program: &str, redrock: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let d = s(&desi());
    let r = s(&robust());
    let (rr, o) = (s(redrock), s(out));
    let mut a = vec![
        program,
        rr.as_str(),
        "--mapdir",
        d.as_str(),
        "--fphotodir",
        d.as_str(),
        "--redux_dir",
        r.as_str(),
        "--specprod",
        r.as_str(),
        "-o",
        o.as_str(),
    ];
    a.extend_from_slice(extra);
    run(&a)
}

fn table_hdus(path: &Path) -> Vec<String> {
    hdu_names(path)
        .into_iter()
        .filter(|n| n != "PRIMARY" && n != "MODELS")
        .collect()
}

/// Rows of `targetid` in every table HDU, as (hdu, column, value) triples.
fn rows_of(path: &Path, targetid: i64) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for hdu in table_hdus(path) {
        let t = read_table(path, &hdu);
        let ids = match &t.iter().find(|c| c.0 == "TARGETID").unwrap().1 {
            Col::Int(v) => v.clone(),
            _ => panic!(),
        };
        let Some(r) = ids.iter().position(|&x| x == targetid) else {
            continue;
        };
        for (name, col) in &t {
            let v = match col {
                Col::Int(v) => v[r].to_string(),
                Col::Float(v) => format!("{:?}", v[r].to_bits()),
                Col::Str(v) => v[r].clone(),
            };
            out.push((hdu.clone(), name.clone(), v));
        }
    }
    out
}

/// Run clean and damaged; assert success, the log names the damaged target (when
/// `expect_log`), and targets 1 and 3 are unchanged.
fn check(program: &str, damage: impl Fn(&Path, &Path), expect_log: bool) {
    let d = tempfile::tempdir().unwrap();
    let clean = d.path().join("clean.fits");
    let o = fit(
        program,
        &robust().join("redrock-4-80613-thru20210324.fits"),
        &clean,
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (rr, co) = copy_pair(d.path());
    damage(&rr, &co);
    let out = d.path().join("damaged.fits");
    let o = fit(program, &rr, &out, &[]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "one bad target must not stop the file: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    if expect_log {
        assert!(
            err.contains(&TID[1].to_string()),
            "the log must name the damaged TARGETID: {err}"
        );
    }
    for t in [TID[0], TID[2]] {
        assert_eq!(rows_of(&out, t), rows_of(&clean, t), "target {t} changed");
    }
    assert_eq!(table_hdus(&out), table_hdus(&clean));
}

fn set_pixels(
    co: &Path,
    hdu: &str,
    target: usize,
    npix: usize,
    range: std::ops::Range<usize>,
    value: f32,
) {
    let mut f = FitsFile::edit(co).unwrap();
    let h = f.hdu(hdu).unwrap();
    let vals = vec![value; range.len()];
    h.write_section(
        &mut f,
        target * npix + range.start,
        target * npix + range.end,
        &vals,
    )
    .unwrap();
}

fn npix(cam: &str) -> usize {
    NPIX.iter().find(|c| c.0 == cam).unwrap().1
}

#[test]
fn nan_flux_pixel() {
    check(
        "fastspec",
        |_, co| set_pixels(co, "B_FLUX", 1, npix("B"), 100..101, f32::NAN),
        true,
    );
}

#[test]
fn infinite_ivar_pixel() {
    check(
        "fastspec",
        |_, co| set_pixels(co, "R_IVAR", 1, npix("R"), 50..52, f32::INFINITY),
        true,
    );
}

#[test]
fn negative_ivar() {
    check(
        "fastspec",
        |_, co| set_pixels(co, "Z_IVAR", 1, npix("Z"), 0..100, -1.0),
        true,
    );
}

#[test]
fn all_zero_ivar() {
    check(
        "fastspec",
        |_, co| {
            for (cam, n) in NPIX {
                set_pixels(co, &format!("{cam}_IVAR"), 1, n, 0..n, 0.0);
            }
        },
        true,
    );
}

#[test]
fn fully_masked_camera() {
    check(
        "fastspec",
        |_, co| {
            let mut f = FitsFile::edit(co).unwrap();
            let h = f.hdu("B_MASK").unwrap();
            let n = npix("B");
            h.write_section(&mut f, n, 2 * n, &vec![1u32; n]).unwrap();
        },
        true,
    );
}

#[test]
fn zero_resolution_rows() {
    check(
        "fastspec",
        |_, co| {
            let n = npix("R") * 11;
            set_pixels(co, "R_RESOLUTION", 1, n, 0..n, 0.0);
        },
        false,
    );
}

#[test]
fn nan_flux_in_fastphot_is_irrelevant() {
    check(
        "fastphot",
        |_, co| set_pixels(co, "B_FLUX", 1, npix("B"), 0..2751, f32::NAN),
        false,
    );
}

fn set_redrock<R>(rr: &Path, f: impl Fn(&mut FitsFile, &fitsio::hdu::FitsHdu) -> R) {
    let mut file = FitsFile::edit(rr).unwrap();
    let h = file.hdu("REDSHIFTS").unwrap();
    f(&mut file, &h);
}

#[test]
fn star_and_qso_spectypes_and_zwarn() {
    check(
        "fastspec",
        |rr, _| {
            set_redrock(rr, |f, h| {
                h.write_col(
                    f,
                    "SPECTYPE",
                    &[
                        "GALAXY".to_string(),
                        "STAR".to_string(),
                        "GALAXY".to_string(),
                    ],
                )
                .unwrap();
                h.write_col(f, "ZWARN", &[0i64, 4, 0]).unwrap();
            })
        },
        false,
    );
}

#[test]
fn very_high_redshift() {
    check(
        "fastspec",
        |rr, _| {
            set_redrock(rr, |f, h| {
                h.write_col(f, "Z", &[0.36874355163716493f64, 6.5, 0.36874355163716493])
                    .unwrap()
            })
        },
        false,
    );
}

#[test]
fn negative_redshift_is_not_selected_and_the_rest_is_fit() {
    let d = tempfile::tempdir().unwrap();
    let (rr, _) = copy_pair(d.path());
    set_redrock(&rr, |f, h| {
        h.write_col(f, "Z", &[0.36874355163716493f64, -0.1, 0.36874355163716493])
            .unwrap()
    });
    let out = d.path().join("o.fits");
    let o = fit("fastspec", &rr, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = read_table(&out, "METADATA");
    assert_eq!(
        t.iter().find(|c| c.0 == "TARGETID").unwrap().1,
        Col::Int(vec![TID[0], TID[2]])
    );
    // Requested explicitly, it is fitted at z = 1e-8 (FastSpecFit's rule).
    let out2 = d.path().join("o2.fits");
    let o = fit(
        "fastspec",
        &rr,
        &out2,
        &["--targetids", &TID[1].to_string()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = read_table(&out2, "METADATA");
    assert_eq!(
        t.iter().find(|c| c.0 == "Z").unwrap().1,
        Col::Float(vec![1e-8])
    );
}

#[test]
fn target_without_photometric_match() {
    // Move target 2 by 3 arcsec: no Tractor source within 1″, so its photometry is "not
    // measured" (0, ivar 0) and RA/DEC fall back to TARGET_RA/DEC.
    let d = tempfile::tempdir().unwrap();
    let (rr, co) = copy_pair(d.path());
    {
        let mut f = FitsFile::edit(&co).unwrap();
        let h = f.hdu("FIBERMAP").unwrap();
        let dec: Vec<f64> = h.read_col(&mut f, "TARGET_DEC").unwrap();
        h.write_col(
            &mut f,
            "TARGET_DEC",
            &[dec[0], dec[1] + 3.0 / 3600.0, dec[2]],
        )
        .unwrap();
    }
    let out = d.path().join("o.fits");
    let o = fit("fastspec", &rr, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = read_table(&out, "METADATA");
    let get = |n: &str| t.iter().find(|c| c.0 == n).unwrap().1.clone();
    match (get("FLUX_G"), get("FLUX_IVAR_R"), get("LS_ID")) {
        (Col::Float(f), Col::Float(iv), Col::Int(ls)) => {
            assert!(f[0] > 0.0 && f[2] > 0.0);
            assert_eq!((f[1], iv[1], ls[1]), (0.0, 0.0, 0));
        }
        _ => panic!(),
    }
}

#[test]
fn column_of_the_wrong_type_is_a_clear_file_error() {
    let d = tempfile::tempdir().unwrap();
    let (rr, _) = copy_pair(d.path());
    {
        let mut f = FitsFile::edit(&rr).unwrap();
        let h = f.hdu("REDSHIFTS").unwrap();
        let h = h.delete_column(&mut f, "Z").unwrap();
        let desc = fitsio::tables::ColumnDescription::new("Z")
            .with_type(fitsio::tables::ColumnDataType::String)
            .that_repeats(8)
            .create()
            .unwrap();
        let h = h.insert_column(&mut f, 1, &desc).unwrap();
        h.write_col(
            &mut f,
            "Z",
            &["abc".to_string(), "def".to_string(), "ghi".to_string()],
        )
        .unwrap();
    }
    let out = d.path().join("o.fits");
    let o = fit("fastspec", &rr, &out, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("redrock-4-80613") && err.contains("column Z"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn coadd_without_a_camera_is_fitted_with_the_others() {
    // A coadd file whose Z camera is absent altogether (no Z_* HDUs): every target is fitted
    // with B and R; SNR_Z is 0 ("not measured") and the lines redward of R are not measured.
    let d = tempfile::tempdir().unwrap();
    let (rr, co) = copy_pair(d.path());
    {
        let mut f = FitsFile::edit(&co).unwrap();
        for ext in ["Z_WAVELENGTH", "Z_FLUX", "Z_IVAR", "Z_MASK", "Z_RESOLUTION"] {
            let h = f.hdu(ext).unwrap();
            h.delete(&mut f).unwrap();
        }
    }
    let out = d.path().join("o.fits");
    let o = fit("fastspec", &rr, &out, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let t = read_table(&out, "FASTSPEC");
    let get = |n: &str| match &t.iter().find(|c| c.0 == n).unwrap().1 {
        Col::Float(v) => v.clone(),
        Col::Int(v) => v.iter().map(|&x| x as f64).collect(),
        Col::Str(_) => panic!(),
    };
    let (snr_b, snr_z) = (get("SNR_B"), get("SNR_Z"));
    assert_eq!(snr_b.len(), 3);
    for k in 0..3 {
        assert!(snr_b[k] > 0.0, "SNR_B of row {k}");
        assert_eq!(snr_z[k], 0.0, "SNR_Z of row {k}");
    }
    // [OII] (observed ≈ 5100 Å, camera B) is measured; Hα (≈ 8980 Å, only in camera Z) is
    // out of range now (it is measured in the clean run).
    assert!(get("OII_3726_FLUX").iter().all(|&f| f > 0.0));
    assert!(get("HALPHA_NPIX").iter().all(|&n| n == 0.0));
    assert!(get("HALPHA_FLUX").iter().all(|&f| f == 0.0));
}

#[test]
fn zero_photometric_ivar_in_every_band() {
    // Photometry from the FIBERMAP (no --fphotodir): target 2 has FLUX_IVAR_* = 0 in every
    // band ("not measured"). Its spectrum is still fitted (no photometric χ², RCHI2_PHOT 0,
    // no aperture correction), and the other targets are unchanged.
    let d = tempfile::tempdir().unwrap();
    let run_fm = |rr: &Path, out: &Path| {
        let (dd, r) = (s(&desi()), s(&robust()));
        let (rr, o) = (s(rr), s(out));
        run(&[
            "fastspec",
            rr.as_str(),
            "--mapdir",
            dd.as_str(),
            "--redux_dir",
            r.as_str(),
            "--specprod",
            r.as_str(),
            "-o",
            o.as_str(),
        ])
    };
    let clean = d.path().join("clean.fits");
    let o = run_fm(&robust().join("redrock-4-80613-thru20210324.fits"), &clean);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (rr, co) = copy_pair(d.path());
    {
        let mut f = FitsFile::edit(&co).unwrap();
        let h = f.hdu("FIBERMAP").unwrap();
        for b in ["G", "R", "Z", "W1", "W2"] {
            let name = format!("FLUX_IVAR_{b}");
            let mut v: Vec<f32> = h.read_col(&mut f, &name).unwrap();
            v[1] = 0.0;
            h.write_col(&mut f, &name, &v).unwrap();
        }
    }
    let out = d.path().join("o.fits");
    let o = run_fm(&rr, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(&TID[1].to_string()) && err.contains("no photometric band"),
        "the log must name the target without photometry: {err}"
    );
    for t in [TID[0], TID[2]] {
        assert_eq!(rows_of(&out, t), rows_of(&clean, t), "target {t} changed");
    }
    let sp = read_table(&out, "SPECPHOT");
    let get = |n: &str| match &sp.iter().find(|c| c.0 == n).unwrap().1 {
        Col::Float(v) => v.clone(),
        _ => panic!(),
    };
    assert_eq!(get("RCHI2_PHOT")[1], 0.0);
    assert!(get("RCHI2_CONT")[1] > 0.0);
    assert!(get("COEFF").iter().any(|&c| c > 0.0));
}
