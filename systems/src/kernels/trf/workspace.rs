//! Scratch memory of the TRF solver, sized once and reused across fits.

use faer::dyn_stack::MemBuffer;
use faer::linalg::evd::{evd_scratch, ComputeEigenvectors};
use faer::linalg::svd::{svd_scratch, ComputeSvdVectors};
use faer::{MatRef, Par};

/// Scratch memory of [`super::least_squares_fd`] and friends.
///
/// `TrfWorkspace::new(m, n)` sizes it for m residuals and n parameters; a later
/// fit of a different size grows it as needed (no allocation once it is large
/// enough). After a fit it holds the final residuals, gradient, Jacobian (dense
/// problems) and active-constraint mask.
#[derive(Default)]
pub struct TrfWorkspace {
    pub(super) m: usize,
    pub(super) n: usize,
    // state and per-iteration vectors (length n unless noted)
    pub(super) x_new: Vec<f64>,
    pub(super) f: Vec<f64>,     // m
    pub(super) f_new: Vec<f64>, // m
    pub(super) g: Vec<f64>,
    pub(super) v: Vec<f64>,
    pub(super) dv: Vec<f64>,
    pub(super) d: Vec<f64>,
    pub(super) diag_h: Vec<f64>,
    pub(super) g_h: Vec<f64>,
    pub(super) scale: Vec<f64>,
    pub(super) scale_inv: Vec<f64>,
    pub(super) p: Vec<f64>,
    pub(super) p_h: Vec<f64>,
    pub(super) r: Vec<f64>,
    pub(super) r_h: Vec<f64>,
    pub(super) ag: Vec<f64>,
    pub(super) ag_h: Vec<f64>,
    pub(super) step: Vec<f64>,
    pub(super) step_h: Vec<f64>,
    pub(super) tmp_n: Vec<f64>,
    pub(super) tmp_n2: Vec<f64>,
    pub(super) hits: Vec<bool>,
    pub(super) tmp_m: Vec<f64>,  // m
    pub(super) tmp_m2: Vec<f64>, // m
    pub(super) probe_x: Vec<f64>,
    pub(super) probe_f: Vec<f64>, // m
    pub(super) active: Vec<i8>,
    /// Dense Jacobian, m×n column-major (dense problems only).
    pub(super) jac: Vec<f64>,
    /// `true` when `jac` holds the Jacobian of the last fit.
    pub(super) jac_valid: bool,
    pub(super) exact: ExactScratch,
    pub(super) sub: SubspaceScratch,
    /// JᵀJ of the operator (n×n, column-major), when the problem provides it.
    pub(super) gram: Vec<f64>,
}

/// Scratch of the exact (SVD) sub-problem solver.
#[derive(Default)]
pub(super) struct ExactScratch {
    pub(super) jaug: Vec<f64>, // (m+n)×n
    pub(super) faug: Vec<f64>, // m+n
    pub(super) rmat: Vec<f64>, // k×n with k = min(rows, n)
    pub(super) u: Vec<f64>,    // k×k
    pub(super) vmat: Vec<f64>, // n×k
    pub(super) s: Vec<f64>,    // k
    pub(super) uf: Vec<f64>,   // k
    pub(super) suf: Vec<f64>,  // k
    pub(super) svd_mem: Option<MemBuffer>,
    pub(super) svd_dims: (usize, usize),
}

/// Scratch of the LSMR / 2-D subspace solver.
#[derive(Default)]
pub(super) struct SubspaceScratch {
    pub(super) u: Vec<f64>,   // m+n
    pub(super) ut: Vec<f64>,  // m+n
    pub(super) rhs: Vec<f64>, // m+n
    pub(super) lv: Vec<f64>,
    pub(super) lvt: Vec<f64>,
    pub(super) lh: Vec<f64>,
    pub(super) lhbar: Vec<f64>,
    pub(super) lx: Vec<f64>,
    pub(super) ltmp: Vec<f64>,
    pub(super) delta: Vec<f64>,
    pub(super) gn_h: Vec<f64>,
    pub(super) smat: Vec<f64>, // n×2
    pub(super) js: Vec<f64>,   // m×2
    /// Row support of the LSMR system (J's rows, then the δ rows).
    pub(super) support: Vec<(usize, usize)>,
    /// Augmented Gram matrix / its Cholesky factor, (n+1)×(n+1) row-major.
    pub(super) gaug: Vec<f64>,
    pub(super) evd_mem: Option<MemBuffer>,
}

impl TrfWorkspace {
    /// Workspace for fits with `m` residuals and `n` parameters.
    pub fn new(m: usize, n: usize) -> Self {
        let mut ws = Self::default();
        ws.ensure(m, n);
        ws
    }

    /// Size every per-fit vector for (m, n); matrices are sized on first use.
    pub(super) fn ensure(&mut self, m: usize, n: usize) {
        self.m = m;
        self.n = n;
        for v in [
            &mut self.x_new,
            &mut self.g,
            &mut self.v,
            &mut self.dv,
            &mut self.d,
            &mut self.diag_h,
            &mut self.g_h,
            &mut self.scale,
            &mut self.scale_inv,
            &mut self.p,
            &mut self.p_h,
            &mut self.r,
            &mut self.r_h,
            &mut self.ag,
            &mut self.ag_h,
            &mut self.step,
            &mut self.step_h,
            &mut self.tmp_n,
            &mut self.tmp_n2,
            &mut self.probe_x,
        ] {
            v.resize(n, 0.0);
        }
        self.hits.resize(n, false);
        self.active.resize(n, 0);
        for v in [
            &mut self.f,
            &mut self.f_new,
            &mut self.tmp_m,
            &mut self.tmp_m2,
            &mut self.probe_f,
        ] {
            v.resize(m, 0.0);
        }
    }

    /// Size the dense Jacobian.
    pub(super) fn ensure_dense(&mut self) {
        self.jac.resize(self.m * self.n, 0.0);
    }

    /// Size the exact solver for an SVD of a `rows`×n matrix.
    pub(super) fn ensure_exact(&mut self, rows: usize) {
        let n = self.n;
        let k = rows.min(n);
        let e = &mut self.exact;
        e.jaug.resize(rows * n, 0.0);
        e.faug.resize(rows, 0.0);
        e.rmat.resize(k * n, 0.0);
        e.u.resize(k * k, 0.0);
        e.vmat.resize(n * k, 0.0);
        for v in [&mut e.s, &mut e.uf, &mut e.suf] {
            v.resize(k, 0.0);
        }
        if e.svd_mem.is_none() || e.svd_dims != (k, n) {
            let req = svd_scratch::<f64>(
                k,
                n,
                ComputeSvdVectors::Thin,
                ComputeSvdVectors::Thin,
                Par::Seq,
                Default::default(),
            );
            e.svd_mem = Some(MemBuffer::new(req));
            e.svd_dims = (k, n);
        }
    }

    /// Size the LSMR solver.
    pub(super) fn ensure_lsmr(&mut self) {
        let (m, n) = (self.m, self.n);
        let s = &mut self.sub;
        for v in [&mut s.u, &mut s.ut, &mut s.rhs] {
            v.resize(m + n, 0.0);
        }
        for v in [
            &mut s.lv,
            &mut s.lvt,
            &mut s.lh,
            &mut s.lhbar,
            &mut s.lx,
            &mut s.ltmp,
            &mut s.delta,
            &mut s.gn_h,
        ] {
            v.resize(n, 0.0);
        }
        s.smat.resize(2 * n, 0.0);
        s.js.resize(2 * m, 0.0);
        self.gram.resize(n * n, 0.0);
        s.gaug.resize((n + 1) * (n + 1), 0.0);
        if s.evd_mem.is_none() {
            let req = evd_scratch::<f64>(
                4,
                ComputeEigenvectors::No,
                ComputeEigenvectors::No,
                Par::Seq,
                Default::default(),
            );
            s.evd_mem = Some(MemBuffer::new(req));
        }
    }

    /// Residuals f(x̂) of the last fit (length m).
    pub fn residuals(&self) -> &[f64] {
        &self.f[..self.m]
    }

    /// Gradient g = Jᵀf at x̂ of the last fit (length n).
    pub fn grad(&self) -> &[f64] {
        &self.g[..self.n]
    }

    /// Jacobian at x̂ of the last fit (dense problems; empty for operator problems).
    pub fn jacobian(&self) -> MatRef<'_, f64> {
        if self.jac_valid && self.jac.len() >= self.m * self.n {
            MatRef::from_column_major_slice(&self.jac[..self.m * self.n], self.m, self.n)
        } else {
            MatRef::from_column_major_slice(&self.jac[..0], 0, 0)
        }
    }

    /// Active constraints at x̂ (−1 lower, +1 upper, 0 free; scipy `active_mask`).
    pub fn active_mask(&self) -> &[i8] {
        &self.active[..self.n]
    }
}
