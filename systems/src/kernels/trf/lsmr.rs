//! LSMR (Fong & Saunders 2011) for min ‖A x − b‖² + damp²‖x‖², as scipy's
//! `scipy.sparse.linalg.lsmr` performs it (x0 = 0), on a matrix-free operator.

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

/// Solve the damped least-squares problem; the solution is left in `w.x`.
/// Returns the number of iterations.
pub(super) fn lsmr<A: LinOp>(a: &mut A, b: &[f64], prm: LsmrParams, w: LsmrBufs<'_>) -> usize {
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
    while itn < prm.maxiter {
        itn += 1;
        scale(u, -alpha);
        a.matvec(v, ut);
        for (ui, &t) in u.iter_mut().zip(ut.iter()) {
            *ui += t;
        }
        beta = norm(u);
        if beta > 0.0 {
            scale(u, 1.0 / beta);
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
