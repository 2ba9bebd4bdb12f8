//! Monte Carlo σ★ refits converged to their χ² minima (the default `--vdisp-mc converged`).
//!
//! FastSpecFit estimates VDISP_IVAR from 50 refits of the σ fit, each a trust-region
//! reflective fit from its fixed cold start x0 (c = 1, τ = 0.1, σ nominal) stopped at
//! ftol = 1e-6. Those fits stop early in the valley where τ_V and the template mix trade
//! off (≈ 50 residual evaluations each), so FastSpecFit's σ★ variance mixes the noise
//! response with where each optimiser path happened to stop. This module minimises each
//! refit's χ² instead (the same model, data, weights and bounds; only the optimiser
//! differs), from the best fit x̂:
//!
//! * variable projection: at every trial (τ_V, σ) the template coefficients are the NNLS
//!   solution on the templates' columns P (one pass over L that skips the τ and σ columns);
//! * Newton steps on the projected χ²/2 in (τ_V, σ), clamped to the bounds (a variable at a
//!   bound its gradient pushes against is held), backtracked on failure to the minimum of the
//!   quadratic through both ends and the slope (factor 0.1–0.5). The gradient
//!   is exact (Danskin: J_pᵀr at the NNLS coefficients, from the adjoint Lᵀ(√ivar·r)); the
//!   Hessian at x̂ is exact — the Schur complement of the free templates' block in the full
//!   Hessian, whose second-order terms rᵀ∂²f (the Gaussian kernel's second σ-derivative
//!   included) matter: the fit has large, template-mismatch residuals that correlate with
//!   the σ-curvature of the absorption lines, and the Gauss–Newton matrix alone overshoots
//!   by ≈ 2× and zig-zags along the valley — and BFGS-updated after each accepted step;
//! * the templates' columns and their (τ, σ)-derivatives at x̂ are cached once per target,
//!   so a refit starts without a pass over L;
//! * stop when the proposed step is below 1e-6 of σ and 1e-5 in τ_V, or its predicted
//!   decrease of χ²/2 is below 1e-11 of χ²/2 (≈ 1e-3 km/s for these fits, 1e-4 of the
//!   refits' scatter), or an accepted step gains less than 1e-11, or a step across one of
//!   the truncated Gaussian's radius jumps fails from within 1e-5 of it (χ²(σ) is
//!   step-wise discontinuous there; a minimum on such a jump is otherwise approached by
//!   ever shorter steps).
//!
//! Deviation (measured on the 200-target benchmark file, 37 targets with a σ fit, against
//! FastSpecFit 3.6.1 on the same Monte Carlo draws): VDISP_IVAR median ratio 1.017 (a 2%
//! smaller variance: the optimiser scatter FastSpecFit adds), 86.5% of targets within 30%
//! (exact FastSpecFit paths, `--vdisp-mc fsf`: 89%), and a per-target ratio scatter that is
//! FastSpecFit's own stopping noise on 50 draws. Starting the TRF refits from x̂ with
//! FastSpecFit's ftol instead stops them after a step or two (VDISP_IVAR +15%); converging
//! them with the TRF from x̂ (ftol 1e-10) gives this module's minima (the same statistics)
//! at ≈ 22 evaluations per refit; this solver takes ≈ 5.7 passes.

#![allow(
    clippy::needless_range_loop,
    reason = "index loops over the 2×2 matrices and the free-template blocks"
)]

use super::jointcheb::nnls_gram;
use super::vdispfit::VdispProblem;
use crate::kernels::nnls::{nnls, MatRef, NnlsOptions, NnlsWorkspace};
use crate::kernels::KernelError;

/// Relative σ step that ends a refit.
const SIGMA_RTOL: f64 = 1e-6;
/// τ_V step that ends a refit.
const TAU_ATOL: f64 = 1e-5;
/// Relative decrease of χ² that ends a refit.
const CHI2_RTOL: f64 = 1e-11;
/// Predicted decrease of χ²/2 (relative) below which a step is rounding noise.
const PRED_RTOL: f64 = 1e-11;
/// Relative distance in σ to a kernel-radius jump within which a failed step across it
/// ends a refit (χ²(σ) steps up there; its minimum is the jump itself).
const KINK_RTOL: f64 = 1e-5;
/// Evaluation budget of one refit (each evaluation: one σ-fit pass and an NNLS).
const MAX_EVAL: usize = 200;

/// Per-target data at the best fit x̂, shared by the refits: the templates' Jacobian
/// columns and their τ- and σ-derivatives (`[P | ∂_τP | ∂_σP]`, m rows each).
#[derive(Debug, Default)]
struct Pin {
    p: [f64; 2],
    cols: Vec<f64>,
}

/// Scratch of [`converge_sigma`], reused across the refits of a target (make a new one per
/// target: it caches the best fit's columns).
#[derive(Debug, Default)]
pub struct McSigmaWorkspace {
    d: Vec<f64>,
    r: Vec<f64>,
    r_try: Vec<f64>,
    c: Vec<f64>,
    c_try: Vec<f64>,
    x: Vec<f64>,
    jt: Vec<f64>,
    js: Vec<f64>,
    nnls: Option<NnlsWorkspace>,
    pin: Option<Pin>,
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

/// Σ a_i b_i in four interleaved partial sums.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for q in 0..4 {
            acc[q] += x[q] * y[q];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// NNLS of the data on the template columns `pm` (m × nT): coefficients into `c_try`,
/// residual P·c − d into `r_try`; returns χ²/2. Lawson–Hanson on the normal equations
/// (PᵀP, Pᵀd from one pass over the columns; the templates' condition number squared
/// costs ~1e-10 in c, far below the refits' scatter), falling back to the QR-reduced NNLS
/// when a passive block is numerically singular.
fn solve_columns(
    pm: &[f64],
    m: usize,
    nt: usize,
    ws: &mut McSigmaWorkspace,
) -> Result<f64, KernelError> {
    let mut g = vec![0.0; nt * nt];
    let mut h = vec![0.0; nt];
    for t in 0..nt {
        let pt = &pm[t * m..(t + 1) * m];
        h[t] = dot(pt, &ws.d);
        for u in 0..=t {
            let v = dot(pt, &pm[u * m..(u + 1) * m]);
            g[t * nt + u] = v;
            g[u * nt + t] = v;
        }
    }
    ws.c_try.resize(nt, 0.0);
    if !nnls_gram(&g, &h, nt, &mut ws.c_try) {
        let nn = ws.nnls.get_or_insert_with(|| NnlsWorkspace::new(m, nt));
        nnls(
            MatRef::from_column_major_slice(pm, m, nt),
            &ws.d,
            &mut ws.c_try,
            &NnlsOptions::default(),
            nn,
        )?;
    }
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
    Ok(0.5 * dot(&ws.r_try, &ws.r_try))
}

/// χ²/2 at (τ, σ) with the NNLS coefficients (one pass over L): fills `c_try`, `r_try`.
/// `quasi`: the pass skips the τ and σ columns (the gradient comes from the adjoint);
/// else they are made at `c_guess` for the exact-Hessian path.
fn eval(
    prob: &mut VdispProblem<'_>,
    p: [f64; 2],
    c_guess: &[f64],
    quasi: bool,
    ws: &mut McSigmaWorkspace,
) -> Result<f64, KernelError> {
    let nt = prob.ntemplate();
    let m = prob.n_active();
    if quasi {
        let pm = prob.template_columns_at(p)?;
        return solve_columns(pm, m, nt, ws);
    }
    ws.x.clear();
    ws.x.extend_from_slice(&p);
    ws.x.extend_from_slice(c_guess);
    let jb = prob.columns_at(&ws.x)?;
    solve_columns(&jb[2 * m..(2 + nt) * m], m, nt, ws)
}

/// The Hessian of the projected χ²/2 from J_τ, J_σ and the template columns `pcol(t)` at
/// the coefficients `c` (free set c_t > 0): the exact one (the Schur complement of the
/// free templates' block in the full Hessian, with the second-order terms `bd`, `rpp` of
/// [`VdispProblem::residual_second_order`]) when `second` and it is positive definite,
/// else the Gauss–Newton matrix.
fn hessian<'a>(
    jt: &[f64],
    js: &[f64],
    pcol: impl Fn(usize) -> &'a [f64],
    c: &[f64],
    second: Option<(&[f64], &[f64; 3])>,
) -> [[f64; 2]; 2] {
    let nt = c.len();
    let jp = [jt, js];
    let mut hgn = [[0.0; 2]; 2];
    for i in 0..2 {
        for j in i..2 {
            hgn[i][j] = dot(jp[i], jp[j]);
            hgn[j][i] = hgn[i][j];
        }
    }
    let mut hex = hgn;
    if let Some((_, rpp)) = second {
        hex[0][0] += rpp[0];
        hex[0][1] += rpp[1];
        hex[1][0] += rpp[1];
        hex[1][1] += rpp[2];
    }
    let free: Vec<usize> = (0..nt).filter(|&t| c[t] > 0.0).collect();
    let nf = free.len();
    if nf > 0 {
        let mut gff = vec![0.0; nf * nf];
        // G_Fp and G_Fp + B_F, per free template and parameter
        let mut gfp = vec![[0.0; 2]; nf];
        let mut mfp = vec![[0.0; 2]; nf];
        for (a, &ta) in free.iter().enumerate() {
            for (b, &tb) in free.iter().enumerate().skip(a) {
                let v = dot(pcol(ta), pcol(tb));
                gff[a * nf + b] = v;
                gff[b * nf + a] = v;
            }
            for q in 0..2 {
                gfp[a][q] = dot(pcol(ta), jp[q]);
                mfp[a][q] = gfp[a][q] + second.map_or(0.0, |(bd, _)| bd[q * nt + ta]);
            }
        }
        if !cholesky(&mut gff, nf) {
            return hgn;
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
    if second.is_some() && pd(&hex) {
        hex
    } else {
        hgn
    }
}

/// Gradient and Hessian at the accepted point (τ, σ) = `p` with the coefficients `ws.c`
/// and residual `ws.r`, from one pass over L for J_τ and J_σ.
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
    let (mut rpp, mut gu) = ([0.0; 3], [0.0; 2]);
    let second = prob.residual_second_order(&ws.r, &mut gu, &mut bd, &mut rpp);
    let jb = prob.columns_at(&ws.x)?;
    let col = |k: usize| &jb[k * m..(k + 1) * m];
    let g = [dot(col(0), &ws.r), dot(col(1), &ws.r)];
    let h = hessian(
        col(0),
        col(1),
        |t| col(2 + t),
        &ws.c,
        second.then_some((&bd[..], &rpp)),
    );
    Ok((g, h))
}

/// H ← H + yyᵀ/(yᵀs) − (Hs)(Hs)ᵀ/(sᵀHs) when the curvature condition yᵀs > 0 holds.
fn bfgs(h: &mut [[f64; 2]; 2], s: [f64; 2], y: [f64; 2]) {
    let sy = s[0] * y[0] + s[1] * y[1];
    let hs = [
        h[0][0] * s[0] + h[0][1] * s[1],
        h[1][0] * s[0] + h[1][1] * s[1],
    ];
    let shs = s[0] * hs[0] + s[1] * hs[1];
    if !(sy > 0.0 && shs > 0.0 && sy.is_finite() && shs.is_finite()) {
        return;
    }
    for i in 0..2 {
        for j in 0..2 {
            h[i][j] += y[i] * y[j] / sy - hs[i] * hs[j] / shs;
        }
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

/// The first evaluation of a refit at the best fit from the cached columns (no pass over
/// L): χ²/2, gradient, Hessian (exact when the second-order terms are available) and
/// whether the BFGS updates may follow.
#[allow(clippy::type_complexity)]
fn start_from_pin(
    prob: &mut VdispProblem<'_>,
    p: [f64; 2],
    pin: &Pin,
    ws: &mut McSigmaWorkspace,
    bd: &mut [f64],
    rpp: &mut [f64; 3],
) -> Result<(f64, [f64; 2], [[f64; 2]; 2], bool), KernelError> {
    let nt = prob.ntemplate();
    let m = prob.n_active();
    let phi = solve_columns(&pin.cols[..nt * m], m, nt, ws)?;
    std::mem::swap(&mut ws.c, &mut ws.c_try);
    std::mem::swap(&mut ws.r, &mut ws.r_try);
    prob.prepare_at(p, &ws.c)?;
    let mut gu = [0.0; 2];
    if !prob.residual_second_order(&ws.r, &mut gu, bd, rpp) {
        let (g, h) = gradient(prob, p, ws)?;
        return Ok((phi, g, h, false));
    }
    let comb = |base: usize, c: &[f64], out: &mut Vec<f64>| {
        out.clear();
        out.resize(m, 0.0);
        for (t, &ct) in c.iter().enumerate() {
            if ct != 0.0 {
                let col = &pin.cols[(base + t) * m..(base + t + 1) * m];
                for (o, &v) in out.iter_mut().zip(col) {
                    *o += ct * v;
                }
            }
        }
    };
    comb(nt, &ws.c, &mut ws.jt);
    comb(2 * nt, &ws.c, &mut ws.js);
    let h = hessian(
        &ws.jt,
        &ws.js,
        |t| &pin.cols[t * m..(t + 1) * m],
        &ws.c,
        Some((&*bd, &*rpp)),
    );
    Ok((phi, gu, h, true))
}

/// Minimise the σ fit's χ² for the data set by [`VdispProblem::set_data`] over τ_V ∈
/// [lb₀, ub₀], σ ∈ [lb₁, ub₁], c ≥ 0, from `start` = (τ, σ, c…) (the best fit of the
/// observed spectrum).
///
/// The first refit of a target caches the templates' columns and their (τ, σ)-derivatives
/// at `start` (one pass over L), so each refit starts with the exact Hessian there without
/// a pass; each accepted step then costs one pass (the trial's NNLS) and one σ-derivative
/// convolution, its gradient coming from the adjoint of L and its Hessian from BFGS updates
/// of the starting one. Kernels wider than the direct-convolution radius fall back to a
/// second pass per step for the exact Hessian.
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
    let (lbl, ubl) = ([lb[0], lb[1]], [ub[0], ub[1]]);
    let clamp = |p: [f64; 2], lo: [f64; 2], hi: [f64; 2]| {
        [p[0].clamp(lo[0], hi[0]), p[1].clamp(lo[1], hi[1])]
    };
    let mut p = clamp([start[0], start[1]], lbl, ubl);
    if ws.pin.as_ref().is_none_or(|q| q.p != p) {
        let mut cols = Vec::new();
        ws.pin = prob
            .template_jacobians_at(p, &mut cols)?
            .then_some(Pin { p, cols });
    }
    let mut bd = vec![0.0; 2 * nt];
    let mut rpp = [0.0; 3];
    let (mut phi, mut g, mut h, quasi);
    if let Some(pin) = ws.pin.take() {
        let res = start_from_pin(prob, p, &pin, ws, &mut bd, &mut rpp);
        ws.pin = Some(pin);
        (phi, g, h, quasi) = res?;
    } else {
        let c0: Vec<f64> = start[2..].iter().map(|&c| c.max(0.0)).collect();
        phi = eval(prob, p, &c0, false, ws)?;
        std::mem::swap(&mut ws.c, &mut ws.c_try);
        std::mem::swap(&mut ws.r, &mut ws.r_try);
        (g, h) = gradient(prob, p, ws)?;
        quasi = false;
    }
    ws.c_try.resize(nt, 0.0);
    'outer: while ws.nfev < MAX_EVAL {
        // variables held at a bound the gradient pushes against
        let free =
            [0, 1].map(|i| !((p[i] <= lbl[i] && g[i] > 0.0) || (p[i] >= ubl[i] && g[i] < 0.0)));
        if !free[0] && !free[1] {
            break;
        }
        // the Newton direction on the free variables (H is positive definite: the exact
        // Hessian only when it is, else Gauss–Newton, then BFGS updates that keep it so)
        let dir = if free[0] && free[1] {
            let det = h[0][0] * h[1][1] - h[0][1] * h[1][0];
            if det.is_nan() || det <= 0.0 {
                break;
            }
            [
                -(h[1][1] * g[0] - h[0][1] * g[1]) / det,
                -(h[0][0] * g[1] - h[1][0] * g[0]) / det,
            ]
        } else if free[0] {
            [-g[0] / h[0][0], 0.0]
        } else {
            [0.0, -g[1] / h[1][1]]
        };
        // backtracking along it: the full step, then the minimum of the quadratic through
        // χ²/2 at both ends and the slope at p (within [0.1, 0.5] of the last trial)
        let mut alpha = 1.0;
        loop {
            let pn = clamp([p[0] + alpha * dir[0], p[1] + alpha * dir[1]], lbl, ubl);
            if !(pn[0].is_finite() && pn[1].is_finite()) || pn == p {
                break 'outer;
            }
            // converged when the step is below the tolerances or its predicted decrease is
            // at the rounding level of χ²
            let (d0, d1) = (pn[0] - p[0], pn[1] - p[1]);
            let slope = g[0] * d0 + g[1] * d1;
            let pred =
                -slope - 0.5 * (h[0][0] * d0 * d0 + 2.0 * h[0][1] * d0 * d1 + h[1][1] * d1 * d1);
            if (d1.abs() <= SIGMA_RTOL * p[1].abs().max(1.0) && d0.abs() <= TAU_ATOL)
                || pred.abs() <= PRED_RTOL * phi
                || slope >= 0.0
            {
                break 'outer;
            }
            let cg = std::mem::take(&mut ws.c);
            let res = eval(prob, pn, &cg, quasi, ws);
            ws.c = cg;
            let phin = res?;
            if phin < phi {
                let dp = [d0, d1];
                let dphi = phi - phin;
                p = pn;
                phi = phin;
                std::mem::swap(&mut ws.c, &mut ws.c_try);
                std::mem::swap(&mut ws.r, &mut ws.r_try);
                if (d1.abs() <= SIGMA_RTOL * p[1].abs().max(1.0) && d0.abs() <= TAU_ATOL)
                    || dphi <= CHI2_RTOL * phi
                {
                    break 'outer;
                }
                let mut gn = [0.0; 2];
                prob.prepare_at(p, &ws.c)?;
                if quasi && prob.residual_gradient(&ws.r, &mut gn) {
                    bfgs(&mut h, dp, [gn[0] - g[0], gn[1] - g[1]]);
                    g = gn;
                } else {
                    (g, h) = gradient(prob, p, ws)?;
                }
                break;
            }
            if ws.nfev >= MAX_EVAL {
                break 'outer;
            }
            // a failed step across one of the truncated kernel's radius jumps from within
            // KINK_RTOL of it: the minimum is on the jump (χ² steps up across it)
            let (rlo, rhi) = prob.kernel_radius_interval(p[1]);
            let near = KINK_RTOL * p[1].abs().max(1.0);
            if (pn[1] > rhi && rhi - p[1] <= near) || (pn[1] < rlo && p[1] - rlo <= near) {
                break 'outer;
            }
            let curv = phin - phi - slope;
            let shrink = if curv > 0.0 {
                (-slope / (2.0 * curv)).clamp(0.1, 0.5)
            } else {
                0.5
            };
            alpha *= shrink;
        }
    }
    Ok(McSigmaFit {
        tauv: p[0],
        sigma: p[1],
        chi2: 2.0 * phi,
    })
}
