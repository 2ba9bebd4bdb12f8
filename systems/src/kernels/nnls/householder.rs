//! Level-1 building blocks with LAPACK's conventions: dot products, a safe
//! 2-norm, Householder reflectors (`dlarfg`, `dlarfgp`), their application
//! (`dlarf` on one column) and the non-negative Givens rotation (`dlartgp`).
//!
//! Shared by [`super`] (NNLS) and the TRF solver's QR factorisations.

/// LAPACK `dlamch('S') / dlamch('E')`: below this a reflector is rescaled.
const SMLNUM: f64 = f64::MIN_POSITIVE / (f64::EPSILON * 0.5);

/// Σ aᵢbᵢ with four interleaved accumulators (vectorises well).
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let mut ca = a.chunks_exact(4);
    let mut cb = b.chunks_exact(4);
    for (x, y) in (&mut ca).zip(&mut cb) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    s
}

/// y ← y + α x.
#[inline]
pub(crate) fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += xi * alpha;
    }
}

/// Euclidean norm without destructive overflow or underflow.
pub(crate) fn nrm2(x: &[f64]) -> f64 {
    let ss = dot(x, x);
    if ss.is_finite() && ss > 1e-280 && ss < 1e280 {
        return ss.sqrt();
    }
    if ss == 0.0 && x.iter().all(|&v| v == 0.0) {
        return 0.0;
    }
    let scale = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if scale == 0.0 || !scale.is_finite() {
        return scale;
    }
    let inv = 1.0 / scale;
    let mut s = 0.0;
    for &v in x {
        let t = v * inv;
        s += t * t;
    }
    scale * s.sqrt()
}

/// Fortran `SIGN(a, b)`: |a| with the sign of b.
#[inline]
fn sign(a: f64, b: f64) -> f64 {
    if b >= 0.0 {
        a.abs()
    } else {
        -a.abs()
    }
}

/// Shared rescaling loop of `dlarfg`/`dlarfgp` for tiny β: returns (β, ‖x‖, knt).
fn rescale_tiny(alpha: &mut f64, x: &mut [f64], mut beta: f64, flip: f64) -> (f64, f64, usize) {
    let mut knt = 0;
    let mut xnorm = nrm2(x);
    if beta.abs() < SMLNUM {
        let bignum = 1.0 / SMLNUM;
        loop {
            knt += 1;
            for v in x.iter_mut() {
                *v *= bignum;
            }
            beta *= bignum;
            *alpha *= bignum;
            if !(beta.abs() < SMLNUM && knt < 20) {
                break;
            }
        }
        xnorm = nrm2(x);
        beta = flip * sign(alpha.hypot(xnorm), *alpha);
    }
    (beta, xnorm, knt)
}

/// LAPACK `dlarfgp`: reflector H = I − τ [1; v][1; v]ᵀ with H [α; x] = [β; 0] and
/// β ≥ 0. On return `alpha` holds β and `x` holds v. Returns τ.
pub(crate) fn reflector_nonneg(alpha: &mut f64, x: &mut [f64]) -> f64 {
    let xnorm = nrm2(x);
    if xnorm == 0.0 {
        if *alpha >= 0.0 {
            return 0.0;
        }
        x.fill(0.0);
        *alpha = -*alpha;
        return 2.0;
    }
    let beta0 = sign(alpha.hypot(xnorm), *alpha);
    let (mut beta, xnorm, knt) = rescale_tiny(alpha, x, beta0, 1.0);
    let savealpha = *alpha;
    let mut a = *alpha + beta;
    let tau;
    if beta < 0.0 {
        beta = -beta;
        tau = -a / beta;
    } else {
        a = xnorm * (xnorm / a);
        tau = a / beta;
        a = -a;
    }
    let tau = if tau.abs() <= SMLNUM {
        if savealpha >= 0.0 {
            0.0
        } else {
            x.fill(0.0);
            beta = -savealpha;
            2.0
        }
    } else {
        let s = 1.0 / a;
        for v in x.iter_mut() {
            *v *= s;
        }
        tau
    };
    for _ in 0..knt {
        beta *= SMLNUM;
    }
    *alpha = beta;
    tau
}

/// LAPACK `dlarfg`: reflector with H [α; x] = [β; 0], β = −sign(α)‖[α; x]‖
/// (the `dgeqrf` convention). On return `alpha` holds β and `x` holds v.
/// Returns τ.
pub(crate) fn reflector(alpha: &mut f64, x: &mut [f64]) -> f64 {
    let xnorm = nrm2(x);
    if x.is_empty() || xnorm == 0.0 {
        return 0.0;
    }
    let beta0 = -sign(alpha.hypot(xnorm), *alpha);
    let (mut beta, _, knt) = rescale_tiny(alpha, x, beta0, -1.0);
    let tau = (beta - *alpha) / beta;
    let s = 1.0 / (*alpha - beta);
    for v in x.iter_mut() {
        *v *= s;
    }
    for _ in 0..knt {
        beta *= SMLNUM;
    }
    *alpha = beta;
    tau
}

/// LAPACK `dlarf` on one column: c ← (I − τ [1; v][1; v]ᵀ) c with c = [c₀; c_tail].
#[inline]
pub(crate) fn apply_reflector(v: &[f64], tau: f64, c0: &mut f64, c_tail: &mut [f64]) {
    if tau == 0.0 {
        return;
    }
    let w = *c0 + dot(v, c_tail);
    let temp = -tau * w;
    *c0 += temp;
    axpy(temp, v, c_tail);
}

/// LAPACK `dlartgp`: (c, s, r) with [c s; −s c][f; g] = [r; 0] and r ≥ 0.
pub(crate) fn givens_nonneg(f: f64, g: f64) -> (f64, f64, f64) {
    if g == 0.0 {
        (sign(1.0, f), 0.0, f.abs())
    } else if f == 0.0 {
        (0.0, sign(1.0, g), g.abs())
    } else {
        let ss = f * f + g * g;
        let r = if ss.is_finite() && ss > 1e-280 {
            ss.sqrt()
        } else {
            f.hypot(g)
        };
        (f / r, g / r, r)
    }
}

/// `nextafter(x, toward)` for finite or infinite x (NumPy `np.nextafter`).
pub(crate) fn next_after(x: f64, toward: f64) -> f64 {
    if x.is_nan() || toward.is_nan() {
        return f64::NAN;
    }
    if x == toward {
        return toward;
    }
    if x == 0.0 {
        let tiny = f64::from_bits(1);
        return if toward > 0.0 { tiny } else { -tiny };
    }
    let bits = x.to_bits();
    let up = (toward > x) == (x > 0.0);
    f64::from_bits(if up { bits + 1 } else { bits - 1 })
}
