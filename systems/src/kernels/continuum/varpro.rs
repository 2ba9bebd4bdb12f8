//! VARPRO on photometry: bounded Brent over τ_V ∈ [0, 2] (xatol 1e-4) with NNLS for the
//! template coefficients at each trial τ_V (SPEC §4.3, Appendix A.1, A.3).
//!
//! χ²(τ) = ‖Ψ(τ)c(τ) − b‖², Ψ = diag(σ⁻¹)·M(τ), b = objflam·σ⁻¹ (σ⁻¹ = √objflamivar);
//! NNLS non-convergence makes χ² = +∞ inside Brent and gives c = 0 in the final solve.

use super::cheb::ChebPsi;
use super::model::{PhotModel, TemplateArrays};
use crate::kernels::brent::{minimize_bounded, BoundedOptions};
use crate::kernels::nnls::{nnls, MatRef, NnlsOptions, NnlsWorkspace};
use crate::kernels::KernelError;

/// τ_V bounds of every continuum fit.
pub const TAUV_BOUNDS: (f64, f64) = (0.0, 2.0);
/// Brent's absolute x-tolerance.
pub const TAUV_XATOL: f64 = 1e-4;

/// Reusable scratch of [`varpro_phot`] (one per thread).
#[derive(Debug, Clone, Default)]
pub struct VarproWorkspace {
    atten: Vec<f64>,
    d: Vec<f64>,
    m: Vec<f64>,
    psi: Vec<f64>,
    b: Vec<f64>,
    c: Vec<f64>,
    nnls: NnlsWorkspace,
}

impl VarproWorkspace {
    fn ensure(&mut self, nwave: usize, nt: usize, nb: usize) {
        self.atten.resize(nwave, 0.0);
        self.d.resize(nt, 0.0);
        self.m.resize(nt * nb, 0.0);
        self.psi.resize(nt * nb, 0.0);
        self.b.resize(nb, 0.0);
        self.c.resize(nt, 0.0);
    }
}

/// Result of one VARPRO fit.
#[derive(Debug, Clone, PartialEq)]
pub struct VarproFit {
    /// Best τ_V.
    pub tauv: f64,
    /// Coefficients of the kept templates (zeros if the final NNLS failed).
    pub coeff: Vec<f64>,
    /// χ² = ‖Ψc − b‖² at the optimum.
    pub chi2: f64,
    /// Model photometry M(τ̂)·c, f_λ in 1e-17 units, per band.
    pub model_flam: Vec<f64>,
    /// Brent function evaluations.
    pub nfev: usize,
}

#[allow(clippy::needless_range_loop)]
/// One objective evaluation: fill Ψ and b at τ (directly, or from the Chebyshev
/// interpolant `cheb`), solve NNLS into `ws.c`; χ² or +∞.
fn evaluate(
    model: &PhotModel,
    cheb: Option<&mut ChebPsi>,
    tpl: &TemplateArrays<'_>,
    objflam: &[f64],
    istd: &[f64],
    tauv: f64,
    ws: &mut VarproWorkspace,
) -> f64 {
    let (nb, nt) = (model.nband(), model.ntemplate());
    match cheb {
        Some(c) => c.eval(tauv, &mut ws.m[..nb * nt]),
        None => model.fill(tpl, tauv, &mut ws.atten, &mut ws.d, &mut ws.m),
    }
    for t in 0..nt {
        for b in 0..nb {
            ws.psi[t * nb + b] = ws.m[t * nb + b] * istd[b];
        }
    }
    for b in 0..nb {
        ws.b[b] = objflam[b] * istd[b];
    }
    let a = MatRef::from_column_major_slice(&ws.psi[..nb * nt], nb, nt);
    match nnls(
        a,
        &ws.b[..nb],
        &mut ws.c[..nt],
        &NnlsOptions::default(),
        &mut ws.nnls,
    ) {
        Ok(_) => {
            let mut chi2 = 0.0;
            for b in 0..nb {
                let mut r = -ws.b[b];
                for t in 0..nt {
                    r += ws.psi[t * nb + b] * ws.c[t];
                }
                chi2 += r * r;
            }
            chi2
        }
        Err(_) => f64::INFINITY,
    }
}

/// Fit the photometry `objflam` (1e-17 units) with inverse standard deviations `istd`.
///
/// # Errors
/// [`KernelError::Shape`] on length mismatches; [`KernelError::NonFinite`] for a non-finite
/// data vector (FastSpecFit raises).
pub fn varpro_phot(
    model: &PhotModel,
    tpl: &TemplateArrays<'_>,
    objflam: &[f64],
    istd: &[f64],
    ws: &mut VarproWorkspace,
) -> Result<VarproFit, KernelError> {
    varpro_phot_interp(model, None, true, tpl, objflam, istd, ws)
}

/// [`varpro_phot`] with the design matrix inside Brent taken from the Chebyshev
/// interpolant `cheb` of `model` (direct fills if `None`); the final solve at τ̂ fills
/// directly if `exact_final`, else uses the interpolant too.
///
/// # Errors
/// As [`varpro_phot`].
pub fn varpro_phot_interp(
    model: &PhotModel,
    mut cheb: Option<&mut ChebPsi>,
    exact_final: bool,
    tpl: &TemplateArrays<'_>,
    objflam: &[f64],
    istd: &[f64],
    ws: &mut VarproWorkspace,
) -> Result<VarproFit, KernelError> {
    let (nb, nt) = (model.nband(), model.ntemplate());
    if objflam.len() != nb || istd.len() != nb {
        return Err(KernelError::Shape(format!(
            "varpro: {nb} bands, {} fluxes, {} weights",
            objflam.len(),
            istd.len()
        )));
    }
    if nt == 0 {
        return Err(KernelError::Shape("varpro: no templates".into()));
    }
    if objflam.iter().zip(istd).any(|(f, s)| !(f * s).is_finite()) {
        return Err(KernelError::NonFinite(
            "non-finite values in the photometric fit vector".into(),
        ));
    }
    ws.ensure(tpl.nwave(), nt, nb);
    let opts = BoundedOptions {
        xatol: TAUV_XATOL,
        maxiter: 500,
    };
    let res = minimize_bounded(
        |t| evaluate(model, cheb.as_deref_mut(), tpl, objflam, istd, t, ws),
        TAUV_BOUNDS.0,
        TAUV_BOUNDS.1,
        &opts,
    )?;
    let tauv = res.x;
    let final_cheb = if exact_final { None } else { cheb };
    let mut chi2 = evaluate(model, final_cheb, tpl, objflam, istd, tauv, ws);
    let mut coeff = ws.c[..nt].to_vec();
    if !chi2.is_finite() {
        coeff.fill(0.0);
        chi2 = ws.b[..nb].iter().map(|v| v * v).sum();
    }
    let model_flam = (0..nb)
        .map(|b| (0..nt).map(|t| ws.m[t * nb + b] * coeff[t]).sum())
        .collect();
    Ok(VarproFit {
        tauv,
        coeff,
        chi2,
        model_flam,
        nfev: res.nfev,
    })
}
