//! scipy's `select_step` for the bounded TRF: the trust-region step if it
//! stays in the box, else the best of the bound-truncated step (θ-shortened),
//! the reflected step and the projected Cauchy step.

use super::common::{
    build_quadratic_1d, evaluate_quadratic, in_bounds_sum, intersect_trust_region,
    minimize_quadratic_1d, norm, step_size_to_bound, Jh, QScratch,
};
use super::model::Model;

/// Buffers of [`select_step`]; `p`, `p_h` are inputs (p = d ∘ p_h), `step`,
/// `step_h` outputs; the rest scratch. All of length n except those in `q`.
pub(super) struct StepBufs<'a> {
    pub(super) p: &'a mut [f64],
    pub(super) p_h: &'a mut [f64],
    pub(super) r: &'a mut [f64],
    pub(super) r_h: &'a mut [f64],
    pub(super) ag: &'a mut [f64],
    pub(super) ag_h: &'a mut [f64],
    pub(super) x_on_bound: &'a mut [f64],
    pub(super) hits: &'a mut [bool],
    pub(super) step: &'a mut [f64],
    pub(super) step_h: &'a mut [f64],
    pub(super) q: QScratch<'a>,
}

/// Bounded problem geometry shared by the step computations.
pub(super) struct Geometry<'a> {
    pub(super) x: &'a [f64],
    pub(super) lb: &'a [f64],
    pub(super) ub: &'a [f64],
    pub(super) d: &'a [f64],
    pub(super) diag_h: &'a [f64],
    pub(super) g_h: &'a [f64],
    pub(super) delta: f64,
    pub(super) theta: f64,
}

/// Choose the step; writes it into `b.step` / `b.step_h` and returns the
/// predicted reduction −q(step_h).
pub(super) fn select_step<M: Model>(
    jh: &Jh<'_, M>,
    geo: &Geometry<'_>,
    b: &mut StepBufs<'_>,
) -> f64 {
    let Geometry {
        x,
        lb,
        ub,
        d,
        diag_h,
        g_h,
        delta,
        theta,
    } = *geo;
    let n = x.len();
    if in_bounds_sum(x, b.p, lb, ub) {
        let p_value = evaluate_quadratic(jh, g_h, b.p_h, Some(diag_h), &mut b.q);
        b.step.copy_from_slice(b.p);
        b.step_h.copy_from_slice(b.p_h);
        return -p_value;
    }
    let p_stride = step_size_to_bound(x, b.p, lb, ub, b.hits);
    // Reflected direction.
    for i in 0..n {
        b.r_h[i] = if b.hits[i] { -b.p_h[i] } else { b.p_h[i] };
        b.r[i] = d[i] * b.r_h[i];
    }
    // Truncate the trust-region step at the bound.
    for i in 0..n {
        b.p[i] *= p_stride;
        b.p_h[i] *= p_stride;
        b.x_on_bound[i] = x[i] + b.p[i];
    }
    let mut r_value = f64::INFINITY;
    if let Some(to_tr) = intersect_trust_region(b.p_h, b.r_h, delta) {
        let to_bound = step_size_to_bound(b.x_on_bound, b.r, lb, ub, b.hits);
        let r_stride = if to_tr < to_bound { to_tr } else { to_bound };
        let (lo, hi) = if r_stride > 0.0 {
            let lo = (1.0 - theta) * p_stride / r_stride;
            let hi = if r_stride == to_bound {
                theta * to_bound
            } else {
                to_tr
            };
            (lo, hi)
        } else {
            (0.0, -1.0)
        };
        if lo <= hi {
            let (a, bq, c) =
                build_quadratic_1d(jh, g_h, b.r_h, Some(diag_h), Some(b.p_h), &mut b.q);
            let (t, val) = minimize_quadratic_1d(a, bq, lo, hi, c);
            r_value = val;
            for i in 0..n {
                b.r_h[i] *= t;
                b.r_h[i] += b.p_h[i];
                b.r[i] = b.r_h[i] * d[i];
            }
        }
    }
    // Shorten the truncated step to stay strictly interior.
    for i in 0..n {
        b.p[i] *= theta;
        b.p_h[i] *= theta;
    }
    let p_value = evaluate_quadratic(jh, g_h, b.p_h, Some(diag_h), &mut b.q);
    // Projected Cauchy step.
    for i in 0..n {
        b.ag_h[i] = -g_h[i];
        b.ag[i] = d[i] * b.ag_h[i];
    }
    let to_tr = delta / norm(b.ag_h);
    let to_bound = step_size_to_bound(x, b.ag, lb, ub, b.hits);
    let ag_stride = if to_bound < to_tr {
        theta * to_bound
    } else {
        to_tr
    };
    let (a, bq, _) = build_quadratic_1d(jh, g_h, b.ag_h, Some(diag_h), None, &mut b.q);
    let (t, ag_value) = minimize_quadratic_1d(a, bq, 0.0, ag_stride, 0.0);
    for i in 0..n {
        b.ag_h[i] *= t;
        b.ag[i] *= t;
    }
    if p_value < r_value && p_value < ag_value {
        b.step.copy_from_slice(b.p);
        b.step_h.copy_from_slice(b.p_h);
        -p_value
    } else if r_value < p_value && r_value < ag_value {
        b.step.copy_from_slice(b.r);
        b.step_h.copy_from_slice(b.r_h);
        -r_value
    } else {
        b.step.copy_from_slice(b.ag);
        b.step_h.copy_from_slice(b.ag_h);
        -ag_value
    }
}
