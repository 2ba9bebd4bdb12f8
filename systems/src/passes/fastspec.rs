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

use super::continuum::{band_filter_curves, target_seeds, FitCosmology, FitIgm, FLAG_CONTINUUM};
use super::spectrum::load_synth_curves;
use super::FitSystems;
use crate::kernels::continuum::photvec::parse_photometry;
use crate::kernels::continuum::specmodel::CameraData;
use crate::kernels::continuum::{
    fit_fastspec, FastspecInputs, FastspecResult, FastspecTemplates, FastspecWorkspace,
};
use crate::kernels::cosmology::Cosmology;
use crate::kernels::emlines::fit::{
    emline_specfit, LineFitCamera, LineFitInput, LineFitOptions, LineFitResult, MaskerOutputs,
    McArray, MonteCarloInput,
};
use crate::kernels::emlines::measure::{
    dn4000_observed, final_model, measure_lines, FinalInputs, MeasureInputs, MeasureWorkspace,
    MonteInputs,
};
use crate::kernels::emlines::optimize::OptimizeWorkspace;
use crate::kernels::emlines::table::{Constraints, LineTable};
use crate::kernels::emlines::{InitialKinematics, ParamTable};
use crate::kernels::filters::FilterCurve;
use crate::kernels::igm::Inoue14;
use crate::kernels::linemask::{build_linemask, camera_linepix, LineMaskOptions};
use crate::kernels::resolution::Resolution;
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
    schedule.add_systems(
        build_linemasks
            .in_set(FitSystems::Continuum)
            .before(fit_continuum_fastspec),
    );
    schedule.add_systems(fit_continuum_fastspec.in_set(FitSystems::Continuum));
    schedule.add_systems(fit_lines.in_set(FitSystems::Lines));
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
    // SNR_{camera} columns in file-camera order (b, r, z for DESI; one "brz" for stacks).
    let idx: Vec<Option<usize>> = schema
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.name.starts_with("SNR_"))
        .map(|(i, _)| Some(i))
        .collect();
    q.par_iter_mut()
        .batching_strategy(super::PER_TARGET)
        .for_each(|(prep, mut sf)| {
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
#[derive(Component, Debug, Clone, PartialEq, Default)]
pub struct CameraLineMasks {
    /// Whether the mask was built.
    pub built: bool,
    /// Per kept camera: true where a pixel is affected by an emission line.
    pub masks: Vec<Vec<bool>>,
    /// Initial line kinematics per class (INIT_SIGMA_* / INIT_VSHIFT_*).
    pub kin: InitialKinematics,
    /// Some in-range patch holds a strong broad Balmer line (INIT_BALMER_BROAD).
    pub balmerbroad: bool,
    /// (line index in the table, coadd-grid pixels), in the masker's key order.
    pub coadd_linepix: Vec<(usize, Vec<usize>)>,
}

/// The spectroscopic products of the fastspec continuum fit that later systems read (line
/// fit, measurements, writers): the full kernel result, except the SED models, Monte Carlo
/// coefficients and vdisp-convolved templates, which move into `ContinuumFit` (left empty
/// here).
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct SpectralContinuum(pub Option<FastspecResult>);

/// The template set as the fastspec continuum kernel reads it, with the velocity-dispersion
/// kernel bounds `vdisp_bounds` (km/s).
pub fn fastspec_templates(t: &Templates, vdisp_bounds: (f64, f64)) -> FastspecTemplates<'_> {
    let pre = &t.conv_pre_nolines;
    FastspecTemplates {
        wave: &t.wave_ang,
        klambda: &t.dust_klambda,
        dustflux: &t.dustflux,
        flux: &t.flux,
        flux_nolines: &t.flux_nolines,
        flux_nomvdisp: &t.flux_nomvdisp,
        flux_nolines_nomvdisp: &t.flux_nolines_nomvdisp,
        conv_pre_nolines: PreCache::from(pre),
        grid: VdispGrid {
            lo: t.pixkms_bounds.0,
            hi: t.pixkms_bounds.1,
            pixkms: t.pixkms,
        },
        ages_yr: &t.age_yr,
        mstar: &t.mstar,
        sigma_c3k: t.sigma_c3k_kms,
        vdisp_nominal_kernel: t.vdisp_nominal_kernel_kms,
        vdisp_bounds,
    }
}

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

/// The synth filter curves per photometric system (systems whose curves fail to load are
/// logged and left out; their targets then fail with a message naming the PHOTSYS).
fn synth_curves(synth: &SynthPhotometry) -> HashMap<String, Vec<FilterCurve>> {
    load_synth_curves(synth)
        .into_iter()
        .filter_map(|(photsys, c)| match c {
            Ok(c) => Some((photsys, c)),
            Err(e) => {
                tracing::error!(photsys, "synth filters: {e}");
                None
            }
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
    let inp = FastspecInputs {
        tpl: fastspec_templates(sh.tpl, sh.opts.vdisp_bounds_kms),
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
        fluxnorm: sh.opts.fluxnorm,
        vdisp_scan_override: None,
        vdisp_mc_fsf: sh.opts.vdisp_mc_fsf,
    };
    let mut r = fit_fastspec(&inp, ws)?;
    // the large arrays only the derived properties read move into the ContinuumFit (nothing
    // reads them from the FastspecResult afterwards)
    let take = std::mem::take::<Vec<f64>>;
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
        sedmodel: take(&mut r.sedmodel),
        sedmodel_nolines: take(&mut r.sedmodel_nolines),
        mc_coeff: std::mem::take(&mut r.mc_coeff),
        mc_tauv: r.mc_tauv.clone(),
        templates_vdisp: Some(std::sync::Arc::new((
            take(&mut r.input_templateflux),
            take(&mut r.input_templateflux_nolines),
        ))),
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
    let filters = band_filter_curves(&bands);
    let synth_curves = synth_curves(&synth);
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
    q.par_iter_mut()
        .batching_strategy(super::PER_TARGET).for_each_init(
        FastspecWorkspace::default,
        |ws, (target, z, phot, dust, prep, masks, mut status, mut fit, mut spec)| {
            if !status.ok() || prep.cameras.is_empty() || !masks.built {
                return;
            }
            let seed = seeds.get(target.row).copied().unwrap_or(1);
            match fit_continuum_one(&sh, z.z, &phot.photsys, dust, prep, masks, seed, ws) {
                Ok((cf, r)) => {
                    if cf.ndof_phot == 0 && !opts.ignore_photometry {
                        tracing::warn!(
                            targetid = target.targetid,
                            "no photometric band with ivar > 0: continuum fitted to the spectrum alone"
                        );
                    }
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

/// The line fit of a target (SPEC §5.4–§5.6), kept for the measurements.
#[derive(Component, Debug, Clone, Default)]
pub struct LineFitState(pub Option<Box<LineFitResult>>);

/// FitStatus bit of a failed emission-line fit or measurement.
pub const FLAG_LINES: u32 = 1 << 9;

/// Hstacked wave/flux/ivar of the prepared cameras.
fn hstack(prep: &PreparedSpectrum) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = prep.camerapix.last().map_or(0, |r| r.1);
    let (mut w, mut f, mut i) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for c in &prep.cameras {
        w.extend_from_slice(&c.wave_ang);
        f.extend_from_slice(&c.flux);
        i.extend_from_slice(&c.ivar);
    }
    (w, f, i)
}

/// Run-level inputs of the line fit.
struct LineShared<'a> {
    opts: &'a FitOptions,
    setup: &'a EmlineSetup,
    pt: &'a ParamTable,
    schema: &'a FastspecSchema,
    synth: &'a HashMap<String, Vec<FilterCurve>>,
    setup_synth_bands: &'a [String],
    /// Keep each target's full line-fit result (with its Monte Carlo models) in
    /// [`LineFitState`]; off in production (memory), nothing downstream reads it.
    keep_line_fits: bool,
}

#[derive(Default)]
struct LineWork {
    opt: OptimizeWorkspace,
    meas: MeasureWorkspace,
}

/// Fit and measure the lines of one target; fills `sf` (FASTSPEC values, SPECPHOT
/// spectroscopic scalars, MODELS).
#[allow(clippy::too_many_arguments)]
fn lines_one(
    sh: &LineShared<'_>,
    z: f64,
    photsys: &str,
    prep: &PreparedSpectrum,
    lm: &CameraLineMasks,
    cont: &FastspecResult,
    ws: &mut LineWork,
    sf: &mut SpectralFit,
) -> Result<LineFitResult, KernelError> {
    let (wave, flux, ivar) = hstack(prep);
    let cams: Vec<LineFitCamera<'_>> = prep
        .cameras
        .iter()
        .zip(&prep.camerapix)
        .map(|(c, &(start, end))| LineFitCamera {
            start,
            end,
            res_deconv: &c.res_deconv,
        })
        .collect();
    let input = LineFitInput {
        z,
        wave: &wave,
        flux: &flux,
        ivar: &ivar,
        continuum: &cont.continuummodel,
        smooth: &cont.smoothcontinuum,
        cameras: &cams,
        coadd_wave: &prep.coadd_wave,
        masker: MaskerOutputs {
            kin: lm.kin,
            balmerbroad: lm.balmerbroad,
            coadd_linepix: &lm.coadd_linepix,
        },
    };
    let nmonte = cont.specflux_mc.len();
    let mc = (nmonte > 0).then(|| MonteCarloInput {
        specflux: McArray::Rows(&cont.specflux_mc),
        continuum: (cont.continuummodel_mc.len() == nmonte)
            .then_some(McArray::Rows(&cont.continuummodel_mc)),
    });
    let lopts = LineFitOptions {
        broadlinefit: sh.opts.broadlinefit,
        minsnr_balmer_broad: sh.opts.minsnr_balmer_broad,
        ..LineFitOptions::default()
    };
    let r = emline_specfit(
        sh.pt,
        &sh.setup.constraints,
        &input,
        mc,
        &lopts,
        &mut ws.opt,
    )?;

    // Per-line measurements (§5.7).
    let np = sh.pt.nparams();
    let nl = sh.pt.nlines();
    let m = &r.mc;
    let monte = (!m.is_empty()
        && m.values.len() == m.len() * np
        && m.obsamps.len() == m.len() * nl)
        .then(|| MonteInputs {
            nmonte: m.len(),
            values: &m.values,
            obsamps: &m.obsamps,
            emlineflux: &m.emlineflux,
            specflux_nolines: &m.specflux_nolines,
        });
    let measured = measure_lines(
        &MeasureInputs {
            params: sh.pt,
            model: &r.linemodel,
            in_range: &r.in_range,
            moments: &sh.setup.constraints.moments,
            z,
            values: &r.fit.values,
            obsamps: &r.fit.obsamps,
            emlinewave: &wave,
            emlineflux: &r.emlineflux,
            emlineivar: &r.emlineivar,
            oemlineivar: &ivar,
            model_pref: &r.fit.model,
            specflux_nolines: &r.specflux_nolines,
            monte,
        },
        &mut ws.meas,
    )?;
    let (dn_obs, dn_ivar) = dn4000_observed(&wave, &flux, &ivar, z, &mut ws.meas);
    let synth = sh.synth.get(photsys).map(Vec::as_slice).unwrap_or(&[]);
    let fm = final_model(
        &FinalInputs {
            params: sh.pt,
            spectrum: &r.spectrum,
            measured: &measured,
            emlinewave: &wave,
            specflux: &flux,
            oemlineivar: &ivar,
            continuum: &cont.continuummodel,
            smooth: &cont.smoothcontinuum,
            coadd_wave: &prep.coadd_wave,
            coadd_flux: &prep.coadd_flux,
            synth_filters: synth,
            dn4000_ivar: dn_ivar,
        },
        &mut ws.meas,
    )?;

    // FASTSPEC values.
    let sc = sh.schema;
    let n = sc.len();
    let mut set = |name: &str, v: f64| {
        if let Some(i) = sc.index(name) {
            sf.set(n, i, v);
        }
    };
    for (k, cam) in prep.cameras.iter().enumerate() {
        if let Some(&v) = cont.smoothcorr.get(k) {
            set(&format!("SMOOTHCORR_{}", cam.name.to_uppercase()), v);
        }
    }
    set("APERCORR", cont.apercorr);
    for (k, b) in sh.synth_bands_upper().iter().enumerate() {
        if let Some(&v) = cont.apercorrs.get(k) {
            set(&format!("APERCORR_{b}"), v);
        }
    }
    set("INIT_SIGMA_UV", lm.kin.sigma_broad);
    set("INIT_SIGMA_NARROW", lm.kin.sigma_narrow);
    set("INIT_SIGMA_BALMER", lm.kin.sigma_balmer_broad);
    set("INIT_VSHIFT_UV", lm.kin.vshift_broad);
    set("INIT_VSHIFT_NARROW", lm.kin.vshift_narrow);
    set("INIT_VSHIFT_BALMER", lm.kin.vshift_balmer_broad);
    set("INIT_BALMER_BROAD", f64::from(u8::from(lm.balmerbroad)));
    set("DELTA_LINECHI2", r.delta_linechi2);
    set("DELTA_LINENDOF", r.delta_linendof as f64);
    set("DELTA_KINECHI2", r.delta_kinechi2);
    set("DELTA_KINENDOF", r.delta_kinendof as f64);
    for rc in &measured.ratios {
        set(&rc.name, f64::from(rc.value));
        set(&format!("{}_IVAR", rc.name), f64::from(rc.ivar));
    }
    for mcol in &measured.moments {
        let label = mcol.label.to_uppercase();
        for k in 0..3 {
            set(
                &format!("{label}_MOMENT{}", k + 1),
                f64::from(mcol.moments[k]),
            );
            set(
                &format!("{label}_MOMENT{}_IVAR", k + 1),
                f64::from(mcol.ivar[k]),
            );
        }
    }
    for (j, lc) in measured.lines.iter().enumerate() {
        if j >= sc.lines.len() {
            break;
        }
        for (s, v) in lc.values().iter().enumerate() {
            sf.set(n, sc.line_column(j, s), *v);
        }
    }
    sf.rchi2 = fm.rchi2;
    sf.rchi2_line = r.fit.chi2;
    sf.dn4000 = fm.dn4000;
    sf.dn4000_obs = dn_obs;
    sf.dn4000_ivar = dn_ivar;
    sf.flux_synth_specmodel_nmgy = fm.flux_synth_specmodel;
    sf.models_wave0 = fm.models.crval1;
    sf.models_dwave = fm.models.cdelt1;
    sf.models = [fm.models.continuum, fm.models.smooth, fm.models.emline];
    sf.fitted = true;
    Ok(r)
}

impl LineShared<'_> {
    fn synth_bands_upper(&self) -> Vec<String> {
        self.setup_synth_bands
            .iter()
            .map(|b| b.to_uppercase())
            .collect()
    }
}

/// System: the emission-line fit and per-line measurements of every target whose continuum
/// was fitted (SPEC §5); fills [`SpectralFit`] (FASTSPEC values, RCHI2*, DN4000*,
/// FLUX_SYNTH_SPECMODEL_*, MODELS) or flags the target (FLAG_LINES).
#[allow(clippy::type_complexity)]
pub fn fit_lines(
    opts: Res<FitOptions>,
    setup: Option<Res<EmlineSetup>>,
    schema: Option<Res<FastspecSchema>>,
    synth: Option<Res<SynthPhotometry>>,
    mut q: Query<(
        &Target,
        &Redshift,
        &ObservedPhotometry,
        &PreparedSpectrum,
        &CameraLineMasks,
        &mut SpectralContinuum,
        &mut FitStatus,
        &mut SpectralFit,
        &mut LineFitState,
    )>,
) {
    if opts.program != Program::Fastspec {
        return;
    }
    let _span = tracing::info_span!("fit_lines").entered();
    let (Some(setup), Some(schema), Some(synth)) = (setup, schema, synth) else {
        tracing::error!("fastspec: line-fit resources missing; no line fitted");
        return;
    };
    let pt = ParamTable::new(&setup.table, &setup.constraints, false);
    let synth_curves = synth_curves(&synth);
    let sh = LineShared {
        opts: &opts,
        setup: &setup,
        pt: &pt,
        schema: &schema,
        synth: &synth_curves,
        setup_synth_bands: &synth.bands,
        keep_line_fits: false,
    };
    q.par_iter_mut()
        .batching_strategy(super::PER_TARGET)
        .for_each_init(
            LineWork::default,
            |ws, (target, z, phot, prep, lm, mut cont, mut status, mut sf, mut state)| {
                let Some(c) = cont.0.as_mut() else { return };
                if !status.ok() {
                    return;
                }
                let res = lines_one(&sh, z.z, &phot.photsys, prep, lm, c, ws, &mut sf);
                // The Monte Carlo spectra (nmonte × npix each) are not needed after the line fit:
                // free them so a file's memory does not grow with nmonte × ntargets.
                c.specflux_mc = Vec::new();
                c.continuummodel_mc = Vec::new();
                match res {
                    Ok(r) => {
                        if sh.keep_line_fits {
                            state.0 = Some(Box::new(r));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(targetid = target.targetid, "emission-line fit failed: {e}");
                        status.flag(FLAG_LINES, format!("line fit: {e}"));
                    }
                }
            },
        );
}

/// FitStatus bit of a failed emission-line mask.
pub const FLAG_LINEMASK: u32 = 1 << 10;

/// System: the emission-line mask of every prepared target (SPEC §2.5), on the camera-coadded
/// spectrum; writes [`CameraLineMasks`] (per-camera masks, initial kinematics, coadd line
/// pixels) or flags the target (FLAG_LINEMASK).
pub fn build_linemasks(
    opts: Res<FitOptions>,
    setup: Option<Res<EmlineSetup>>,
    mut q: Query<(
        &Target,
        &Redshift,
        &PreparedSpectrum,
        &mut FitStatus,
        &mut CameraLineMasks,
    )>,
) {
    if opts.program != Program::Fastspec {
        return;
    }
    let _span = tracing::info_span!("build_linemasks").entered();
    let Some(setup) = setup else {
        tracing::error!("fastspec: line table missing; no line mask built");
        return;
    };
    let lopts = LineMaskOptions::default();
    q.par_iter_mut()
        .batching_strategy(super::PER_TARGET)
        .for_each_init(
            OptimizeWorkspace::default,
            |ws, (target, z, prep, mut status, mut out)| {
                if !status.ok() || prep.cameras.is_empty() {
                    return;
                }
                let mut run = || -> Result<CameraLineMasks, KernelError> {
                    let w = Resolution::new(
                        prep.coadd_ndiag,
                        prep.coadd_wave.len(),
                        prep.coadd_res_deconv.clone(),
                    )?;
                    let lm = build_linemask(
                        &setup.table,
                        &setup.constraints,
                        &prep.coadd_wave,
                        &prep.coadd_flux,
                        &prep.coadd_ivar,
                        w,
                        z.z,
                        &lopts,
                        ws,
                    )?;
                    let mut masks = Vec::with_capacity(prep.cameras.len());
                    for c in &prep.cameras {
                        let (m, _) =
                            camera_linepix(&prep.coadd_wave, &lm.coadd_linepix, &c.wave_ang)?;
                        masks.push(m);
                    }
                    Ok(CameraLineMasks {
                        built: true,
                        masks,
                        kin: lm.kinematics(),
                        balmerbroad: lm.balmerbroad,
                        coadd_linepix: lm.coadd_linepix,
                    })
                };
                match run() {
                    Ok(m) => *out = m,
                    Err(e) => {
                        tracing::warn!(
                            targetid = target.targetid,
                            "emission-line mask failed: {e}"
                        );
                        status.flag(FLAG_LINEMASK, format!("line mask: {e}"));
                    }
                }
            },
        );
}
