//! Bounded scalar minimisation (SPEC.md Appendix A.3 and §4.3).
//!
//! Finds a local minimiser of f on \[a, b\],
//!
//! ```text
//!     x̂ ≈ argmin_{a ≤ x ≤ b} f(x),
//! ```
//!
//! exactly as scipy's `minimize_scalar(method='bounded')` (`fminbound`, the
//! Forsythe–Malcolm–Moler routine) does: golden-section steps (c = (3 − √5)/2)
//! and parabolic interpolation through the three best points, with the absolute
//! tolerance tol₁ = √(2.2·10⁻¹⁶)·|x| + xatol/3 (the literal 2.2e-16 of scipy, not
//! machine ε). The same comparisons in the same order are made, so the sequence
//! of evaluation points — and therefore `nfev` — matches scipy. The first point is
//! a + c(b − a); the bounds themselves are never evaluated.
//!
//! FastSpecFit uses it for the VARPRO dust fit: τ_V ∈ \[0, 2\], xatol = 1e-4,
//! maxiter 500, with an NNLS χ² as objective (+∞ when NNLS fails, which merely
//! makes the parabola test fail).
//!
//! # Errors
//! [`KernelError::Domain`] for non-finite bounds or a > b (scipy raises
//! ValueError). Non-convergence is not an error: it is reported in
//! [`BoundedResult::status`].

use super::KernelError;

/// Options of [`minimize_bounded`] (scipy `options=`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundedOptions {
    /// Absolute tolerance on x (`xatol`); scipy's default is 1e-5, FastSpecFit passes 1e-4.
    pub xatol: f64,
    /// Maximum number of function evaluations, the first one included (`maxiter`).
    pub maxiter: usize,
}

impl Default for BoundedOptions {
    /// scipy's defaults: xatol = 1e-5, maxiter = 500.
    fn default() -> Self {
        Self {
            xatol: 1e-5,
            maxiter: 500,
        }
    }
}

/// Why [`minimize_bounded`] stopped (scipy `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundedStatus {
    /// The bracket shrank below the tolerance (status 0, success).
    Converged,
    /// `maxiter` evaluations were used (status 1).
    MaxIter,
    /// The final point, its value or the last trial value is NaN (status 2).
    NaN,
}

impl BoundedStatus {
    /// scipy's integer status code.
    pub fn code(self) -> i32 {
        match self {
            Self::Converged => 0,
            Self::MaxIter => 1,
            Self::NaN => 2,
        }
    }
}

/// Result of [`minimize_bounded`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundedResult {
    /// The best point found.
    pub x: f64,
    /// f(x).
    pub fun: f64,
    /// Number of function evaluations.
    pub nfev: usize,
    /// Termination reason.
    pub status: BoundedStatus,
}

/// `np.sign(v) + (v == 0)`: +1 for v ≥ 0 (either zero), −1 for v < 0, NaN for NaN.
fn sign_or_one(v: f64) -> f64 {
    if v >= 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        f64::NAN
    }
}

/// Minimise `f` on \[`lo`, `hi`\] with scipy's bounded Brent method.
///
/// `f` is called once per evaluation, in the same order and at the same points
/// as scipy's `_minimize_scalar_bounded`.
///
/// # Errors
/// [`KernelError::Domain`] if a bound is not finite or `lo > hi`.
pub fn minimize_bounded<F: FnMut(f64) -> f64>(
    mut f: F,
    lo: f64,
    hi: f64,
    opts: &BoundedOptions,
) -> Result<BoundedResult, KernelError> {
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(KernelError::Domain(format!(
            "bounds [{lo}, {hi}] must be finite"
        )));
    }
    if lo > hi {
        return Err(KernelError::Domain(format!(
            "lower bound {lo} exceeds upper bound {hi}"
        )));
    }
    let xatol = opts.xatol;
    let maxfun = opts.maxiter;
    let sqrt_eps = 2.2e-16f64.sqrt();
    let golden_mean = 0.5 * (3.0 - 5.0f64.sqrt());

    let (mut a, mut b) = (lo, hi);
    // fulc / nfc / xf: the third-best, second-best and best points so far.
    let mut fulc = a + golden_mean * (b - a);
    let mut nfc = fulc;
    let mut xf = fulc;
    let mut rat = 0.0f64;
    let mut e = 0.0f64;
    let mut fx = f(xf);
    let mut num = 1usize;
    let mut fu = f64::INFINITY;
    let mut ffulc = fx;
    let mut fnfc = fx;
    let mut xm = 0.5 * (a + b);
    let mut tol1 = sqrt_eps * xf.abs() + xatol / 3.0;
    let mut tol2 = 2.0 * tol1;
    let mut status = BoundedStatus::Converged;

    while (xf - xm).abs() > (tol2 - 0.5 * (b - a)) {
        let mut golden = true;
        if e.abs() > tol1 {
            golden = false;
            let mut r = (xf - nfc) * (fx - ffulc);
            let mut q = (xf - fulc) * (fx - fnfc);
            let mut p = (xf - fulc) * q - (xf - nfc) * r;
            q = 2.0 * (q - r);
            if q > 0.0 {
                p = -p;
            }
            q = q.abs();
            r = e;
            e = rat;
            if p.abs() < (0.5 * q * r).abs() && p > q * (a - xf) && p < q * (b - xf) {
                rat = (p + 0.0) / q;
                let x = xf + rat;
                if (x - a) < tol2 || (b - x) < tol2 {
                    rat = tol1 * sign_or_one(xm - xf);
                }
            } else {
                golden = true;
            }
        }
        if golden {
            e = if xf >= xm { a - xf } else { b - xf };
            rat = golden_mean * e;
        }
        let x = xf + sign_or_one(rat) * rat.abs().max(tol1);
        fu = f(x);
        num += 1;

        if fu <= fx {
            if x >= xf {
                a = xf;
            } else {
                b = xf;
            }
            fulc = nfc;
            ffulc = fnfc;
            nfc = xf;
            fnfc = fx;
            xf = x;
            fx = fu;
        } else {
            if x < xf {
                a = x;
            } else {
                b = x;
            }
            if fu <= fnfc || nfc == xf {
                fulc = nfc;
                ffulc = fnfc;
                nfc = x;
                fnfc = fu;
            } else if fu <= ffulc || fulc == xf || fulc == nfc {
                fulc = x;
                ffulc = fu;
            }
        }
        xm = 0.5 * (a + b);
        tol1 = sqrt_eps * xf.abs() + xatol / 3.0;
        tol2 = 2.0 * tol1;
        if num >= maxfun {
            status = BoundedStatus::MaxIter;
            break;
        }
    }
    if xf.is_nan() || fx.is_nan() || fu.is_nan() {
        status = BoundedStatus::NaN;
    }
    Ok(BoundedResult {
        x: xf,
        fun: fx,
        nfev: num,
        status,
    })
}

#[cfg(test)]
mod tests;
