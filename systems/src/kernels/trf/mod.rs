//! Bounded nonlinear least squares with the Trust Region Reflective method
//! (SPEC.md Appendix A.2; used by the σ★ fit of §4.5 and every emission-line
//! fit of §5.5).
//!
//! Finds a local minimiser of
//!
//! ```text
//!     F(x) = ½ ‖f(x)‖₂² = ½ Σᵢ fᵢ(x)²     subject to  lb ≤ x ≤ ub,
//! ```
//!
//! behaving as scipy 1.17's `least_squares(method='trf', loss='linear')`:
//! the same strictly-feasible start, Coleman–Li scaling, `x_scale` handling
//! (`'jac'` with the running column-norm maximum, fixed scales, or 1 — the trf
//! default), the reflective / bound-truncated / Cauchy step selection with
//! θ = max(0.995, 1 − ‖g‖∞), trust-radius updates, the ftol / xtol / gtol tests
//! made on every trial, and the evaluation counting (`nfev` counts residual
//! evaluations at trial points only, never finite-difference probes). Without
//! any finite bound scipy's unbounded variant is followed instead.
//!
//! [`least_squares_dense_qr`] runs the exact solver on the R factor of J = QR (one
//! row-blocked Householder QR of [J f] per accepted point; every later product n-sized):
//! the same iteration in exact arithmetic, other rounding.
//!
//! Two trust-region sub-problem solvers:
//! * [`TrSolver::Exact`] (`tr_solver='exact'`): the Moré–Sorensen / SVD solver
//!   on \[J_h; diag(√diag_h)\], once per outer iteration. The SVD is taken of the
//!   n×n triangle of a Householder QR, which gives the same Uᵀf, s, V as a thin
//!   SVD of the tall matrix.
//! * [`TrSolver::Lsmr`] (`tr_solver='lsmr'`): the regularised LSMR Gauss–Newton
//!   direction and the 2-D subspace {g_h, gn_h} problem, with scipy's LSMR.
//!
//! Jacobians: a residual-only [`Problem`] gets scipy's `'2-point'` forward
//! differences (with its bound-aware step rules); a [`DenseJacobian`] problem
//! supplies J itself; an [`OperatorJacobian`] problem supplies J·v and Jᵀ·u
//! only (FastSpecFit's sparse line-fit Jacobian is a `LinearOperator`) and must
//! use the LSMR solver with a numeric `x_scale`.
//!
//! How FastSpecFit calls it (SPEC A.2):
//! * σ★ fit: [`least_squares_fd`], `TrSolver::Exact`, `XScale::Jac`,
//!   ftol 1e-6, xtol 1e-10, gtol 1e-8, max_nfev 5000 (this port: the same options with
//!   the problem's analytic Jacobian through [`least_squares_dense_qr`], see
//!   `continuum::vdispfit`);
//! * line fits: [`least_squares_operator`], `TrSolver::Lsmr` with
//!   `maxiter: Some(1000)`, `regularize: true`, `XScale::Ones`, ftol 1e-5
//!   (1e-3 masker / MC), xtol 1e-10 (1e-5), gtol 1e-8, max_nfev 5000.
//!
//! # Deviations
//! Where scipy raises from deep inside the iteration (a zero reflected direction
//! in `intersect_trust_region`, no real root in the 2-D solver, n = 1 with a
//! Newton step outside the region) this port picks the nearest sensible step
//! instead; none of these occur on well-posed fits.
//!
//! # Errors
//! * [`KernelError::Shape`]: inconsistent lengths (`x`, `lb`, `ub`, x_scale,
//!   workspace sizes) or n = 0.
//! * [`KernelError::Domain`]: lb ≥ ub for a component, x0 outside the bounds,
//!   non-positive / non-finite x_scale, tolerances all below ε, or a solver /
//!   Jacobian combination scipy rejects (exact + operator, `'jac'` + operator).
//! * [`KernelError::NonFinite`]: non-finite residuals at x0, or a non-finite
//!   Jacobian (scipy's SVD would fail on it).

#![allow(
    clippy::needless_range_loop,
    reason = "index loops over several same-length vectors mirror scipy's vector expressions"
)]

use super::KernelError;

/// The matrix view types of this module's signatures (faer 0.24), re-exported
/// so callers need no direct `faer` dependency.
pub use faer::{MatMut, MatRef};

mod common;
mod compress;
mod driver;
mod exact;
mod lsmr;
mod model;
mod step;
mod subspace;
mod workspace;

pub use workspace::TrfWorkspace;

/// A vector-valued residual function f: ℝⁿ → ℝᵐ.
pub trait Problem {
    /// Number of residuals m.
    fn n_residuals(&self) -> usize;
    /// Write f(x) into `f` (length m). Non-finite values are allowed at trial
    /// points (the step is then shrunk), but not at the starting point.
    fn residuals(&mut self, x: &[f64], f: &mut [f64]);
}

/// A [`Problem`] with an analytic dense Jacobian.
pub trait DenseJacobian: Problem {
    /// Write J(x) = ∂f/∂x (m×n) into `jac`. Called after `residuals(x)` at the
    /// same x.
    fn jacobian(&mut self, x: &[f64], jac: MatMut<'_, f64>);
    /// J(x) (m×n, column-major) if the problem already holds it, e.g. because its
    /// residual pass at this x computed the Jacobian's columns too; the solvers that
    /// only read J (the R-factor path of [`least_squares_dense_qr`]) then use it in
    /// place of [`jacobian`](Self::jacobian). Default: `None`.
    fn jacobian_cached(&mut self, _x: &[f64]) -> Option<&[f64]> {
        None
    }
    /// As [`OperatorJacobian::final_jacobian`]: whether J must be evaluated at a
    /// point accepted by the step that also met ftol / xtol (default `true`).
    fn final_jacobian(&self) -> bool {
        true
    }
}

/// A [`Problem`] whose Jacobian is available only as a linear operator.
pub trait OperatorJacobian: Problem {
    /// Prepare the operator J(x); called after `residuals(x)` at the same x,
    /// once per accepted point (and once at x0).
    fn update_jacobian(&mut self, x: &[f64]);
    /// out = J v (v of length n, out of length m).
    fn matvec(&self, v: &[f64], out: &mut [f64]);
    /// out = Jᵀ u (u of length m, out of length n).
    fn rmatvec(&self, u: &[f64], out: &mut [f64]);
    /// Optional row support of the current operator: sorted, disjoint,
    /// non-empty row ranges outside which every row of J is zero. When
    /// given, [`matvec`](Self::matvec) need only write the rows inside it
    /// (the solver treats the others as 0 and never reads them back) and
    /// [`rmatvec`](Self::rmatvec) must not depend on the rows outside it.
    /// The solver then skips those rows wherever that leaves every
    /// floating-point result bit-identical. Default: `None` (all rows).
    fn row_support(&self) -> Option<&[(usize, usize)]> {
        None
    }
    /// Optionally write the Gram matrix JᵀJ of the current operator into
    /// `out` (n×n, column-major) and return `true`; the default provides none.
    ///
    /// With a Gram matrix the LSMR sub-problem solver runs on the (n+1)×n
    /// triangular factor of the augmented system instead of the (m+n)-row
    /// operator: the same LSMR iteration in exact arithmetic (the system is
    /// only rotated), at O(n²) instead of O(m + nnz(J)) per step — but not
    /// the same rounding, and LSMR's early stop on ill-conditioned systems
    /// amplifies rounding differences (see the `subspace` module). The
    /// quadratic-model values of the step selection (‖J_h s‖², (J_h s)·(J_h t))
    /// are then also formed from the Gram matrix, so no product with J
    /// remains in an iteration except g = Jᵀf at each accepted point.
    fn gram(&self, out: &mut [f64]) -> bool {
        let _ = out;
        false
    }
    /// Whether the solver must evaluate J (and g = Jᵀf) at a point accepted
    /// by the step that also met ftol / xtol (default `true`, as scipy).
    /// That J only serves the final gtol test, which can turn the status
    /// into [`TrfStatus::Gtol`], and the summary's `optimality`; a problem
    /// that needs neither may return `false` to save one Jacobian per fit
    /// (x̂, cost and nfev are unchanged; `optimality` is then the value
    /// at the previous point).
    fn final_jacobian(&self) -> bool {
        true
    }
}

/// Variable scaling (`x_scale`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum XScale {
    /// Every scale 1 (the trf default, `x_scale=None` or `1.0`).
    #[default]
    Ones,
    /// `x_scale='jac'`: inverse column norms of J, updated as a running maximum.
    Jac,
    /// Fixed positive scales, one per parameter.
    Values(Vec<f64>),
}

/// Options of the LSMR sub-problem solver (`tr_options` with `tr_solver='lsmr'`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LsmrOptions {
    /// LSMR iteration limit; `None` = min(rows, n) = n.
    pub maxiter: Option<usize>,
    /// Add the regularisation term of scipy's `regularize=True` (default).
    pub regularize: bool,
    /// LSMR damping (scipy `damp`, default 0).
    pub damp: f64,
    /// LSMR `atol` (1e-6).
    pub atol: f64,
    /// LSMR `btol` (1e-6).
    pub btol: f64,
    /// LSMR `conlim` (1e8).
    pub conlim: f64,
}

impl Default for LsmrOptions {
    fn default() -> Self {
        Self {
            maxiter: None,
            regularize: true,
            damp: 0.0,
            atol: 1e-6,
            btol: 1e-6,
            conlim: 1e8,
        }
    }
}

/// Trust-region sub-problem solver (`tr_solver`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrSolver {
    /// Dense SVD-based exact solver (`'exact'`).
    Exact,
    /// LSMR + 2-D subspace solver (`'lsmr'`).
    Lsmr(LsmrOptions),
}

/// Options of the TRF solver (scipy's keyword arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct TrfOptions {
    /// Relative cost-reduction tolerance (`ftol`, default 1e-8).
    pub ftol: f64,
    /// Relative step tolerance (`xtol`, default 1e-8).
    pub xtol: f64,
    /// Projected-gradient tolerance (`gtol`, default 1e-8).
    pub gtol: f64,
    /// Maximum residual evaluations (`max_nfev`); `None` = 100·n.
    pub max_nfev: Option<usize>,
    /// Variable scaling.
    pub x_scale: XScale,
    /// Sub-problem solver.
    pub tr_solver: TrSolver,
}

impl Default for TrfOptions {
    fn default() -> Self {
        Self {
            ftol: 1e-8,
            xtol: 1e-8,
            gtol: 1e-8,
            max_nfev: None,
            x_scale: XScale::Ones,
            tr_solver: TrSolver::Exact,
        }
    }
}

/// Why the solver stopped (scipy `status`; all but `MaxNfev` are successes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrfStatus {
    /// `max_nfev` reached (0).
    MaxNfev,
    /// Projected gradient below `gtol` (1).
    Gtol,
    /// Cost reduction below `ftol` (2).
    Ftol,
    /// Step below `xtol` (3).
    Xtol,
    /// Both `ftol` and `xtol` (4).
    FtolXtol,
}

impl TrfStatus {
    /// scipy's integer status.
    pub fn code(self) -> i32 {
        match self {
            Self::MaxNfev => 0,
            Self::Gtol => 1,
            Self::Ftol => 2,
            Self::Xtol => 3,
            Self::FtolXtol => 4,
        }
    }

    /// scipy's `success` (status > 0).
    pub fn success(self) -> bool {
        self != Self::MaxNfev
    }
}

/// Scalar results of a TRF run; vectors (residuals, gradient, Jacobian, active
/// constraints) stay in the [`TrfWorkspace`] until its next use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrfSummary {
    /// ½‖f(x̂)‖².
    pub cost: f64,
    /// Residual evaluations (x0 and trial points; not finite-difference probes).
    pub nfev: usize,
    /// Jacobian evaluations.
    pub njev: usize,
    /// Termination reason.
    pub status: TrfStatus,
    /// ‖g ∘ v‖∞ at the last iterate (scipy `optimality`).
    pub optimality: f64,
}

/// Minimise ½‖f(x)‖² on the box with a `'2-point'` finite-difference Jacobian.
///
/// `x` holds x0 on entry and x̂ on return.
///
/// # Errors
/// See the module documentation.
pub fn least_squares_fd<P: Problem>(
    problem: &mut P,
    x: &mut [f64],
    lb: &[f64],
    ub: &[f64],
    opts: &TrfOptions,
    ws: &mut TrfWorkspace,
) -> Result<TrfSummary, KernelError> {
    let m = problem.n_residuals();
    let mut model = model::TwoPoint::new(problem, m);
    driver::run(&mut model, x, lb, ub, opts, ws)
}

/// Minimise ½‖f(x)‖² on the box with the problem's dense analytic Jacobian.
///
/// `x` holds x0 on entry and x̂ on return.
///
/// # Errors
/// See the module documentation.
pub fn least_squares_dense<P: DenseJacobian>(
    problem: &mut P,
    x: &mut [f64],
    lb: &[f64],
    ub: &[f64],
    opts: &TrfOptions,
    ws: &mut TrfWorkspace,
) -> Result<TrfSummary, KernelError> {
    let mut model = model::Analytic(problem);
    driver::run(&mut model, x, lb, ub, opts, ws)
}

/// [`least_squares_dense`] working on the R factor of J = QR: one Householder QR of the
/// m×n Jacobian (with f) per accepted point, every later product of the iteration n-sized
/// (see the `compress` module; equal in exact arithmetic, rounding differs). Exact solver
/// only. The workspace's [`TrfWorkspace::jacobian`] is empty afterwards (J is not kept).
///
/// `x` holds x0 on entry and x̂ on return.
///
/// # Errors
/// See the module documentation; additionally [`KernelError::Domain`] for
/// `TrSolver::Lsmr`.
pub fn least_squares_dense_qr<P: DenseJacobian>(
    problem: &mut P,
    x: &mut [f64],
    lb: &[f64],
    ub: &[f64],
    opts: &TrfOptions,
    ws: &mut TrfWorkspace,
) -> Result<TrfSummary, KernelError> {
    if opts.tr_solver != TrSolver::Exact {
        return Err(KernelError::Domain(
            "least_squares_dense_qr needs tr_solver 'exact'".into(),
        ));
    }
    let n = x.len();
    let mut model = compress::Compressed::new(problem, n);
    let r = driver::run(&mut model, x, lb, ub, opts, ws);
    ws.jac_valid = false;
    r
}

/// Minimise ½‖f(x)‖² on the box with a matrix-free Jacobian (LSMR solver only).
///
/// `x` holds x0 on entry and x̂ on return.
///
/// # Errors
/// See the module documentation; additionally [`KernelError::Domain`] for
/// `TrSolver::Exact` or `XScale::Jac`, which scipy rejects for operators.
pub fn least_squares_operator<P: OperatorJacobian>(
    problem: &mut P,
    x: &mut [f64],
    lb: &[f64],
    ub: &[f64],
    opts: &TrfOptions,
    ws: &mut TrfWorkspace,
) -> Result<TrfSummary, KernelError> {
    if opts.tr_solver == TrSolver::Exact {
        return Err(KernelError::Domain(
            "tr_solver 'exact' needs a dense Jacobian".into(),
        ));
    }
    if opts.x_scale == XScale::Jac {
        return Err(KernelError::Domain(
            "x_scale 'jac' cannot be used with an operator Jacobian".into(),
        ));
    }
    let mut model = model::Operator(problem);
    driver::run(&mut model, x, lb, ub, opts, ws)
}

#[cfg(test)]
mod tests;
