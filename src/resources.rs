//! Run-level resources for the fits, loaded once per run: the template set (SPEC §3.1,
//! `--templates`/`--templateversion`/`--imf`, `--vdisp-nominal`/`--vdisp-bounds`), the
//! cosmology (§3.6, `--cosmology flatLCDM --omega-m`), the IGM model (§3.4) and the band
//! filters of every photometric system with the per-band fit configuration (§1.5, §4.1).

use std::path::Path;

use bevy_ecs::prelude::World;
use fsf_components::{BandFilter, BandFilters};
use fsf_systems::kernels::cosmology::Cosmology;
use fsf_systems::kernels::filters::load_filter;
use fsf_systems::kernels::igm::Inoue14;
use fsf_systems::passes::continuum::{FitCosmology, FitIgm};

use crate::io::templates::{read_templates_with, resolve_template_path, TemplateOptions};
use crate::io::IoError;
use crate::run::RunContext;

/// The cosmology selected by `--cosmology` (default: the DESI fiducial table).
///
/// # Errors
/// An unknown cosmology name or an invalid Ωm.
pub fn cosmology_for(name: Option<&str>, omega_m: f64) -> Result<Cosmology, IoError> {
    let here = Path::new("command line");
    let r = match name {
        None => Cosmology::desi_fiducial(),
        Some(n) if n.eq_ignore_ascii_case("flatlcdm") => Cosmology::flat_lcdm(omega_m),
        Some(n) => {
            return Err(IoError::input(
                here,
                format!("unknown --cosmology '{n}' (known: flatLCDM)"),
            ))
        }
    };
    r.map_err(|e| IoError::input(here, format!("cosmology: {e}")))
}

/// The band filters of every photometric system of the configuration.
///
/// # Errors
/// A filter name that is not bundled, or a `bands_to_fit`/`min_uncertainty` list whose
/// length differs from the number of bands.
pub fn band_filters(cfg: &crate::io::photometry::PhotometryConfig) -> Result<BandFilters, IoError> {
    let here = Path::new("photometry configuration");
    let nb = cfg.bands.len();
    if cfg.bands_to_fit.len() != nb {
        return Err(IoError::input(
            here,
            format!("{} bands_to_fit for {nb} bands", cfg.bands_to_fit.len()),
        ));
    }
    if !cfg.min_uncertainty.is_empty() && cfg.min_uncertainty.len() != nb {
        return Err(IoError::input(
            here,
            format!(
                "{} min_uncertainty for {nb} bands",
                cfg.min_uncertainty.len()
            ),
        ));
    }
    let mut per_photsys = Vec::new();
    for (photsys, names) in &cfg.filters {
        let mut v = Vec::with_capacity(names.len());
        for n in names {
            let f = load_filter(n).map_err(|e| IoError::input(here, format!("filter {n}: {e}")))?;
            v.push(BandFilter {
                name: f.name,
                wave_ang: f.wave,
                resp: f.resp,
                lambda_eff_ang: f.lambda_eff,
            });
        }
        per_photsys.push((photsys.clone(), v));
    }
    Ok(BandFilters {
        per_photsys,
        bands_to_fit: cfg.bands_to_fit.clone(),
        min_uncertainty_mag: cfg.min_uncertainty.clone(),
    })
}

/// Insert every run-level resource the fitting systems need.
///
/// # Errors
/// Unreadable template, line-list or configuration files, naming the file.
pub fn insert_fit_resources(world: &mut World, ctx: &RunContext) -> Result<(), IoError> {
    let a = &ctx.args;
    let path = resolve_template_path(a.templates.as_deref(), &a.templateversion, &a.imf)?;
    let opts = TemplateOptions {
        vdisp_nominal_kms: a.vdisp_nominal,
        vdisp_bounds_kms: (
            a.vdisp_bounds.first().copied().unwrap_or(50.0),
            a.vdisp_bounds.get(1).copied().unwrap_or(500.0),
        ),
    };
    let templates = read_templates_with(&path, &opts)?;
    tracing::info!(file = %path.display(), ntemplate = templates.ntemplate, nwave = templates.nwave, "read templates");
    world.insert_resource(templates);
    world.insert_resource(FitCosmology(cosmology_for(
        a.cosmology.as_deref(),
        a.omega_m,
    )?));
    let igm = Inoue14::new()
        .map_err(|e| IoError::input(Path::new("<bundled IGM coefficients>"), e.to_string()))?;
    world.insert_resource(FitIgm(igm));
    world.insert_resource(band_filters(&ctx.phot_cfg)?);
    if let Some(em) = &ctx.emlines {
        world.insert_resource(fsf_systems::passes::fastspec::EmlineSetup {
            table: em.table.clone(),
            constraints: em.constraints.clone(),
        });
    }
    Ok(())
}
