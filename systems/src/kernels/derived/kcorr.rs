//! K-corrections, absolute magnitudes and model photometry (SPEC §4.12, FastSpecFit
//! `Photometry.synth_absmag` and `Photometry.kcorr_and_absmag`).
//!
//! * Rest-frame maggies m_rest,j of S·(1+z)/FLUXNORM on λ_obs/(1+z) through the band-shifted
//!   absmag filters; ABSMAG_SYNTH_j = −2.5 log₁₀ m_rest,j − DM.
//! * Observed maggies m_obs,b of S/FLUXNORM on λ_obs through the observed filters
//!   (FLUX_SYNTH_PHOTMODEL_b = 1e9·m_obs,b).
//! * Band choice o(j) = argmin_b |λ_eff,b/(1+z) − λ_eff,out,j| + 1e10·[S/N_b < 2];
//!   KCORR_j = 2.5 log₁₀(m_rest,j/m_obs,o(j)); ABSMAG_j from the observed flux when
//!   S/N_o(j) > 2 (ivar maggies²·ivar·(0.4 ln 10)²), else ABSMAG_SYNTH_j with ivar 0.

use crate::kernels::filters::FilterCurve;
use crate::kernels::synthphot::{
    ab_maggies_pre, ab_maggies_unchecked, maggies_with_many, FilterPre,
};
use crate::kernels::KernelError;

/// Flux normalisation of the models (1e-17 erg/s/cm²/Å).
pub const FLUXNORM: f64 = 1e17;
/// (0.4 ln 10)².
pub const MAG_IVAR_FACTOR: f64 = 0.848_303_697_676_543_7;
/// Minimum S/N of an observed band used for a K-correction.
pub const SNR_MIN: f64 = 2.0;

/// Filters pre-computed on one target's grids (they depend on z through the rest grid).
#[derive(Debug, Clone)]
pub struct KcorrPre {
    /// Observed filters on the observed-frame grid.
    pub obs: Vec<FilterPre>,
    /// Band-shifted absmag filters on the rest-frame grid λ_obs/(1+z).
    pub out: Vec<FilterPre>,
    /// Effective wavelengths of the observed filters, Å.
    pub lambda_obs: Vec<f64>,
    /// Effective wavelengths of the band-shifted absmag filters, Å.
    pub lambda_out: Vec<f64>,
    /// λ_obs/(1+z) grid used for `out`.
    pub rest_wave: Vec<f64>,
}

impl KcorrPre {
    /// Pre-compute `obs_filters` on `zwave` and the shifted `out_filters` on `zwave/(1+z)`.
    ///
    /// # Errors
    /// A filter not covered by the grid (FastSpecFit's unchecked synthesis would fail too).
    pub fn new(
        obs_filters: &[FilterCurve],
        out_filters: &[FilterCurve],
        zwave: &[f64],
        z: f64,
    ) -> Result<Self, KernelError> {
        let rest_wave: Vec<f64> = zwave.iter().map(|w| w / (1.0 + z)).collect();
        Ok(KcorrPre {
            obs: ab_maggies_pre(obs_filters, zwave)?,
            out: ab_maggies_pre(out_filters, &rest_wave)?,
            lambda_obs: obs_filters.iter().map(|f| f.lambda_eff).collect(),
            lambda_out: out_filters.iter().map(|f| f.lambda_eff).collect(),
            rest_wave,
        })
    }
}

/// The K-correction products of one SED.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kcorr {
    /// ABSMAG*_SYNTH per absmag band.
    pub synth_absmag: Vec<f64>,
    /// Rest-frame synthetic maggies per absmag band.
    pub maggies_rest: Vec<f64>,
    /// KCORR per absmag band.
    pub kcorr: Vec<f64>,
    /// ABSMAG per absmag band.
    pub absmag: Vec<f64>,
    /// ABSMAG_IVAR per absmag band (mag⁻²).
    pub absmag_ivar: Vec<f64>,
    /// Observed-frame synthetic maggies per observed band.
    pub maggies_obs: Vec<f64>,
}

/// Only the synthetic absolute magnitudes (what the Monte Carlo needs).
///
/// # Errors
/// Shape mismatches.
pub fn synth_absmag(
    pre: &KcorrPre,
    z: f64,
    dmod: f64,
    sed: &[f64],
    out: &mut Vec<f64>,
) -> Result<(), KernelError> {
    let nabs = pre.out.len();
    out.clear();
    out.resize(nabs, 0.0);
    if z <= 0.0 {
        return Ok(());
    }
    let nw = pre.rest_wave.len();
    if sed.len() != nw
        || pre
            .out
            .iter()
            .any(|p| p.hi > nw || p.resp.len() != p.hi - p.lo)
    {
        return Err(KernelError::Shape(format!(
            "synth_absmag: {} SED values on a {nw}-pixel grid, or a filter beyond it",
            sed.len()
        )));
    }
    // the scaled SED S·(1+z)/FLUXNORM evaluated only where each filter reads it
    maggies_with_many(
        &pre.out,
        &pre.rest_wave,
        |i| sed[i] * (1.0 + z) / FLUXNORM,
        out,
    );
    for m in out.iter_mut() {
        *m = -2.5 * m.log10() - dmod;
    }
    Ok(())
}

/// Full K-correction step for the observed-frame `sed` (1e-17 units on `zwave`).
///
/// `nanomaggies`/`ivar_nanomaggies` are the dereddened observed fluxes (no error floor) and
/// `bands_to_fit` multiplies the ivar, as in FastSpecFit.
///
/// # Errors
/// Shape mismatches between the grids, the filters and the photometry.
#[allow(clippy::too_many_arguments)]
pub fn kcorr_and_absmag(
    pre: &KcorrPre,
    z: f64,
    dmod: f64,
    zwave: &[f64],
    sed: &[f64],
    nanomaggies: &[f64],
    ivar_nanomaggies: &[f64],
    bands_to_fit: &[bool],
) -> Result<Kcorr, KernelError> {
    let nabs = pre.out.len();
    let nb = pre.obs.len();
    if nanomaggies.len() != nb || ivar_nanomaggies.len() != nb || bands_to_fit.len() != nb {
        return Err(KernelError::Shape(format!(
            "kcorr: {} filters, {} fluxes, {} ivars, {} bands_to_fit",
            nb,
            nanomaggies.len(),
            ivar_nanomaggies.len(),
            bands_to_fit.len()
        )));
    }
    if z <= 0.0 {
        return Ok(Kcorr {
            synth_absmag: vec![0.0; nabs],
            maggies_rest: vec![0.0; nabs],
            kcorr: vec![0.0; nabs],
            absmag: vec![0.0; nabs],
            absmag_ivar: vec![0.0; nabs],
            maggies_obs: vec![0.0; nb],
        });
    }
    let scaled: Vec<f64> = sed.iter().map(|s| s * (1.0 + z) / FLUXNORM).collect();
    let mut maggies_rest = vec![0.0; nabs];
    ab_maggies_unchecked(&pre.out, &scaled, &pre.rest_wave, &mut maggies_rest)?;
    let synth_absmag: Vec<f64> = maggies_rest
        .iter()
        .map(|m| -2.5 * m.log10() - dmod)
        .collect();

    let obsflux: Vec<f64> = sed.iter().map(|s| s / FLUXNORM).collect();
    let mut maggies_obs = vec![0.0; nb];
    ab_maggies_unchecked(&pre.obs, &obsflux, zwave, &mut maggies_obs)?;

    let maggies: Vec<f64> = nanomaggies.iter().map(|m| m * 1e-9).collect();
    let ivarm: Vec<f64> = ivar_nanomaggies
        .iter()
        .zip(bands_to_fit)
        .map(|(iv, &fit)| if fit { iv / (1e-9 * 1e-9) } else { 0.0 })
        .collect();
    let snr: Vec<f64> = maggies
        .iter()
        .zip(&ivarm)
        .map(|(m, iv)| m * iv.sqrt())
        .collect();

    let mut kcorr = vec![0.0; nabs];
    let mut absmag = synth_absmag.clone();
    let mut absmag_ivar = vec![0.0; nabs];
    for j in 0..nabs {
        // argmin with the first minimum winning (NumPy), NaN treated as the minimum as argmin does.
        let mut best = 0usize;
        let mut bestv = f64::INFINITY;
        for b in 0..nb {
            let pen = if snr[b] < SNR_MIN { 1e10 } else { 0.0 };
            let v = (pre.lambda_obs[b] / (1.0 + z) - pre.lambda_out[j]).abs() + pen;
            if v.is_nan() {
                best = b;
                break;
            }
            if v < bestv {
                bestv = v;
                best = b;
            }
        }
        kcorr[j] = 2.5 * (maggies_rest[j] / maggies_obs[best]).log10();
        if snr[best] > SNR_MIN {
            absmag[j] = -2.5 * maggies[best].log10() - dmod - kcorr[j];
            absmag_ivar[j] = maggies[best] * maggies[best] * ivarm[best] * MAG_IVAR_FACTOR;
        }
    }
    Ok(Kcorr {
        synth_absmag,
        maggies_rest,
        kcorr,
        absmag,
        absmag_ivar,
        maggies_obs,
    })
}
