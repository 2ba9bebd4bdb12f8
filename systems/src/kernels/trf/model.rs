//! The three Jacobian sources behind one internal interface.

use faer::MatMut;

use super::super::nnls::householder::{axpy, dot};
use super::{DenseJacobian, OperatorJacobian, Problem};

/// What the driver needs from a problem: residuals, J at accepted points, and
/// products with J. Dense models keep J in the `jac` slice (m×n, column-major).
pub(super) trait Model {
    /// `true` if J is stored densely in `jac`.
    const DENSE: bool;
    /// Number of residuals.
    fn m(&self) -> usize;
    /// f(x).
    fn residuals(&mut self, x: &[f64], f: &mut [f64]);
    /// Evaluate J at x, where `f` = f(x). `sx` (n) and `sf` (m) are scratch.
    #[allow(
        clippy::too_many_arguments,
        reason = "scratch slices are passed explicitly"
    )]
    fn jacobian(
        &mut self,
        x: &[f64],
        f: &[f64],
        lb: &[f64],
        ub: &[f64],
        jac: &mut [f64],
        sx: &mut [f64],
        sf: &mut [f64],
    );
    /// out = J v.
    fn matvec(&self, jac: &[f64], v: &[f64], out: &mut [f64]);
    /// out = Jᵀ u.
    fn rmatvec(&self, jac: &[f64], u: &[f64], out: &mut [f64]);
    /// Row support of J (see [`OperatorJacobian::row_support`]); `None` if
    /// `matvec` writes every row.
    fn row_support(&self) -> Option<&[(usize, usize)]> {
        None
    }
    /// JᵀJ (n×n, column-major) into `out` if the model provides it.
    fn gram(&self, _jac: &[f64], _out: &mut [f64]) -> bool {
        false
    }
    /// See [`OperatorJacobian::final_jacobian`].
    fn final_jacobian(&self) -> bool {
        true
    }
    /// Rows of the stored Jacobian: m, or n for a model that stores the R factor of
    /// J = QR instead of J (see [`super::compress`]).
    fn jac_rows(&self) -> usize {
        self.m()
    }
    /// The residual vector the stored Jacobian pairs with: f itself, or Qᵀf (first n
    /// components) for a model storing R.
    fn jac_f<'a>(&'a self, f: &'a [f64]) -> &'a [f64] {
        f
    }
}

pub(super) fn dense_matvec(jac: &[f64], m: usize, v: &[f64], out: &mut [f64]) {
    out.fill(0.0);
    for (j, &vj) in v.iter().enumerate() {
        axpy(vj, &jac[j * m..(j + 1) * m], out);
    }
}

pub(super) fn dense_rmatvec(jac: &[f64], m: usize, u: &[f64], out: &mut [f64]) {
    for (j, o) in out.iter_mut().enumerate() {
        *o = dot(&jac[j * m..(j + 1) * m], u);
    }
}

/// scipy's `'2-point'` forward differences around a residual-only problem.
pub(super) struct TwoPoint<'a, P: Problem> {
    problem: &'a mut P,
    m: usize,
}

impl<'a, P: Problem> TwoPoint<'a, P> {
    pub(super) fn new(problem: &'a mut P, m: usize) -> Self {
        Self { problem, m }
    }
}

/// √ε of float64, the relative step of `'2-point'`.
const FD_REL_STEP: f64 = 1.4901161193847656e-08;

impl<P: Problem> Model for TwoPoint<'_, P> {
    const DENSE: bool = true;

    fn m(&self) -> usize {
        self.m
    }

    fn residuals(&mut self, x: &[f64], f: &mut [f64]) {
        self.problem.residuals(x, f);
    }

    fn jacobian(
        &mut self,
        x: &[f64],
        f: &[f64],
        lb: &[f64],
        ub: &[f64],
        jac: &mut [f64],
        sx: &mut [f64],
        sf: &mut [f64],
    ) {
        let m = self.m;
        let bounded = lb
            .iter()
            .zip(ub)
            .any(|(&l, &u)| l != f64::NEG_INFINITY || u != f64::INFINITY);
        sx.copy_from_slice(x);
        for i in 0..x.len() {
            let sign = if x[i] >= 0.0 { 1.0 } else { -1.0 };
            let mut h = FD_REL_STEP * sign * x[i].abs().max(1.0);
            if bounded {
                // `_adjust_scheme_to_bounds`, one-sided scheme, one step.
                let lower = x[i] - lb[i];
                let upper = ub[i] - x[i];
                let xh = x[i] + h;
                let violated = xh < lb[i] || xh > ub[i];
                let fitting = h.abs() <= lower.max(upper);
                if violated && fitting {
                    h = -h;
                }
                if !fitting {
                    h = if upper >= lower { upper } else { -lower };
                }
            }
            sx[i] = x[i] + h;
            self.problem.residuals(sx, sf);
            let dx = (x[i] + h) - x[i];
            let col = &mut jac[i * m..(i + 1) * m];
            for ((c, &f1), &f0) in col.iter_mut().zip(sf.iter()).zip(f) {
                *c = (f1 - f0) / dx;
            }
            sx[i] = x[i];
        }
    }

    fn matvec(&self, jac: &[f64], v: &[f64], out: &mut [f64]) {
        dense_matvec(jac, self.m, v, out);
    }

    fn rmatvec(&self, jac: &[f64], u: &[f64], out: &mut [f64]) {
        dense_rmatvec(jac, self.m, u, out);
    }
}

/// A problem with an analytic dense Jacobian.
pub(super) struct Analytic<'a, P: DenseJacobian>(pub(super) &'a mut P);

impl<P: DenseJacobian> Model for Analytic<'_, P> {
    const DENSE: bool = true;

    fn m(&self) -> usize {
        self.0.n_residuals()
    }

    fn residuals(&mut self, x: &[f64], f: &mut [f64]) {
        self.0.residuals(x, f);
    }

    fn jacobian(
        &mut self,
        x: &[f64],
        _f: &[f64],
        _lb: &[f64],
        _ub: &[f64],
        jac: &mut [f64],
        _sx: &mut [f64],
        _sf: &mut [f64],
    ) {
        let m = self.m();
        let n = x.len();
        self.0
            .jacobian(x, MatMut::from_column_major_slice_mut(jac, m, n));
    }

    fn matvec(&self, jac: &[f64], v: &[f64], out: &mut [f64]) {
        dense_matvec(jac, self.m(), v, out);
    }

    fn rmatvec(&self, jac: &[f64], u: &[f64], out: &mut [f64]) {
        dense_rmatvec(jac, self.m(), u, out);
    }
}

/// A problem with a matrix-free Jacobian.
pub(super) struct Operator<'a, P: OperatorJacobian>(pub(super) &'a mut P);

impl<P: OperatorJacobian> Model for Operator<'_, P> {
    const DENSE: bool = false;

    fn m(&self) -> usize {
        self.0.n_residuals()
    }

    fn residuals(&mut self, x: &[f64], f: &mut [f64]) {
        self.0.residuals(x, f);
    }

    fn jacobian(
        &mut self,
        x: &[f64],
        _f: &[f64],
        _lb: &[f64],
        _ub: &[f64],
        _jac: &mut [f64],
        _sx: &mut [f64],
        _sf: &mut [f64],
    ) {
        self.0.update_jacobian(x);
    }

    fn matvec(&self, _jac: &[f64], v: &[f64], out: &mut [f64]) {
        self.0.matvec(v, out);
    }

    fn rmatvec(&self, _jac: &[f64], u: &[f64], out: &mut [f64]) {
        self.0.rmatvec(u, out);
    }

    fn row_support(&self) -> Option<&[(usize, usize)]> {
        self.0.row_support()
    }

    fn gram(&self, _jac: &[f64], out: &mut [f64]) -> bool {
        self.0.gram(out)
    }

    fn final_jacobian(&self) -> bool {
        self.0.final_jacobian()
    }
}
