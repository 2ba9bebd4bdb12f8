//! The TRF outer/inner iteration (scipy `trf_bounds` and `trf_no_bounds`).

use super::super::nnls::householder::dot;
use super::common::{
    check_termination, cl_scaling, evaluate_quadratic, find_active, in_bounds,
    make_strictly_feasible, norm, norm_inf, update_tr_radius, Jh, QScratch,
};
use super::exact::{factor, solve_lsq_trust_region};
use super::model::Model;
use super::step::{select_step, Geometry, StepBufs};
use super::subspace::{solve_tr_1d, solve_tr_2d, subspace_model, SubspaceCtx};
use super::{KernelError, TrSolver, TrfOptions, TrfStatus, TrfSummary, TrfWorkspace, XScale};

fn validate(
    n: usize,
    m: usize,
    lb: &[f64],
    ub: &[f64],
    x: &[f64],
    opts: &TrfOptions,
) -> Result<(), KernelError> {
    if n == 0 || m == 0 {
        return Err(KernelError::Shape(format!(
            "trf: {m} residuals, {n} parameters"
        )));
    }
    if lb.len() != n || ub.len() != n {
        return Err(KernelError::Shape(format!(
            "trf: {n} parameters but {} lower and {} upper bounds",
            lb.len(),
            ub.len()
        )));
    }
    if lb
        .iter()
        .zip(ub)
        .any(|(l, u)| l >= u || l.is_nan() || u.is_nan())
    {
        return Err(KernelError::Domain(
            "trf: each lower bound must be below its upper bound".into(),
        ));
    }
    if !in_bounds(x, lb, ub) {
        return Err(KernelError::Domain(
            "trf: initial guess outside the bounds".into(),
        ));
    }
    if let XScale::Values(s) = &opts.x_scale {
        if s.len() != n || s.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(KernelError::Domain(
                "trf: x_scale must be n positive finite numbers".into(),
            ));
        }
    }
    let eps = f64::EPSILON;
    if opts.ftol < eps && opts.xtol < eps && opts.gtol < eps {
        return Err(KernelError::Domain(
            "trf: at least one tolerance must exceed machine epsilon".into(),
        ));
    }
    Ok(())
}

/// Column norms of the dense m×n Jacobian into `out`.
fn column_norms(jac: &[f64], m: usize, out: &mut [f64]) {
    for (j, o) in out.iter_mut().enumerate() {
        *o = norm(&jac[j * m..(j + 1) * m]);
    }
}

/// Run the solver: `x` holds x0 on entry and x̂ on return.
pub(super) fn run<M: Model>(
    model: &mut M,
    x: &mut [f64],
    lb: &[f64],
    ub: &[f64],
    opts: &TrfOptions,
    ws: &mut TrfWorkspace,
) -> Result<TrfSummary, KernelError> {
    let n = x.len();
    let m = model.m();
    validate(n, m, lb, ub, x, opts)?;
    ws.ensure(m, n);
    ws.jac_valid = M::DENSE;
    if M::DENSE {
        ws.ensure_dense();
    }
    let bounded = lb
        .iter()
        .zip(ub)
        .any(|(&l, &u)| l != f64::NEG_INFINITY || u != f64::INFINITY);
    match opts.tr_solver {
        TrSolver::Exact => ws.ensure_exact(if bounded { m + n } else { m }),
        TrSolver::Lsmr(_) => ws.ensure_lsmr(),
    }
    make_strictly_feasible(x, lb, ub, 1e-10);

    let TrfWorkspace {
        x_new,
        f,
        f_new,
        g,
        v,
        dv,
        d,
        diag_h,
        g_h,
        scale,
        scale_inv,
        p,
        p_h,
        r,
        r_h,
        ag,
        ag_h,
        step,
        step_h,
        tmp_n,
        tmp_n2,
        hits,
        tmp_m,
        tmp_m2,
        probe_x,
        probe_f,
        active,
        jac,
        exact,
        sub,
        gram,
        ..
    } = ws;
    let (f, f_new) = (&mut f[..m], &mut f_new[..m]);
    // Rows of the stored Jacobian (m, or n for a model that keeps J as its R factor).
    let rows = model.jac_rows();

    model.residuals(x, f);
    if !crate::kernels::simd::all_finite(f) {
        return Err(KernelError::NonFinite(
            "trf: residuals at the initial point".into(),
        ));
    }
    model.jacobian(x, f, lb, ub, jac, probe_x, probe_f);
    if M::DENSE && !crate::kernels::simd::all_finite(&jac[..rows * n]) {
        return Err(KernelError::NonFinite(
            "trf: Jacobian at the initial point".into(),
        ));
    }
    let mut nfev = 1usize;
    let mut njev = 1usize;
    let mut cost = 0.5 * dot(f, f);
    model.rmatvec(jac, model.jac_f(f), g);

    let jac_scale = opts.x_scale == XScale::Jac;
    match &opts.x_scale {
        XScale::Jac => {
            column_norms(jac, rows, scale_inv);
            for (si, s) in scale_inv.iter_mut().zip(scale.iter_mut()) {
                if *si == 0.0 {
                    *si = 1.0;
                }
                *s = 1.0 / *si;
            }
        }
        XScale::Ones => {
            scale.fill(1.0);
            scale_inv.fill(1.0);
        }
        XScale::Values(vals) => {
            for i in 0..n {
                scale[i] = vals[i];
                scale_inv[i] = 1.0 / vals[i];
            }
        }
    }

    // Initial trust radius.
    let mut delta = if bounded {
        cl_scaling(x, g, lb, ub, v, dv);
        let mut acc = 0.0;
        for i in 0..n {
            if dv[i] != 0.0 {
                v[i] *= scale_inv[i];
            }
            let t = x[i] * scale_inv[i] / v[i].sqrt();
            acc += t * t;
        }
        acc.sqrt()
    } else {
        let mut acc = 0.0;
        for i in 0..n {
            let t = x[i] * scale_inv[i];
            acc += t * t;
        }
        acc.sqrt()
    };
    if delta == 0.0 {
        delta = 1.0;
    }
    let max_nfev = opts.max_nfev.unwrap_or(100 * n);
    let mut alpha = 0.0f64;
    let mut status: Option<i32> = None;
    let mut g_norm;
    let mut k_svd = 0usize;
    let mut k_sub = 0usize;
    let mut b_s = [[0.0; 2]; 2];
    let mut g_s = [0.0; 2];
    // the problem supplied JᵀJ at the current point (operator problems, LSMR)
    let mut has_gram = false;

    loop {
        if bounded {
            cl_scaling(x, g, lb, ub, v, dv);
            for i in 0..n {
                tmp_n[i] = g[i] * v[i];
            }
            g_norm = norm_inf(tmp_n);
        } else {
            g_norm = norm_inf(g);
        }
        if g_norm < opts.gtol {
            status = Some(1);
        }
        if status.is_some() || nfev == max_nfev {
            break;
        }
        if bounded {
            for i in 0..n {
                if dv[i] != 0.0 {
                    v[i] *= scale_inv[i];
                }
                d[i] = v[i].sqrt() * scale[i];
                diag_h[i] = g[i] * dv[i] * scale[i];
                g_h[i] = d[i] * g[i];
            }
        } else {
            for i in 0..n {
                d[i] = scale[i];
                g_h[i] = d[i] * g[i];
            }
        }
        let dh: Option<&[f64]> = if bounded { Some(&diag_h[..]) } else { None };
        match opts.tr_solver {
            TrSolver::Exact => {
                k_svd = factor(jac, rows, n, d, dh, model.jac_f(f), exact)?;
            }
            TrSolver::Lsmr(lo) => {
                has_gram = model.gram(jac, &mut gram[..n * n]);
                let jh = Jh {
                    model: &*model,
                    jac: &jac[..],
                    d: &d[..],
                    gram: has_gram.then(|| &gram[..n * n]),
                };
                let mut q = QScratch {
                    n: tmp_n2,
                    m1: tmp_m,
                    m2: tmp_m2,
                };
                let ctx = SubspaceCtx {
                    g_h,
                    diag_h: dh,
                    f,
                    delta,
                    f_sq: 2.0 * cost,
                };
                (k_sub, b_s, g_s) = subspace_model(&jh, &ctx, &lo, ag_h, &mut q, sub);
            }
        }
        let theta = (1.0 - g_norm).max(0.995);
        let mut actual_reduction = -1.0f64;
        let mut cost_new = cost;
        while actual_reduction <= 0.0 && nfev < max_nfev {
            match opts.tr_solver {
                TrSolver::Exact => {
                    alpha = solve_lsq_trust_region(n, m, k_svd, exact, delta, alpha, p_h);
                }
                TrSolver::Lsmr(_) => {
                    let ps = if k_sub == 2 {
                        let mem = sub.evd_mem.as_mut().ok_or_else(|| {
                            KernelError::Shape("trf: eigenvalue scratch not sized".into())
                        })?;
                        solve_tr_2d(&b_s, &g_s, delta, mem)
                    } else {
                        [solve_tr_1d(b_s[0][0], g_s[0], delta), 0.0]
                    };
                    for i in 0..n {
                        p_h[i] = sub.smat[i] * ps[0]
                            + if k_sub == 2 {
                                sub.smat[n + i] * ps[1]
                            } else {
                                0.0
                            };
                    }
                }
            }
            let predicted;
            {
                let jh = Jh {
                    model: &*model,
                    jac: &jac[..],
                    d: &d[..],
                    gram: has_gram.then(|| &gram[..n * n]),
                };
                if bounded {
                    for i in 0..n {
                        p[i] = d[i] * p_h[i];
                    }
                    let geo = Geometry {
                        x,
                        lb,
                        ub,
                        d,
                        diag_h,
                        g_h,
                        delta,
                        theta,
                    };
                    let mut bufs = StepBufs {
                        p,
                        p_h,
                        r,
                        r_h,
                        ag,
                        ag_h,
                        x_on_bound: x_new,
                        hits,
                        step,
                        step_h,
                        q: QScratch {
                            n: tmp_n2,
                            m1: &mut tmp_m[..rows],
                            m2: &mut tmp_m2[..rows],
                        },
                    };
                    predicted = select_step(&jh, &geo, &mut bufs);
                } else {
                    step_h.copy_from_slice(p_h);
                    let mut q = QScratch {
                        n: tmp_n2,
                        m1: &mut tmp_m[..rows],
                        m2: &mut tmp_m2[..rows],
                    };
                    predicted = -evaluate_quadratic(&jh, g_h, step_h, None, &mut q);
                    for i in 0..n {
                        step[i] = d[i] * step_h[i];
                    }
                }
            }
            for i in 0..n {
                x_new[i] = x[i] + step[i];
            }
            if bounded {
                make_strictly_feasible(x_new, lb, ub, 0.0);
            }
            model.residuals(x_new, f_new);
            nfev += 1;
            let step_h_norm = norm(step_h);
            if !crate::kernels::simd::all_finite(f_new) {
                delta = 0.25 * step_h_norm;
                continue;
            }
            cost_new = 0.5 * dot(f_new, f_new);
            actual_reduction = cost - cost_new;
            let (delta_new, ratio) = update_tr_radius(
                delta,
                actual_reduction,
                predicted,
                step_h_norm,
                step_h_norm > 0.95 * delta,
            );
            let step_norm = norm(step);
            status = check_termination(
                actual_reduction,
                cost,
                step_norm,
                norm(x),
                ratio,
                opts.ftol,
                opts.xtol,
            );
            if status.is_some() {
                break;
            }
            alpha *= delta / delta_new;
            delta = delta_new;
        }
        if actual_reduction > 0.0 {
            x.copy_from_slice(x_new);
            f.copy_from_slice(f_new);
            cost = cost_new;
            if status.is_some() && !model.final_jacobian() {
                // the problem does not need J, g and the gtol test at x̂
                break;
            }
            model.jacobian(x, f, lb, ub, jac, probe_x, probe_f);
            njev += 1;
            if M::DENSE && !crate::kernels::simd::all_finite(&jac[..rows * n]) {
                return Err(KernelError::NonFinite("trf: Jacobian".into()));
            }
            model.rmatvec(jac, model.jac_f(f), g);
            if jac_scale {
                column_norms(jac, rows, tmp_n);
                for i in 0..n {
                    scale_inv[i] = tmp_n[i].max(scale_inv[i]);
                    scale[i] = 1.0 / scale_inv[i];
                }
            }
        }
    }
    if bounded {
        find_active(x, lb, ub, opts.xtol, active);
    } else {
        active.fill(0);
    }
    let status = match status.unwrap_or(0) {
        1 => TrfStatus::Gtol,
        2 => TrfStatus::Ftol,
        3 => TrfStatus::Xtol,
        4 => TrfStatus::FtolXtol,
        _ => TrfStatus::MaxNfev,
    };
    Ok(TrfSummary {
        cost,
        nfev,
        njev,
        status,
        optimality: g_norm,
    })
}
