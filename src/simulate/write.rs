//! Writers of the simulated files: Redrock and coadd (DESI healpix data model), the
//! external photometry catalogue and its YAML, and the truth table.

use std::path::Path;

use anyhow::Context;
use fitsio::images::{ImageDescription, ImageType};
use fitsio::FitsFile;

use super::model::{CameraSim, Truth};
use super::spectro::{CameraGrid, NDIAG};
use crate::io::fits::{write_fits_atomic, Card, CardValue, ColData, OutColumn, OutHdu};
use crate::io::photometry::brickname;

/// Survey, program and HEALPix pixel (nside 64, nested) of the simulated set.
pub struct SetId {
    /// e.g. "main".
    pub survey: String,
    /// e.g. "dark".
    pub program: String,
    /// HEALPix pixel.
    pub healpix: i64,
}

/// Photometric bands of the simulated catalogue: (band, filter, depth σ in nanomaggies).
pub const BANDS: [(&str, &str, f64); 5] = [
    ("G", "BASS-g", 0.05),
    ("R", "BASS-r", 0.06),
    ("Z", "MzLS-z", 0.1),
    ("W1", "wise2010-W1", 0.4),
    ("W2", "wise2010-W2", 1.0),
];

fn s(v: &str) -> CardValue {
    CardValue::Str(v.to_string())
}

fn col(name: &str, data: ColData) -> OutColumn {
    OutColumn::new(name, data)
}

/// Primary-header cards of a healpix coadd (shared by the Redrock file).
pub fn healpix_cards(id: &SetId) -> Vec<Card> {
    vec![
        Card::new("SPGRP", s("healpix"), "spectral grouping"),
        Card::new("SPGRPVAL", CardValue::Int(id.healpix), "HEALPix pixel"),
        Card::new("HPXPIXEL", CardValue::Int(id.healpix), "HEALPix pixel"),
        Card::new("HPXNSIDE", CardValue::Int(64), "HEALPix nside"),
        Card::new("HPXNEST", CardValue::Bool(true), "nested ordering"),
        Card::new("SURVEY", s(&id.survey), ""),
        Card::new("PROGRAM", s(&id.program), ""),
        Card::new("DEPNAM00", s("SPECPROD"), ""),
        Card::new("DEPVER00", s("simulated"), ""),
        Card::new(
            "SIMULATE",
            CardValue::Bool(true),
            "written by fastspecfit simulate",
        ),
    ]
}

/// Write `redrock-{survey}-{program}-{pix}.fits`.
///
/// # Errors
/// The file cannot be written.
pub fn write_redrock(path: &Path, id: &SetId, truth: &[Truth]) -> anyhow::Result<()> {
    let n = truth.len();
    let tid: Vec<i64> = truth.iter().map(|t| t.targetid).collect();
    let mut cards = healpix_cards(id);
    cards.push(Card::new("RRVER", s("simulated"), "Redrock version"));
    let redshifts = OutHdu::Table {
        extname: "REDSHIFTS".into(),
        columns: vec![
            col("TARGETID", ColData::I64(tid.clone())),
            col("Z", ColData::F64(truth.iter().map(|t| t.z).collect())),
            col(
                "ZERR",
                ColData::F64(truth.iter().map(|t| 1e-5 * (1.0 + t.z)).collect()),
            ),
            col("ZWARN", ColData::I64(vec![0; n])),
            col("CHI2", ColData::F64(vec![7000.0; n])),
            col("COEFF", ColData::F32Vec(vec![0.0; 10 * n], 10)),
            col("FITMETHOD", ColData::Str(vec!["PCA".into(); n], 4)),
            col("NPIXELS", ColData::I64(vec![7950; n])),
            col("SPECTYPE", ColData::Str(vec!["GALAXY".into(); n], 6)),
            col("SUBTYPE", ColData::Str(vec![String::new(); n], 20)),
            col("NCOEFF", ColData::I64(vec![10; n])),
            col("DELTACHI2", ColData::F64(vec![500.0; n])),
        ],
        cards: vec![],
    };
    let (fm, efm) = fibermaps(truth);
    let tsnr = OutHdu::Table {
        extname: "TSNR2".into(),
        columns: std::iter::once(col("TARGETID", ColData::I64(tid)))
            .chain(
                ["BGS", "ELG", "LRG", "LYA", "QSO"]
                    .iter()
                    .map(|c| col(&format!("TSNR2_{c}"), ColData::F32(vec![100.0; n]))),
            )
            .collect(),
        cards: vec![],
    };
    write_fits_atomic(path, &cards, &[redshifts, fm, efm, tsnr])
        .context("writing the Redrock file")?;
    Ok(())
}

/// FIBERMAP and EXP_FIBERMAP (two exposures per target).
fn fibermaps(truth: &[Truth]) -> (OutHdu, OutHdu) {
    let n = truth.len();
    let tid: Vec<i64> = truth.iter().map(|t| t.targetid).collect();
    let f32c =
        |f: &dyn Fn(&Truth) -> f64| ColData::F32(truth.iter().map(|t| f(t) as f32).collect());
    let mut columns = vec![
        col("TARGETID", ColData::I64(tid.clone())),
        col("COADD_FIBERSTATUS", ColData::I32(vec![0; n])),
        col(
            "TARGET_RA",
            ColData::F64(truth.iter().map(|t| t.ra).collect()),
        ),
        col(
            "TARGET_DEC",
            ColData::F64(truth.iter().map(|t| t.dec).collect()),
        ),
        col("OBJTYPE", ColData::Str(vec!["TGT".into(); n], 3)),
        col("RELEASE", ColData::I16(vec![9010; n])),
        col(
            "BRICKNAME",
            ColData::Str(truth.iter().map(|t| brickname(t.ra, t.dec)).collect(), 8),
        ),
        col("BRICKID", ColData::I32(vec![0; n])),
        col("BRICK_OBJID", ColData::I32((0..n as i32).collect())),
        col("MORPHTYPE", ColData::Str(vec!["REX".into(); n], 4)),
        col("EBV", f32c(&|t| t.ebv)),
    ];
    for (b, (band, _, _)) in BANDS.iter().enumerate() {
        columns.push(col(&format!("FLUX_{band}"), f32c(&|t| t.phot[b])));
    }
    for (b, (band, _, _)) in BANDS.iter().enumerate() {
        columns.push(col(&format!("FLUX_IVAR_{band}"), f32c(&|t| t.phot_ivar[b])));
    }
    for pre in ["FIBERFLUX", "FIBERTOTFLUX"] {
        for (b, band) in ["G", "R", "Z"].iter().enumerate() {
            columns.push(col(&format!("{pre}_{band}"), f32c(&|t| 0.4 * t.phot[b])));
        }
    }
    columns.extend([
        col("MASKBITS", ColData::I16(vec![0; n])),
        col("SHAPE_R", ColData::F32(vec![0.5; n])),
        col("PHOTSYS", ColData::Str(vec!["N".into(); n], 1)),
        col("DESI_TARGET", ColData::I64(vec![1; n])),
        col("BGS_TARGET", ColData::I64(vec![0; n])),
        col("MWS_TARGET", ColData::I64(vec![0; n])),
        col("SCND_TARGET", ColData::I64(vec![0; n])),
        col("COADD_NUMEXP", ColData::I16(vec![2; n])),
        col("COADD_EXPTIME", ColData::F32(vec![2000.0; n])),
        col("COADD_NUMNIGHT", ColData::I16(vec![2; n])),
        col("COADD_NUMTILE", ColData::I16(vec![2; n])),
        col(
            "MEAN_FIBER_RA",
            ColData::F64(truth.iter().map(|t| t.ra).collect()),
        ),
        col(
            "MEAN_FIBER_DEC",
            ColData::F64(truth.iter().map(|t| t.dec).collect()),
        ),
        col("MIN_MJD", ColData::F64(vec![59300.1; n])),
        col("MAX_MJD", ColData::F64(vec![59301.1; n])),
        col("MEAN_MJD", ColData::F64(vec![59300.6; n])),
    ]);
    let fm = OutHdu::Table {
        extname: "FIBERMAP".into(),
        columns,
        cards: vec![],
    };
    let m = 2 * n;
    let rep =
        |f: &dyn Fn(usize, usize) -> i32| ColData::I32((0..m).map(|k| f(k / 2, k % 2)).collect());
    let efm = OutHdu::Table {
        extname: "EXP_FIBERMAP".into(),
        columns: vec![
            col(
                "TARGETID",
                ColData::I64((0..m).map(|k| tid[k / 2]).collect()),
            ),
            col("NIGHT", rep(&|_, e| 20210320 + e as i32)),
            col("EXPID", rep(&|_, e| 80000 + e as i32)),
            col(
                "MJD",
                ColData::F64((0..m).map(|k| 59300.1 + (k % 2) as f64).collect()),
            ),
            col("TILEID", rep(&|_, e| 1000 + e as i32)),
            col("EXPTIME", ColData::F64(vec![1000.0; m])),
            col(
                "PETAL_LOC",
                ColData::I16((0..m).map(|k| ((k / 2) % 10) as i16).collect()),
            ),
            col("FIBER", rep(&|i, _| i as i32)),
            col("FIBERSTATUS", ColData::I32(vec![0; m])),
            col(
                "LOCATION",
                ColData::I64((0..m).map(|k| 1000 + (k / 2) as i64).collect()),
            ),
            col("IN_COADD_B", ColData::Bool(vec![true; m])),
            col("IN_COADD_R", ColData::Bool(vec![true; m])),
            col("IN_COADD_Z", ColData::Bool(vec![true; m])),
        ],
        cards: vec![],
    };
    (fm, efm)
}

/// Write `coadd-{survey}-{program}-{pix}.fits`; the integer `{B,R,Z}_MASK` images are
/// appended after the atomic write.
///
/// # Errors
/// The file cannot be written.
pub fn write_coadd(
    path: &Path,
    id: &SetId,
    truth: &[Truth],
    cams: &[CameraGrid],
    spec: &[Vec<CameraSim>],
) -> anyhow::Result<()> {
    let n = truth.len();
    let (fm, efm) = fibermaps(truth);
    let mut hdus = vec![fm, efm];
    let unit = |u: &str| vec![Card::new("BUNIT", s(u), "")];
    for (c, cam) in cams.iter().enumerate() {
        let np = cam.wave.len();
        let gather = |f: &dyn Fn(&CameraSim) -> &Vec<f64>| -> Vec<f32> {
            spec.iter()
                .flat_map(|t| f(&t[c]).iter().map(|v| *v as f32))
                .collect()
        };
        hdus.push(OutHdu::ImageF32 {
            extname: format!("{}_WAVELENGTH", cam.name),
            shape: vec![np],
            data: cam.wave.iter().map(|w| *w as f32).collect(),
            cards: unit("Angstrom"),
        });
        hdus.push(OutHdu::ImageF32 {
            extname: format!("{}_FLUX", cam.name),
            shape: vec![n, np],
            data: gather(&|s| &s.flux),
            cards: unit("10**-17 erg/(s cm2 Angstrom)"),
        });
        hdus.push(OutHdu::ImageF32 {
            extname: format!("{}_IVAR", cam.name),
            shape: vec![n, np],
            data: gather(&|s| &s.ivar),
            cards: unit("10**+34 (s2 cm4 Angstrom2) / erg2"),
        });
        hdus.push(OutHdu::ImageF32 {
            extname: format!("{}_RESOLUTION", cam.name),
            shape: vec![n, NDIAG, np],
            data: gather(&|s| &s.resolution),
            cards: vec![],
        });
    }
    write_fits_atomic(path, &healpix_cards(id), &hdus).context("writing the coadd file")?;
    let mut f = FitsFile::edit(path)
        .with_context(|| format!("{}: reopening to add masks", path.display()))?;
    for (c, cam) in cams.iter().enumerate() {
        let np = cam.wave.len();
        let desc = ImageDescription {
            data_type: ImageType::Long,
            dimensions: &[n, np],
        };
        let name = format!("{}_MASK", cam.name);
        let hdu = f
            .create_image(&name, &desc)
            .with_context(|| format!("{}: creating {name}", path.display()))?;
        let data: Vec<i32> = spec
            .iter()
            .flat_map(|t| t[c].mask.iter().map(|m| *m as i32))
            .collect();
        hdu.write_image(&mut f, &data)
            .with_context(|| format!("{}: writing {name}", path.display()))?;
    }
    Ok(())
}

/// Write the external photometry `phot.fits[PHOTINFO]` and its `phot.yaml`.
///
/// # Errors
/// The files cannot be written.
pub fn write_photometry(fits: &Path, yaml: &Path, truth: &[Truth]) -> anyhow::Result<()> {
    let mut columns = vec![
        col(
            "TARGETID",
            ColData::I64(truth.iter().map(|t| t.targetid).collect()),
        ),
        col("RA", ColData::F64(truth.iter().map(|t| t.ra).collect())),
        col("DEC", ColData::F64(truth.iter().map(|t| t.dec).collect())),
    ];
    for (b, (band, _, _)) in BANDS.iter().enumerate() {
        columns.push(col(
            &format!("FLUX_{band}"),
            ColData::F32(truth.iter().map(|t| t.phot[b] as f32).collect()),
        ));
        columns.push(col(
            &format!("FLUX_IVAR_{band}"),
            ColData::F32(truth.iter().map(|t| t.phot_ivar[b] as f32).collect()),
        ));
    }
    write_fits_atomic(
        fits,
        &[],
        &[OutHdu::Table {
            extname: "PHOTINFO".into(),
            columns,
            cards: vec![],
        }],
    )
    .context("writing the photometry catalogue")?;
    let list = |f: &dyn Fn(&(&str, &str, f64)) -> String| {
        BANDS.iter().map(f).collect::<Vec<_>>().join(", ")
    };
    let text = format!(
        "# Simulated DR9-like photometry (fastspecfit simulate)\n\nuniqueid: 'TARGETID'\n\nphotounits: 'nanomaggies'\n\n\
synth_bands: ['g', 'r', 'z']\nbands: [{bands}]\nbands_to_fit: [{fit}]\n\n\
synth_filters: {{'N': ['BASS-g', 'BASS-r', 'MzLS-z'], 'S': ['decam2014-g', 'decam2014-r', 'decam2014-z']}}\n\
filters: {{'N': [{filters}],\n          'S': ['decam2014-g', 'decam2014-r', 'decam2014-z', 'wise2010-W1', 'wise2010-W2']}}\n\n\
min_uncertainty: [{minu}]\n\nreadcols: ['TARGETID', 'RA', 'DEC']\n\n\
fluxcols: [{flux}]\n\nfluxivarcols: [{ivar}]\n\n\
absmag_bands: ['decam_g', 'decam_r', 'decam_z', 'wise_w1']\n\nband_shift: [0.1, 0.1, 0.1, 0.0]\n\n\
absmag_filters: ['decam2014-g', 'decam2014-r', 'decam2014-z', 'wise2010-W1']\n\n\
viewer_layer: ls-dr9\n\nviewer_pixscale: 0.262\n",
        bands = list(&|b| format!("'{}'", b.0.to_lowercase())),
        fit = list(&|_| "True".into()),
        filters = list(&|b| format!("'{}'", b.1)),
        minu = list(&|b| if b.0.starts_with('W') { "0.05".into() } else { "0.02".into() }),
        flux = list(&|b| format!("'FLUX_{}'", b.0)),
        ivar = list(&|b| format!("'FLUX_IVAR_{}'", b.0)),
    );
    std::fs::write(yaml, text).with_context(|| format!("{}: cannot write", yaml.display()))?;
    Ok(())
}
