//! The 2-D subspace trust-region problem of `tr_solver='lsmr'`: the basis
//! S = qr(\[g_h, gn_h\]), the reduced model (B_S, g_S) and scipy's
//! `solve_trust_region_2d` (Cholesky Newton step, else the boundary minimum
//! from the real roots of a quartic found as companion-matrix eigenvalues,
//! as `numpy.roots` does).
//!
//! # Reduced LSMR (opt-in, problems providing JᵀJ)
//! When the problem supplies the Gram matrix JᵀJ
//! ([`super::OperatorJacobian::gram`]), LSMR runs on the upper Cholesky
//! factor of the Gram matrix of the augmented system [A | b] instead of on
//! the (m+n)-row operator A = [J D; diag(δ)]: with [A | b] = Q [R; 0] for an
//! orthogonal Q, Golub–Kahan bidiagonalisation (and hence every LSMR
//! iterate and stopping test) is invariant under the rotation, so the
//! (n+1)×n system ([R₁₁; 0], [R₁₂; R₂₂]) yields the same iteration in exact
//! arithmetic at O(n²) per step. Checked: run to convergence (atol = btol =
//! 1e-15) both give the same solution to ≤ 5e-9 relative on the real line
//! fits. In floating point, however, LSMR's early stop (atol = btol = 1e-6)
//! on these ill-conditioned systems leaves directions whose value depends
//! on rounding at the 1e-3 level, so the fits' stopping points move as they
//! do under any other rounding change (e.g. a different summation order of
//! a norm); this is why the mode is opt-in.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::evd_real;
use faer::{ColMut, MatRef, Par};

use super::super::nnls::householder::{apply_reflector, dot, reflector};
use super::common::{build_quadratic_1d, dot_rows, minimize_quadratic_1d, norm, Jh, QScratch};
use super::lsmr::{lsmr, LinOp, LsmrBufs, LsmrParams};
use super::model::Model;
use super::workspace::SubspaceScratch;
use super::LsmrOptions;

/// Orthonormal basis of span{a, b} (n×k column-major into `s`, k = min(n, 2)),
/// LAPACK `dgeqrf` + `dorgqr` conventions. Returns k.
pub(super) fn qr_basis(a: &[f64], b: &[f64], s: &mut [f64]) -> usize {
    let n = a.len();
    if n == 1 {
        s[0] = 1.0;
        return 1;
    }
    let (c0, rest) = s.split_at_mut(n);
    let c1 = &mut rest[..n];
    c0.copy_from_slice(a);
    c1.copy_from_slice(b);
    // H1 from column 0 (v1 = [1; c0[1..]]), applied to column 1.
    let mut beta1 = c0[0];
    let tau1 = reflector(&mut beta1, &mut c0[1..]);
    {
        let (h, t) = c1.split_at_mut(1);
        apply_reflector(&c0[1..], tau1, &mut h[0], t);
    }
    // H2 from column 1, rows 1..n (v2 = [0; 1; c1[2..]]).
    let mut beta2 = c1[1];
    let tau2 = reflector(&mut beta2, &mut c1[2..]);
    // Q e1 = H1 H2 e1 with H2 e1 = [0; 1 − τ2; −τ2 v2_tail].
    c1[0] = 0.0;
    c1[1] = 1.0 - tau2;
    for t in c1[2..].iter_mut() {
        *t *= -tau2;
    }
    {
        let (h, t) = c1.split_at_mut(1);
        apply_reflector(&c0[1..], tau1, &mut h[0], t);
    }
    // Q e0 = H1 e0 = e0 − τ1 v1.
    c0[0] = 1.0 - tau1;
    for t in c0[1..].iter_mut() {
        *t *= -tau1;
    }
    2
}

/// Reduced model B_S = (J_h S)ᵀ(J_h S) + Sᵀ diag(diag_h) S and g_S = Sᵀ g_h.
#[allow(
    clippy::too_many_arguments,
    reason = "scratch slices are passed explicitly"
)]
pub(super) fn reduced_model<M: Model>(
    jh: &Jh<'_, M>,
    s: &[f64],
    k: usize,
    diag_h: Option<&[f64]>,
    g_h: &[f64],
    js: &mut [f64],
    w: &mut QScratch<'_>,
) -> ([[f64; 2]; 2], [f64; 2]) {
    let n = g_h.len();
    let m = js.len() / 2;
    // with a row support, J_h s is formed and multiplied on its rows only
    // (bit-identical: see `dot_rows`)
    let sup = jh.model.row_support();
    if jh.gram.is_none() {
        for c in 0..k {
            let col = &mut js[c * m..(c + 1) * m];
            match sup {
                Some(_) => jh.mul_support(&s[c * n..(c + 1) * n], w.n, col),
                None => jh.mul(&s[c * n..(c + 1) * n], w.n, col),
            }
        }
    }
    let mut bmat = [[0.0; 2]; 2];
    let mut gs = [0.0; 2];
    for a in 0..k {
        for b in 0..k {
            let (sa, sb) = (&s[a * n..(a + 1) * n], &s[b * n..(b + 1) * n]);
            let mut v = match jh.gram_inner(sa, sb, w.n) {
                Some(v) => v,
                None => {
                    let (ja, jb) = (&js[a * m..(a + 1) * m], &js[b * m..(b + 1) * m]);
                    match sup {
                        Some(sup) => dot_rows(ja, jb, sup),
                        None => dot(ja, jb),
                    }
                }
            };
            if let Some(dh) = diag_h {
                let mut acc = 0.0;
                for i in 0..n {
                    acc += (s[a * n + i] * dh[i]) * s[b * n + i];
                }
                v += acc;
            }
            bmat[a][b] = v;
        }
        gs[a] = dot(&s[a * n..(a + 1) * n], g_h);
    }
    (bmat, gs)
}

/// Real roots of the polynomial with coefficients `c` (highest power first),
/// as `numpy.roots` finds them; returns how many were written into `out`.
fn real_roots(c: &[f64; 5], mem: &mut MemBuffer, out: &mut [f64; 4]) -> usize {
    let first = c.iter().position(|&v| v != 0.0);
    let last = c.iter().rposition(|&v| v != 0.0);
    let (first, last) = match (first, last) {
        (Some(f), Some(l)) => (f, l),
        _ => return 0,
    };
    let trailing = c.len() - 1 - last;
    let p = &c[first..=last];
    let deg = p.len() - 1;
    let mut count = 0;
    if deg >= 1 {
        let mut comp = [0.0f64; 16];
        for j in 0..deg {
            comp[j * deg] = -p[j + 1] / p[0];
        }
        for i in 1..deg {
            comp[i + (i - 1) * deg] = 1.0;
        }
        let a = MatRef::from_column_major_slice(&comp[..deg * deg], deg, deg);
        let mut re = [0.0f64; 4];
        let mut im = [0.0f64; 4];
        let ok = evd_real(
            a,
            ColMut::from_slice_mut(&mut re[..deg]).as_diagonal_mut(),
            ColMut::from_slice_mut(&mut im[..deg]).as_diagonal_mut(),
            None,
            None,
            Par::Seq,
            MemStack::new(mem),
            Default::default(),
        );
        if ok.is_ok() {
            for i in 0..deg {
                if im[i] == 0.0 {
                    out[count] = re[i];
                    count += 1;
                }
            }
        }
    }
    for _ in 0..trailing {
        if count < 4 {
            out[count] = 0.0;
            count += 1;
        }
    }
    count
}

/// scipy `solve_trust_region_2d`: minimise ½pᵀBp + gᵀp subject to ‖p‖ ≤ Δ.
pub(super) fn solve_tr_2d(
    bm: &[[f64; 2]; 2],
    g: &[f64; 2],
    delta: f64,
    mem: &mut MemBuffer,
) -> [f64; 2] {
    // Cholesky (upper) and the Newton step.
    if bm[0][0] > 0.0 {
        let r00 = bm[0][0].sqrt();
        let r01 = bm[0][1] / r00;
        let t = bm[1][1] - r01 * r01;
        if t > 0.0 {
            let r11 = t.sqrt();
            let y0 = g[0] / r00;
            let y1 = (g[1] - r01 * y0) / r11;
            let p1 = y1 / r11;
            let p0 = (y0 - r01 * p1) / r00;
            let p = [-p0, -p1];
            if p[0] * p[0] + p[1] * p[1] <= delta * delta {
                return p;
            }
        }
    }
    let a = bm[0][0] * delta * delta;
    let b = bm[0][1] * delta * delta;
    let c = bm[1][1] * delta * delta;
    let d = g[0] * delta;
    let f = g[1] * delta;
    let coeffs = [
        -b + d,
        2.0 * (a - c + f),
        6.0 * b,
        2.0 * (-a + c + f),
        -b - d,
    ];
    let mut t = [0.0f64; 4];
    let nt = real_roots(&coeffs, mem, &mut t);
    let mut best = [0.0, 0.0];
    let mut best_val = f64::INFINITY;
    let mut found = false;
    for &ti in &t[..nt] {
        let den = 1.0 + ti * ti;
        let p = [delta * (2.0 * ti / den), delta * ((1.0 - ti * ti) / den)];
        let bp = [
            bm[0][0] * p[0] + bm[0][1] * p[1],
            bm[1][0] * p[0] + bm[1][1] * p[1],
        ];
        let val = 0.5 * (p[0] * bp[0] + p[1] * bp[1]) + (g[0] * p[0] + g[1] * p[1]);
        if !found || val < best_val {
            best = p;
            best_val = val;
            found = true;
        }
    }
    if !found {
        // scipy would fail here (argmin of nothing); take the steepest-descent
        // point on the boundary instead.
        let gn = (g[0] * g[0] + g[1] * g[1]).sqrt();
        if gn > 0.0 {
            best = [-delta * g[0] / gn, -delta * g[1] / gn];
        }
    }
    best
}

/// The one-parameter case (n = 1), where scipy's 2-D solver cannot run:
/// exact minimiser of ½Bp² + gp on [−Δ, Δ].
pub(super) fn solve_tr_1d(b: f64, g: f64, delta: f64) -> f64 {
    if b > 0.0 {
        let p = -g / b;
        if p * p <= delta * delta {
            return p;
        }
    }
    let val = |p: f64| 0.5 * b * p * p + g * p;
    if val(-delta) <= val(delta) {
        -delta
    } else {
        delta
    }
}

/// \[J_h; diag(δ)\] (bounded, `delta` = Some) or J_h alone, as an LSMR operator.
struct LsmrOp<'a, M: Model> {
    jh: Jh<'a, M>,
    delta: Option<&'a [f64]>,
    m: usize,
    tmp: &'a mut [f64],
}

impl<M: Model> LinOp for LsmrOp<'_, M> {
    fn matvec(&mut self, x: &[f64], out: &mut [f64]) {
        self.jh.mul_support(x, self.tmp, &mut out[..self.m]);
        if let Some(dl) = self.delta {
            for ((o, &di), &xi) in out[self.m..].iter_mut().zip(dl).zip(x) {
                *o = di * xi;
            }
        }
    }

    fn rmatvec(&mut self, y: &[f64], out: &mut [f64]) {
        self.jh.model.rmatvec(self.jh.jac, &y[..self.m], out);
        for (o, &di) in out.iter_mut().zip(self.jh.d) {
            *o *= di;
        }
        if let Some(dl) = self.delta {
            for ((o, &di), &yi) in out.iter_mut().zip(dl).zip(&y[self.m..]) {
                *o += di * yi;
            }
        }
    }
}

/// Inputs of [`subspace_model`] for one outer iteration.
pub(super) struct SubspaceCtx<'a> {
    /// Scaled gradient g_h = d ∘ g.
    pub(super) g_h: &'a [f64],
    /// diag_h for the bounded variant, `None` for the unbounded one.
    pub(super) diag_h: Option<&'a [f64]>,
    /// Residuals f.
    pub(super) f: &'a [f64],
    /// Trust radius at the start of the outer iteration.
    pub(super) delta: f64,
    /// ‖f‖².
    pub(super) f_sq: f64,
}

/// The per-outer-iteration part of `tr_solver='lsmr'`: the regularisation term,
/// the LSMR Gauss–Newton direction gn_h of \[J_h; diag(√(diag_h + reg))\] against
/// \[f; 0\] (bounded) or of J_h with damping √(damp² + reg) (unbounded), the
/// basis S = qr(\[g_h, gn_h\]) (left in `sub.smat`) and the reduced model.
/// `neg_g` (n) is scratch. Returns (columns of S, B_S, g_S).
pub(super) fn subspace_model<M: Model>(
    jh: &Jh<'_, M>,
    ctx: &SubspaceCtx<'_>,
    lo: &LsmrOptions,
    neg_g: &mut [f64],
    q: &mut QScratch<'_>,
    sub: &mut SubspaceScratch,
) -> (usize, [[f64; 2]; 2], [f64; 2]) {
    let SubspaceCtx {
        g_h,
        diag_h,
        f,
        delta,
        f_sq,
    } = *ctx;
    let n = g_h.len();
    let m = f.len();
    let mut reg_term = 0.0;
    if lo.regularize {
        for (a, &g) in neg_g.iter_mut().zip(g_h) {
            *a = -g;
        }
        let (a, b, _) = build_quadratic_1d(jh, g_h, neg_g, diag_h, None, q);
        let to_tr = delta / norm(g_h);
        let ag_value = minimize_quadratic_1d(a, b, 0.0, to_tr, 0.0).1;
        reg_term = -ag_value / (delta * delta);
    }
    let (rows, damp) = match diag_h {
        Some(dh) => {
            for (s, &v) in sub.delta.iter_mut().zip(dh) {
                *s = (v + reg_term).sqrt();
            }
            (m + n, lo.damp)
        }
        None => (m, (lo.damp * lo.damp + reg_term).sqrt()),
    };
    let prm = LsmrParams {
        damp,
        atol: lo.atol,
        btol: lo.btol,
        conlim: lo.conlim,
        maxiter: lo.maxiter.unwrap_or(n),
    };
    let reduced = jh.gram.is_some_and(|gram| {
        let dl = diag_h.map(|_| &sub.delta[..n]);
        augmented_cholesky(gram, jh.d, dl, g_h, f_sq, &mut sub.gaug)
    });
    if reduced {
        let SubspaceScratch {
            u,
            ut,
            rhs,
            lv,
            lvt,
            lh,
            lhbar,
            lx,
            gaug,
            ..
        } = &mut *sub;
        let nn = n + 1;
        for i in 0..n {
            rhs[i] = gaug[i * nn + n];
        }
        rhs[n] = gaug[n * nn + n];
        let mut op = TriOp { r: &gaug[..], n };
        let bufs = LsmrBufs {
            u: &mut u[..nn],
            ut: &mut ut[..nn],
            v: &mut lv[..n],
            vt: &mut lvt[..n],
            h: &mut lh[..n],
            hbar: &mut lhbar[..n],
            x: &mut lx[..n],
        };
        lsmr(&mut op, &rhs[..nn], prm, bufs, None);
    } else {
        sub.rhs[..m].copy_from_slice(f);
        sub.rhs[m..rows].fill(0.0);
        let SubspaceScratch {
            u,
            ut,
            rhs,
            lv,
            lvt,
            lh,
            lhbar,
            lx,
            delta: dl,
            ltmp,
            support: sup_buf,
            ..
        } = &mut *sub;
        let mut op = LsmrOp {
            jh: Jh {
                model: jh.model,
                jac: jh.jac,
                d: jh.d,
                gram: None,
            },
            delta: diag_h.map(|_| &dl[..n]),
            m,
            tmp: &mut ltmp[..n],
        };
        let bufs = LsmrBufs {
            u: &mut u[..rows],
            ut: &mut ut[..rows],
            v: &mut lv[..n],
            vt: &mut lvt[..n],
            h: &mut lh[..n],
            hbar: &mut lhbar[..n],
            x: &mut lx[..n],
        };
        // LSMR row support: J's support, then the δ rows
        let support = jh.model.row_support().map(|sup| {
            sup_buf.clear();
            sup_buf.extend_from_slice(sup);
            if rows > m {
                sup_buf.push((m, rows));
            }
            &sup_buf[..]
        });
        lsmr(&mut op, &rhs[..rows], prm, bufs, support);
    }
    let k = qr_basis(g_h, &sub.lx[..n], &mut sub.smat);
    let (bm, gs) = reduced_model(jh, &sub.smat, k, diag_h, g_h, &mut sub.js, q);
    (k, bm, gs)
}

/// Upper Cholesky factor R (row-major, (n+1)×(n+1), into `out`) of the Gram
/// matrix of the augmented LSMR system [A | b] with A = [J D; diag(δ)]
/// (bounded) or A = J D, and b = [f; 0]: AᵀA = D JᵀJ D (+ diag(δ²)),
/// Aᵀb = g_h = d ∘ Jᵀf, bᵀb = fᵀf (`f_sq`). Then [A | b] = Q [R; 0] for an orthogonal
/// Q, so LSMR on ([R₁₁; 0], [R₁₂; R₂₂]) performs the same iteration as on
/// (A, b) in exact arithmetic. Returns `false` (the caller falls back to
/// the operator) if a pivot of A's block is not positive and finite.
fn augmented_cholesky(
    gram: &[f64],
    d: &[f64],
    dl: Option<&[f64]>,
    g_h: &[f64],
    f_sq: f64,
    out: &mut [f64],
) -> bool {
    let n = d.len();
    let nn = n + 1;
    for i in 0..n {
        for j in i..n {
            out[i * nn + j] = d[i] * gram[j * n + i] * d[j];
        }
        if let Some(dl) = dl {
            out[i * nn + i] += dl[i] * dl[i];
        }
        out[i * nn + n] = g_h[i];
    }
    out[n * nn + n] = f_sq;
    for i in 0..nn {
        let mut s = out[i * nn + i];
        for k in 0..i {
            let r = out[k * nn + i];
            s -= r * r;
        }
        if i == n {
            // norm of b's component outside range(A); clamp rounding below 0
            out[i * nn + i] = if s > 0.0 { s.sqrt() } else { 0.0 };
            break;
        }
        if !(s > 0.0 && s.is_finite()) {
            return false;
        }
        let rii = s.sqrt();
        out[i * nn + i] = rii;
        for j in i + 1..nn {
            let mut t = out[i * nn + j];
            for k in 0..i {
                t -= out[k * nn + i] * out[k * nn + j];
            }
            out[i * nn + j] = t / rii;
        }
    }
    true
}

/// The (n+1)×n operator [R₁₁; 0] of [`augmented_cholesky`]'s factor.
struct TriOp<'a> {
    r: &'a [f64],
    n: usize,
}

impl LinOp for TriOp<'_> {
    fn matvec(&mut self, x: &[f64], out: &mut [f64]) {
        let (n, nn) = (self.n, self.n + 1);
        for i in 0..n {
            out[i] = dot(&self.r[i * nn + i..i * nn + n], &x[i..n]);
        }
        out[n] = 0.0;
    }

    fn rmatvec(&mut self, y: &[f64], out: &mut [f64]) {
        let (n, nn) = (self.n, self.n + 1);
        out[..n].fill(0.0);
        for i in 0..n {
            let yi = y[i];
            for (o, &r) in out[i..n].iter_mut().zip(&self.r[i * nn + i..i * nn + n]) {
                *o += r * yi;
            }
        }
    }
}
