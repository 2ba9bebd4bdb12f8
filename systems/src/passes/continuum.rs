//! Systems of the continuum fit (SPEC §4). For now: `fit_continuum_fastphot`, the
//! photometry-only fit of `fastphot` (SPEC §2.3 steps 1–2, §4.1, §4.2, §4.3, §4.9, §4.10);
//! the fastspec continuum comes later.

use std::collections::HashMap;

use bevy_ecs::prelude::*;
use fsf_components::templates::Templates;
use fsf_components::{
    BandFilters, ContinuumFit, FitOptions, FitStatus, MilkyWayDust, ObservedPhotometry, Program,
    Redshift, SeedOffset, Target,
};

use super::FitSystems;
use crate::kernels::continuum::rng::per_object_seeds;
use crate::kernels::continuum::{
    fit_fastphot, FastphotInputs, FastphotResult, TemplateArrays, VarproWorkspace,
};
use crate::kernels::cosmology::Cosmology;
use crate::kernels::filters::FilterCurve;
use crate::kernels::igm::Inoue14;
use crate::kernels::KernelError;

/// FitStatus bit of a failed continuum fit (bit 8, clear of the FLAG_* bits of
/// `FitStatus` itself).
pub const FLAG_CONTINUUM: u32 = 1 << 8;

/// The run's cosmology (SPEC §3.6), shared read-only.
#[derive(Resource, Debug, Clone)]
pub struct FitCosmology(pub Cosmology);

/// The IGM attenuation model (SPEC §3.4), shared read-only.
#[derive(Resource, Debug, Clone)]
pub struct FitIgm(pub Inoue14);

/// Register this module's systems in the schedule.
pub fn register(schedule: &mut Schedule) {
    schedule.add_systems(fit_continuum_fastphot.in_set(FitSystems::Continuum));
}

/// The band filters of every photometric system as kernel [`FilterCurve`]s.
pub fn band_filter_curves(bands: &BandFilters) -> HashMap<String, Vec<FilterCurve>> {
    bands
        .per_photsys
        .iter()
        .map(|(k, v)| {
            let fc = v
                .iter()
                .map(|b| FilterCurve {
                    name: b.name.clone(),
                    wave: b.wave_ang.clone(),
                    resp: b.resp.clone(),
                    lambda_eff: b.lambda_eff_ang,
                    band_shift: None,
                })
                .collect();
            (k.clone(), fc)
        })
        .collect()
}

/// FastSpecFit's SEED column for the targets in rows `0..nrows` of the current file, preceded
/// by `offset` targets of the same run: `--input-seeds` if given, else the master seed's
/// `default_rng(seed).integers(2**32, size=ntotal)[offset + row]` (NumPy's stream is
/// prefix-consistent, so the run total need not be known) when Monte Carlo runs, else 1.
pub fn target_seeds(opts: &FitOptions, offset: usize, nrows: usize) -> Vec<i64> {
    if let Some(s) = &opts.input_seeds {
        return (0..nrows).map(|r| s.get(r).copied().unwrap_or(1)).collect();
    }
    if opts.nmonte > 0 {
        per_object_seeds(opts.seed as u64, offset + nrows).split_off(offset)
    } else {
        vec![1; nrows]
    }
}

/// Run-level inputs of one fastphot fit.
struct Shared<'a> {
    opts: &'a FitOptions,
    tpl: &'a Templates,
    cosmo: &'a Cosmology,
    igm: &'a Inoue14,
    bands: &'a BandFilters,
    filters: &'a HashMap<String, Vec<FilterCurve>>,
}

/// Fit one target; the ContinuumFit or the reason it failed.
fn fit_one(
    sh: &Shared<'_>,
    z: f64,
    photsys: &str,
    dust: &MilkyWayDust,
    seed: i64,
    ws: &mut VarproWorkspace,
) -> Result<ContinuumFit, KernelError> {
    let filters = sh.filters.get(photsys).ok_or_else(|| {
        KernelError::Domain(format!("no filters configured for PHOTSYS '{photsys}'"))
    })?;
    let dlum = sh.cosmo.luminosity_distance(z)?;
    let dmod = sh.cosmo.distance_modulus(z)?;
    let tuniv = if sh.opts.constrain_age {
        sh.cosmo.universe_age(z)?
    } else {
        100.0
    };
    let nmgy: Vec<f64> = dust.flux_nmgy.iter().map(|&v| v as f64).collect();
    let ivar: Vec<f64> = dust.ivar_nmgy2.iter().map(|&v| v as f64).collect();
    let nb = filters.len();
    if nmgy.len() != nb || ivar.len() != nb || sh.bands.bands_to_fit.len() != nb {
        return Err(KernelError::Shape(format!(
            "{} fluxes for {nb} filters",
            nmgy.len()
        )));
    }
    let t = sh.tpl;
    let inp = FastphotInputs {
        tpl: TemplateArrays {
            wave: &t.wave_ang,
            klambda: &t.dust_klambda,
            dustflux: &t.dustflux,
            flux: &t.flux_nomvdisp,
            flux_nolines: &t.flux_nolines_nomvdisp,
        },
        ages_yr: &t.age_yr,
        z,
        dlum_mpc: dlum,
        tuniv_gyr: tuniv,
        constrain_age: sh.opts.constrain_age,
        igm: sh.igm,
        filters,
        nmgy: &nmgy,
        ivar: &ivar,
        min_uncertainty: (sh.bands.min_uncertainty_mag.len() == nb)
            .then_some(sh.bands.min_uncertainty_mag.as_slice()),
        bands_to_fit: &sh.bands.bands_to_fit,
        nmonte: sh.opts.nmonte,
        seed: seed as u64,
    };
    let r: FastphotResult = fit_fastphot(&inp, ws)?;
    Ok(ContinuumFit {
        fitted: true,
        seed,
        coeff: r.coeff,
        agekeep: r.agekeep,
        tauv: r.tauv,
        tauv_fit: r.tauv_fit,
        tauv_ivar: r.tauv_ivar,
        vdisp_kms: (t.vdisp_nominal_kernel_kms.powi(2) + t.sigma_c3k_kms.powi(2)).sqrt(),
        vdisp_ivar: 0.0,
        rchi2_phot: r.rchi2_phot,
        rchi2_cont: 0.0,
        ndof_phot: r.ndof_phot,
        dlum_mpc: dlum,
        dmod,
        tuniv_gyr: tuniv,
        lambda_eff_ang: r.lambda_eff,
        phot_flam: r.phot_flam,
        phot_flam_ivar: r.phot_flam_ivar,
        model_flam: r.model_flam,
        sedmodel: r.sedmodel,
        sedmodel_nolines: r.sedmodel_nolines,
        mc_coeff: r.mc_coeff,
        mc_tauv: r.mc_tauv,
        templates_vdisp: None,
    })
}

/// System: the fastphot continuum fit of every target (runs only for `Program::Fastphot`).
///
/// Reads `Target`, `Redshift`, `ObservedPhotometry` (photsys), `MilkyWayDust`, resources
/// `FitOptions`, `Templates`, `FitCosmology`, `FitIgm`, `BandFilters`; writes
/// `ContinuumFit`, or flags `FitStatus` (FLAG_CONTINUUM) with a log line naming the TARGETID.
/// Targets already flagged by an earlier pass are not fitted. One workspace per worker
/// thread; the per-target seed depends only on the row, so results do not depend on the
/// thread count.
#[allow(clippy::type_complexity)]
pub fn fit_continuum_fastphot(
    opts: Res<FitOptions>,
    templates: Option<Res<Templates>>,
    cosmo: Option<Res<FitCosmology>>,
    igm: Option<Res<FitIgm>>,
    bands: Option<Res<BandFilters>>,
    offset: Option<Res<SeedOffset>>,
    mut q: Query<(
        &Target,
        &Redshift,
        &ObservedPhotometry,
        &MilkyWayDust,
        &mut FitStatus,
        &mut ContinuumFit,
    )>,
) {
    if opts.program != Program::Fastphot {
        return;
    }
    let _span = tracing::info_span!("fit_continuum_fastphot").entered();
    let (Some(tpl), Some(cosmo), Some(igm), Some(bands)) = (templates, cosmo, igm, bands) else {
        tracing::error!(
            "fastphot: templates, cosmology, IGM or filter resources missing; nothing fitted"
        );
        return;
    };
    let filters = band_filter_curves(&bands);
    let nrows = q.iter().map(|(t, ..)| t.row + 1).max().unwrap_or(0);
    let seeds = target_seeds(&opts, offset.map(|o| o.0).unwrap_or(0), nrows);
    let sh = Shared {
        opts: &opts,
        tpl: &tpl,
        cosmo: &cosmo.0,
        igm: &igm.0,
        bands: &bands,
        filters: &filters,
    };
    q.par_iter_mut()
        .batching_strategy(super::PER_TARGET)
        .for_each_init(
            VarproWorkspace::default,
            |ws, (target, z, phot, dust, mut status, mut fit)| {
                if !status.ok() {
                    return;
                }
                let seed = seeds.get(target.row).copied().unwrap_or(1);
                match fit_one(&sh, z.z, &phot.photsys, dust, seed, ws) {
                    Ok(f) => *fit = f,
                    Err(e) => {
                        tracing::warn!(
                            targetid = target.targetid,
                            "fastphot continuum fit failed: {e}"
                        );
                        *fit = ContinuumFit {
                            seed,
                            ..Default::default()
                        };
                        status.flag(FLAG_CONTINUUM, format!("continuum fit: {e}"));
                    }
                }
            },
        );
}
