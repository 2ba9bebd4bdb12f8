//! A dense analytic-Jacobian model that stores the R factor of J = QR instead of J.
//!
//! Every quantity the bounded TRF iteration with the exact solver takes from the Jacobian
//! is a function of JᵀJ and Jᵀf: the gradient g = Jᵀf = Rᵀ(Qᵀf), the column norms of J
//! (those of R), the quadratic model ‖J_h s‖² = ‖R D s‖² and the SVD of [J D; diag(√dh)],
//! whose singular values, right vectors and Uᵀ[f; 0] equal those of [R D; diag(√dh)] with
//! the right-hand side [Qᵀf; 0] (J D = Q (R D) and R D is again triangular). One
//! Householder QR of the m×n Jacobian per accepted point (with f carried along as an extra
//! column) therefore replaces every later m-sized product of the iteration by an n-sized
//! one. The results equal [`super::least_squares_dense`] in exact arithmetic; rounding
//! differs. The rank test s_min > ε·m·s_max keeps the true m.

use faer::MatMut;

use super::super::nnls::householder::{apply_reflector, reflector};
use super::model::{dense_matvec, dense_rmatvec, Model};
use super::DenseJacobian;

/// [`DenseJacobian`] problem whose stored Jacobian is R (n×n, column-major).
pub(super) struct Compressed<'a, P: DenseJacobian> {
    problem: &'a mut P,
    m: usize,
    n: usize,
    /// Qᵀf (first n components) at the last Jacobian.
    qf: Vec<f64>,
    /// R staging (n×n).
    rbuf: Vec<f64>,
}

impl<'a, P: DenseJacobian> Compressed<'a, P> {
    pub(super) fn new(problem: &'a mut P, n: usize) -> Self {
        let m = problem.n_residuals();
        Self {
            problem,
            m,
            n,
            qf: vec![0.0; n],
            rbuf: vec![0.0; n * n],
        }
    }
}

/// Householder QR of the m×n column-major `a` in place, applied to `rhs` as well: on
/// return the upper triangle of a's first n rows holds R and `rhs[..n]` = (Qᵀ rhs)[..n].
pub(super) fn qr_in_place(a: &mut [f64], m: usize, n: usize, rhs: &mut [f64]) {
    for k in 0..n.min(m) {
        let (left, right) = a.split_at_mut((k + 1) * m);
        let col = &mut left[k * m..];
        let mut beta = col[k];
        let tau = reflector(&mut beta, &mut col[k + 1..]);
        let v = &col[k + 1..];
        for c in right.chunks_exact_mut(m) {
            let (c0, ct) = c[k..].split_at_mut(1);
            apply_reflector(v, tau, &mut c0[0], ct);
        }
        let (r0, rt) = rhs[k..m].split_at_mut(1);
        apply_reflector(v, tau, &mut r0[0], rt);
        col[k] = beta;
    }
}

impl<P: DenseJacobian> Model for Compressed<'_, P> {
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
        _lb: &[f64],
        _ub: &[f64],
        jac: &mut [f64],
        _sx: &mut [f64],
        sf: &mut [f64],
    ) {
        let (m, n) = (self.m, self.n);
        let full = &mut jac[..m * n];
        self.problem
            .jacobian(x, MatMut::from_column_major_slice_mut(full, m, n));
        if !full.iter().all(|v| v.is_finite()) {
            // the driver rejects a non-finite stored Jacobian
            jac[..n * n].fill(f64::NAN);
            return;
        }
        sf.copy_from_slice(f);
        qr_in_place(full, m, n, sf);
        for j in 0..n {
            for i in 0..n {
                self.rbuf[i + j * n] = if i <= j && i < m { full[i + j * m] } else { 0.0 };
            }
        }
        jac[..n * n].copy_from_slice(&self.rbuf);
        let k = n.min(m);
        self.qf[..k].copy_from_slice(&sf[..k]);
        self.qf[k..].fill(0.0);
    }

    fn matvec(&self, jac: &[f64], v: &[f64], out: &mut [f64]) {
        dense_matvec(jac, self.n, v, out);
    }

    fn rmatvec(&self, jac: &[f64], u: &[f64], out: &mut [f64]) {
        dense_rmatvec(jac, self.n, u, out);
    }

    fn jac_rows(&self) -> usize {
        self.n
    }

    fn jac_f<'b>(&'b self, _f: &'b [f64]) -> &'b [f64] {
        &self.qf
    }
}
