//! SPECPHOT HDU assembly (SPEC §6.4, §6.7): column names, order, dtypes and units exactly as
//! FastSpecFit's fastphot/fastspec output, and the run resource the derived-quantity system
//! needs ([`insert_derived_resources`]).

use bevy_ecs::prelude::World;
use fsf_components::SpectralFit;
use fsf_systems::passes::properties::DerivedSetup;

use crate::io::fits::{ColData, OutColumn};
use crate::io::IoError;
use crate::metadata::{build_metadata, FileMeta};
use crate::run::{Mode, RunContext};

/// METADATA identification columns copied at the head of SPECPHOT (in METADATA's order).
const ID_COLUMNS: [&str; 10] = [
    "TARGETID", "STACKID", "SURVEY", "PROGRAM", "UNIQPIX", "HEALPIX", "TILEID", "NIGHT", "FIBER",
    "EXPID",
];

const U_CONT: &str = "10**-17 erg Angstrom-1 s-1 cm-2";
const U_LNU: &str = "10**-28 erg Hz-1 s-1";
const U_L: &str = "10**10 solLum";

/// Insert the [`DerivedSetup`] resource (filters for K-corrections and model photometry).
///
/// # Errors
/// Unknown filter names or inconsistent absmag configuration, naming the photometry YAML.
pub fn insert_derived_resources(world: &mut World, ctx: &RunContext) -> Result<(), IoError> {
    let cfg = &ctx.phot_cfg;
    let filters: Vec<(String, Vec<String>)> = cfg
        .filters
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let bands_to_fit = if ctx.args.ignore_photometry {
        vec![false; cfg.bands.len()]
    } else {
        cfg.bands_to_fit.clone()
    };
    let setup = DerivedSetup::new(
        cfg.bands.clone(),
        bands_to_fit,
        &filters,
        cfg.absmag_bands.clone(),
        cfg.band_shift.clone(),
        &cfg.absmag_filters,
    )
    .map_err(|e| {
        IoError::input(
            std::path::Path::new("photometry configuration"),
            e.to_string(),
        )
    })?;
    world.insert_resource(setup);
    Ok(())
}

/// Output-column builder over all written rows of all files.
struct Cols<'a> {
    files: &'a [FileMeta],
    out: Vec<OutColumn>,
}

impl Cols<'_> {
    fn f32(
        &mut self,
        name: impl Into<String>,
        unit: Option<&str>,
        f: &dyn Fn(&FileMeta, usize) -> f64,
    ) {
        let v: Vec<f32> = self
            .files
            .iter()
            .flat_map(|m| (0..m.rows.len()).map(move |k| f(m, k) as f32))
            .collect();
        self.out.push(match unit {
            Some(u) => OutColumn::with_unit(name, u, ColData::F32(v)),
            None => OutColumn::new(name, ColData::F32(v)),
        });
    }
}

/// The spectroscopic results of row `k` (a default for files without them).
fn spec(m: &FileMeta, k: usize) -> &SpectralFit {
    static EMPTY: std::sync::OnceLock<SpectralFit> = std::sync::OnceLock::new();
    m.spectral
        .get(k)
        .unwrap_or_else(|| EMPTY.get_or_init(SpectralFit::default))
}

fn get(v: &[f64], j: usize) -> f64 {
    v.get(j).copied().unwrap_or(0.0)
}

/// The SPECPHOT columns for `files`, or `None` while no target was fitted.
pub fn specphot_columns(files: &[FileMeta], ctx: &RunContext) -> Option<Vec<OutColumn>> {
    if !files.iter().any(|m| m.continuum.iter().any(|c| c.fitted)) {
        return None;
    }
    let fastspec = ctx.mode == Mode::Fastspec;
    let cfg = &ctx.phot_cfg;
    let mut out: Vec<OutColumn> = build_metadata(files, cfg)
        .into_iter()
        .filter(|c| ID_COLUMNS.contains(&c.name.as_str()))
        .collect();
    let seeds: Vec<i64> = files
        .iter()
        .flat_map(|m| m.continuum.iter().map(|c| c.seed))
        .collect();
    out.push(OutColumn::new("SEED", ColData::I64(seeds)));
    let nt = files
        .iter()
        .flat_map(|m| m.continuum.iter().map(|c| c.coeff.len()))
        .max()
        .unwrap_or(0)
        .max(1);
    let coeff: Vec<f32> = files
        .iter()
        .flat_map(|m| m.continuum.iter())
        .flat_map(|c| (0..nt).map(move |t| get(&c.coeff, t) as f32))
        .collect();
    out.push(OutColumn::new("COEFF", ColData::F32Vec(coeff, nt)));
    let mut c = Cols { files, out };
    if fastspec {
        c.f32("RCHI2", None, &|m, k| spec(m, k).rchi2);
        c.f32("RCHI2_LINE", None, &|m, k| spec(m, k).rchi2_line);
        c.f32("RCHI2_CONT", None, &|m, k| m.continuum[k].rchi2_cont);
    }
    c.f32("RCHI2_PHOT", None, &|m, k| m.continuum[k].rchi2_phot);
    c.f32("VDISP", Some("km s-1"), &|m, k| m.continuum[k].vdisp_kms);
    if fastspec {
        c.f32("VDISP_IVAR", Some("s2 km-2"), &|m, k| {
            m.continuum[k].vdisp_ivar
        });
    }
    c.f32("TAUV", None, &|m, k| m.props[k].tauv);
    c.f32("TAUV_IVAR", None, &|m, k| m.props[k].tauv_ivar);
    c.f32("AGE", Some("Gyr"), &|m, k| m.props[k].age_gyr);
    c.f32("AGE_IVAR", Some("Gyr-2"), &|m, k| m.props[k].age_ivar);
    c.f32("ZZSUN", None, &|m, k| m.props[k].zzsun);
    c.f32("ZZSUN_IVAR", None, &|m, k| m.props[k].zzsun_ivar);
    c.f32("LOGMSTAR", Some("solMass"), &|m, k| m.props[k].logmstar);
    c.f32("LOGMSTAR_IVAR", Some("solMass-2"), &|m, k| {
        m.props[k].logmstar_ivar
    });
    c.f32("SFR", Some("solMass yr-1"), &|m, k| m.props[k].sfr);
    c.f32("SFR_IVAR", Some("yr2 solMass-2"), &|m, k| {
        m.props[k].sfr_ivar
    });
    if fastspec {
        c.f32("DN4000", None, &|m, k| spec(m, k).dn4000);
        c.f32("DN4000_OBS", None, &|m, k| spec(m, k).dn4000_obs);
        c.f32("DN4000_IVAR", None, &|m, k| spec(m, k).dn4000_ivar);
    }
    c.f32("DN4000_MODEL", None, &|m, k| m.props[k].dn4000_model);
    c.f32("DN4000_MODEL_IVAR", None, &|m, k| {
        m.props[k].dn4000_model_ivar
    });
    if fastspec {
        for (j, b) in cfg.synth_bands.iter().enumerate() {
            c.f32(
                format!("FLUX_SYNTH_{}", b.to_uppercase()),
                Some("nanomaggies"),
                &move |m, k| get(&spec(m, k).flux_synth_nmgy, j),
            );
        }
        for (j, b) in cfg.synth_bands.iter().enumerate() {
            c.f32(
                format!("FLUX_SYNTH_SPECMODEL_{}", b.to_uppercase()),
                Some("nanomaggies"),
                &move |m, k| get(&spec(m, k).flux_synth_specmodel_nmgy, j),
            );
        }
    }
    for (j, b) in cfg.bands.iter().enumerate() {
        c.f32(
            format!("FLUX_SYNTH_PHOTMODEL_{}", b.to_uppercase()),
            Some("nanomaggies"),
            &move |m, k| get(&m.props[k].flux_synth_photmodel_nmgy, j),
        );
    }
    let tag = |j: usize| -> (String, String) {
        let ss = (10.0 * cfg.band_shift[j]) as i64;
        (format!("{ss:02}"), cfg.absmag_bands[j].to_uppercase())
    };
    for j in 0..cfg.absmag_bands.len() {
        let (ss, b) = tag(j);
        c.f32(format!("ABSMAG{ss}_{b}"), Some("mag"), &move |m, k| {
            get(&m.props[k].absmag, j)
        });
        c.f32(
            format!("ABSMAG{ss}_IVAR_{b}"),
            Some("mag-2"),
            &move |m, k| get(&m.props[k].absmag_ivar, j),
        );
        c.f32(
            format!("ABSMAG{ss}_SYNTH_{b}"),
            Some("mag"),
            &move |m, k| get(&m.props[k].absmag_synth, j),
        );
        c.f32(
            format!("ABSMAG{ss}_SYNTH_IVAR_{b}"),
            Some("mag-2"),
            &move |m, k| get(&m.props[k].absmag_synth_ivar, j),
        );
    }
    for j in 0..cfg.absmag_bands.len() {
        let (ss, b) = tag(j);
        c.f32(format!("KCORR{ss}_{b}"), Some("mag"), &move |m, k| {
            get(&m.props[k].kcorr, j)
        });
    }
    // Output order differs from the internal LUMS order (1450, 1500, 1700, 2800, 3000, 5100).
    for (name, j, unit) in [
        ("LOGLNU_1500", 1, U_LNU),
        ("LOGLNU_2800", 3, U_LNU),
        ("LOGL_1450", 0, U_L),
        ("LOGL_1700", 2, U_L),
        ("LOGL_3000", 4, U_L),
        ("LOGL_5100", 5, U_L),
    ] {
        c.f32(name, Some(unit), &move |m, k| m.props[k].lums[j]);
        c.f32(format!("{name}_IVAR"), Some(unit), &move |m, k| {
            m.props[k].lums_ivar[j]
        });
    }
    for (j, name) in [
        "FLYA_1215_CONT",
        "FOII_3727_CONT",
        "FHBETA_CONT",
        "FOIII_5007_CONT",
        "FHALPHA_CONT",
    ]
    .iter()
    .enumerate()
    {
        c.f32(*name, Some(U_CONT), &move |m, k| m.props[k].cfluxes[j]);
        c.f32(format!("{name}_IVAR"), Some(U_CONT), &move |m, k| {
            m.props[k].cfluxes_ivar[j]
        });
    }
    Some(c.out)
}
