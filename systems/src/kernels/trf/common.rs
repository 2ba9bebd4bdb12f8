//! Helpers of scipy's `_lsq/common.py`: bounds geometry, Coleman–Li scaling,
//! 1-D quadratics and the trust-radius / termination rules.

use super::super::nnls::householder::{dot, next_after};
use super::model::Model;

/// ‖x‖₂ (NumPy `norm`, a plain square root of the dot product).
#[inline]
pub(super) fn norm(x: &[f64]) -> f64 {
    dot(x, x).sqrt()
}

/// ‖x‖∞.
pub(super) fn norm_inf(x: &[f64]) -> f64 {
    x.iter().fold(0.0f64, |m, v| {
        if v.abs() > m || v.is_nan() {
            v.abs()
        } else {
            m
        }
    })
}

/// `lb ≤ x ≤ ub` for every component.
pub(super) fn in_bounds(x: &[f64], lb: &[f64], ub: &[f64]) -> bool {
    x.iter()
        .zip(lb)
        .zip(ub)
        .all(|((&x, &l), &u)| x >= l && x <= u)
}

/// `lb ≤ x + p ≤ ub` for every component.
pub(super) fn in_bounds_sum(x: &[f64], p: &[f64], lb: &[f64], ub: &[f64]) -> bool {
    (0..x.len()).all(|i| {
        let y = x[i] + p[i];
        y >= lb[i] && y <= ub[i]
    })
}

/// Coleman–Li scaling vector (v, dv) for the gradient g.
pub(super) fn cl_scaling(
    x: &[f64],
    g: &[f64],
    lb: &[f64],
    ub: &[f64],
    v: &mut [f64],
    dv: &mut [f64],
) {
    for i in 0..x.len() {
        v[i] = 1.0;
        dv[i] = 0.0;
        if g[i] < 0.0 && ub[i].is_finite() {
            v[i] = ub[i] - x[i];
            dv[i] = -1.0;
        }
        if g[i] > 0.0 && lb[i].is_finite() {
            v[i] = x[i] - lb[i];
            dv[i] = 1.0;
        }
    }
}

/// Smallest step t ≥ 0 along `s` from `x` to a bound; `hits[i]` flags the
/// components attaining it (with sᵢ ≠ 0).
pub(super) fn step_size_to_bound(
    x: &[f64],
    s: &[f64],
    lb: &[f64],
    ub: &[f64],
    hits: &mut [bool],
) -> f64 {
    let step_i = |i: usize| -> f64 {
        if s[i] != 0.0 {
            ((lb[i] - x[i]) / s[i]).max((ub[i] - x[i]) / s[i])
        } else {
            f64::INFINITY
        }
    };
    let mut min_step = f64::INFINITY;
    for i in 0..x.len() {
        let st = step_i(i);
        if st < min_step {
            min_step = st;
        }
    }
    for (i, h) in hits.iter_mut().enumerate() {
        *h = s[i] != 0.0 && step_i(i) == min_step;
    }
    min_step
}

/// Larger root t of ‖x + t s‖ = Δ, or `None` where scipy raises (s = 0 or x
/// outside the region).
pub(super) fn intersect_trust_region(x: &[f64], s: &[f64], delta: f64) -> Option<f64> {
    let a = dot(s, s);
    if a == 0.0 {
        return None;
    }
    let b = dot(x, s);
    let c = dot(x, x) - delta * delta;
    if c > 0.0 {
        return None;
    }
    let d = (b * b - a * c).sqrt();
    let q = -(b + d.copysign(b));
    let t1 = q / a;
    let t2 = c / q;
    Some(if t1 < t2 { t2 } else { t1 })
}

/// Minimise a t² + b t + c on [lb, ub]: candidates lb, ub and the vertex if
/// strictly inside; the first minimum wins. Returns (t, value).
pub(super) fn minimize_quadratic_1d(a: f64, b: f64, lb: f64, ub: f64, c: f64) -> (f64, f64) {
    let mut best_t = lb;
    let mut best_y = lb * (a * lb + b) + c;
    let mut consider = |t: f64| {
        let y = t * (a * t + b) + c;
        if y < best_y {
            best_t = t;
            best_y = y;
        }
    };
    consider(ub);
    if a != 0.0 {
        let extremum = -0.5 * b / a;
        if lb < extremum && extremum < ub {
            consider(extremum);
        }
    }
    (best_t, best_y)
}

/// Products with the scaled Jacobian J_h = J diag(d).
pub(super) struct Jh<'a, M: Model> {
    pub(super) model: &'a M,
    pub(super) jac: &'a [f64],
    pub(super) d: &'a [f64],
    /// JᵀJ (n×n, column-major) when the problem provides it: the quadratic
    /// forms ‖J_h s‖² and (J_h s)·(J_h t) are then O(n²) instead of O(m).
    pub(super) gram: Option<&'a [f64]>,
}

impl<M: Model> Jh<'_, M> {
    /// out = J_h s (`tmp` of length n), every row written.
    pub(super) fn mul(&self, s: &[f64], tmp: &mut [f64], out: &mut [f64]) {
        self.mul_support(s, tmp, out);
        if let Some(sup) = self.model.row_support() {
            let mut next = 0;
            for &(a, b) in sup {
                out[next..a].fill(0.0);
                next = b;
            }
            out[next..].fill(0.0);
        }
    }

    /// out = J_h s, only the rows of the model's row support written when it
    /// has one.
    pub(super) fn mul_support(&self, s: &[f64], tmp: &mut [f64], out: &mut [f64]) {
        for ((t, &si), &di) in tmp.iter_mut().zip(s).zip(self.d) {
            *t = si * di;
        }
        self.model.matvec(self.jac, tmp, out);
    }

    /// (J_h s)·(J_h t) = (d∘s)ᵀ JᵀJ (d∘t) from the Gram matrix (`tmp` of
    /// length n); `None` without one.
    pub(super) fn gram_inner(&self, s: &[f64], t: &[f64], tmp: &mut [f64]) -> Option<f64> {
        let g = self.gram?;
        let n = self.d.len();
        for ((o, &ti), &di) in tmp.iter_mut().zip(t).zip(self.d) {
            *o = ti * di;
        }
        let mut acc = 0.0;
        for i in 0..n {
            acc += (s[i] * self.d[i]) * dot(&g[i * n..(i + 1) * n], &tmp[..n]);
        }
        Some(acc)
    }
}

/// Scratch of the quadratic-model helpers: an n-vector and two m-vectors.
pub(super) struct QScratch<'a> {
    pub(super) n: &'a mut [f64],
    pub(super) m1: &'a mut [f64],
    pub(super) m2: &'a mut [f64],
}

/// ‖J_h s‖² into / from `m1`: with a row support, J_h s is written and summed on
/// those rows only ([`dot_rows`], bit-identical to the full product and `dot`).
fn jh_sq<M: Model>(jh: &Jh<'_, M>, s: &[f64], tmp: &mut [f64], m1: &mut [f64]) -> f64 {
    match jh.model.row_support() {
        Some(sup) => {
            jh.mul_support(s, tmp, m1);
            dot_rows(m1, m1, sup)
        }
        None => {
            jh.mul(s, tmp, m1);
            dot(m1, m1)
        }
    }
}

/// ½‖J_h s‖² + ½ sᵀ diag(diag_h) s + g_hᵀ s.
pub(super) fn evaluate_quadratic<M: Model>(
    jh: &Jh<'_, M>,
    g: &[f64],
    s: &[f64],
    diag: Option<&[f64]>,
    w: &mut QScratch<'_>,
) -> f64 {
    let mut q = match jh.gram_inner(s, s, w.n) {
        Some(v) => v,
        None => jh_sq(jh, s, w.n, w.m1),
    };
    if let Some(dg) = diag {
        q += diag_dot(s, dg, s);
    }
    let l = dot(s, g);
    0.5 * q + l
}

/// Σ aᵢ dᵢ bᵢ as NumPy's `np.dot(a * d, b)`.
fn diag_dot(a: &[f64], d: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let n = a.len();
    let full = n - n % 4;
    for i in (0..full).step_by(4) {
        for k in 0..4 {
            acc[k] += (a[i + k] * d[i + k]) * b[i + k];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for i in full..n {
        s += (a[i] * d[i]) * b[i];
    }
    s
}

/// Coefficients of q(s₀ + t s) = a t² + b t + c along direction `s`
/// (`build_quadratic_1d`); without `s0`, c = 0. The m-sized products run on the
/// model's row support when it has one (bit-identical, see [`dot_rows`]).
pub(super) fn build_quadratic_1d<M: Model>(
    jh: &Jh<'_, M>,
    g: &[f64],
    s: &[f64],
    diag: Option<&[f64]>,
    s0: Option<&[f64]>,
    w: &mut QScratch<'_>,
) -> (f64, f64, f64) {
    let gram = jh.gram.is_some();
    let mut a = match jh.gram_inner(s, s, w.n) {
        Some(v) => v,
        None => jh_sq(jh, s, w.n, w.m1),
    };
    if let Some(dg) = diag {
        a += diag_dot(s, dg, s);
    }
    a *= 0.5;
    let mut b = dot(g, s);
    let mut c = 0.0;
    if let Some(s0) = s0 {
        let (cross, sq0) = if gram {
            (
                jh.gram_inner(s0, s, w.n).unwrap_or(0.0),
                jh.gram_inner(s0, s0, w.n).unwrap_or(0.0),
            )
        } else {
            match jh.model.row_support() {
                Some(sup) => {
                    jh.mul_support(s0, w.n, w.m2);
                    (dot_rows(w.m2, w.m1, sup), dot_rows(w.m2, w.m2, sup))
                }
                None => {
                    jh.mul(s0, w.n, w.m2);
                    (dot(w.m2, w.m1), dot(w.m2, w.m2))
                }
            }
        };
        b += cross;
        c = 0.5 * sq0 + dot(g, s0);
        if let Some(dg) = diag {
            b += diag_dot(s0, dg, s);
            c += 0.5 * diag_dot(s0, dg, s0);
        }
    }
    (a, b, c)
}

/// [`dot`] of two vectors that are zero (+0) outside the sorted disjoint row
/// ranges `sup`, reading those rows only: the same four lanes (by absolute
/// index mod 4) and the same sequential tail, each lane summing its terms in
/// ascending index order from +0 — the skipped terms are +0 products, which
/// leave a sum that started at +0 unchanged (such a sum is never −0), so the
/// result is bit-identical to `dot(a, b)`.
pub(super) fn dot_rows(a: &[f64], b: &[f64], sup: &[(usize, usize)]) -> f64 {
    let len = a.len().min(b.len());
    let full = len - len % 4;
    let mut acc = [0.0f64; 4];
    for &(lo, hi) in sup {
        let (lo, hi) = (lo.min(full), hi.min(full));
        let mut i = lo;
        while i < hi && i % 4 != 0 {
            acc[i % 4] += a[i] * b[i];
            i += 1;
        }
        let nb = (hi - i) / 4;
        for (ca, cb) in a[i..i + 4 * nb]
            .chunks_exact(4)
            .zip(b[i..i + 4 * nb].chunks_exact(4))
        {
            for l in 0..4 {
                acc[l] += ca[l] * cb[l];
            }
        }
        i += 4 * nb;
        while i < hi {
            acc[i % 4] += a[i] * b[i];
            i += 1;
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for i in full..len {
        if sup.iter().any(|r| r.0 <= i && i < r.1) {
            s += a[i] * b[i];
        }
    }
    s
}

/// Active-constraint mask with relative tolerance `rtol`
/// (`find_active_constraints`).
pub(super) fn find_active(x: &[f64], lb: &[f64], ub: &[f64], rtol: f64, out: &mut [i8]) {
    for i in 0..x.len() {
        out[i] = 0;
        if rtol == 0.0 {
            if x[i] <= lb[i] {
                out[i] = -1;
            }
            if x[i] >= ub[i] {
                out[i] = 1;
            }
            continue;
        }
        let lower = x[i] - lb[i];
        let upper = ub[i] - x[i];
        let lthr = rtol * lb[i].abs().max(1.0);
        let uthr = rtol * ub[i].abs().max(1.0);
        if lb[i].is_finite() && lower <= upper.min(lthr) {
            out[i] = -1;
        }
        if ub[i].is_finite() && upper <= lower.min(uthr) {
            out[i] = 1;
        }
    }
}

/// Move `x` strictly inside the bounds (`make_strictly_feasible`): by
/// rstep·max(1, |bound|) from an active bound, or to the next float when
/// `rstep` = 0; to the midpoint if that leaves the box.
pub(super) fn make_strictly_feasible(x: &mut [f64], lb: &[f64], ub: &[f64], rstep: f64) {
    for i in 0..x.len() {
        let mut act = [0i8];
        find_active(&x[i..=i], &lb[i..=i], &ub[i..=i], rstep, &mut act);
        let mut xn = x[i];
        if act[0] == -1 {
            xn = if rstep == 0.0 {
                next_after(lb[i], ub[i])
            } else {
                lb[i] + rstep * lb[i].abs().max(1.0)
            };
        } else if act[0] == 1 {
            xn = if rstep == 0.0 {
                next_after(ub[i], lb[i])
            } else {
                ub[i] - rstep * ub[i].abs().max(1.0)
            };
        }
        if xn < lb[i] || xn > ub[i] {
            xn = 0.5 * (lb[i] + ub[i]);
        }
        x[i] = xn;
    }
}

/// New trust radius and reduction ratio (`update_tr_radius`).
pub(super) fn update_tr_radius(
    delta: f64,
    actual: f64,
    predicted: f64,
    step_norm: f64,
    bound_hit: bool,
) -> (f64, f64) {
    let ratio = if predicted > 0.0 {
        actual / predicted
    } else if predicted == actual && actual == 0.0 {
        1.0
    } else {
        0.0
    };
    let new = if ratio < 0.25 {
        0.25 * step_norm
    } else if ratio > 0.75 && bound_hit {
        delta * 2.0
    } else {
        delta
    };
    (new, ratio)
}

/// Termination test on a trial (`check_termination`): Some(2 | 3 | 4) or None.
pub(super) fn check_termination(
    d_f: f64,
    f: f64,
    dx_norm: f64,
    x_norm: f64,
    ratio: f64,
    ftol: f64,
    xtol: f64,
) -> Option<i32> {
    let ftol_ok = d_f < ftol * f && ratio > 0.25;
    let xtol_ok = dx_norm < xtol * (xtol + x_norm);
    match (ftol_ok, xtol_ok) {
        (true, true) => Some(4),
        (true, false) => Some(2),
        (false, true) => Some(3),
        (false, false) => None,
    }
}
