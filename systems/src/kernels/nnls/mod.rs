//! Non-negative least squares (SPEC.md Appendix A.1, used by the VARPRO
//! continuum solver of §4.3).
//!
//! Solves
//!
//! ```text
//!     x̂ = argmin_{x ≥ 0} ‖A x − b‖₂,     A ∈ ℝ^{m×n}, b ∈ ℝ^m,
//! ```
//!
//! with the Lawson–Hanson active-set algorithm, giving the solutions of scipy
//! 1.17's `scipy.optimize.nnls` (a C translation of the original Fortran):
//! the same column selection order (largest positive dual first), the same
//! independence test (|pivot| > 100·ulp(‖A[0:|P|, j]‖)), the same iteration
//! limit (default 3n inner passes, checked at the top of every pass) and the
//! same residual norm ‖b̃[|P|:m]‖.
//!
//! # Tall-skinny problems
//!
//! FastSpecFit's design matrices are ≈ 8000 × 5. [`nnls`] first reduces them
//! with one Householder QR, A = QR, c = Qᵀb, ρ = ‖(Qᵀb)[n:m]‖, and runs the
//! active-set iteration on the n×n problem min ‖Rx − c[0:n]‖, whose duals
//! Rᵀ(c − Rx) = Aᵀ(b − Ax) and pivots equal the full problem's; the residual
//! norm is √(r² + ρ²). This costs one m×n QR instead of a Householder sweep of
//! all m rows per active-set change. When the reduced run meets a case where
//! scipy's arithmetic on the full matrix matters (a rejected, numerically
//! dependent candidate column, or the iteration limit), the problem is re-run
//! with [`nnls_full`], the faithful full-matrix translation (which also
//! reproduces scipy's quirk of leaving a rejected column overwritten by its
//! Householder vector).
//!
//! # Errors
//! * [`KernelError::Shape`]: `b.len() != m` or `x.len() != n`.
//! * [`KernelError::NonFinite`]: a non-finite entry in A or b (scipy's
//!   `asarray_chkfinite` raises `ValueError`).
//! * [`KernelError::NoConvergence`]: the iteration limit was reached (scipy
//!   raises `RuntimeError`; FastSpecFit then uses χ² = +∞ inside Brent and zero
//!   coefficients in the final solve). `x` then holds the partial iterate.

use super::KernelError;

/// The matrix view type of [`nnls`]'s signature (faer 0.24), re-exported so
/// callers need no direct `faer` dependency.
pub use faer::MatRef;

pub(crate) mod householder;
mod lawson_hanson;

use householder::{apply_reflector, nrm2, reflector_nonneg};
use lawson_hanson::{lawson_hanson, LhScratch};

/// Options of [`nnls`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NnlsOptions {
    /// Iteration limit; `None` (or `Some(0)`) means scipy's default 3n.
    pub maxiter: Option<usize>,
}

/// Diagnostics of a successful [`nnls`] solve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NnlsInfo {
    /// ‖A x̂ − b‖₂ as scipy reports it (from the transformed right-hand side).
    pub rnorm: f64,
    /// Inner active-set passes used.
    pub iterations: usize,
    /// `true` if the faithful full-matrix path produced the answer.
    pub full_path: bool,
}

/// Scratch memory of [`nnls`], sized for m×n problems and reused across calls
/// (it grows if a later problem is larger).
#[derive(Debug, Clone, Default)]
pub struct NnlsWorkspace {
    a: Vec<f64>,
    b: Vec<f64>,
    r: Vec<f64>,
    c: Vec<f64>,
    w: Vec<f64>,
    zz: Vec<f64>,
    idx: Vec<usize>,
}

impl NnlsWorkspace {
    /// Workspace for problems of up to `m` rows and `n` columns.
    pub fn new(m: usize, n: usize) -> Self {
        let mut ws = Self::default();
        ws.ensure(m, n);
        ws
    }

    fn ensure(&mut self, m: usize, n: usize) {
        self.a.resize(m * n, 0.0);
        self.b.resize(m, 0.0);
        self.r.resize(n * n, 0.0);
        self.c.resize(n, 0.0);
        self.w.resize(n, 0.0);
        self.zz.resize(m.max(n), 0.0);
        self.idx.resize(n, 0);
    }
}

fn check(a: MatRef<'_, f64>, b: &[f64], x: &[f64]) -> Result<(usize, usize), KernelError> {
    let (m, n) = a.shape();
    if b.len() != m || x.len() != n {
        return Err(KernelError::Shape(format!(
            "nnls: A is {m}x{n}, b has {} entries, x has {}",
            b.len(),
            x.len()
        )));
    }
    if b.iter().any(|v| !v.is_finite()) {
        return Err(KernelError::NonFinite("nnls: right-hand side".into()));
    }
    Ok((m, n))
}

/// Copy A into `dst` column-major; `false` if A has a non-finite entry.
fn load_matrix(a: MatRef<'_, f64>, dst: &mut [f64]) -> bool {
    let m = a.nrows();
    let mut finite = true;
    for j in 0..a.ncols() {
        let out = &mut dst[j * m..(j + 1) * m];
        let col = a.col(j);
        match col.try_as_col_major() {
            Some(c) => out.copy_from_slice(c.as_slice()),
            None => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = col[i];
                }
            }
        }
        finite &= out.iter().all(|v| v.is_finite());
    }
    finite
}

fn maxiter_of(opts: &NnlsOptions, n: usize) -> usize {
    match opts.maxiter {
        Some(k) if k > 0 => k,
        _ => 3 * n,
    }
}

/// Solve min ‖Ax − b‖ subject to x ≥ 0 (scipy `nnls(A, b)`), writing x̂ into `x`.
///
/// Tall problems (m > n) are reduced by a QR factorisation first (see the
/// module documentation); the answer equals scipy's to rounding.
///
/// # Errors
/// See the module documentation.
pub fn nnls(
    a: MatRef<'_, f64>,
    b: &[f64],
    x: &mut [f64],
    opts: &NnlsOptions,
    ws: &mut NnlsWorkspace,
) -> Result<NnlsInfo, KernelError> {
    let (m, n) = check(a, b, x)?;
    if m <= n || n == 0 {
        return nnls_full(a, b, x, opts, ws);
    }
    ws.ensure(m, n);
    if !load_matrix(a, &mut ws.a) {
        return Err(KernelError::NonFinite("nnls: design matrix".into()));
    }
    ws.b[..m].copy_from_slice(b);
    // Householder QR of [A | b] (dlarfgp reflectors, so R has a non-negative diagonal).
    for k in 0..n {
        let (left, right) = ws.a.split_at_mut((k + 1) * m);
        let col = &mut left[k * m..];
        let mut beta = col[k];
        let tau = reflector_nonneg(&mut beta, &mut col[k + 1..]);
        let v = &col[k + 1..];
        for jj in 0..n - k - 1 {
            let c = &mut right[jj * m + k..(jj + 1) * m];
            let (c0, ct) = c.split_at_mut(1);
            apply_reflector(v, tau, &mut c0[0], ct);
        }
        let (b0, bt) = ws.b[k..m].split_at_mut(1);
        apply_reflector(v, tau, &mut b0[0], bt);
        col[k] = beta;
    }
    for j in 0..n {
        for i in 0..n {
            ws.r[i + j * n] = if i <= j { ws.a[i + j * m] } else { 0.0 };
        }
    }
    ws.c[..n].copy_from_slice(&ws.b[..n]);
    let rho = nrm2(&ws.b[n..m]);
    let out = lawson_hanson(
        &mut ws.r,
        n,
        n,
        &mut ws.c,
        x,
        LhScratch {
            w: &mut ws.w,
            zz: &mut ws.zz[..n],
            idx: &mut ws.idx,
        },
        maxiter_of(opts, n),
    );
    if out.rejections > 0 || !out.converged {
        return nnls_full(a, b, x, opts, ws);
    }
    Ok(NnlsInfo {
        rnorm: out.rnorm.hypot(rho),
        iterations: out.iterations,
        full_path: false,
    })
}

/// [`nnls`] without the QR reduction: the Lawson–Hanson iteration on the full
/// m×n matrix, operation for operation as scipy performs it.
///
/// # Errors
/// See the module documentation.
pub fn nnls_full(
    a: MatRef<'_, f64>,
    b: &[f64],
    x: &mut [f64],
    opts: &NnlsOptions,
    ws: &mut NnlsWorkspace,
) -> Result<NnlsInfo, KernelError> {
    let (m, n) = check(a, b, x)?;
    if m == 0 || n == 0 {
        return Err(KernelError::Shape(format!("nnls: empty {m}x{n} problem")));
    }
    ws.ensure(m, n);
    if !load_matrix(a, &mut ws.a) {
        return Err(KernelError::NonFinite("nnls: design matrix".into()));
    }
    ws.b[..m].copy_from_slice(b);
    let out = lawson_hanson(
        &mut ws.a[..m * n],
        m,
        n,
        &mut ws.b[..m],
        x,
        LhScratch {
            w: &mut ws.w,
            zz: &mut ws.zz[..m.max(n)],
            idx: &mut ws.idx,
        },
        maxiter_of(opts, n),
    );
    if !out.converged {
        return Err(KernelError::NoConvergence(format!(
            "nnls: {} iterations reached",
            out.iterations
        )));
    }
    Ok(NnlsInfo {
        rnorm: out.rnorm,
        iterations: out.iterations,
        full_path: true,
    })
}

#[cfg(test)]
mod tests;
