//! Systems of the spectroscopic half of fastspec (SPEC §2.5, §4.4–§4.9, §5): run-level line
//! setup, and the bookkeeping that copies per-target preparation results into FASTSPEC.

use std::collections::HashMap;

use bevy_ecs::prelude::*;
use fsf_components::spectrum::SynthPhotometry;
use fsf_components::templates::Templates;
use fsf_components::{
    BandFilters, ContinuumFit, FastspecSchema, FitOptions, FitStatus, MilkyWayDust,
    ObservedPhotometry, PhotometricSetup, PreparedSpectrum, Program, Redshift, SeedOffset,
    SpectralFit, Target,
};

use super::continuum::{target_seeds, FitCosmology, FitIgm, FLAG_CONTINUUM};
use super::FitSystems;
use crate::kernels::continuum::photvec::parse_photometry;
use crate::kernels::continuum::specmodel::CameraData;
use crate::kernels::continuum::{
    fit_fastspec, FastspecInputs, FastspecResult, FastspecTemplates, FastspecWorkspace,
};
use crate::kernels::cosmology::Cosmology;
use crate::kernels::emlines::table::{Constraints, LineTable};
use crate::kernels::filters::{load_filter, FilterCurve};
use crate::kernels::igm::Inoue14;
use crate::kernels::vdisp::{PreCache, VdispGrid};
use crate::kernels::KernelError;

/// The run's emission-line table and kinematic constraints (fastspec only).
#[derive(Resource, Debug, Clone)]
pub struct EmlineSetup {
    /// The line table (sorted by rest wavelength).
    pub table: LineTable,
    /// The kinematic constraints.
    pub constraints: Constraints,
}

/// Register this module's systems in the schedule.
pub fn register(schedule: &mut Schedule) {
    schedule.add_systems(record_snr.in_set(FitSystems::Finalize));
    schedule.add_systems(fit_continuum_fastspec.in_set(FitSystems::Continuum));
}

/// System: SNR_{B,R,Z} of every prepared target into its FASTSPEC values.
pub fn record_snr(
    opts: Res<FitOptions>,
    schema: Option<Res<FastspecSchema>>,
    mut q: Query<(&PreparedSpectrum, &mut SpectralFit)>,
) {
    if opts.program != Program::Fastspec {
        return;
    }
    let Some(schema) = schema else { return };
    let _span = tracing::info_span!("record_snr").entered();
    let n = schema.len();
    let idx: Vec<Option<usize>> = ["SNR_B", "SNR_R", "SNR_Z"]
        .iter()
        .map(|c| schema.index(c))
        .collect();
    q.par_iter_mut().for_each(|(prep, mut sf)| {
        if prep.cameras.is_empty() {
            return;
        }
        for (k, i) in idx.iter().enumerate() {
            if let (Some(i), Some(&v)) = (i, prep.snr.get(k)) {
                sf.set(n, *i, f64::from(v));
            }
        }
    });
}

/// The emission-line mask of a target's cameras (SPEC §2.5), consumed by the continuum fit.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct CameraLineMasks {
    /// Whether the mask was built.
    pub built: bool,
    /// Per kept camera: true where a pixel is affected by an emission line.
    pub masks: Vec<Vec<bool>>,
}

/// The spectroscopic products of the fastspec continuum fit that later systems read (line
/// fit, measurements, writers): the full kernel result.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct SpectralContinuum(pub Option<FastspecResult>);

/// Run-level inputs of the fastspec continuum fit.
struct ContShared<'a> {
    opts: &'a FitOptions,
    tpl: &'a Templates,
    cosmo: &'a Cosmology,
    igm: &'a Inoue14,
    bands: &'a BandFilters,
    filters: &'a HashMap<String, Vec<FilterCurve>>,
    synth: &'a HashMap<String, Vec<FilterCurve>>,
    synth_bands: &'a [String],
    band_names: &'a [String],
}

fn curves(v: &[fsf_components::BandFilter]) -> Vec<FilterCurve> {
    v.iter()
        .map(|b| FilterCurve {
            name: b.name.clone(),
            wave: b.wave_ang.clone(),
            resp: b.resp.clone(),
            lambda_eff: b.lambda_eff_ang,
            band_shift: None,
        })
        .collect()
}

fn fit_continuum_one(
    sh: &ContShared<'_>,
    z: f64,
    photsys: &str,
    dust: &MilkyWayDust,
    prep: &PreparedSpectrum,
    masks: &CameraLineMasks,
    seed: i64,
    ws: &mut FastspecWorkspace,
) -> Result<(ContinuumFit, FastspecResult), KernelError> {
    let filters = sh.filters.get(photsys).ok_or_else(|| {
        KernelError::Domain(format!("no filters configured for PHOTSYS '{photsys}'"))
    })?;
    let synth = sh.synth.get(photsys).ok_or_else(|| {
        KernelError::Domain(format!(
            "no synth filters configured for PHOTSYS '{photsys}'"
        ))
    })?;
    let nb = filters.len();
    let nmgy: Vec<f64> = dust.flux_nmgy.iter().map(|&v| f64::from(v)).collect();
    let ivar: Vec<f64> = dust.ivar_nmgy2.iter().map(|&v| f64::from(v)).collect();
    if nmgy.len() != nb || ivar.len() != nb || sh.bands.bands_to_fit.len() != nb {
        return Err(KernelError::Shape(format!(
            "{} fluxes for {nb} filters",
            nmgy.len()
        )));
    }
    let lambda_eff: Vec<f64> = filters.iter().map(|f| f.lambda_eff).collect();
    let (mut flam, mut flam_ivar) = (vec![0.0; nb], vec![0.0; nb]);
    parse_photometry(
        &nmgy,
        &ivar,
        &lambda_eff,
        (sh.bands.min_uncertainty_mag.len() == nb)
            .then_some(sh.bands.min_uncertainty_mag.as_slice()),
        &mut flam,
        &mut flam_ivar,
    )?;
    if masks.masks.len() != prep.cameras.len() {
        return Err(KernelError::Shape(format!(
            "{} camera line masks for {} cameras",
            masks.masks.len(),
            prep.cameras.len()
        )));
    }
    let cams: Vec<CameraData<'_>> = prep
        .cameras
        .iter()
        .zip(&masks.masks)
        .map(|(c, m)| CameraData {
            wave: &c.wave_ang,
            flux: &c.flux,
            ivar: &c.ivar,
            linemask: m,
            res_ndiag: c.ndiag,
            res: &c.res,
        })
        .collect();
    // Aperture bands: photometry bands whose name is a synth band (photometry order).
    let band_names = sh.band_names;
    let aper_bands: Vec<usize> = (0..band_names.len())
        .filter(|&i| {
            sh.synth_bands
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&band_names[i]))
        })
        .collect();
    let synth_sel: Vec<FilterCurve> = aper_bands
        .iter()
        .filter_map(|&i| {
            sh.synth_bands
                .iter()
                .position(|s| s.eq_ignore_ascii_case(&band_names[i]))
                .and_then(|k| synth.get(k).cloned())
        })
        .collect();
    let dlum = sh.cosmo.luminosity_distance(z)?;
    let dmod = sh.cosmo.distance_modulus(z)?;
    let tuniv = if sh.opts.constrain_age {
        sh.cosmo.universe_age(z)?
    } else {
        100.0
    };
    let t = sh.tpl;
    let pre = &t.conv_pre_nolines;
    let bounds = sh.opts.vdisp_bounds_kms;
    let inp = FastspecInputs {
        tpl: FastspecTemplates {
            wave: &t.wave_ang,
            klambda: &t.dust_klambda,
            dustflux: &t.dustflux,
            flux: &t.flux,
            flux_nolines: &t.flux_nolines,
            flux_nomvdisp: &t.flux_nomvdisp,
            flux_nolines_nomvdisp: &t.flux_nolines_nomvdisp,
            conv_pre_nolines: PreCache {
                ntemplate: pre.ntemplate,
                fft_len: pre.fft_len,
                max_radius: pre.max_radius_pix,
                flux_outer: &pre.flux_outer,
                ft_re: &pre.ft_re,
                ft_im: &pre.ft_im,
            },
            grid: VdispGrid {
                lo: t.pixkms_bounds.0,
                hi: t.pixkms_bounds.1,
                pixkms: t.pixkms,
            },
            ages_yr: &t.age_yr,
            mstar: &t.mstar,
            sigma_c3k: t.sigma_c3k_kms,
            vdisp_nominal_kernel: t.vdisp_nominal_kernel_kms,
            vdisp_bounds: bounds,
        },
        z,
        dlum_mpc: dlum,
        tuniv_gyr: tuniv,
        constrain_age: sh.opts.constrain_age,
        igm: sh.igm,
        cameras: &cams,
        filters,
        phot_flam: &flam,
        phot_flam_ivar: &flam_ivar,
        bands_to_fit: &sh.bands.bands_to_fit,
        synth_filters: &synth_sel,
        aper_bands: &aper_bands,
        nmonte: sh.opts.nmonte,
        seed: seed as u64,
        no_smooth_continuum: sh.opts.no_smooth_continuum,
        vdisp_scan_override: None,
    };
    let r = fit_fastspec(&inp, ws)?;
    let cf = ContinuumFit {
        fitted: true,
        seed,
        coeff: r.coeff.clone(),
        agekeep: r.agekeep.clone(),
        tauv: r.tauv,
        tauv_fit: r.tauv_fit,
        tauv_ivar: r.tauv_ivar,
        vdisp_kms: r.vdisp,
        vdisp_ivar: r.vdisp_ivar,
        rchi2_phot: r.rchi2_phot,
        ndof_phot: r.ndof_phot,
        rchi2_cont: r.rchi2_cont,
        dlum_mpc: dlum,
        dmod,
        tuniv_gyr: tuniv,
        lambda_eff_ang: r.lambda_eff.clone(),
        phot_flam: r.phot_flam.clone(),
        phot_flam_ivar: r.phot_flam_ivar.clone(),
        model_flam: r.model_flam.clone(),
        sedmodel: r.sedmodel.clone(),
        sedmodel_nolines: r.sedmodel_nolines.clone(),
        mc_coeff: r.mc_coeff.clone(),
        mc_tauv: r.mc_tauv.clone(),
    };
    Ok((cf, r))
}

/// System: the fastspec continuum fit of every prepared target (SPEC §4.4–§4.9).
///
/// Reads the prepared spectrum, its camera line masks and the dereddened photometry; writes
/// `ContinuumFit` (the SPECPHOT continuum columns) and [`SpectralContinuum`] (continuum
/// and smooth models, Monte Carlo spectra for the line fit, APERCORR, SMOOTHCORR), or flags
/// the target (FLAG_CONTINUUM) with a log line naming its TARGETID.
#[allow(clippy::type_complexity)]
pub fn fit_continuum_fastspec(
    opts: Res<FitOptions>,
    templates: Option<Res<Templates>>,
    cosmo: Option<Res<FitCosmology>>,
    igm: Option<Res<FitIgm>>,
    bands: Option<Res<BandFilters>>,
    setup: Option<Res<PhotometricSetup>>,
    synth: Option<Res<SynthPhotometry>>,
    offset: Option<Res<SeedOffset>>,
    mut q: Query<(
        &Target,
        &Redshift,
        &ObservedPhotometry,
        &MilkyWayDust,
        &PreparedSpectrum,
        &CameraLineMasks,
        &mut FitStatus,
        &mut ContinuumFit,
        &mut SpectralContinuum,
    )>,
) {
    if opts.program != Program::Fastspec {
        return;
    }
    let _span = tracing::info_span!("fit_continuum_fastspec").entered();
    let (Some(tpl), Some(cosmo), Some(igm), Some(bands), Some(synth), Some(setup)) =
        (templates, cosmo, igm, bands, synth, setup)
    else {
        tracing::error!("fastspec: continuum resources missing; nothing fitted");
        return;
    };
    let filters: HashMap<String, Vec<FilterCurve>> = bands
        .per_photsys
        .iter()
        .map(|(k, v)| (k.clone(), curves(v)))
        .collect();
    let mut synth_curves: HashMap<String, Vec<FilterCurve>> = HashMap::new();
    for (photsys, names) in &synth.filters {
        match names
            .iter()
            .map(|n| load_filter(n))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(c) => {
                synth_curves.insert(photsys.clone(), c);
            }
            Err(e) => tracing::error!(photsys, "synth filters: {e}"),
        }
    }
    let nrows = q.iter().map(|(t, ..)| t.row + 1).max().unwrap_or(0);
    let seeds = target_seeds(&opts, offset.map(|o| o.0).unwrap_or(0), nrows);
    let sh = ContShared {
        opts: &opts,
        tpl: &tpl,
        cosmo: &cosmo.0,
        igm: &igm.0,
        bands: &bands,
        filters: &filters,
        synth: &synth_curves,
        synth_bands: &synth.bands,
        band_names: &setup.bands,
    };
    q.par_iter_mut().for_each_init(
        FastspecWorkspace::default,
        |ws, (target, z, phot, dust, prep, masks, mut status, mut fit, mut spec)| {
            if !status.ok() || prep.cameras.is_empty() || !masks.built {
                return;
            }
            let seed = seeds.get(target.row).copied().unwrap_or(1);
            match fit_continuum_one(&sh, z.z, &phot.photsys, dust, prep, masks, seed, ws) {
                Ok((cf, r)) => {
                    *fit = cf;
                    spec.0 = Some(r);
                }
                Err(e) => {
                    tracing::warn!(
                        targetid = target.targetid,
                        "fastspec continuum fit failed: {e}"
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
