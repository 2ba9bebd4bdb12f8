//! LSMR (Fong & Saunders 2011) for min ‖A x − b‖² + damp²‖x‖², as scipy's
//! `scipy.sparse.linalg.lsmr` performs it (x0 = 0), on a matrix-free operator.

use crate::kernels::simd::dispatch;

use super::common::norm;

/// A linear operator A (rows × cols) known through products.
pub(super) trait LinOp {
    /// out = A x.
    fn matvec(&mut self, x: &[f64], out: &mut [f64]);
    /// out = Aᵀ y.
    fn rmatvec(&mut self, y: &[f64], out: &mut [f64]);
}

/// LSMR settings.
#[derive(Clone, Copy)]
pub(super) struct LsmrParams {
    pub(super) damp: f64,
    pub(super) atol: f64,
    pub(super) btol: f64,
    pub(super) conlim: f64,
    pub(super) maxiter: usize,
}

/// Buffers: `u`, `ut` of length rows; `v`, `h`, `hbar`, `vt`, `x` of length cols.
pub(super) struct LsmrBufs<'a> {
    pub(super) u: &'a mut [f64],
    pub(super) ut: &'a mut [f64],
    pub(super) v: &'a mut [f64],
    pub(super) vt: &'a mut [f64],
    pub(super) h: &'a mut [f64],
    pub(super) hbar: &'a mut [f64],
    pub(super) x: &'a mut [f64],
}

/// `np.sign`.
fn sgn(a: f64) -> f64 {
    if a > 0.0 {
        1.0
    } else if a < 0.0 {
        -1.0
    } else {
        a
    }
}

/// Stable Givens rotation (c, s, r) of (a, b) (scipy `_sym_ortho`).
fn sym_ortho(a: f64, b: f64) -> (f64, f64, f64) {
    if b == 0.0 {
        (sgn(a), 0.0, a.abs())
    } else if a == 0.0 {
        (0.0, sgn(b), b.abs())
    } else if b.abs() > a.abs() {
        let tau = a / b;
        let s = sgn(b) / (1.0 + tau * tau).sqrt();
        let c = s * tau;
        (c, s, b / s)
    } else {
        let tau = b / a;
        let c = sgn(a) / (1.0 + tau * tau).sqrt();
        let s = c * tau;
        (c, s, a / c)
    }
}

fn scale(v: &mut [f64], s: f64) {
    for x in v.iter_mut() {
        *x *= s;
    }
}

/// u ← u·c + ut with ‖u‖ returned, over the rows of `support` (sorted,
/// disjoint ranges) taking `ut` there and 0 elsewhere, where u is first
/// multiplied by the deferred factor `pending` (if any). Every element goes
/// through the same roundings as `scale(u, pending)`, `scale(u, c)`,
/// `u += ut`, `norm(u)` (whose 4-lane sum is reproduced exactly; adding an
/// exact 0 outside the support is skipped), so the result is bit-identical.
/// Runs in pulp's runtime dispatch (AVX2 where available: the four lanes
/// are one vector; no fused multiply–add, so every path gives the same bits).
fn fused_update(
    u: &mut [f64],
    ut: &[f64],
    c: f64,
    pending: Option<f64>,
    support: &[(usize, usize)],
) -> f64 {
    dispatch(
        #[inline(always)]
        || fused_body(u, ut, c, pending, support),
    )
}

/// The rows outside the support: u ← (u·p)·c or u·c.
#[inline(always)]
fn outside(u: &mut [f64], a: usize, b: usize, acc: &mut [f64; 4], c: f64, pending: Option<f64>) {
    match pending {
        Some(p) => lane_update(u, a, b, acc, |x, _| (x * p) * c),
        None => lane_update(u, a, b, acc, |x, _| x * c),
    }
}

#[inline(always)]
fn fused_body(
    u: &mut [f64],
    ut: &[f64],
    c: f64,
    pending: Option<f64>,
    support: &[(usize, usize)],
) -> f64 {
    let len = u.len();
    let ut = &ut[..len];
    let full = len - len % 4;
    let mut acc = [0.0f64; 4];
    let mut next = 0;
    for &(a, b) in support {
        let (a, b) = (a.min(full), b.min(full));
        if next < a {
            outside(u, next, a, &mut acc, c, pending);
        }
        if a < b {
            lane_update(u, a, b, &mut acc, |x, i| x * c + ut[i]);
        }
        next = next.max(b);
    }
    if next < full {
        outside(u, next, full, &mut acc, c, pending);
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    // remainder rows, summed sequentially as in `dot`
    for i in full..len {
        let inside = support.iter().any(|r| r.0 <= i && i < r.1);
        let x = if inside {
            u[i] * c + ut[i]
        } else if let Some(p) = pending {
            (u[i] * p) * c
        } else {
            u[i] * c
        };
        u[i] = x;
        s += x * x;
    }
    s.sqrt()
}

/// u[i] ← f(u[i], i) for i in [a, b), accumulating u[i]² into lane i mod 4.
#[inline(always)]
fn lane_update<F: Fn(f64, usize) -> f64>(
    u: &mut [f64],
    a: usize,
    b: usize,
    acc: &mut [f64; 4],
    f: F,
) {
    let mut i = a;
    while i < b && !i.is_multiple_of(4) {
        let x = f(u[i], i);
        u[i] = x;
        acc[i % 4] += x * x;
        i += 1;
    }
    let mut lanes = *acc;
    let nb = (b - i) / 4;
    for (q, ch) in u[i..i + 4 * nb].chunks_exact_mut(4).enumerate() {
        let k = i + 4 * q;
        let mut x = [0.0f64; 4];
        for l in 0..4 {
            x[l] = f(ch[l], k + l);
        }
        ch.copy_from_slice(&x);
        for l in 0..4 {
            lanes[l] += x[l] * x[l];
        }
    }
    *acc = lanes;
    i += 4 * nb;
    while i < b {
        let x = f(u[i], i);
        u[i] = x;
        acc[i % 4] += x * x;
        i += 1;
    }
}

/// Solve the damped least-squares problem; the solution is left in `w.x`.
/// Returns the number of iterations.
///
/// With a row `support` (sorted disjoint row ranges outside which A is
/// zero; `a.matvec` then need only write those rows and `a.rmatvec` only
/// read them) the per-iteration vector updates of u are fused into one pass
/// and the 1/β scaling of the rows outside the support is deferred into the
/// next pass — the same floating-point operations on every element, so the
/// iterates are bit-identical to the plain loop.
pub(super) fn lsmr<A: LinOp>(
    a: &mut A,
    b: &[f64],
    prm: LsmrParams,
    w: LsmrBufs<'_>,
    support: Option<&[(usize, usize)]>,
) -> usize {
    let LsmrBufs {
        u,
        ut,
        v,
        vt,
        h,
        hbar,
        x,
    } = w;
    let damp = prm.damp;
    u.copy_from_slice(b);
    let normb = norm(b);
    x.fill(0.0);
    let mut beta = normb;
    let mut alpha;
    if beta > 0.0 {
        scale(u, 1.0 / beta);
        a.rmatvec(u, v);
        alpha = norm(v);
    } else {
        v.fill(0.0);
        alpha = 0.0;
    }
    if alpha > 0.0 {
        scale(v, 1.0 / alpha);
    }
    let mut itn = 0usize;
    let mut zetabar = alpha * beta;
    let mut alphabar = alpha;
    let mut rho = 1.0f64;
    let mut rhobar = 1.0f64;
    let mut cbar = 1.0f64;
    let mut sbar = 0.0f64;
    h.copy_from_slice(v);
    hbar.fill(0.0);
    let mut betadd = beta;
    let mut betad = 0.0f64;
    let mut rhodold = 1.0f64;
    let mut tautildeold = 0.0f64;
    let mut thetatilde = 0.0f64;
    let mut zeta = 0.0f64;
    let mut d = 0.0f64;
    let mut norm_a2 = alpha * alpha;
    let mut maxrbar = 0.0f64;
    let mut minrbar = 1e100f64;
    let ctol = if prm.conlim > 0.0 {
        1.0 / prm.conlim
    } else {
        0.0
    };
    let normar = alpha * beta;
    if normar == 0.0 || normb == 0.0 {
        return itn;
    }
    let mut pending: Option<f64> = None;
    while itn < prm.maxiter {
        itn += 1;
        if let Some(sup) = support {
            a.matvec(v, ut);
            beta = fused_update(u, ut, -alpha, pending.take(), sup);
        } else {
            scale(u, -alpha);
            a.matvec(v, ut);
            for (ui, &t) in u.iter_mut().zip(ut.iter()) {
                *ui += t;
            }
            beta = norm(u);
        }
        if beta > 0.0 {
            let inv = 1.0 / beta;
            if let Some(sup) = support {
                for &(a, b) in sup {
                    scale(&mut u[a..b], inv);
                }
                pending = Some(inv);
            } else {
                scale(u, inv);
            }
            scale(v, -beta);
            a.rmatvec(u, vt);
            for (vi, &t) in v.iter_mut().zip(vt.iter()) {
                *vi += t;
            }
            alpha = norm(v);
            if alpha > 0.0 {
                scale(v, 1.0 / alpha);
            }
        }
        let (chat, shat, alphahat) = sym_ortho(alphabar, damp);
        let rhoold = rho;
        let (c, s, rho_new) = sym_ortho(alphahat, beta);
        rho = rho_new;
        let thetanew = s * alpha;
        alphabar = c * alpha;
        let rhobarold = rhobar;
        let zetaold = zeta;
        let thetabar = sbar * rho;
        let rhotemp = cbar * rho;
        let (cb, sb, rb) = sym_ortho(cbar * rho, thetanew);
        cbar = cb;
        sbar = sb;
        rhobar = rb;
        zeta = cbar * zetabar;
        zetabar *= -sbar;
        let fh = -(thetabar * rho / (rhoold * rhobarold));
        for (hb, &hi) in hbar.iter_mut().zip(h.iter()) {
            *hb *= fh;
            *hb += hi;
        }
        let fx = zeta / (rho * rhobar);
        for (xi, &hb) in x.iter_mut().zip(hbar.iter()) {
            *xi += fx * hb;
        }
        let fh2 = -(thetanew / rho);
        for (hi, &vi) in h.iter_mut().zip(v.iter()) {
            *hi *= fh2;
            *hi += vi;
        }
        // Estimate ‖r‖.
        let betaacute = chat * betadd;
        let betacheck = -shat * betadd;
        let betahat = c * betaacute;
        betadd = -s * betaacute;
        let thetatildeold = thetatilde;
        let (ctildeold, stildeold, rhotildeold) = sym_ortho(rhodold, thetabar);
        thetatilde = stildeold * rhobar;
        rhodold = ctildeold * rhobar;
        betad = -stildeold * betad + ctildeold * betahat;
        tautildeold = (zetaold - thetatildeold * tautildeold) / rhotildeold;
        let taud = (zeta - thetatilde * tautildeold) / rhodold;
        d += betacheck * betacheck;
        let normr = (d + (betad - taud) * (betad - taud) + betadd * betadd).sqrt();
        // Estimate ‖A‖ and cond(A).
        norm_a2 += beta * beta;
        let norm_a = norm_a2.sqrt();
        norm_a2 += alpha * alpha;
        maxrbar = maxrbar.max(rhobarold);
        if itn > 1 {
            minrbar = minrbar.min(rhobarold);
        }
        let cond_a = maxrbar.max(rhotemp) / minrbar.min(rhotemp);
        // Convergence tests.
        let normar = zetabar.abs();
        let normx = norm(x);
        let test1 = normr / normb;
        let test2 = if norm_a * normr != 0.0 {
            normar / (norm_a * normr)
        } else {
            f64::INFINITY
        };
        let test3 = 1.0 / cond_a;
        let t1 = test1 / (1.0 + norm_a * normx / normb);
        let rtol = prm.btol + prm.atol * norm_a * normx / normb;
        let mut istop = 0;
        if itn >= prm.maxiter {
            istop = 7;
        }
        if 1.0 + test3 <= 1.0 {
            istop = 6;
        }
        if 1.0 + test2 <= 1.0 {
            istop = 5;
        }
        if 1.0 + t1 <= 1.0 {
            istop = 4;
        }
        if test3 <= ctol {
            istop = 3;
        }
        if test2 <= prm.atol {
            istop = 2;
        }
        if test1 <= rtol {
            istop = 1;
        }
        if istop > 0 {
            break;
        }
    }
    itn
}
