//! METADATA assembly (SPEC §6.3): column order, dtypes and units exactly as FastSpecFit.

use crate::io::desi::{FileTargets, TARGETING_ALL, TARGETING_DEFAULT};
use crate::io::fits::{ColData, OutColumn};
use crate::io::photometry::{GatheredPhotometry, PhotometryConfig};
use fsf_components::{ContinuumFit, FitStatus, MilkyWayDust, PhysicalProperties};

/// One file's inputs and per-target results, in output row order (kept rows only).
pub struct FileMeta {
    /// Selected targets.
    pub targets: FileTargets,
    /// Their photometry.
    pub phot: GatheredPhotometry,
    /// Selection indices into `targets` (and `phot`) that are written, in output order
    /// (external catalogues may drop targets).
    pub rows: Vec<usize>,
    /// Fitted redshift per written row (≤ 0 replaced by 1e-8).
    pub z: Vec<f64>,
    /// Milky Way dust and dereddened photometry per written row.
    pub dust: Vec<MilkyWayDust>,
    /// Continuum fit per written row.
    pub continuum: Vec<ContinuumFit>,
    /// Derived properties per written row.
    pub props: Vec<PhysicalProperties>,
    /// Status per written row.
    pub status: Vec<FitStatus>,
    /// Spectroscopic (fastspec) results per written row; default for fastphot.
    pub spectral: Vec<fsf_components::SpectralFit>,
}

fn str_col(values: Vec<String>, min_width: usize) -> ColData {
    let w = values
        .iter()
        .map(|s| s.len())
        .max()
        .unwrap_or(1)
        .max(min_width)
        .max(1);
    ColData::Str(values, w)
}

/// Build the METADATA columns over all files (schema decided on all of them, as FastSpecFit
/// decides it on the stacked table).
pub fn build_metadata(files: &[FileMeta], cfg: &PhotometryConfig) -> Vec<OutColumn> {
    if let Some(cols) = crate::io::stack::simple_metadata(files) {
        return cols; // stacks and generic spectra (their own layouts)
    }
    let mut cols = Vec::new();
    let i64s = |f: &dyn Fn(&FileMeta, usize) -> i64| -> Vec<i64> {
        files
            .iter()
            .flat_map(|m| m.rows.iter().map(move |&r| f(m, r)))
            .collect()
    };
    let i32s = |f: &dyn Fn(&FileMeta, usize) -> i32| -> Vec<i32> {
        files
            .iter()
            .flat_map(|m| m.rows.iter().map(move |&r| f(m, r)))
            .collect()
    };
    let f64s = |f: &dyn Fn(&FileMeta, usize) -> f64| -> Vec<f64> {
        files
            .iter()
            .flat_map(|m| m.rows.iter().map(move |&r| f(m, r)))
            .collect()
    };
    let f32s = |f: &dyn Fn(&FileMeta, usize) -> f32| -> Vec<f32> {
        files
            .iter()
            .flat_map(|m| m.rows.iter().map(move |&r| f(m, r)))
            .collect()
    };
    let strs = |f: &dyn Fn(&FileMeta, usize) -> String| -> Vec<String> {
        files
            .iter()
            .flat_map(|m| m.rows.iter().map(move |&r| f(m, r)))
            .collect()
    };
    // Per-written-row index within a file (for per-row results stored densely).
    let dense = |f: &dyn Fn(&FileMeta, usize) -> f64| -> Vec<f64> {
        files
            .iter()
            .flat_map(|m| (0..m.rows.len()).map(move |k| f(m, k)))
            .collect()
    };
    let dense32 = |f: &dyn Fn(&FileMeta, usize) -> f32| -> Vec<f32> {
        files
            .iter()
            .flat_map(|m| (0..m.rows.len()).map(move |k| f(m, k)))
            .collect()
    };
    let any = |p: &dyn Fn(&FileMeta) -> bool| files.iter().any(p);

    cols.push(OutColumn::new(
        "TARGETID",
        ColData::I64(i64s(&|m, r| m.targets.targetid[r])),
    ));
    if any(&|m| m.targets.header.has_survey) {
        cols.push(OutColumn::new(
            "SURVEY",
            str_col(strs(&|m, _| m.targets.header.survey.clone()), 1),
        ));
        cols.push(OutColumn::new(
            "PROGRAM",
            str_col(strs(&|m, _| m.targets.header.program.clone()), 1),
        ));
    }
    if any(&|m| m.targets.header.uniqpix.is_some()) {
        cols.push(OutColumn::new(
            "UNIQPIX",
            ColData::I32(i32s(&|m, _| m.targets.header.uniqpix.unwrap_or(0))),
        ));
    }
    if any(&|m| m.targets.header.healpix.is_some()) {
        cols.push(OutColumn::new(
            "HEALPIX",
            ColData::I32(i32s(&|m, _| m.targets.header.healpix.unwrap_or(0))),
        ));
    }
    if any(&|m| m.targets.header.tileid.is_some()) {
        cols.push(OutColumn::new(
            "TILEID",
            ColData::I32(i32s(&|m, _| m.targets.header.tileid.unwrap_or(0))),
        ));
        cols.push(OutColumn::new(
            "NIGHT",
            ColData::I32(i32s(&|m, _| m.targets.header.night.unwrap_or(0))),
        ));
    }
    if any(&|m| m.targets.fiber.is_some()) {
        cols.push(OutColumn::new(
            "FIBER",
            ColData::I32(i32s(&|m, r| {
                m.targets.fiber.as_ref().map(|f| f[r]).unwrap_or(0)
            })),
        ));
    }
    if any(&|m| m.targets.header.expid.is_some()) {
        cols.push(OutColumn::new(
            "EXPID",
            ColData::I32(i32s(&|m, _| m.targets.header.expid.unwrap_or(0))),
        ));
    }
    if any(&|m| m.targets.tileid_list.is_some()) {
        cols.push(OutColumn::new(
            "TILEID_LIST",
            str_col(
                strs(&|m, r| {
                    m.targets
                        .tileid_list
                        .as_ref()
                        .map(|t| t[r].clone())
                        .unwrap_or_default()
                }),
                1,
            ),
        ));
    }
    cols.push(OutColumn::with_unit(
        "RA",
        "deg",
        ColData::F64(f64s(&|m, r| m.phot.ra[r])),
    ));
    cols.push(OutColumn::with_unit(
        "DEC",
        "deg",
        ColData::F64(f64s(&|m, r| m.phot.dec[r])),
    ));
    cols.push(OutColumn::new(
        "COADD_FIBERSTATUS",
        ColData::I32(i32s(&|m, r| m.targets.coadd_fiberstatus[r])),
    ));

    // Remaining input columns: PHOTSYS when the configuration does not list it in outcols.
    let outcols: Vec<String> = cfg.outcols.clone().unwrap_or_default();
    let photsys_width = files
        .iter()
        .map(|m| m.targets.photsys.width)
        .max()
        .unwrap_or(1);
    let photsys_col = || str_col(strs(&|m, r| m.phot.photsys[r].clone()), photsys_width);
    if !outcols.iter().any(|c| c == "PHOTSYS") {
        cols.push(OutColumn::new("PHOTSYS", photsys_col()));
    }

    let main_like =
        any(&|m| m.targets.header.survey == "main" || m.targets.header.survey == "special");
    let tcols: &[&str] = if main_like {
        &TARGETING_DEFAULT
    } else {
        &TARGETING_ALL
    };
    for c in tcols {
        let v = i64s(&|m, r| {
            m.targets
                .targeting
                .iter()
                .find(|(n, _)| n == c)
                .map(|(_, v)| v[r])
                .unwrap_or(0)
        });
        cols.push(OutColumn::new(*c, ColData::I64(v)));
    }

    cols.push(OutColumn::new("Z", ColData::F64(dense(&|m, k| m.z[k]))));
    cols.push(OutColumn::new(
        "ZWARN",
        ColData::I64(i64s(&|m, r| m.targets.zwarn[r])),
    ));
    cols.push(OutColumn::new(
        "DELTACHI2",
        ColData::F64(f64s(&|m, r| m.targets.deltachi2[r])),
    ));
    let wst = files
        .iter()
        .map(|m| m.targets.spectype.width)
        .max()
        .unwrap_or(1);
    let wsub = files
        .iter()
        .map(|m| m.targets.subtype.width)
        .max()
        .unwrap_or(1);
    cols.push(OutColumn::new(
        "SPECTYPE",
        str_col(strs(&|m, r| m.targets.spectype.values[r].clone()), wst),
    ));
    cols.push(OutColumn::new(
        "SUBTYPE",
        str_col(strs(&|m, r| m.targets.subtype.values[r].clone()), wsub),
    ));
    cols.push(OutColumn::new(
        "Z_RR",
        ColData::F64(f64s(&|m, r| m.targets.z_rr[r])),
    ));
    cols.push(OutColumn::new(
        "ZWARN_RR",
        ColData::I64(i64s(&|m, r| m.targets.zwarn_rr[r])),
    ));
    for (k, name) in [
        "TSNR2_BGS",
        "TSNR2_LRG",
        "TSNR2_ELG",
        "TSNR2_QSO",
        "TSNR2_LYA",
    ]
    .iter()
    .enumerate()
    {
        cols.push(OutColumn::new(
            *name,
            ColData::F32(f32s(&|m, r| m.targets.tsnr2[k][r])),
        ));
    }

    // Photometry block.
    let units = cfg.photounits.clone();
    let ivar_units = format!("{units}-2");
    for c in &outcols {
        match c.as_str() {
            "PHOTSYS" => cols.push(OutColumn::new("PHOTSYS", photsys_col())),
            "LS_ID" => cols.push(OutColumn::new(
                "LS_ID",
                ColData::I64(i64s(&|m, r| {
                    m.phot.ls_id.as_ref().map(|v| v[r]).unwrap_or(0)
                })),
            )),
            _ => {}
        }
    }
    if let Some(fb) = &cfg.fiber_bands {
        for (b, band) in fb.iter().enumerate() {
            let v = dense32(&|m, k| m.dust[k].fiberflux_nmgy.get(b).copied().unwrap_or(0.0));
            cols.push(OutColumn::with_unit(
                format!("FIBERFLUX_{}", band.to_uppercase()),
                &units,
                ColData::F32(v),
            ));
        }
        for (b, band) in fb.iter().enumerate() {
            let v = dense32(&|m, k| m.dust[k].fibertotflux_nmgy.get(b).copied().unwrap_or(0.0));
            cols.push(OutColumn::with_unit(
                format!("FIBERTOTFLUX_{}", band.to_uppercase()),
                &units,
                ColData::F32(v),
            ));
        }
    }
    for (b, c) in cfg.fluxcols.iter().enumerate() {
        let v = dense32(&|m, k| m.dust[k].flux_nmgy.get(b).copied().unwrap_or(0.0));
        cols.push(OutColumn::with_unit(
            c.to_uppercase(),
            &units,
            ColData::F32(v),
        ));
    }
    for (b, c) in cfg.fluxivarcols.iter().enumerate() {
        let v = dense32(&|m, k| m.dust[k].ivar_nmgy2.get(b).copied().unwrap_or(0.0));
        cols.push(OutColumn::with_unit(
            c.to_uppercase(),
            &ivar_units,
            ColData::F32(v),
        ));
    }
    cols.push(OutColumn::with_unit(
        "EBV",
        "mag",
        ColData::F64(dense(&|m, k| m.dust[k].ebv)),
    ));
    for (b, band) in cfg.bands.iter().enumerate() {
        let v = dense32(&|m, k| m.dust[k].transmission.get(b).copied().unwrap_or(0.0));
        cols.push(OutColumn::new(
            format!("MW_TRANSMISSION_{}", band.to_uppercase()),
            ColData::F32(v),
        ));
    }
    cols
}
