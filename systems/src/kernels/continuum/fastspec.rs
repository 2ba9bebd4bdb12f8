//! fastspec: the joint spectro-photometric continuum fit of one target
//! (`continuum_fastspec` + the continuum part of `continuum_specfit`, SPEC §4.4–§4.9).
//!
//! Steps, in FastSpecFit's order:
//! 1. data vectors (§4.4): hstacked spectrum, line-masked ivar, ndof; photometric vector
//!    (§4.1, [`phot_vector`]);
//! 2. Monte Carlo draws (§4.9) **before** any fit: `specflux_mc` [nmonte × npix] ~
//!    N(specflux, 1/√ivar_nolinemask) (σ = 0 still consumes a draw), then, if ndof_phot > 0,
//!    `objflam_mc` [nmonte × nband], realisation-major, NumPy's PCG64 + ziggurat stream;
//! 3. velocity dispersion (§4.5, [`super::vdispfit`]): fixed kernel if the bounds are equal;
//!    else coverage test → 6-point χ² scan (VARPRO, spectrum only in the 3800–6000 Å window,
//!    no dust emission) → TRF σ fit (+ Monte Carlo σ refits → VDISP_IVAR) or the σ–M★
//!    fallback after a nominal-σ VARPRO fit of the whole spectrum;
//! 4. aperture correction (§4.6) from the no-line, no-dust-emission model of step 3;
//! 5. final joint VARPRO fit (§4.7) with the σ̂-convolved templates with lines, dust emission
//!    on, spectrum × apercorr; SEDs, the continuum model, DN4000_MODEL, RCHI2_*;
//! 6. Monte Carlo refits of the final fit (TAUV_IVAR, DN4000_MODEL_IVAR, coefficient
//!    realisations, continuum-model realisations);
//! 7. observed Dn4000 (§4.11) and the smooth continuum + SMOOTHCORR (§4.8).
//!
//! Deviations: see [`super::vdispfit`] (analytic Jacobian of the σ fit; the aperture model
//! after the σ fit is rebuilt at x̂; the TRF residual vector holds only weighted pixels),
//! [`super::specmodel`] (L = R·rebin is
//! applied as one banded operator; only non-zero weighted rows enter the NNLS) and
//! [`super::jointcheb`] (the Monte Carlo refits of the final fit use a Chebyshev/Gram form of
//! the same objective). All change results at the rounding level (measured against
//! FastSpecFit on both real targets: scalars within ~1e-8 relative, Monte Carlo τ_V within
//! 5e-8, TAUV_IVAR within 2e-8; the σ TRF fit within 1.1e-5 of σ̂, VDISP_IVAR within 0.3%;
//! on the simulated set VDISP_IVAR within 0.5% where FastSpecFit's own one-ulp spread is
//! 3.5%).
//!
//! # Cost (what is cached)
//! Per target: the operator L (template grid → hstacked pixels), the zfactors and trapezoid
//! weights; per template set, F·Z on L's template range, F·w and L·(D·Z) ([`SpecBasis`]).
//! Dust attenuation multiplies the rest-frame model before the (linear) rebinning, so no
//! τ-dependent product can be moved through L: a VARPRO evaluation costs the exponentials on
//! the range and nT·nnz(L) multiply–adds. The 50 Monte Carlo refits of the final fit share
//! one Chebyshev model of the τ-dependent, data-independent Gram matrix (25 design fills) and
//! evaluate the data-dependent part through Lᵀ once per realisation ([`super::jointcheb`]).
//! The σ TRF fit (step 3 (b)) evaluates its Jacobian analytically and solves on the R
//! factor of J ([`super::vdispfit`], [`crate::kernels::trf::least_squares_dense_qr`]): per
//! TRF iteration one σ convolution of the nT templates on the fit window (nT inverse FFTs of
//! ≈ 2900 points), one more FFT pair for ∂/∂σ, one pass over L for the residuals and one for
//! the nT + 2 Jacobian columns, and one row-blocked Householder QR of the m×(nT + 3) [J f];
//! everything the 51 fits share (operator rows, template window transforms, FFT plans) is
//! built once per target. Measured (release, 2 shared cores, load ≈ 1.5–3, `--profile`,
//! nmonte 50): the simulated seed-7 targets that reach the σ fit, 39633000000000003 and
//! …04, fit_continuum_fastspec 475 ms and 594 ms (finite-difference Jacobian on the same
//! machine state: 1247 ms and 1412 ms; of which ≈ 110 ms and ≈ 175 ms are the rest of the
//! continuum fit, the σ fit itself went from ≈ 1.1–1.2 s to ≈ 0.37–0.42 s, ≈ 3x); 80613
//! with the σ TRF fit forced (`fastspec_continuum_timing`, load ≈ 0.1): 48 ms with
//! nmonte 0, 762 ms with nmonte 50 (documented before at ≈ 3 s, load 2–5). With
//! `--vdisp-mc fsf` each σ Monte Carlo realisation is a full TRF fit from FastSpecFit's x0
//! (≈ 50 evaluations); by default it is converged from the best fit by
//! [`super::vdispmc::converge_sigma`] (≈ 10 passes; see there). Earlier numbers
//! (finite differences): 80613 (σ fallback) 25–40 ms with nmonte 0, 110–170 ms with
//! nmonte 50; 27247 15–20 ms / 75–115 ms; 80613 with the σ TRF fit forced ≈ 3 s with
//! nmonte 50.
use super::fastphot::{reduced_chi2, F32MAX};
use super::jointcheb::JointCheb;
use super::model::{PhotModel, TemplateArrays, MASSNORM};
use super::photvec::phot_vector;
use super::rng::{Pcg64, Ziggurat};
use super::smooth::{smooth_continuum, SmoothScratch};
use super::specmodel::{
    scan_chi2, varpro_joint, CameraData, JointData, JointWorkspace, SpecBasis, SpecOperator,
};
use super::vdispfit::{
    can_compute_vdisp, scan_minimum, vdisp_from_mstar, vdisp_trf_setup, VdispModel, VdispProblem,
    VDISP_NGRID,
};
use super::vdispmc::{converge_sigma, McSigmaWorkspace};
use crate::kernels::derived::dn4000::{dn4000, dn4000_rest_window, Dn4000Scratch};
use crate::kernels::dust;
use crate::kernels::filters::FilterCurve;
use crate::kernels::igm::Inoue14;
use crate::kernels::stats::{median, TINY};
use crate::kernels::synthphot::{photflam_factor, FilterPre};
use crate::kernels::trf::{least_squares_dense_qr, Problem, TrfWorkspace};
use crate::kernels::vdisp::{
    convolve_direct_rows, convolve_direct_rows_range, PreCache, VdispGrid, VdispWorkspace,
};
use crate::kernels::KernelError;

/// The template set as the fastspec continuum fit reads it (all templates; flat
/// `[ntemplate][nwave]` arrays).
#[derive(Debug, Clone, Copy)]
pub struct FastspecTemplates<'a> {
    /// Rest wavelengths, Å.
    pub wave: &'a [f64],
    /// k(λ) = (λ/5500)^−0.7.
    pub klambda: &'a [f64],
    /// Dust-emission spectrum.
    pub dustflux: &'a [f64],
    /// Template fluxes with nebular lines (un-convolved).
    pub flux: &'a [f64],
    /// Line-free template fluxes (un-convolved).
    pub flux_nolines: &'a [f64],
    /// `flux` convolved with the nominal kernel.
    pub flux_nomvdisp: &'a [f64],
    /// `flux_nolines` convolved with the nominal kernel.
    pub flux_nolines_nomvdisp: &'a [f64],
    /// FFT pre-cache of `flux_nolines` (all templates).
    pub conv_pre_nolines: PreCache<'a>,
    /// Uniform-velocity segment of the grid.
    pub grid: VdispGrid,
    /// Template ages, yr.
    pub ages_yr: &'a [f64],
    /// Surviving stellar mass per M☉ formed.
    pub mstar: &'a [f64],
    /// Intrinsic template resolution σ_C3K, km/s.
    pub sigma_c3k: f64,
    /// Nominal convolution kernel σ, km/s.
    pub vdisp_nominal_kernel: f64,
    /// `--vdisp-bounds` (kernel σ), km/s.
    pub vdisp_bounds: (f64, f64),
}

/// Inputs of [`fit_fastspec`] for one target.
#[derive(Debug, Clone, Copy)]
pub struct FastspecInputs<'a> {
    /// Templates.
    pub tpl: FastspecTemplates<'a>,
    /// Redshift.
    pub z: f64,
    /// Luminosity distance, Mpc.
    pub dlum_mpc: f64,
    /// Age of the universe at z, Gyr (used only with `constrain_age`).
    pub tuniv_gyr: f64,
    /// `--constrain-age`.
    pub constrain_age: bool,
    /// IGM model.
    pub igm: &'a Inoue14,
    /// Kept cameras (dereddened, floored; with the emission-line mask).
    pub cameras: &'a [CameraData<'a>],
    /// The object's band filters (photometric system order).
    pub filters: &'a [FilterCurve],
    /// Photometry f_λ, erg s⁻¹ cm⁻² Å⁻¹ (`parse_photometry` output, floor included).
    pub phot_flam: &'a [f64],
    /// Inverse variance of `phot_flam`.
    pub phot_flam_ivar: &'a [f64],
    /// Bands that enter the fit (`--ignore-photometry`: all false).
    pub bands_to_fit: &'a [bool],
    /// Aperture-correction filters (synth bands of the photometric system, synth-band order).
    pub synth_filters: &'a [FilterCurve],
    /// Indices into the photometry of the bands whose name is a synth band, in photometry
    /// order (FastSpecFit's `np.isin(band, synth_bands)`), paired element-wise with
    /// `synth_filters`.
    pub aper_bands: &'a [usize],
    /// Monte Carlo realisations.
    pub nmonte: usize,
    /// Per-object seed.
    pub seed: u64,
    /// `--no-smooth-continuum`.
    pub no_smooth_continuum: bool,
    /// Flux normalisation of the data: `FLUXNORM` (1e17) for DESI spectra, 1 for stacks.
    pub fluxnorm: f64,
    /// Diagnostics/testing: override the χ²-scan decision of the σ fit (`Some(true)` forces
    /// the TRF fit whenever the coverage allows one); `None` = FastSpecFit's rule.
    pub vdisp_scan_override: Option<bool>,
    /// Monte Carlo σ refits along FastSpecFit's cold-started TRF paths (`--vdisp-mc fsf`)
    /// instead of converged by [`super::vdispmc::converge_sigma`].
    pub vdisp_mc_fsf: bool,
}

/// Everything the fastspec continuum fit of one target produces. The first block mirrors
/// [`super::FastphotResult`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FastspecResult {
    /// Templates used.
    pub agekeep: Vec<bool>,
    /// Coefficients over all templates (0 where not kept).
    pub coeff: Vec<f64>,
    /// Best-fit τ_V.
    pub tauv_fit: f64,
    /// τ_V as reported ([QUIRK] 0 if the Monte Carlo ran but gave no usable ivar).
    pub tauv: f64,
    /// Inverse variance of τ_V (0 if not measured or ≥ F32MAX).
    pub tauv_ivar: f64,
    /// Reduced photometric χ² (RCHI2_PHOT).
    pub rchi2_phot: f64,
    /// Reduced joint χ² (RCHI2_CONT).
    pub rchi2_cont: f64,
    /// Number of bands with ivar > 0.
    pub ndof_phot: usize,
    /// Number of spectral pixels with line-masked ivar > 0.
    pub ndof_cont: usize,
    /// λ_eff per band, Å.
    pub lambda_eff: Vec<f64>,
    /// objflam, 1e-17 units.
    pub phot_flam: Vec<f64>,
    /// objflamivar.
    pub phot_flam_ivar: Vec<f64>,
    /// Best-fit model photometry, 1e-17 units.
    pub model_flam: Vec<f64>,
    /// Best-fit SED on λ(1+z) (lines + dust emission).
    pub sedmodel: Vec<f64>,
    /// Line-free SED without dust emission.
    pub sedmodel_nolines: Vec<f64>,
    /// Monte Carlo coefficients (all templates).
    pub mc_coeff: Vec<Vec<f64>>,
    /// Monte Carlo τ_V.
    pub mc_tauv: Vec<f64>,

    /// Fitted (or adopted) convolution kernel σ, km/s.
    pub vdisp_kernel: f64,
    /// Reported σ★ = √(kernel² + σ_C3K²), km/s (VDISP).
    pub vdisp: f64,
    /// VDISP_IVAR (σ★ units; 0 unless the TRF σ fit and its Monte Carlo ran).
    pub vdisp_ivar: f64,
    /// Whether σ came from the TRF fit.
    pub vdisp_fitted: bool,
    /// Monte Carlo kernel σ of the σ refits (TRF branch only).
    pub mc_vdisp_kernel: Vec<f64>,
    /// Median aperture correction (APERCORR).
    pub apercorr: f64,
    /// Per synth band aperture correction (APERCORR_G/R/Z...).
    pub apercorrs: Vec<f64>,
    /// SMOOTHCORR per kept camera, percent.
    pub smoothcorr: Vec<f64>,
    /// Continuum model (no lines, no dust emission) on the hstacked pixels, / apercorr.
    pub continuummodel: Vec<f64>,
    /// Smooth continuum on the hstacked pixels, / apercorr.
    pub smoothcontinuum: Vec<f64>,
    /// DN4000_MODEL of the fit (unconditional).
    pub dn4000_model_fit: f64,
    /// DN4000_MODEL as reported (same [QUIRK] rule as TAUV).
    pub dn4000_model: f64,
    /// DN4000_MODEL_IVAR (0 if not measured or ≥ F32MAX).
    pub dn4000_model_ivar: f64,
    /// Monte Carlo DN4000_MODEL values.
    pub mc_dn4000_model: Vec<f64>,
    /// DN4000_OBS of the hstacked spectrum.
    pub dn4000_obs: f64,
    /// DN4000_IVAR.
    pub dn4000_ivar: f64,
    /// Monte Carlo spectra `[nmonte][npix]` (for the line fit's Monte Carlo).
    pub specflux_mc: Vec<Vec<f64>>,
    /// Monte Carlo continuum models `[nmonte][npix]`, / apercorr.
    pub continuummodel_mc: Vec<Vec<f64>>,
    /// The kept templates with lines convolved to the adopted σ, `[nkept][nwave]` (for
    /// rebuilding Monte Carlo SEDs downstream).
    pub input_templateflux: Vec<f64>,
    /// Same without lines.
    pub input_templateflux_nolines: Vec<f64>,
}

/// Reusable scratch of [`fit_fastspec`] (one per thread).
#[derive(Debug, Default)]
pub struct FastspecWorkspace {
    /// Joint VARPRO scratch.
    pub joint: JointWorkspace,
    smooth: SmoothScratch,
    dn: Dn4000Scratch,
}

fn nanvar(x: &[f64]) -> f64 {
    let v: Vec<f64> = x.iter().copied().filter(|a| !a.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / v.len() as f64
}

fn var2ivar(v: f64) -> f64 {
    if v > TINY {
        1.0 / v
    } else {
        0.0
    }
}

fn select_rows(arr: &[f64], nw: usize, rows: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows.len() * nw);
    for &t in rows {
        out.extend_from_slice(&arr[t * nw..(t + 1) * nw]);
    }
    out
}

/// Per-target τ_V-independent state shared by all fits of the target.
struct Setup {
    zwave: Vec<f64>,
    zf: Vec<f64>,
    tw: Vec<f64>,
}

/// A spectral-only VARPRO fit of the template set `flux` (`[nt][nwave]`, no dust emission):
/// (τ, coeff, χ²).
fn spec_only_fit(
    inp: &FastspecInputs<'_>,
    st: &Setup,
    op: &SpecOperator,
    flux: &[f64],
    specflux: &[f64],
    istd: &[f64],
    ws: &mut JointWorkspace,
) -> Result<(f64, Vec<f64>, f64), KernelError> {
    let t = &inp.tpl;
    let basis = SpecBasis::new(op, flux, t.wave.len(), &st.zf, &st.tw, t.dustflux, false)?;
    let fit = varpro_joint(
        &JointData {
            spec: Some((op, &basis)),
            specflux,
            specistd: istd,
            phot: None,
            objflam: &[],
            objflamistd: &[],
            klambda: t.klambda,
        },
        ws,
    )?;
    Ok((fit.tauv, fit.coeff, fit.chi2_spec))
}

/// Σ c_t F_t·A(τ)·Z on the full grid, no dust emission (FastSpecFit's saved model of a
/// no-dust-emission VARPRO fit).
fn model_nodust(
    flux: &[f64],
    nw: usize,
    coeff: &[f64],
    tauv: f64,
    klambda: &[f64],
    zf: &[f64],
) -> Vec<f64> {
    let mut out = vec![0.0; nw];
    for (t, &c) in coeff.iter().enumerate() {
        for (o, f) in out.iter_mut().zip(&flux[t * nw..(t + 1) * nw]) {
            *o += c * f;
        }
    }
    for j in 0..nw {
        out[j] *= crate::kernels::fastexp::exp(-tauv * klambda[j]) * zf[j];
    }
    out
}

/// Run the fastspec continuum fit of one target.
///
/// # Errors
/// Bad spectra (all ivar zero or negative ivar), no kept template, filters or cameras not
/// covered by the redshifted template grid, inconsistent shapes, failed solvers.
pub fn fit_fastspec(
    inp: &FastspecInputs<'_>,
    ws: &mut FastspecWorkspace,
) -> Result<FastspecResult, KernelError> {
    let t = &inp.tpl;
    let nw = t.wave.len();
    let ntot = t.ages_yr.len();
    let nb = inp.filters.len();
    if t.flux.len() != ntot * nw
        || t.flux_nolines.len() != ntot * nw
        || t.flux_nomvdisp.len() != ntot * nw
        || t.flux_nolines_nomvdisp.len() != ntot * nw
        || t.mstar.len() != ntot
        || t.conv_pre_nolines.ntemplate != ntot
        || t.conv_pre_nolines.ft_re.len() != ntot * (t.conv_pre_nolines.fft_len / 2 + 1)
        || t.conv_pre_nolines.ft_im.len() != t.conv_pre_nolines.ft_re.len()
        || !t
            .conv_pre_nolines
            .flux_outer
            .len()
            .is_multiple_of(ntot.max(1))
    {
        return Err(KernelError::Shape("fastspec: template arrays".into()));
    }
    if inp.phot_flam.len() != nb || inp.phot_flam_ivar.len() != nb || inp.bands_to_fit.len() != nb {
        return Err(KernelError::Shape("fastspec: photometry lengths".into()));
    }
    if inp.aper_bands.len() != inp.synth_filters.len() || inp.aper_bands.iter().any(|&b| b >= nb) {
        return Err(KernelError::Shape("fastspec: aperture bands".into()));
    }

    // 1. data vectors
    let mut specwave = Vec::new();
    let mut specflux = Vec::new();
    let mut ivar_nl = Vec::new();
    let mut linemask = Vec::new();
    for c in inp.cameras {
        let n = c.wave.len();
        if c.flux.len() != n || c.ivar.len() != n || c.linemask.len() != n {
            return Err(KernelError::Shape("fastspec: camera arrays".into()));
        }
        specwave.extend_from_slice(c.wave);
        specflux.extend_from_slice(c.flux);
        ivar_nl.extend_from_slice(c.ivar);
        linemask.extend_from_slice(c.linemask);
    }
    let npix = specwave.len();
    let specivar: Vec<f64> = ivar_nl
        .iter()
        .zip(&linemask)
        .map(|(&v, &m)| if m { 0.0 } else { v })
        .collect();
    if specivar.iter().all(|&v| v == 0.0) || specivar.iter().any(|&v| v < 0.0 || v.is_nan()) {
        return Err(KernelError::Domain(
            "all pixels are masked or some inverse variances are negative".into(),
        ));
    }
    let specistd: Vec<f64> = specivar.iter().map(|v| v.sqrt()).collect();
    let ndof_cont = specivar.iter().filter(|&&v| v > 0.0).count();
    let lambda_eff: Vec<f64> = inp.filters.iter().map(|f| f.lambda_eff).collect();
    let (mut objflam, mut objivar) = (vec![0.0; nb], vec![0.0; nb]);
    let ndof_phot = phot_vector(
        inp.phot_flam,
        inp.phot_flam_ivar,
        inp.bands_to_fit,
        &lambda_eff,
        inp.fluxnorm,
        &mut objflam,
        &mut objivar,
    )?;
    let objistd: Vec<f64> = objivar.iter().map(|v| v.sqrt()).collect();

    let agekeep: Vec<bool> = t
        .ages_yr
        .iter()
        .map(|&a| !inp.constrain_age || a <= 1e9 * (0.5 + inp.tuniv_gyr))
        .collect();
    let rows: Vec<usize> = (0..ntot).filter(|&k| agekeep[k]).collect();
    if rows.is_empty() {
        return Err(KernelError::Domain(format!(
            "no template younger than the universe at z = {}",
            inp.z
        )));
    }
    let nt = rows.len();

    // per-target set-up
    let zwave: Vec<f64> = t.wave.iter().map(|w| w * (1.0 + inp.z)).collect();
    let mut zf = vec![0.0; nw];
    dust::zfactors(
        inp.igm,
        inp.z,
        inp.dlum_mpc,
        inp.fluxnorm,
        MASSNORM,
        &zwave,
        &mut zf,
    )?;
    let mut tw = vec![0.0; nw];
    dust::trapz_weights(t.wave, &mut tw)?;
    let st = Setup { zwave, zf, tw };
    let op = SpecOperator::new(&st.zwave, inp.cameras)?;

    // 2. Monte Carlo draws
    let span = tracing::debug_span!("cont.draws").entered();
    let mut specflux_mc: Vec<Vec<f64>> = Vec::new();
    let mut objflam_mc: Vec<Vec<f64>> = Vec::new();
    if inp.nmonte > 0 && (ndof_cont > 0 || ndof_phot > 0) {
        let mut rng = Pcg64::from_seed(inp.seed);
        let zig = Ziggurat::new();
        let sstd: Vec<f64> = ivar_nl
            .iter()
            .map(|&v| if v > 0.0 { 1.0 / v.sqrt() } else { 0.0 })
            .collect();
        for _ in 0..inp.nmonte {
            let mut v = Vec::new();
            rng.extend_normal(&zig, &specflux[..npix], &sstd, &mut v);
            specflux_mc.push(v);
        }
        if ndof_phot > 0 {
            let ostd: Vec<f64> = objistd
                .iter()
                .map(|&s| if s > 0.0 { 1.0 / s } else { 0.0 })
                .collect();
            for _ in 0..inp.nmonte {
                let mut v = Vec::new();
                rng.extend_normal(&zig, &objflam[..nb], &ostd, &mut v);
                objflam_mc.push(v);
            }
        } else {
            objflam_mc = vec![objflam.clone(); inp.nmonte];
        }
    }

    drop(span);
    // 3. velocity dispersion
    let span_vdisp = tracing::debug_span!("cont.vdisp").entered();
    let (mut compute_vdisp, (vs, ve)) = can_compute_vdisp(inp.z, &specwave);
    let fixed = t.vdisp_bounds.0 == t.vdisp_bounds.1;
    if fixed {
        compute_vdisp = false;
    }
    let mut vws = VdispWorkspace::new(0, 0);
    let convolve =
        |arr: &[f64], sigma: f64, vws: &mut VdispWorkspace| -> Result<Vec<f64>, KernelError> {
            let sel = select_rows(arr, nw, &rows);
            let mut out = vec![0.0; sel.len()];
            convolve_direct_rows(&sel, nw, &t.grid, sigma, vws, &mut out)?;
            Ok(out)
        };
    let nominal_fit = |ws: &mut JointWorkspace| -> Result<(Vec<f64>, Vec<f64>), KernelError> {
        let fl = select_rows(t.flux_nolines_nomvdisp, nw, &rows);
        let (tau, c, _) = spec_only_fit(inp, &st, &op, &fl, &specflux, &specistd, ws)?;
        let cm = model_nodust(&fl, nw, &c, tau, t.klambda, &st.zf);
        Ok((c, cm))
    };
    let mstar_kept: Vec<f64> = rows.iter().map(|&k| t.mstar[k]).collect();
    let fallback = |coeff: &[f64],
                    vws: &mut VdispWorkspace|
     -> Result<(f64, Vec<f64>, Vec<f64>), KernelError> {
        match vdisp_from_mstar(coeff, &mstar_kept, MASSNORM, t.sigma_c3k, t.vdisp_bounds) {
            Some((k, _)) => Ok((
                k,
                convolve(t.flux, k, vws)?,
                convolve(t.flux_nolines, k, vws)?,
            )),
            None => Ok((
                t.vdisp_nominal_kernel,
                select_rows(t.flux_nomvdisp, nw, &rows),
                select_rows(t.flux_nolines_nomvdisp, nw, &rows),
            )),
        }
    };

    let mut vdisp_ivar_kernel = 0.0;
    let mut vdisp_fitted = false;
    let mut mc_vdisp = Vec::new();
    let (vdisp_kernel, itf, itf_nl, apc_coeff, contmodel);
    if !compute_vdisp {
        let (c, cm) = nominal_fit(&mut ws.joint)?;
        if fixed {
            let k = t.vdisp_bounds.0;
            vdisp_kernel = k;
            itf = convolve(t.flux, k, &mut vws)?;
            itf_nl = convolve(t.flux_nolines, k, &mut vws)?;
        } else {
            (vdisp_kernel, itf, itf_nl) = fallback(&c, &mut vws)?;
        }
        apc_coeff = c;
        contmodel = cm;
    } else {
        let mut fitmask_istd = vec![0.0; npix];
        fitmask_istd[vs..ve].copy_from_slice(&specistd[vs..ve]);
        // (a) χ² scan
        let span = tracing::debug_span!("cont.vdisp_scan").entered();
        let mut chi2 = [0.0; VDISP_NGRID];
        // the scan's fits read only the window's pixels [vs, ve) (every other weight is
        // zero): fit on the operator of those rows, and convolve, attenuate and rebin only
        // the template pixels they read — the same rows, weights and sums, so the same χ²
        let op_w = if ve > vs {
            Some(op.rows_subset(vs..ve)?)
        } else {
            None
        };
        let (op_s, flux_s, istd_s) = match &op_w {
            Some(o) => (o, &specflux[vs..ve], &fitmask_istd[vs..ve]),
            None => (&op, &specflux[..], &fitmask_istd[..]),
        };
        let (jlo, jhi) = op_s.range();
        let (lo, hi) = t.vdisp_bounds;
        let sel = select_rows(t.flux_nolines, nw, &rows);
        let mut fl = vec![0.0; sel.len()];
        for (k, c2) in chi2.iter_mut().enumerate() {
            let sigma = lo + (hi - lo) * k as f64 / (VDISP_NGRID - 1) as f64;
            // only the template pixels the operator reads (the rest is never read)
            convolve_direct_rows_range(&sel, nw, &t.grid, sigma, &mut vws, &mut fl, jlo..jhi)?;
            let basis = SpecBasis::new(op_s, &fl, nw, &st.zf, &st.tw, t.dustflux, false)?;
            *c2 = scan_chi2(
                &JointData {
                    spec: Some((op_s, &basis)),
                    specflux: flux_s,
                    specistd: istd_s,
                    phot: None,
                    objflam: &[],
                    objflamistd: &[],
                    klambda: t.klambda,
                },
                &mut ws.joint,
            )?;
        }
        let scan_ok = inp
            .vdisp_scan_override
            .unwrap_or_else(|| scan_minimum(&chi2).is_some());
        drop(span);
        if !scan_ok {
            let (c, cm) = nominal_fit(&mut ws.joint)?;
            (vdisp_kernel, itf, itf_nl) = fallback(&c, &mut vws)?;
            apc_coeff = c;
            contmodel = cm;
        } else {
            // (b) TRF σ fit
            let pre = &t.conv_pre_nolines;
            let nf = pre.fft_len / 2 + 1;
            let nout = pre.flux_outer.len() / ntot;
            let fo = select_rows(pre.flux_outer, nout, &rows);
            let fre = select_rows(pre.ft_re, nf, &rows);
            let fim = select_rows(pre.ft_im, nf, &rows);
            let fnl = select_rows(t.flux_nolines, nw, &rows);
            let kept_pre = PreCache {
                ntemplate: nt,
                fft_len: pre.fft_len,
                max_radius: pre.max_radius,
                flux_outer: &fo,
                ft_re: &fre,
                ft_im: &fim,
            };
            let mut prob = VdispProblem::new(VdispModel {
                op: &op,
                pre: kept_pre,
                flux_nolines: &fnl,
                grid: t.grid,
                klambda: t.klambda,
                zfactors: &st.zf,
                istd: &fitmask_istd,
            })?;
            let n = 2 + nt;
            let (lb, ub, x0, opts) = vdisp_trf_setup(nt, t.vdisp_bounds, t.vdisp_nominal_kernel);
            let mut tws = TrfWorkspace::new(prob.n_residuals(), n);
            let mut run = |prob: &mut VdispProblem<'_>,
                           flux: &[f64],
                           start: &[f64]|
             -> Result<Vec<f64>, KernelError> {
                prob.set_data(flux)?;
                let mut x = start.to_vec();
                let s = least_squares_dense_qr(prob, &mut x, &lb, &ub, &opts, &mut tws)?;
                tracing::trace!(nfev = s.nfev, njev = s.njev, "σ TRF fit");
                if let Some(e) = prob.error.take() {
                    return Err(e);
                }
                Ok(x)
            };
            let xh = run(&mut prob, &specflux, &x0)?;
            let mut cm = vec![0.0; nw];
            prob.full_model(&xh, &mut cm)?;
            // Monte Carlo σ refits: converged to each realisation's χ² minimum from x̂
            // (`vdispmc`), or FastSpecFit's cold-started TRF paths (`--vdisp-mc fsf`)
            let mut mcws = McSigmaWorkspace::default();
            for sf in &specflux_mc {
                if inp.vdisp_mc_fsf {
                    let x = run(&mut prob, sf, &x0)?;
                    mc_vdisp.push(x[1]);
                } else {
                    prob.set_data(sf)?;
                    let r = converge_sigma(&mut prob, &xh, &lb, &ub, &mut mcws)?;
                    if let Some(e) = prob.error.take() {
                        return Err(e);
                    }
                    tracing::trace!(nfev = mcws.nfev, "σ Monte Carlo refit");
                    mc_vdisp.push(r.sigma);
                }
            }
            if !specflux_mc.is_empty() {
                vdisp_ivar_kernel = var2ivar(nanvar(&mc_vdisp));
            }
            vdisp_fitted = true;
            vdisp_kernel = xh[1];
            itf = convolve(t.flux, vdisp_kernel, &mut vws)?;
            itf_nl = convolve(t.flux_nolines, vdisp_kernel, &mut vws)?;
            apc_coeff = xh[2..].to_vec();
            contmodel = cm;
        }
    }

    drop(span_vdisp);
    // 4. aperture correction
    let span = tracing::debug_span!("cont.final").entered();
    let nsyn = inp.synth_filters.len();
    let mut apercorrs = vec![1.0; nsyn];
    let mut apercorr = 1.0;
    if inp.bands_to_fit.iter().any(|&b| b) && !apc_coeff.iter().all(|&c| c == 0.0) {
        for (k, f) in inp.synth_filters.iter().enumerate() {
            let pre = FilterPre::new(f, &st.zwave)?;
            let sedflam = pre.maggies(&contmodel, &st.zwave) * photflam_factor(f.lambda_eff);
            let oa = inp.fluxnorm * inp.phot_flam[inp.aper_bands[k]];
            if oa > 0.0 && sedflam > 0.0 {
                apercorrs[k] = oa / sedflam;
            }
        }
        let pos: Vec<f64> = apercorrs.iter().copied().filter(|&a| a > 0.0).collect();
        if !pos.is_empty() {
            let mut scratch = Vec::new();
            apercorr = median(&pos, &mut scratch)?;
            if apercorr <= 0.0 || apercorr.is_nan() {
                apercorr = 1.0;
            }
        }
    }

    // 5. final joint fit
    let tarr = TemplateArrays {
        wave: t.wave,
        klambda: t.klambda,
        dustflux: t.dustflux,
        flux: &itf,
        flux_nolines: &itf_nl,
    };
    let krows: Vec<usize> = (0..nt).collect();
    let pmodel = PhotModel::with_fluxnorm(
        &tarr,
        &krows,
        inp.z,
        inp.dlum_mpc,
        inp.igm,
        inp.filters,
        inp.fluxnorm,
    )?;
    let basis = SpecBasis::new(&op, &itf, nw, &st.zf, &st.tw, t.dustflux, true)?;
    let istd_ap: Vec<f64> = specistd.iter().map(|s| s / apercorr).collect();
    let dnw = dn4000_rest_window(t.wave);
    let sfa_main: Vec<f64> = specflux.iter().map(|v| v * apercorr).collect();
    macro_rules! joint {
        ($sfa:expr, $of:expr) => {
            JointData {
                spec: Some((&op, &basis)),
                specflux: $sfa,
                specistd: &istd_ap,
                phot: Some(&pmodel),
                objflam: $of,
                objflamistd: &objistd,
                klambda: t.klambda,
            }
        };
    }
    // line-free SED, continuum model and Dn4000 of a solution
    let post = |coeff: &[f64],
                tauv: f64,
                dn: &mut Dn4000Scratch|
     -> Result<(Vec<f64>, Vec<f64>, f64), KernelError> {
        let mut sed_nl = vec![0.0; nw];
        let mut desi = vec![0.0; npix];
        let mut dnv = 0.0;
        if !coeff.iter().all(|&c| c == 0.0) {
            pmodel.sed_nolines(&tarr, coeff, tauv, &mut sed_nl);
            op.apply(&sed_nl, &mut desi)?;
            dnv = dn4000(&t.wave[dnw.clone()], &sed_nl[dnw.clone()], None, None, dn).0;
        }
        Ok((sed_nl, desi, dnv))
    };
    // the same for a Monte Carlo solution, with the SED only where L and Dn4000 read it
    let (jlo, jhi) = op.range();
    let post_mc = |coeff: &[f64],
                   tauv: f64,
                   sed: &mut Vec<f64>,
                   dn: &mut Dn4000Scratch|
     -> Result<(Vec<f64>, f64), KernelError> {
        let mut desi = vec![0.0; npix];
        let mut dnv = 0.0;
        if !coeff.iter().all(|&c| c == 0.0) {
            sed.resize(nw, 0.0);
            pmodel.sed_nolines_range(&tarr, coeff, tauv, jlo..jhi, sed);
            pmodel.sed_nolines_range(&tarr, coeff, tauv, dnw.clone(), sed);
            op.apply(sed, &mut desi)?;
            dnv = dn4000(&t.wave[dnw.clone()], &sed[dnw.clone()], None, None, dn).0;
        }
        Ok((desi, dnv))
    };
    let mut sed_mc = Vec::new();
    let fit = varpro_joint(&joint!(&sfa_main, &objflam), &mut ws.joint)?;
    let (sed_nl, desi, dn_model) = post(&fit.coeff, fit.tauv, &mut ws.dn)?;
    let allzero = fit.coeff.iter().all(|&c| c == 0.0);
    let scatter = |c: &[f64]| {
        let mut full = vec![0.0; ntot];
        for (i, &k) in rows.iter().enumerate() {
            full[k] = c[i];
        }
        full
    };
    let mut out = FastspecResult {
        agekeep: agekeep.clone(),
        coeff: scatter(&fit.coeff),
        tauv_fit: fit.tauv,
        tauv: fit.tauv,
        ndof_phot,
        ndof_cont,
        lambda_eff,
        model_flam: vec![0.0; nb],
        sedmodel: vec![0.0; nw],
        sedmodel_nolines: sed_nl,
        vdisp_kernel,
        vdisp: (vdisp_kernel * vdisp_kernel + t.sigma_c3k * t.sigma_c3k).sqrt(),
        vdisp_fitted,
        mc_vdisp_kernel: mc_vdisp,
        apercorr,
        apercorrs,
        dn4000_model_fit: dn_model,
        dn4000_model: dn_model,
        ..Default::default()
    };
    if vdisp_ivar_kernel > 0.0 {
        out.vdisp_ivar = vdisp_ivar_kernel * (out.vdisp / vdisp_kernel).powi(2);
    }
    if !allzero {
        let nfree = nt + 1;
        out.rchi2_cont = reduced_chi2(fit.chi2_spec + fit.chi2_phot, ndof_cont + ndof_phot, nfree);
        out.rchi2_phot = if ndof_phot > 0 {
            reduced_chi2(fit.chi2_phot, ndof_phot, nfree)
        } else {
            0.0
        };
        pmodel.sed(&tarr, &fit.coeff, fit.tauv, &mut out.sedmodel);
        let (mut atten, mut d, mut m) = (vec![0.0; nw], vec![0.0; nt], vec![0.0; nb * nt]);
        pmodel.fill(&tarr, fit.tauv, &mut atten, &mut d, &mut m);
        for b in 0..nb {
            out.model_flam[b] = (0..nt).map(|k| m[k * nb + b] * fit.coeff[k]).sum();
        }
    }

    drop(span);
    // 6. Monte Carlo refits
    let span = tracing::debug_span!("cont.mc").entered();
    if !specflux_mc.is_empty() {
        let mut dn_mc = Vec::with_capacity(inp.nmonte);
        // one Chebyshev/Gram model of the design serves every refit (see `jointcheb`)
        let span_new = tracing::debug_span!("cont.mc_gram").entered();
        let mut cheb = JointCheb::new(&joint!(&sfa_main, &objflam), &mut ws.joint)?;
        drop(span_new);
        for (of, sf) in objflam_mc.iter().zip(&specflux_mc) {
            let sfa: Vec<f64> = sf.iter().map(|v| v * apercorr).collect();
            let (tauv, coeff) = match cheb.as_mut() {
                Some(c) => {
                    let f = c.fit(&joint!(&sfa, of), &mut ws.joint)?;
                    (f.tauv, f.coeff)
                }
                None => {
                    let f = varpro_joint(&joint!(&sfa, of), &mut ws.joint)?;
                    (f.tauv, f.coeff)
                }
            };
            let span_post = tracing::debug_span!("cont.mc_post").entered();
            let (desi_mc, dn) = post_mc(&coeff, tauv, &mut sed_mc, &mut ws.dn)?;
            drop(span_post);
            out.mc_coeff.push(scatter(&coeff));
            out.mc_tauv.push(tauv);
            dn_mc.push(dn);
            out.continuummodel_mc
                .push(desi_mc.iter().map(|v| v / apercorr).collect());
        }
        let tiv = var2ivar(nanvar(&out.mc_tauv));
        if tiv > 0.0 && tiv < F32MAX {
            out.tauv_ivar = tiv;
        } else {
            out.tauv = 0.0;
        }
        let div = var2ivar(nanvar(&dn_mc));
        if div > 0.0 && div < F32MAX {
            out.dn4000_model_ivar = div;
        } else {
            out.dn4000_model = 0.0;
        }
        out.mc_dn4000_model = dn_mc;
    }

    drop(span);
    // 7. observed Dn4000 and the smooth continuum
    let _span = tracing::debug_span!("cont.smooth").entered();
    let (d, di) = dn4000(
        &specwave,
        &specflux,
        Some(&ivar_nl),
        Some(inp.z),
        &mut ws.dn,
    );
    out.dn4000_obs = d;
    out.dn4000_ivar = di;
    out.smoothcorr = vec![0.0; inp.cameras.len()];
    out.smoothcontinuum = vec![0.0; npix];
    if !allzero && !inp.no_smooth_continuum {
        let resid: Vec<f64> = (0..npix)
            .map(|i| {
                if specflux[i] == 0.0 && specivar[i] == 0.0 {
                    0.0
                } else {
                    specflux[i] * apercorr - desi[i]
                }
            })
            .collect();
        let sivar: Vec<f64> = specivar.iter().map(|v| v / (apercorr * apercorr)).collect();
        smooth_continuum(
            &specwave,
            &resid,
            &sivar,
            &linemask,
            &op.camerapix,
            &mut ws.smooth,
            &mut out.smoothcontinuum,
        )?;
        let mut scratch = Vec::new();
        for (k, &(a, b)) in op.camerapix.iter().enumerate() {
            let r: Vec<f64> = (a..b)
                .filter(|&i| {
                    specflux[i] != 0.0 && specivar[i] != 0.0 && out.smoothcontinuum[i] != 0.0
                })
                .map(|i| out.smoothcontinuum[i] / specflux[i])
                .collect();
            if r.len() > 3 {
                out.smoothcorr[k] = 100.0 * median(&r, &mut scratch)?;
            }
        }
    }
    out.continuummodel = desi.iter().map(|v| v / apercorr).collect();
    out.smoothcontinuum.iter_mut().for_each(|v| *v /= apercorr);
    out.phot_flam = objflam;
    out.phot_flam_ivar = objivar;
    out.specflux_mc = specflux_mc;
    out.input_templateflux = itf;
    out.input_templateflux_nolines = itf_nl;
    Ok(out)
}
