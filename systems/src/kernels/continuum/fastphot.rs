//! fastphot: the photometry-only continuum fit of one target (SPEC §4.1, §4.2, §4.9
//! photometry part, §4.10).
//!
//! VARPRO on the photometry with the nominal-σ templates (`flux_nomvdisp`, kept by age if
//! `--constrain-age`), dust emission on; RCHI2_PHOT = χ²/(ndof − (nT+1)) if ndof > nT+1
//! else χ²/ndof (0 if every coefficient is zero); ndof_phot = 0 → everything zero. Monte
//! Carlo: `nmonte` realisations objflam + σ·N(0,1) (a draw per band, σ = 0 for unfitted
//! bands, realisation-major), each refitted; TAUV_IVAR = 1/var(τ_V) if var > TINY, and
//! [QUIRK] TAUV is reported only if 0 < ivar < F32MAX, or when no Monte Carlo ran.

use super::cheb::ChebPsi;
use super::model::{PhotModel, TemplateArrays, FLUXNORM};
use super::photvec::{parse_photometry, phot_vector};
use super::rng::{Pcg64, Ziggurat};
use super::varpro::{varpro_phot_interp, VarproWorkspace};
use crate::kernels::filters::FilterCurve;
use crate::kernels::igm::Inoue14;
use crate::kernels::stats::TINY;
use crate::kernels::KernelError;

/// Largest float32, the sanity limit on written inverse variances.
pub const F32MAX: f64 = f32::MAX as f64;

/// Inputs of [`fit_fastphot`] for one target.
#[derive(Debug, Clone, Copy)]
pub struct FastphotInputs<'a> {
    /// Template arrays (`flux` = `flux_nomvdisp`, `flux_nolines` = `flux_nolines_nomvdisp`).
    pub tpl: TemplateArrays<'a>,
    /// Template ages, yr.
    pub ages_yr: &'a [f64],
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
    /// The object's band filters.
    pub filters: &'a [FilterCurve],
    /// Dereddened fluxes, nanomaggies.
    pub nmgy: &'a [f64],
    /// Dereddened inverse variances (no floor), nanomaggies⁻².
    pub ivar: &'a [f64],
    /// Per-band magnitude floor.
    pub min_uncertainty: Option<&'a [f64]>,
    /// Bands that enter the fit.
    pub bands_to_fit: &'a [bool],
    /// Monte Carlo realisations.
    pub nmonte: usize,
    /// Per-object seed.
    pub seed: u64,
}

/// Everything the fastphot continuum fit of one target produces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FastphotResult {
    /// Templates used.
    pub agekeep: Vec<bool>,
    /// Coefficients over all templates (0 where not kept).
    pub coeff: Vec<f64>,
    /// Best-fit τ_V.
    pub tauv_fit: f64,
    /// τ_V as reported (see the [QUIRK] in the module docs).
    pub tauv: f64,
    /// Inverse variance of τ_V (0 if not measured or ≥ F32MAX).
    pub tauv_ivar: f64,
    /// Reduced photometric χ².
    pub rchi2_phot: f64,
    /// Number of bands with ivar > 0.
    pub ndof_phot: usize,
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
}

/// `_get_rchi2`: χ²/(ndof − nfree) if ndof > nfree, else χ²/ndof.
pub fn reduced_chi2(chi2: f64, ndof: usize, nfree: usize) -> f64 {
    if ndof > nfree {
        chi2 / (ndof - nfree) as f64
    } else {
        chi2 / ndof as f64
    }
}

/// NaN-skipping population variance.
fn nanvar(x: &[f64]) -> f64 {
    let v: Vec<f64> = x.iter().copied().filter(|a| !a.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / v.len() as f64
}

/// Run the fastphot continuum fit of one target.
///
/// # Errors
/// Bad photometry (negative ivar), no kept template, filters not covered by the
/// redshifted template grid, bad shapes.
pub fn fit_fastphot(
    inp: &FastphotInputs<'_>,
    ws: &mut VarproWorkspace,
) -> Result<FastphotResult, KernelError> {
    let nb = inp.filters.len();
    let ntot = inp.ages_yr.len();
    let nw = inp.tpl.nwave();
    let lambda_eff: Vec<f64> = inp.filters.iter().map(|f| f.lambda_eff).collect();
    let (mut flam, mut flam_ivar) = (vec![0.0; nb], vec![0.0; nb]);
    parse_photometry(
        inp.nmgy,
        inp.ivar,
        &lambda_eff,
        inp.min_uncertainty,
        &mut flam,
        &mut flam_ivar,
    )?;
    let (mut objflam, mut objivar) = (vec![0.0; nb], vec![0.0; nb]);
    let ndof = phot_vector(
        &flam,
        &flam_ivar,
        inp.bands_to_fit,
        &lambda_eff,
        FLUXNORM,
        &mut objflam,
        &mut objivar,
    )?;

    let agekeep: Vec<bool> = inp
        .ages_yr
        .iter()
        .map(|&a| !inp.constrain_age || a <= 1e9 * (0.5 + inp.tuniv_gyr))
        .collect();
    let rows: Vec<usize> = (0..ntot).filter(|&t| agekeep[t]).collect();
    if rows.is_empty() {
        return Err(KernelError::Domain(format!(
            "no template younger than the universe at z = {}",
            inp.z
        )));
    }
    let mut out = FastphotResult {
        agekeep,
        coeff: vec![0.0; ntot],
        ndof_phot: ndof,
        lambda_eff,
        model_flam: vec![0.0; nb],
        sedmodel: vec![0.0; nw],
        sedmodel_nolines: vec![0.0; nw],
        ..Default::default()
    };
    if ndof == 0 {
        out.phot_flam = objflam;
        out.phot_flam_ivar = objivar;
        return Ok(out);
    }
    let model = PhotModel::new(&inp.tpl, &rows, inp.z, inp.dlum_mpc, inp.igm, inp.filters)?;
    let istd: Vec<f64> = objivar.iter().map(|v| v.sqrt()).collect();
    // One interpolant of M(τ) serves the main fit and every Monte Carlo refit (not worth
    // building for a single fit).
    let mut cheb = if inp.nmonte > 0 {
        ChebPsi::new(&model, &inp.tpl)
    } else {
        None
    };
    let fit = varpro_phot_interp(&model, cheb.as_mut(), true, &inp.tpl, &objflam, &istd, ws)?;
    let scatter = |c: &[f64]| {
        let mut full = vec![0.0; ntot];
        for (i, &t) in rows.iter().enumerate() {
            full[t] = c[i];
        }
        full
    };
    out.coeff = scatter(&fit.coeff);
    out.tauv_fit = fit.tauv;
    out.tauv = fit.tauv;
    let allzero = fit.coeff.iter().all(|&c| c == 0.0);
    if !allzero {
        out.rchi2_phot = reduced_chi2(fit.chi2, ndof, rows.len() + 1);
        out.model_flam = fit.model_flam.clone();
        model.sed(&inp.tpl, &fit.coeff, fit.tauv, &mut out.sedmodel);
        model.sed_nolines(&inp.tpl, &fit.coeff, fit.tauv, &mut out.sedmodel_nolines);
    }

    if inp.nmonte > 0 {
        let std: Vec<f64> = istd
            .iter()
            .map(|&s| if s > 0.0 { 1.0 / s } else { 0.0 })
            .collect();
        let mut rng = Pcg64::from_seed(inp.seed);
        let zig = Ziggurat::new();
        let draws: Vec<Vec<f64>> = (0..inp.nmonte)
            .map(|_| {
                let mut v = Vec::new();
                rng.extend_normal(&zig, &objflam[..nb], &std, &mut v);
                v
            })
            .collect();
        for mc in &draws {
            let f = varpro_phot_interp(&model, cheb.as_mut(), false, &inp.tpl, mc, &istd, ws)?;
            out.mc_coeff.push(scatter(&f.coeff));
            out.mc_tauv.push(f.tauv);
        }
        let var = nanvar(&out.mc_tauv);
        let ivar = if var > TINY { 1.0 / var } else { 0.0 };
        if ivar > 0.0 && ivar < F32MAX {
            out.tauv_ivar = ivar;
        } else {
            out.tauv = 0.0;
        }
    }
    out.phot_flam = objflam;
    out.phot_flam_ivar = objivar;
    Ok(out)
}
