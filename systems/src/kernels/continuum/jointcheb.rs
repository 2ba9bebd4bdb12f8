//! Fast VARPRO refits of one target's joint spectro-photometric fit for many data vectors
//! (the Monte Carlo refits of SPEC §4.9). A pure speed device: same objective, same Brent,
//! same NNLS solution (up to rounding) as [`super::specmodel::varpro_joint`].
//!
//! All Monte Carlo refits of a target share the design Ψ(τ) (the weights √ivar/apercorr and
//! the photometric √ivar do not change, only the data b), so χ²(τ) and the NNLS can be
//! written with
//!
//! ```text
//! G(τ) = Ψᵀ Ψ  (nT×nT, data-independent),   h(τ) = Ψᵀ b,   χ² = bᵀb − 2cᵀh + cᵀGc.
//! ```
//!
//! * G(τ) (spectral and photometric parts), the photometric rows Ψ_p(τ) and the energy-
//!   balance factors d_t(τ) are entire functions of τ: they are replaced by Chebyshev
//!   series on [0, 2] built once per target from direct design fills at Lobatto nodes
//!   (degree doubled from [`START_DEGREE`] until the two trailing coefficients of every entry are below
//!   [`CHEB_TOL`] of its block's scale: max √(G_tt G_uu) for G, the row maximum for a
//!   photometric row, max |d_t| for d; at most [`MAX_DEGREE`]).
//! * The spectral part of h goes through the adjoint of L = R·rebin, once per data vector:
//!   y = Lᵀ(√ivar·b_s) on the template range and q = Σ √ivar·b_s·(L·DZ), so
//!   h_t(τ) = Σ_j u_tj A_j(τ) + d_t(τ)·q with u_tj = F_tj Z_j y_j. The first term is a sum of
//!   exponentials e^{−τ k_j}, entire in τ, whose Chebyshev coefficients on [0, 2] are
//!   2·e^{−k}·I_n(k) (modified Bessel functions): they fall below 1e-17 of the largest
//!   attenuation at a degree fixed by the largest k of the range ([`exp_cheb_degree`], ≈ 14
//!   at k ≈ 1, ≈ 24 at k ≈ 3). It is therefore evaluated at that many Lobatto nodes per data
//!   vector (one small matrix product with the node attenuations, computed once per target)
//!   and interpolated: a Brent step costs O(nT·degree) instead of the exponentials on the
//!   range. The interpolation error (≲ 1e-16 of Σ_j |u_tj|) is below the rounding of the
//!   direct sum.
//! * NNLS is Lawson–Hanson on the normal equations (Cholesky of the passive block), which has
//!   the same (unique, for full-rank Ψ) solution as scipy's NNLS on Ψ.
//!
//! Squaring the condition number and the Chebyshev rounding (≈ ε·max over τ) cost accuracy
//! at the ~1e-10 relative level, far below the Monte Carlo scatter being measured.

#![allow(
    clippy::needless_range_loop,
    reason = "index loops over several same-length vectors in the numeric kernels"
)]
use super::cheb::{clenshaw, lobatto_coefficients, to_x};
use super::specmodel::{attenuation_into, fill, setup, solve, JointData, JointWorkspace};
use super::varpro::{TAUV_BOUNDS, TAUV_XATOL};
use crate::kernels::brent::{minimize_bounded, BoundedOptions};
use crate::kernels::KernelError;

/// First Chebyshev degree tried (doubled until converged).
pub const START_DEGREE: usize = 24;
/// Largest Chebyshev degree (the builder returns `None` beyond it).
pub const MAX_DEGREE: usize = 128;
/// Convergence threshold of the trailing Chebyshev coefficients, relative to the block
/// scale of each entry (see the module docs).
pub const CHEB_TOL: f64 = 1e-12;

/// Chebyshev model of a target's joint design for fast refits (see module docs).
#[derive(Debug, Clone)]
pub struct JointCheb {
    nt: usize,
    /// entries per node: nt² (G) + nb·nt (Ψ_p) + nt (d)
    ne: usize,
    nb: usize,
    degree: usize,
    coef: Vec<f64>,
    /// Template-range offset and the interleaved F·Z `[range][nt]` (copy of the basis).
    jlo: usize,
    fz: Vec<f64>,
    dust: bool,
    /// Degree of the spectral-h series and the node attenuations `[hdeg + 1][range]`.
    hdeg: usize,
    enode: Vec<f64>,
    /// Chebyshev coefficients of the spectral h of the current data, `[hdeg + 1][nt]`.
    hcoef: Vec<f64>,
    hnode: Vec<f64>,
    /// Diagnostics: χ² evaluations that fell back to the direct fill (see
    /// `objective_or_direct`).
    pub n_direct: usize,
    /// Lᵀ by template pixel (compressed columns): the active rows of the build (`act`)
    /// and, for range pixel j, the entries `lt_off[j]..lt_off[j + 1]` of (`lt_row`, `lt_w`):
    /// active-row index and weight, rows ascending.
    act: Vec<usize>,
    lt_off: Vec<usize>,
    lt_row: Vec<u32>,
    lt_w: Vec<f64>,
    /// istd·b_s on the active rows (scratch).
    v: Vec<f64>,
    // scratch
    e: Vec<f64>,
    b1: Vec<f64>,
    b2: Vec<f64>,
    y: Vec<f64>,
    u: Vec<f64>,
    h: Vec<f64>,
    g: Vec<f64>,
    x: Vec<f64>,
}

/// Result of one [`JointCheb::fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChebFit {
    /// Best τ_V.
    pub tauv: f64,
    /// Coefficients.
    pub coeff: Vec<f64>,
    /// χ² at the optimum.
    pub chi2: f64,
}

/// Degree n such that the Chebyshev series of e^{−τk} on the τ_V bounds, truncated after
/// T_n, is exact to 1e-17 of max e^{−τk} for every k ≤ `kmax` (coefficients
/// 2·e^{−k·mid}·I_n(k·half), I_n the modified Bessel function; at least 8, at most 48).
pub fn exp_cheb_degree(kmax: f64) -> usize {
    let (lo, hi) = TAUV_BOUNDS;
    let (mid, half) = (0.5 * (lo + hi), 0.5 * (hi - lo));
    let z = kmax.max(0.0) * half;
    // I_n(z) by its power series (z is small: a few units at most)
    let bessel_i = |n: usize| -> f64 {
        let q = 0.25 * z * z;
        let mut term = (0..n).fold(1.0, |a, i| a * 0.5 * z / (i + 1) as f64);
        let mut sum = term;
        for m in 1..200 {
            term *= q / (m as f64 * (m + n) as f64);
            sum += term;
            if term < 1e-20 * sum {
                break;
            }
        }
        sum
    };
    // scale: the largest value of e^{−τk} is e^{−k·lo} (τ = lo)
    let scale = (-kmax.max(0.0) * lo).exp();
    let coef = |n: usize| 2.0 * (-kmax.max(0.0) * mid).exp() * bessel_i(n);
    let mut n = 8;
    while n < 48 && (coef(n) > 1e-17 * scale || coef(n - 1) > 1e-17 * scale) {
        n += 1;
    }
    n
}

impl JointCheb {
    /// Entries of G, Ψ_p and d at τ from a direct fill (into `out`, length `ne`).
    fn node_values(
        data: &JointData<'_>,
        tauv: f64,
        ws: &mut JointWorkspace,
        nt: usize,
        out: &mut [f64],
    ) {
        fill(data, tauv, ws);
        let ns = ws.act.len();
        let nb = ws.bands.len();
        let m = ns + nb;
        for t in 0..nt {
            for u in t..nt {
                let (ct, cu) = (&ws.psi[t * m..t * m + ns], &ws.psi[u * m..u * m + ns]);
                let s = crate::kernels::nnls::householder::dot(ct, cu);
                out[t * nt + u] = s;
                out[u * nt + t] = s;
            }
        }
        for t in 0..nt {
            for p in 0..nb {
                out[nt * nt + p * nt + t] = ws.psi[t * m + ns + p];
            }
        }
        for t in 0..nt {
            out[nt * nt + nb * nt + t] = ws.d.get(t).copied().unwrap_or(0.0);
        }
    }

    /// Build the model for `data` (its `specistd` and `objflamistd` are the weights of every
    /// later refit; its fluxes are ignored). `None` if the series does not converge.
    ///
    /// # Errors
    /// As [`super::specmodel::varpro_joint`].
    pub fn new(data: &JointData<'_>, ws: &mut JointWorkspace) -> Result<Option<Self>, KernelError> {
        let nt = data.nt();
        let Some((op, basis)) = data.spec else {
            return Err(KernelError::Shape(
                "joint Chebyshev model: no spectrum".into(),
            ));
        };
        setup(data, ws)?;
        let nb = ws.bands.len();
        let ne = nt * nt + nb * nt + nt;
        let (lo, hi) = TAUV_BOUNDS;
        let node = |j: usize, n: usize| {
            0.5 * (lo + hi) + 0.5 * (hi - lo) * (std::f64::consts::PI * j as f64 / n as f64).cos()
        };
        let mut n = START_DEGREE;
        let mut vals = vec![0.0; (n + 1) * ne];
        for j in 0..=n {
            Self::node_values(data, node(j, n), ws, nt, &mut vals[j * ne..(j + 1) * ne]);
        }
        let coef = loop {
            if vals.iter().any(|v| !v.is_finite()) {
                return Ok(None);
            }
            let coef = lobatto_coefficients(&vals, n, ne);
            // Accuracy is judged per block against the block's scale (what χ² sees): G_tu
            // against max √(G_tt G_uu), a photometric row against its largest entry, d
            // against max |d_t|.
            let scale = |e: usize| -> f64 {
                let mut m = 0.0f64;
                for j in 0..=n {
                    let v = &vals[j * ne..(j + 1) * ne];
                    let s = if e < nt * nt {
                        let (t, u) = (e / nt, e % nt);
                        (v[t * nt + t] * v[u * nt + u]).abs().sqrt()
                    } else if e < nt * nt + nb * nt {
                        let p = (e - nt * nt) / nt;
                        let row = &v[nt * nt + p * nt..nt * nt + (p + 1) * nt];
                        row.iter().fold(0.0f64, |a, x| a.max(x.abs()))
                    } else {
                        v[nt * nt + nb * nt..]
                            .iter()
                            .fold(0.0f64, |a, x| a.max(x.abs()))
                    };
                    m = m.max(s);
                }
                m
            };
            let converged = (0..ne).all(|e| {
                let tail = coef[(n - 1) * ne + e].abs().max(coef[n * ne + e].abs());
                tail <= CHEB_TOL * scale(e)
            });
            if converged {
                break coef;
            }
            if 2 * n > MAX_DEGREE {
                return Ok(None);
            }
            let n2 = 2 * n;
            let mut v2 = vec![0.0; (n2 + 1) * ne];
            for j in 0..=n2 {
                if j % 2 == 0 {
                    v2[j * ne..(j + 1) * ne].copy_from_slice(&vals[(j / 2) * ne..(j / 2 + 1) * ne]);
                } else {
                    Self::node_values(data, node(j, n2), ws, nt, &mut v2[j * ne..(j + 1) * ne]);
                }
            }
            vals = v2;
            n = n2;
        };
        let nr = op.jhi - op.jlo;
        let (lt_off, lt_row, lt_w) = transpose_rows(op, &ws.act, nr);
        let krange = &data.klambda[op.jlo..op.jhi];
        let kmax = krange.iter().fold(0.0f64, |a, &k| a.max(k));
        let hdeg = exp_cheb_degree(kmax);
        let mut enode = vec![0.0; (hdeg + 1) * nr];
        for (j, row) in enode.chunks_exact_mut(nr.max(1)).enumerate().take(hdeg + 1) {
            attenuation_into(node(j, hdeg), krange, row);
        }
        Ok(Some(JointCheb {
            nt,
            ne,
            nb,
            degree: n,
            coef,
            jlo: op.jlo,
            fz: basis.fz.clone(),
            dust: basis.dust_emission,
            hdeg,
            enode,
            hcoef: vec![0.0; (hdeg + 1) * nt],
            hnode: vec![0.0; (hdeg + 1) * nt],
            n_direct: 0,
            act: ws.act.clone(),
            lt_off,
            lt_row,
            lt_w,
            v: Vec::new(),
            e: vec![0.0; ne],
            b1: vec![0.0; ne],
            b2: vec![0.0; ne],
            y: vec![0.0; nr],
            u: vec![0.0; nr * nt],
            h: vec![0.0; nt],
            g: vec![0.0; nt * nt],
            x: vec![0.0; nt],
        }))
    }

    /// Chebyshev degree used.
    pub fn degree(&self) -> usize {
        self.degree
    }

    fn eval_entries(&mut self, tauv: f64) {
        clenshaw(
            &self.coef,
            self.ne,
            self.degree,
            to_x(tauv),
            (&mut self.b1, &mut self.b2),
            &mut self.e,
        );
    }

    /// Refit with new fluxes `data.specflux` / `data.objflam` (same weights and models as at
    /// construction; `ws` must be the workspace the model was built with, or any workspace —
    /// it is re-set-up here).
    ///
    /// # Errors
    /// Non-finite data, shape mismatches.
    pub fn fit(
        &mut self,
        data: &JointData<'_>,
        ws: &mut JointWorkspace,
    ) -> Result<ChebFit, KernelError> {
        let Some((op, basis)) = data.spec else {
            return Err(KernelError::Shape(
                "joint Chebyshev model: no spectrum".into(),
            ));
        };
        let ns = setup(data, ws)?;
        if ws.bands.len() != self.nb {
            return Err(KernelError::Shape(
                "joint Chebyshev model: band set changed".into(),
            ));
        }
        let nt = self.nt;
        // adjoint: y = Lᵀ(istd·b_s), q = Σ istd·b_s·ldz
        let mut q = 0.0;
        if ws.act[..ns] == self.act[..] {
            // by template pixel from the transposed rows: each y_j gets the same products
            // added in the same (row) order as the row-by-row scatter below, without its
            // overlapping read-modify-writes of y
            self.v.clear();
            self.v
                .extend(ws.wact[..ns].iter().zip(&ws.b[..ns]).map(|(w, b)| w * b));
            for (j, yj) in self.y.iter_mut().enumerate() {
                let (e0, e1) = (self.lt_off[j], self.lt_off[j + 1]);
                let mut acc = 0.0;
                for (&a, &wq) in self.lt_row[e0..e1].iter().zip(&self.lt_w[e0..e1]) {
                    acc += wq * self.v[a as usize];
                }
                *yj = acc;
            }
            if self.dust {
                for (&i, &v) in ws.act[..ns].iter().zip(&self.v) {
                    q += v * basis.ldz[i];
                }
            }
        } else {
            self.y.fill(0.0);
            for a in 0..ns {
                let i = ws.act[a];
                let v = ws.wact[a] * ws.b[a];
                let s = op.rows.start[i] - self.jlo;
                let w = &op.rows.w[op.rows.off[i]..op.rows.off[i + 1]];
                for (o, &wq) in self.y[s..s + w.len()].iter_mut().zip(w) {
                    *o += wq * v;
                }
                if self.dust {
                    q += v * basis.ldz[i];
                }
            }
        }
        for ((u, f), &y) in self
            .u
            .chunks_exact_mut(nt)
            .zip(self.fz.chunks_exact(nt))
            .zip(&self.y)
        {
            for (a, b) in u.iter_mut().zip(f) {
                *a = b * y;
            }
        }
        // spectral h at the Lobatto nodes: [hdeg + 1][nt] = E [hdeg + 1][nr] · U [nr][nt]
        let nr = self.y.len();
        let nn = self.hdeg + 1;
        if nr > 0 {
            faer::linalg::matmul::matmul(
                faer::MatMut::from_row_major_slice_mut(&mut self.hnode, nn, nt),
                faer::Accum::Replace,
                faer::MatRef::from_row_major_slice(&self.enode, nn, nr),
                faer::MatRef::from_row_major_slice(&self.u, nr, nt),
                1.0,
                faer::Par::Seq,
            );
        } else {
            self.hnode.fill(0.0);
        }
        self.hcoef = lobatto_coefficients(&self.hnode, self.hdeg, nt);
        let bb: f64 = ws.b.iter().map(|v| v * v).sum();
        let bp: Vec<f64> = ws.b[ns..].to_vec();
        let opts = BoundedOptions {
            xatol: TAUV_XATOL,
            maxiter: 500,
        };
        let res = minimize_bounded(
            |t| self.objective_or_direct(t, q, &bp, bb, data, ws),
            TAUV_BOUNDS.0,
            TAUV_BOUNDS.1,
            &opts,
        )?;
        let mut chi2 = self.objective_or_direct(res.x, q, &bp, bb, data, ws);
        let mut coeff = self.x.clone();
        if !chi2.is_finite() {
            coeff.fill(0.0);
            chi2 = bb;
        }
        Ok(ChebFit {
            tauv: res.x,
            coeff,
            chi2,
        })
    }

    /// χ²(τ) with the NNLS solution in `self.x`: the Gram form, or — where its normal-
    /// equation NNLS fails (a numerically singular passive block: squaring the condition
    /// number of nearly collinear templates) — the direct fill and NNLS on Ψ, i.e.
    /// [`super::specmodel::varpro_joint`]'s objective (+∞ only if that fails too). Without
    /// the fallback a failed τ reads as χ² = +∞ and sends Brent to another local minimum
    /// (measured on simulated targets: a few τ in 200 fail, and 2 of 50 refits of one
    /// target ended with χ² higher by ~280).
    fn objective_or_direct(
        &mut self,
        tauv: f64,
        q: f64,
        bp: &[f64],
        bb: f64,
        data: &JointData<'_>,
        ws: &mut JointWorkspace,
    ) -> f64 {
        let c = self.objective(tauv, q, bp, bb);
        if c.is_finite() {
            return c;
        }
        self.n_direct += 1;
        fill(data, tauv, ws);
        let c = solve(self.nt, ws);
        if c.is_finite() {
            self.x.copy_from_slice(&ws.c_slice()[..self.nt]);
        }
        c
    }

    /// χ²(τ) with the NNLS solution in `self.x` (+∞ on failure).
    fn objective(&mut self, tauv: f64, q: f64, bp: &[f64], bb: f64) -> f64 {
        let nt = self.nt;
        let nb = self.nb;
        self.eval_entries(tauv);
        // h_s from its Chebyshev series
        clenshaw(
            &self.hcoef,
            nt,
            self.hdeg,
            to_x(tauv),
            (&mut self.b1, &mut self.b2),
            &mut self.h,
        );
        let off_p = nt * nt;
        let off_d = off_p + nb * nt;
        for t in 0..nt {
            let mut h = self.h[t];
            if self.dust {
                h += self.e[off_d + t] * q;
            }
            for (p, &b) in bp.iter().enumerate() {
                h += self.e[off_p + p * nt + t] * b;
            }
            self.h[t] = h;
        }
        // G = G_s + Ψ_pᵀΨ_p
        for t in 0..nt {
            for u in 0..nt {
                let mut g = self.e[t * nt + u];
                for p in 0..nb {
                    g += self.e[off_p + p * nt + t] * self.e[off_p + p * nt + u];
                }
                self.g[t * nt + u] = g;
            }
        }
        if !nnls_gram(&self.g, &self.h, nt, &mut self.x) {
            return f64::INFINITY;
        }
        let mut chi2 = bb;
        for t in 0..nt {
            chi2 -= 2.0 * self.x[t] * self.h[t];
            for u in 0..nt {
                chi2 += self.x[t] * self.g[t * nt + u] * self.x[u];
            }
        }
        chi2.max(0.0)
    }
}

/// Solve G_PP z = h_P by Cholesky (P = passive indices); false if not positive definite.
fn solve_passive(g: &[f64], h: &[f64], nt: usize, p: &[usize], z: &mut [f64]) -> bool {
    let k = p.len();
    let mut lbuf = [0.0f64; 256];
    let mut lvec = Vec::new();
    let l: &mut [f64] = if k * k <= lbuf.len() {
        &mut lbuf[..k * k]
    } else {
        lvec.resize(k * k, 0.0);
        &mut lvec
    };
    for i in 0..k {
        for j in 0..=i {
            let mut s = g[p[i] * nt + p[j]];
            for r in 0..j {
                s -= l[i * k + r] * l[j * k + r];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return false;
                }
                l[i * k + i] = s.sqrt();
            } else {
                l[i * k + j] = s / l[j * k + j];
            }
        }
    }
    let mut ybuf = [0.0f64; 16];
    let mut yvec = Vec::new();
    let y: &mut [f64] = if k <= ybuf.len() {
        &mut ybuf[..k]
    } else {
        yvec.resize(k, 0.0);
        &mut yvec
    };
    for i in 0..k {
        let mut s = h[p[i]];
        for r in 0..i {
            s -= l[i * k + r] * y[r];
        }
        y[i] = s / l[i * k + i];
    }
    for i in (0..k).rev() {
        let mut s = y[i];
        for r in i + 1..k {
            s -= l[r * k + i] * z[p[r]];
        }
        z[p[i]] = s / l[i * k + i];
    }
    true
}

/// Lawson–Hanson NNLS on the normal equations min cᵀGc − 2hᵀc, c ≥ 0, into `x`; false on
/// failure (iteration limit or a singular passive block). As in Lawson–Hanson, a candidate
/// whose unconstrained coefficient would not be positive is rejected for that step.
pub fn nnls_gram(g: &[f64], h: &[f64], nt: usize, x: &mut [f64]) -> bool {
    x.fill(0.0);
    let mut passive = vec![false; nt];
    let mut z = vec![0.0; nt];
    let mut p: Vec<usize> = Vec::with_capacity(nt);
    let mut cand: Vec<(usize, f64)> = Vec::with_capacity(nt);
    let hmax = h.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let tol = 1e-13 * hmax;
    let maxiter = 3 * nt + 10;
    let mut iter = 0;
    let passive_list = |passive: &[bool], p: &mut Vec<usize>| {
        p.clear();
        p.extend((0..passive.len()).filter(|&t| passive[t]));
    };
    loop {
        cand.clear();
        for j in 0..nt {
            if !passive[j] {
                let w = h[j] - (0..nt).map(|u| g[j * nt + u] * x[u]).sum::<f64>();
                if w > tol {
                    cand.push((j, w));
                }
            }
        }
        // largest dual first (ties: lower index)
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut chosen = false;
        for &(j, _) in &cand {
            passive[j] = true;
            passive_list(&passive, &mut p);
            z.fill(0.0);
            if solve_passive(g, h, nt, &p, &mut z) && z[j] > 0.0 {
                chosen = true;
                break;
            }
            passive[j] = false;
        }
        if !chosen {
            return true;
        }
        loop {
            iter += 1;
            if iter > maxiter {
                return false;
            }
            if p.iter().all(|&t| z[t] > 0.0) {
                x.copy_from_slice(&z);
                break;
            }
            let mut alpha = f64::INFINITY;
            for &t in &p {
                if z[t] <= 0.0 {
                    alpha = alpha.min(x[t] / (x[t] - z[t]));
                }
            }
            for t in 0..nt {
                x[t] += alpha * (z[t] - x[t]);
            }
            for &t in &p {
                if x[t] <= 0.0 {
                    passive[t] = false;
                    x[t] = 0.0;
                }
            }
            passive_list(&passive, &mut p);
            if p.is_empty() {
                break;
            }
            z.fill(0.0);
            if !solve_passive(g, h, nt, &p, &mut z) {
                return false;
            }
        }
    }
}

/// Lᵀ of the active rows `act` of `op` by template-range pixel (compressed sparse columns):
/// `(off, row, w)` with the entries of pixel j at `off[j]..off[j + 1]`, rows ascending.
fn transpose_rows(
    op: &super::specmodel::SpecOperator,
    act: &[usize],
    nr: usize,
) -> (Vec<usize>, Vec<u32>, Vec<f64>) {
    let rows = &op.rows;
    let mut off = vec![0usize; nr + 1];
    for &i in act {
        let s = rows.start[i] - op.jlo;
        for q in 0..rows.off[i + 1] - rows.off[i] {
            off[s + q + 1] += 1;
        }
    }
    for j in 0..nr {
        off[j + 1] += off[j];
    }
    let mut next = off.clone();
    let mut row = vec![0u32; off[nr]];
    let mut w = vec![0.0; off[nr]];
    for (a, &i) in act.iter().enumerate() {
        let s = rows.start[i] - op.jlo;
        for (q, &wq) in rows.w[rows.off[i]..rows.off[i + 1]].iter().enumerate() {
            let e = next[s + q];
            row[e] = a as u32;
            w[e] = wq;
            next[s + q] += 1;
        }
    }
    (off, row, w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::continuum::specmodel::{
        varpro_joint, CameraData, JointData, JointWorkspace, SpecBasis, SpecOperator,
    };
    use crate::kernels::nnls::{nnls, MatRef, NnlsOptions, NnlsWorkspace};

    /// Refits through the Chebyshev/Gram model give `varpro_joint`'s τ and χ², also for a
    /// nearly collinear template set whose normal-equation NNLS fails at some τ (there the
    /// direct fill takes over; before it did, such τ read as χ² = +∞ and Brent could end in
    /// another minimum).
    #[test]
    fn refits_match_varpro_with_collinear_templates() {
        let nw = 3000;
        let wave: Vec<f64> = (0..nw)
            .map(|j| 3000.0 * (1.0 + 1.3e-4f64).powi(j as i32))
            .collect();
        let klambda: Vec<f64> = wave.iter().map(|w| (w / 5500.0).powf(-0.7)).collect();
        let nt = 5;
        // templates: a common shape plus tiny independent wiggles (condition number ~1e7)
        let mut flux = vec![0.0; nt * nw];
        for t in 0..nt {
            for j in 0..nw {
                let x = wave[j];
                flux[t * nw + j] = 1.0
                    + 0.3 * (x / 310.0).sin()
                    + 0.2 * (x / 3000.0)
                    + 2e-5 * ((t as f64 + 1.0) * x / 47.0).cos();
            }
        }
        let (npix, nd) = (900, 11);
        let cw: Vec<f64> = (0..npix).map(|i| 3300.0 + 1.0 * i as f64).collect();
        let res: Vec<f64> = (0..nd * npix)
            .map(|k| {
                let d = (k / npix) as f64 - 5.0;
                (-0.5 * d * d / 2.0).exp() / 5.0
            })
            .collect();
        let zero = vec![0.0; npix];
        let mask = vec![false; npix];
        let cams = [CameraData {
            wave: &cw,
            flux: &zero,
            ivar: &zero,
            linemask: &mask,
            res_ndiag: nd,
            res: &res,
        }];
        let op = SpecOperator::new(&wave, &cams).unwrap();
        let zf = vec![1.0; nw];
        let tw = vec![1.0; nw];
        let dust = vec![0.0; nw];
        let basis = SpecBasis::new(&op, &flux, nw, &zf, &tw, &dust, false).unwrap();
        // data: the model at τ = 0.25 with positive coefficients, plus deterministic noise
        let coeff = [0.3, 0.1, 0.25, 0.05, 0.3];
        let mut sed = vec![0.0; nw];
        for t in 0..nt {
            for j in 0..nw {
                sed[j] += coeff[t] * flux[t * nw + j] * (-0.25 * klambda[j]).exp();
            }
        }
        let mut clean = vec![0.0; npix];
        op.apply(&sed, &mut clean).unwrap();
        let istd = vec![30.0; npix];
        let mut st = 12345u64;
        let mut noise = || {
            st = st
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((st >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.12
        };
        let data = |f: &[f64]| -> Vec<f64> { f.to_vec() };
        fn mk<'a>(
            op: &'a SpecOperator,
            basis: &'a SpecBasis,
            specflux: &'a [f64],
            istd: &'a [f64],
            klambda: &'a [f64],
        ) -> JointData<'a> {
            JointData {
                spec: Some((op, basis)),
                specflux,
                specistd: istd,
                phot: None,
                objflam: &[],
                objflamistd: &[],
                klambda,
            }
        }
        let mut ws = JointWorkspace::default();
        let mut cheb = JointCheb::new(&mk(&op, &basis, &clean, &istd, &klambda), &mut ws)
            .unwrap()
            .unwrap();
        let mut worst_tau = 0.0f64;
        let mut worst_chi2 = 0.0f64;
        for _ in 0..40 {
            let f = data(&clean.iter().map(|v| v + noise()).collect::<Vec<f64>>());
            let a = cheb
                .fit(&mk(&op, &basis, &f, &istd, &klambda), &mut ws)
                .unwrap();
            let b = varpro_joint(&mk(&op, &basis, &f, &istd, &klambda), &mut ws).unwrap();
            worst_tau = worst_tau.max((a.tauv - b.tauv).abs());
            let cb = b.chi2_spec + b.chi2_phot;
            worst_chi2 = worst_chi2.max((a.chi2 - cb).abs() / cb);
        }
        assert!(
            cheb.n_direct > 0,
            "the collinear set should exercise the fallback"
        );
        assert!(worst_tau < 1e-6, "τ differs by {worst_tau}");
        assert!(worst_chi2 < 1e-9, "χ² differs by {worst_chi2}");
    }

    /// The normal-equation NNLS gives scipy-NNLS's solution on problems with active bounds.
    #[test]
    fn gram_nnls_matches_nnls() {
        let (m, n) = (60, 5);
        for seed in 0..20u64 {
            let mut st = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut rnd = || {
                st = st
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((st >> 11) as f64) / ((1u64 << 53) as f64) - 0.5
            };
            let a: Vec<f64> = (0..m * n).map(|_| rnd()).collect();
            let b: Vec<f64> = (0..m).map(|_| rnd()).collect();
            let mut x = vec![0.0; n];
            nnls(
                MatRef::from_column_major_slice(&a, m, n),
                &b,
                &mut x,
                &NnlsOptions::default(),
                &mut NnlsWorkspace::default(),
            )
            .unwrap();
            let mut g = vec![0.0; n * n];
            let mut h = vec![0.0; n];
            for t in 0..n {
                for u in 0..n {
                    g[t * n + u] = (0..m).map(|i| a[t * m + i] * a[u * m + i]).sum();
                }
                h[t] = (0..m).map(|i| a[t * m + i] * b[i]).sum();
            }
            let mut y = vec![0.0; n];
            assert!(nnls_gram(&g, &h, n, &mut y));
            for (p, q) in x.iter().zip(&y) {
                assert!((p - q).abs() < 1e-10, "seed {seed}: {x:?} vs {y:?}");
            }
        }
    }
}
