//! Monte Carlo σ★ refits converged to their χ² minima (the default `--vdisp-mc converged`).
//!
//! FastSpecFit estimates VDISP_IVAR from 50 refits of the σ fit, each a trust-region
//! reflective fit from its fixed cold start x0 (c = 1, τ = 0.1, σ nominal) stopped at
//! ftol = 1e-6. Those fits stop early in the valley where τ_V and the template mix trade
//! off (≈ 50 residual evaluations each), so FastSpecFit's σ★ variance mixes the noise
//! response with where each optimiser path happened to stop. This module minimises each
//! refit's χ² instead: starting from the best fit x̂, the template coefficients are solved
//! exactly by NNLS at every (τ_V, σ) (variable projection) and (τ_V, σ) move by a bounded
//! Levenberg–Marquardt iteration on the projected problem, until the step in σ is below
//! 1e-7 of σ. The minimised function and the bounds are FastSpecFit's; only the optimiser
//! differs.
//!
//! Deviation (measured on the 200-target benchmark file, 37 targets with a σ fit, against
//! FastSpecFit 3.6.1 on the same Monte Carlo draws): VDISP_IVAR median ratio 1.02 (a 2%
//! smaller variance: the optimiser scatter FastSpecFit adds), 86% of targets within 30%
//! (exact FastSpecFit paths, `--vdisp-mc fsf`: 89%), and a per-target ratio scatter that is
//! FastSpecFit's own stopping noise on 50 draws. Starting the TRF refits from x̂ with
//! FastSpecFit's ftol instead stops them after a few steps (VDISP_IVAR +15%); converging
//! them with the TRF costs ≈ 22 evaluations per refit; this solver ≈ 6–10.
//!
//! Gradient: by Danskin's theorem the gradient of the projected χ²/2 is Jᵀr with the
//! (τ, σ) columns of the σ-fit Jacobian at the NNLS coefficients ĉ; the Gauss–Newton matrix
//! is the Schur complement of the free templates' block in the Gram matrix of [J_τ J_σ P_F]
//! (the Jacobian of the projected residual in Kaufman's approximation).

#![allow(
    clippy::needless_range_loop,
    reason = "index loops over the 2×2 matrices and the free-template blocks"
)]

use super::vdispfit::VdispProblem;
use crate::kernels::nnls::{nnls, MatRef, NnlsOptions, NnlsWorkspace};
use crate::kernels::KernelError;

/// Relative σ step that ends a refit.
const SIGMA_RTOL: f64 = 1e-7;
/// τ_V step that ends a refit.
const TAU_ATOL: f64 = 1e-6;
/// Relative decrease of χ² that ends a refit.
const CHI2_RTOL: f64 = 1e-11;
/// Predicted decrease of χ²/2 (relative) below which a step is rounding noise.
const PRED_RTOL: f64 = 1e-13;
/// Evaluation budget of one refit (each evaluation: one σ-fit pass and an NNLS).
const MAX_EVAL: usize = 200;

/// Scratch of [`converge_sigma`], reused across the refits of a target.
#[derive(Debug, Default)]
pub struct McSigmaWorkspace {
    d: Vec<f64>,
    r: Vec<f64>,
    r_try: Vec<f64>,
    c: Vec<f64>,
    c_try: Vec<f64>,
    x: Vec<f64>,
    nnls: Option<NnlsWorkspace>,
    /// Diagnostics: evaluations of the last refit.
    pub nfev: usize,
}

/// Outcome of one converged refit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct McSigmaFit {
    /// τ_V at the minimum.
    pub tauv: f64,
    /// σ★ (km/s) at the minimum.
    pub sigma: f64,
    /// χ² at the minimum.
    pub chi2: f64,
}

/// χ²/2 at (τ, σ) with the NNLS coefficients: fills `c_try` and `r_try`.
fn eval(
    prob: &mut VdispProblem<'_>,
    p: [f64; 2],
    c_guess: &[f64],
    ws: &mut McSigmaWorkspace,
) -> Result<f64, KernelError> {
    let nt = prob.ntemplate();
    ws.x.clear();
    ws.x.extend_from_slice(&p);
    ws.x.extend_from_slice(c_guess);
    let m = prob.n_active();
    let jb = prob.columns_at(&ws.x)?;
    let pm = &jb[2 * m..(2 + nt) * m];
    let nn = ws.nnls.get_or_insert_with(|| NnlsWorkspace::new(m, nt));
    nnls(
        MatRef::from_column_major_slice(pm, m, nt),
        &ws.d,
        &mut ws.c_try,
        &NnlsOptions::default(),
        nn,
    )?;
    ws.r_try.clear();
    ws.r_try.extend(ws.d.iter().map(|&v| -v));
    for (t, &c) in ws.c_try.iter().enumerate() {
        if c != 0.0 {
            for (o, &v) in ws.r_try.iter_mut().zip(&pm[t * m..(t + 1) * m]) {
                *o += c * v;
            }
        }
    }
    ws.nfev += 1;
    Ok(0.5 * ws.r_try.iter().map(|v| v * v).sum::<f64>())
}

/// Gradient and Hessian of the projected χ²/2 at the accepted point (τ, σ) = `p` with
/// the coefficients `ws.c` and residual `ws.r`: the exact Hessian (Schur complement of the
/// free templates' block in the full Hessian, second-order terms included) when it is
/// positive definite, else the Gauss–Newton matrix.
fn gradient(
    prob: &mut VdispProblem<'_>,
    p: [f64; 2],
    ws: &mut McSigmaWorkspace,
) -> Result<([f64; 2], [[f64; 2]; 2]), KernelError> {
    let nt = prob.ntemplate();
    let m = prob.n_active();
    ws.x.clear();
    ws.x.extend_from_slice(&p);
    ws.x.extend_from_slice(&ws.c);
    prob.columns_at(&ws.x)?;
    let mut bd = vec![0.0; 2 * nt];
    let mut rpp = [0.0; 3];
    let second = prob.residual_second_order(&ws.r, &mut bd, &mut rpp);
    let jb = prob.columns_at(&ws.x)?;
    let col = |k: usize| &jb[k * m..(k + 1) * m];
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let g = [dot(col(0), &ws.r), dot(col(1), &ws.r)];
    let mut hgn = [[0.0; 2]; 2];
    for i in 0..2 {
        for j in i..2 {
            hgn[i][j] = dot(col(i), col(j));
            hgn[j][i] = hgn[i][j];
        }
    }
    let mut hex = hgn;
    hex[0][0] += rpp[0];
    hex[0][1] += rpp[1];
    hex[1][0] += rpp[1];
    hex[1][1] += rpp[2];
    let free: Vec<usize> = (0..nt).filter(|&t| ws.c[t] > 0.0).collect();
    let nf = free.len();
    if nf > 0 {
        let mut gff = vec![0.0; nf * nf];
        // G_Fp and G_Fp + B_F, per free template and parameter
        let mut gfp = vec![[0.0; 2]; nf];
        let mut mfp = vec![[0.0; 2]; nf];
        for (a, &ta) in free.iter().enumerate() {
            for (b, &tb) in free.iter().enumerate().skip(a) {
                let v = dot(col(2 + ta), col(2 + tb));
                gff[a * nf + b] = v;
                gff[b * nf + a] = v;
            }
            for q in 0..2 {
                gfp[a][q] = dot(col(2 + ta), col(q));
                mfp[a][q] = gfp[a][q] + bd[q * nt + ta];
            }
        }
        if !cholesky(&mut gff, nf) {
            return Ok((g, hgn));
        }
        let schur = |h: &mut [[f64; 2]; 2], v: &[[f64; 2]]| {
            let mut y = [vec![0.0; nf], vec![0.0; nf]];
            for q in 0..2 {
                for a in 0..nf {
                    y[q][a] = v[a][q];
                }
                forward(&gff, nf, &mut y[q]);
            }
            for i in 0..2 {
                for j in 0..2 {
                    h[i][j] -= y[i].iter().zip(&y[j]).map(|(a, b)| a * b).sum::<f64>();
                }
            }
        };
        schur(&mut hgn, &gfp);
        schur(&mut hex, &mfp);
    }
    let pd = |h: &[[f64; 2]; 2]| h[0][0] > 0.0 && h[0][0] * h[1][1] - h[0][1] * h[1][0] > 0.0;
    if second && pd(&hex) {
        Ok((g, hex))
    } else {
        Ok((g, hgn))
    }
}

/// In-place lower Cholesky factor of the n×n row-major `a`; false if not positive definite.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    true
}

/// y ← L⁻¹ y for the lower factor of [`cholesky`].
fn forward(l: &[f64], n: usize, y: &mut [f64]) {
    for i in 0..n {
        let mut s = y[i];
        for k in 0..i {
            s -= l[i * n + k] * y[k];
        }
        y[i] = s / l[i * n + i];
    }
}

/// Minimise the σ fit's χ² for the data set by [`VdispProblem::set_data`] over τ_V ∈
/// [lb₀, ub₀], σ ∈ [lb₁, ub₁], c ≥ 0, from `start` = (τ, σ, c…) (the best fit of the
/// observed spectrum).
///
/// # Errors
/// Errors of the σ-fit model or of the NNLS solves (non-finite columns).
pub fn converge_sigma(
    prob: &mut VdispProblem<'_>,
    start: &[f64],
    lb: &[f64],
    ub: &[f64],
    ws: &mut McSigmaWorkspace,
) -> Result<McSigmaFit, KernelError> {
    let nt = prob.ntemplate();
    if start.len() != nt + 2 || lb.len() < 2 || ub.len() < 2 {
        return Err(KernelError::Shape("vdisp Monte Carlo: start length".into()));
    }
    ws.nfev = 0;
    ws.d.clear();
    ws.d.extend(prob.neg_data().iter().map(|&v| -v));
    ws.c_try.resize(nt, 0.0);
    let clamp = |p: [f64; 2]| [p[0].clamp(lb[0], ub[0]), p[1].clamp(lb[1], ub[1])];
    let mut p = clamp([start[0], start[1]]);
    let c0: Vec<f64> = start[2..].iter().map(|&c| c.max(0.0)).collect();
    let mut phi = eval(prob, p, &c0, ws)?;
    std::mem::swap(&mut ws.c, &mut ws.c_try);
    std::mem::swap(&mut ws.r, &mut ws.r_try);
    ws.c_try.resize(nt, 0.0);
    let mut mu = 1e-3;
    'outer: while ws.nfev < MAX_EVAL {
        let (g, h) = gradient(prob, p, ws)?;
        // variables held at a bound the gradient pushes against
        let free =
            [0, 1].map(|i| !((p[i] <= lb[i] && g[i] > 0.0) || (p[i] >= ub[i] && g[i] < 0.0)));
        if !free[0] && !free[1] {
            break;
        }
        loop {
            let mut a = h;
            for i in 0..2 {
                let d = if h[i][i] > 0.0 { h[i][i] } else { 1.0 };
                a[i][i] += mu * d;
            }
            let step = if free[0] && free[1] {
                let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
                if det.is_nan() || det <= 0.0 {
                    [0.0, 0.0]
                } else {
                    [
                        -(a[1][1] * g[0] - a[0][1] * g[1]) / det,
                        -(a[0][0] * g[1] - a[1][0] * g[0]) / det,
                    ]
                }
            } else if free[0] {
                [-g[0] / a[0][0], 0.0]
            } else {
                [0.0, -g[1] / a[1][1]]
            };
            let pn = clamp([p[0] + step[0], p[1] + step[1]]);
            if !(pn[0].is_finite() && pn[1].is_finite()) || pn == p {
                break 'outer;
            }
            // converged when the proposed step is below the tolerances or its predicted
            // decrease is at the rounding level of χ²
            let (d0, d1) = (pn[0] - p[0], pn[1] - p[1]);
            let pred = -(g[0] * d0 + g[1] * d1)
                - 0.5 * (h[0][0] * d0 * d0 + 2.0 * h[0][1] * d0 * d1 + h[1][1] * d1 * d1);
            if (d1.abs() <= SIGMA_RTOL * p[1].abs().max(1.0) && d0.abs() <= TAU_ATOL)
                || pred.abs() <= PRED_RTOL * phi
            {
                break 'outer;
            }
            let c_guess = ws.c.clone();
            let phin = eval(prob, pn, &c_guess, ws)?;
            if phin < phi {
                let dp = [(pn[0] - p[0]).abs(), (pn[1] - p[1]).abs()];
                let dphi = phi - phin;
                p = pn;
                phi = phin;
                std::mem::swap(&mut ws.c, &mut ws.c_try);
                std::mem::swap(&mut ws.r, &mut ws.r_try);
                mu = (mu * 0.1).max(1e-12);
                if (dp[1] <= SIGMA_RTOL * p[1].abs().max(1.0) && dp[0] <= TAU_ATOL)
                    || dphi <= CHI2_RTOL * phi
                {
                    break 'outer;
                }
                break;
            }
            mu = (mu * 10.0).max(1e-4);
            if mu > 1e10 || ws.nfev >= MAX_EVAL {
                break 'outer;
            }
        }
    }
    Ok(McSigmaFit {
        tauv: p[0],
        sigma: p[1],
        chi2: 2.0 * phi,
    })
}
