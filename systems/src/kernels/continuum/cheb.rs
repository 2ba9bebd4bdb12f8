//! Chebyshev interpolant of the photometric design matrix M(τ_V) on the τ_V bounds
//! (SPEC §4.3; a pure speed device, the numbers are those of [`PhotModel::fill`] to
//! ~1e-14 relative).
//!
//! Every entry M[b, t](τ) = Σ_j G[b, t, j]·exp(−τ k_j) + d_t(τ)·H[b] is an entire function
//! of τ, so its Chebyshev series on [0, 2] converges super-exponentially. The main fit and
//! all Monte Carlo refits of a target share M(τ) (only the data vector changes), so the
//! series is computed once per target from direct fills at Chebyshev–Lobatto nodes
//! (degree doubled from 16 until the last two coefficients of every entry are below
//! [`CHEB_RTOL`] of that entry's smallest node value, at most [`CHEB_MAX_DEGREE`]); an
//! objective evaluation then costs one Clenshaw recurrence over the nband·nT entries
//! instead of nwave exponentials and nT·nwave multiply–adds.

use super::model::{PhotModel, TemplateArrays};
use super::varpro::TAUV_BOUNDS;

/// Largest Chebyshev degree tried before giving up (the caller then fills directly).
pub const CHEB_MAX_DEGREE: usize = 128;
/// Convergence threshold of the trailing coefficients, relative to each entry's smallest
/// absolute value over the nodes (plus a rounding floor of 32ε·max).
pub const CHEB_RTOL: f64 = 1e-15;
/// Largest max/min ratio of an entry over the nodes accepted: beyond it the rounding of
/// the series (≈ ε·max) would exceed ~1e-12 of the smallest values (≈ 1.2ε·max/min measured), and the caller fills
/// directly instead.
pub const CHEB_MAX_RANGE: f64 = 1e3;

/// Chebyshev coefficients of M(τ) over [`TAUV_BOUNDS`], `coef[k·ne + e]` with entry
/// e = t·nband + b (the column-major layout of [`PhotModel::fill`]).
#[derive(Debug, Clone, Default)]
pub struct ChebPsi {
    /// Degree n (n + 1 coefficients per entry).
    pub degree: usize,
    /// Number of entries nband·nT.
    pub nentry: usize,
    coef: Vec<f64>,
    b1: Vec<f64>,
    b2: Vec<f64>,
}

/// Map τ ∈ TAUV_BOUNDS to x ∈ [−1, 1].
/// τ_V mapped onto [−1, 1] (the Chebyshev variable of the τ_V bounds).
pub(super) fn to_x(tauv: f64) -> f64 {
    let (lo, hi) = TAUV_BOUNDS;
    (2.0 * tauv - (lo + hi)) / (hi - lo)
}

impl ChebPsi {
    /// Build the interpolant of `model`'s matrix, or `None` if the series has not converged
    /// by [`CHEB_MAX_DEGREE`] or a node value is not finite.
    pub fn new(model: &PhotModel, tpl: &TemplateArrays<'_>) -> Option<Self> {
        let ne = model.nband() * model.ntemplate();
        let nw = tpl.nwave();
        let (mut atten, mut d) = (vec![0.0; nw], vec![0.0; model.ntemplate()]);
        let (lo, hi) = TAUV_BOUNDS;
        let node = |j: usize, n: usize| {
            let x = (std::f64::consts::PI * j as f64 / n as f64).cos();
            0.5 * (lo + hi) + 0.5 * (hi - lo) * x
        };
        // vals[j·ne + e]: M_e at Lobatto node j of degree n.
        let mut n = 16;
        let mut vals = vec![0.0; (n + 1) * ne];
        for j in 0..=n {
            model.fill(
                tpl,
                node(j, n),
                &mut atten,
                &mut d,
                &mut vals[j * ne..(j + 1) * ne],
            );
        }
        loop {
            if vals.iter().any(|v| !v.is_finite()) {
                return None;
            }
            let coef = lobatto_coefficients(&vals, n, ne);
            let mut converged = true;
            for e in 0..ne {
                let (mut minabs, mut maxabs) = (f64::INFINITY, 0.0f64);
                for j in 0..=n {
                    let v = vals[j * ne + e].abs();
                    minabs = minabs.min(v);
                    maxabs = maxabs.max(v);
                }
                if maxabs > CHEB_MAX_RANGE * minabs {
                    return None;
                }
                let tail = coef[(n - 1) * ne + e].abs().max(coef[n * ne + e].abs());
                if tail > CHEB_RTOL * minabs + 32.0 * f64::EPSILON * maxabs {
                    converged = false;
                }
            }
            if converged {
                return Some(ChebPsi {
                    degree: n,
                    nentry: ne,
                    coef,
                    b1: vec![0.0; ne],
                    b2: vec![0.0; ne],
                });
            }
            if 2 * n > CHEB_MAX_DEGREE {
                return None;
            }
            // Nested nodes: node j of degree n is node 2j of degree 2n.
            let n2 = 2 * n;
            let mut v2 = vec![0.0; (n2 + 1) * ne];
            for j in 0..=n2 {
                let dst = &mut v2[j * ne..(j + 1) * ne];
                if j % 2 == 0 {
                    dst.copy_from_slice(&vals[(j / 2) * ne..(j / 2 + 1) * ne]);
                } else {
                    model.fill(tpl, node(j, n2), &mut atten, &mut d, dst);
                }
            }
            vals = v2;
            n = n2;
        }
    }

    /// M(τ) into `m` (length `nentry`, column-major `m[t·nband + b]`) by Clenshaw.
    pub fn eval(&mut self, tauv: f64, m: &mut [f64]) {
        clenshaw(
            &self.coef,
            self.nentry,
            self.degree,
            to_x(tauv),
            (&mut self.b1, &mut self.b2),
            m,
        );
    }
}

/// Σ_k a_k T_k(x) for `ne` interleaved series of degree `n` (`coef[k·ne + e]`) into `out`
/// by Clenshaw's recurrence b_k = a_k + 2x·b_{k+1} − b_{k+2}; `b` is scratch of length ≥ ne.
pub(super) fn clenshaw(
    coef: &[f64],
    ne: usize,
    n: usize,
    x: f64,
    b: (&mut [f64], &mut [f64]),
    out: &mut [f64],
) {
    let (b1, b2) = (&mut b.0[..ne], &mut b.1[..ne]);
    let x2 = 2.0 * x;
    b1.fill(0.0);
    b2.fill(0.0);
    // b1 holds b_{k+1}, b2 holds b_{k+2}
    for k in (1..=n).rev() {
        let a = &coef[k * ne..(k + 1) * ne];
        for e in 0..ne {
            let bk = a[e] + x2 * b1[e] - b2[e];
            b2[e] = b1[e];
            b1[e] = bk;
        }
    }
    for e in 0..ne {
        out[e] = coef[e] + x * b1[e] - b2[e];
    }
}

/// Chebyshev coefficients from values at the n + 1 Lobatto nodes cos(πj/n) (DCT-I),
/// `ne` interleaved series (`vals[j·ne + e]`).
pub(super) fn lobatto_coefficients(vals: &[f64], n: usize, ne: usize) -> Vec<f64> {
    let cos_tab: Vec<f64> = (0..2 * n)
        .map(|m| (std::f64::consts::PI * m as f64 / n as f64).cos())
        .collect();
    let mut coef = vec![0.0; (n + 1) * ne];
    for k in 0..=n {
        let ck = &mut coef[k * ne..(k + 1) * ne];
        for j in 0..=n {
            let w = if j == 0 || j == n { 0.5 } else { 1.0 };
            let c = w * cos_tab[(j * k) % (2 * n)];
            for (o, v) in ck.iter_mut().zip(&vals[j * ne..(j + 1) * ne]) {
                *o += c * v;
            }
        }
        let s = if k == 0 || k == n { 1.0 } else { 2.0 } / n as f64;
        ck.iter_mut().for_each(|v| *v *= s);
    }
    coef
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lobatto_reproduces_exponentials() {
        // Entries exp(−τk) for a few k, as a one-band "model" would give them (k = 3.4:
        // max/min ≈ CHEB_MAX_RANGE, the worst case accepted).
        let ks = [0.3, 1.0, 3.0, 3.4];
        let ne = ks.len();
        let n = 64;
        let mut vals = vec![0.0; (n + 1) * ne];
        for j in 0..=n {
            let tau = 1.0 + (std::f64::consts::PI * j as f64 / n as f64).cos();
            for (e, k) in ks.iter().enumerate() {
                vals[j * ne + e] = (-tau * k).exp();
            }
        }
        let coef = lobatto_coefficients(&vals, n, ne);
        let mut c = ChebPsi {
            degree: n,
            nentry: ne,
            coef,
            b1: vec![0.0; ne],
            b2: vec![0.0; ne],
        };
        let mut m = vec![0.0; ne];
        let mut worst = 0.0f64;
        for i in 0..=200 {
            let tau = 2.0 * i as f64 / 200.0;
            c.eval(tau, &mut m);
            for (e, k) in ks.iter().enumerate() {
                let want = (-tau * k).exp();
                let rel = ((m[e] - want) / want).abs();
                worst = worst.max(rel);
                assert!(rel < 2e-12, "k={k} tau={tau}: {rel:e}");
            }
        }
        eprintln!("worst relative error {worst:e}");
    }
}
