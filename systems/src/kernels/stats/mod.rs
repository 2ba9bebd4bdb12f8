//! Small statistics and quadrature utilities (SPEC.md Appendix A.5, A.6, A.8).
//!
//! Every function reproduces the arithmetic of the routine FastSpecFit 3.6.1
//! actually calls, so results agree to the last bit or nearly so:
//!
//! * [`median`], [`quantile`], [`quantiles`]: FastSpecFit's `util.median` and
//!   `util.quantile` are Numba-compiled `np.median` / `np.quantile`. For sorted
//!   values a₀ ≤ … ≤ a_{n−1} and a quantile q ∈ [0, 1], with p = 100q,
//!   rank = 1 + (n−1)·(p/100), f = ⌊rank⌋, μ = rank − f:
//!   Q(q) = a_{f−1}(1 − μ) + a_f μ (NumPy's linear "type 7" rule, Numba's
//!   arithmetic); q = 0 and q = 1 return the minimum and maximum. The median of
//!   an even count is (a_{n/2−1} + a_{n/2})/2. Any NaN in the data gives NaN.
//! * [`robust_sigma`]: σ = (Q(0.75) − Q(0.25))/1.349.
//! * [`sigmaclip`]: `util.sigmaclip` (A.6), iterative clipping about the mean with
//!   the population standard deviation √max(0, Σc²/n − mean²), the sums kept as
//!   running sums from which rejected values are subtracted.
//! * [`var2ivar`], [`ivar2var`]: the guarded inversions of `util`, with
//!   [`TINY`] / [`SQTINY`] thresholds.
//! * [`simpson`]: `scipy.integrate.simpson(y, x=x)` with scipy ≥ 1.11 semantics
//!   (composite irregular Simpson, Cartwright's correction for the last interval
//!   of an even count), summed with NumPy's pairwise summation ([`pairwise_sum`]).
//!
//! * [`SmoothingSpline`]: FITPACK's `curfit` smoothing spline as scipy's
//!   `UnivariateSpline(x, y, w, k, s=None, ext=3)` (A.4).
//!
//! Scratch buffers are passed in as `&mut Vec<f64>`; they are cleared and refilled,
//! so they only allocate until they have grown to the largest input seen.

use super::KernelError;

mod spline;
pub use spline::SmoothingSpline;

/// FastSpecFit's `TINY`: the smallest positive (subnormal) `float32`, 2⁻¹⁴⁹.
pub const TINY: f64 = 1.401298464324817e-45;
/// FastSpecFit's `SQTINY`: `np.sqrt(TINY)` evaluated in `float32`.
pub const SQTINY: f64 = 3.743392066509216e-23;

/// NumPy's pairwise summation of a contiguous `float64` array (`np.sum`).
///
/// Blocks of at most 128 values are summed with eight interleaved accumulators
/// combined as ((r₀+r₁)+(r₂+r₃))+((r₄+r₅)+(r₆+r₇)), the remainder added in order;
/// longer arrays are split in two halves (the first a multiple of 8) recursively.
pub fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let full = n - n % 8;
        let mut i = 8;
        while i < full {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[full..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// Copy `a` into `scratch`; `true` if any value is NaN.
fn load(a: &[f64], scratch: &mut Vec<f64>) -> bool {
    scratch.clear();
    scratch.extend_from_slice(a);
    a.iter().any(|v| v.is_nan())
}

/// The `k`-th and `(k+1)`-th smallest values of `s` (partially reorders `s`).
fn select_two(s: &mut [f64], k: usize) -> (f64, f64) {
    let (_, kth, rest) = s.select_nth_unstable_by(k, f64::total_cmp);
    let lo = *kth;
    let hi = rest.iter().copied().fold(f64::INFINITY, f64::min);
    (lo, if rest.is_empty() { lo } else { hi })
}

/// Median of `a` (Numba `np.median` arithmetic); NaN if `a` contains NaN.
///
/// # Errors
/// [`KernelError::Shape`] if `a` is empty (NumPy would return NaN with a warning).
pub fn median(a: &[f64], scratch: &mut Vec<f64>) -> Result<f64, KernelError> {
    let n = a.len();
    if n == 0 {
        return Err(KernelError::Shape("median of an empty array".into()));
    }
    if load(a, scratch) {
        return Ok(f64::NAN);
    }
    let half = n / 2;
    if n.is_multiple_of(2) {
        let (lo, hi) = select_two(scratch, half - 1);
        Ok((lo + hi) / 2.0)
    } else {
        let (_, m, _) = scratch.select_nth_unstable_by(half, f64::total_cmp);
        Ok(*m)
    }
}

/// One quantile of the values already loaded (finite or ±inf, no NaN) in `s`.
fn quantile_loaded(s: &mut [f64], q: f64) -> f64 {
    let n = s.len();
    if n == 1 {
        return s[0];
    }
    let p = q * 100.0;
    let all_finite = s.iter().all(|v| v.is_finite());
    if p == 100.0 {
        let val = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !all_finite && !val.is_finite() {
            return f64::NAN;
        }
        val
    } else if p == 0.0 {
        let mut val = s.iter().copied().fold(f64::INFINITY, f64::min);
        if !all_finite {
            // Numba's heuristics for infinite values, kept as they are.
            let n_pos = s.iter().filter(|&&v| v == f64::INFINITY).count();
            let n_neg = s.iter().filter(|&&v| v == f64::NEG_INFINITY).count();
            let n_fin = n - n_pos - n_neg;
            if n_fin == 0 || (n_pos == 1 && n == 2) || n_neg > 1 {
                val = f64::NAN;
            }
            if n_fin == 1 && n_pos > 1 && n_neg != 1 {
                val = f64::NAN;
            }
        }
        val
    } else {
        let rank = 1.0 + (n - 1) as f64 * (p / 100.0);
        let f = rank.floor();
        let mu = rank - f;
        let k = ((f as usize).max(1) - 1).min(n - 2);
        let (lo, hi) = select_two(s, k);
        lo * (1.0 - mu) + hi * mu
    }
}

fn check_q(q: f64) -> Result<(), KernelError> {
    if (0.0..=1.0).contains(&q) {
        Ok(())
    } else {
        Err(KernelError::Domain(format!("quantile {q} outside [0, 1]")))
    }
}

/// Quantile `q` of `a` with NumPy's linear interpolation (Numba `np.quantile`).
///
/// # Errors
/// [`KernelError::Domain`] if `q` is outside [0, 1] (or NaN);
/// [`KernelError::Shape`] if `a` is empty.
pub fn quantile(a: &[f64], q: f64, scratch: &mut Vec<f64>) -> Result<f64, KernelError> {
    check_q(q)?;
    if a.is_empty() {
        return Err(KernelError::Shape("quantile of an empty array".into()));
    }
    if load(a, scratch) {
        return Ok(f64::NAN);
    }
    Ok(quantile_loaded(scratch, q))
}

/// Several quantiles `qs` of `a` into `out` (`util.quantile(a, qs)`).
///
/// # Errors
/// [`KernelError::Domain`] if any q is outside [0, 1]; [`KernelError::Shape`]
/// if `a` is empty or `out.len() != qs.len()`.
pub fn quantiles(
    a: &[f64],
    qs: &[f64],
    out: &mut [f64],
    scratch: &mut Vec<f64>,
) -> Result<(), KernelError> {
    if out.len() != qs.len() {
        return Err(KernelError::Shape(format!(
            "quantiles: {} outputs for {} quantiles",
            out.len(),
            qs.len()
        )));
    }
    for &q in qs {
        check_q(q)?;
    }
    if a.is_empty() {
        return Err(KernelError::Shape("quantile of an empty array".into()));
    }
    if load(a, scratch) {
        out.fill(f64::NAN);
        return Ok(());
    }
    for (o, &q) in out.iter_mut().zip(qs) {
        *o = quantile_loaded(scratch, q);
    }
    Ok(())
}

/// Robust noise estimate (Q(0.75) − Q(0.25))/1.349 of `a`.
///
/// # Errors
/// [`KernelError::Shape`] if `a` is empty.
pub fn robust_sigma(a: &[f64], scratch: &mut Vec<f64>) -> Result<f64, KernelError> {
    let mut q = [0.0; 2];
    quantiles(a, &[0.25, 0.75], &mut q, scratch)?;
    Ok((q[1] - q[0]) / 1.349)
}

/// Iterative sigma clipping (`util.sigmaclip`, SPEC A.6).
///
/// Repeats: mean m and population σ of the kept values; stop if σ = 0; reject
/// every kept value c < m − low·σ or c > m + high·σ; until nothing is rejected.
/// Writes `keep[i] = true` for the surviving values and returns how many survive.
///
/// Compiled for the CPU's SIMD instruction set (runtime dispatch; the same operations in
/// the same order on every path, so the same result): the block tests of the passes run
/// about 1.7 times faster than with the baseline x86-64 instructions.
///
/// # Errors
/// [`KernelError::Shape`] if `keep.len() != c.len()`.
pub fn sigmaclip(c: &[f64], low: f64, high: f64, keep: &mut [bool]) -> Result<usize, KernelError> {
    crate::kernels::simd::dispatch(
        #[inline(always)]
        || sigmaclip_impl(c, low, high, keep),
    )
}

/// The body of [`sigmaclip`].
#[inline(always)]
fn sigmaclip_impl(c: &[f64], low: f64, high: f64, keep: &mut [bool]) -> Result<usize, KernelError> {
    if keep.len() != c.len() {
        return Err(KernelError::Shape(format!(
            "sigmaclip: mask length {} for {} values",
            keep.len(),
            c.len()
        )));
    }
    keep.fill(true);
    let mut n = c.len();
    let mut s = 0.0;
    let mut s2 = 0.0;
    // one pass, two independent (sequential) sums
    for &v in c {
        s += v;
        s2 += v * v;
    }
    loop {
        let nf = n as f64;
        let mean = s / nf;
        let std = (s2 / nf - mean * mean).max(0.0).sqrt();
        let clo = mean - std * low;
        let chi = mean + std * high;
        if std == 0.0 {
            break;
        }
        // Reject in index order, as one sequential pass would; blocks of 8 values are first
        // tested branch-free and skipped when nothing in them is rejected.
        let mut rejected = false;
        let mut pass = |kb: &mut [bool], cb: &[f64]| {
            let any = kb
                .iter()
                .zip(cb)
                .fold(false, |a, (&k, &v)| a | (k & ((v < clo) | (v > chi))));
            if any {
                rejected = true;
                for (k, &v) in kb.iter_mut().zip(cb) {
                    if *k && (v < clo || v > chi) {
                        *k = false;
                        n -= 1;
                        s -= v;
                        s2 -= v * v;
                    }
                }
            }
        };
        let mut kc = keep.chunks_exact_mut(8);
        let mut cc = c.chunks_exact(8);
        for (kb, cb) in (&mut kc).zip(&mut cc) {
            pass(kb, cb);
        }
        pass(kc.into_remainder(), cc.remainder());
        if !rejected {
            break;
        }
    }
    Ok(n)
}

/// Guarded inverse variance (`util.var2ivar`): 1/v if v > [`TINY`], else 0;
/// with `sigma = true` the input is a standard deviation: 1/v² if v > [`SQTINY`].
pub fn var2ivar(var: f64, sigma: bool) -> f64 {
    if sigma {
        if var > SQTINY {
            1.0 / (var * var)
        } else {
            0.0
        }
    } else if var > TINY {
        1.0 / var
    } else {
        0.0
    }
}

/// Guarded variance from inverse variance (`util.ivar2var`).
///
/// Good pixels are those with ivar > `clip` or, if there are none, ivar > 0.
/// `var[i]` = 1/ivar (or its square root with `sigma`) on good pixels, 0 elsewhere;
/// `good[i]` flags them. Returns the number of good pixels.
///
/// # Errors
/// [`KernelError::Domain`] if no pixel is good and `allmasked_ok` is false
/// (FastSpecFit raises "All values are masked!"); [`KernelError::Shape`] on
/// mismatched lengths.
pub fn ivar2var(
    ivar: &[f64],
    clip: f64,
    sigma: bool,
    allmasked_ok: bool,
    var: &mut [f64],
    good: &mut [bool],
) -> Result<usize, KernelError> {
    if var.len() != ivar.len() || good.len() != ivar.len() {
        return Err(KernelError::Shape(
            "ivar2var: output lengths differ from ivar".into(),
        ));
    }
    var.fill(0.0);
    let mut thresh = clip;
    let mut ngood = ivar.iter().filter(|&&v| v > thresh).count();
    if ngood == 0 {
        thresh = 0.0;
        ngood = ivar.iter().filter(|&&v| v > thresh).count();
        if ngood == 0 {
            good.fill(false);
            if allmasked_ok {
                return Ok(0);
            }
            return Err(KernelError::Domain("all values are masked".into()));
        }
    }
    for ((v, g), &iv) in var.iter_mut().zip(good.iter_mut()).zip(ivar) {
        *g = iv > thresh;
        if *g {
            *v = if sigma { (1.0 / iv).sqrt() } else { 1.0 / iv };
        }
    }
    Ok(ngood)
}

/// `a / b`, or 0 where `b == 0` (NumPy `true_divide(..., where=b != 0)` into zeros).
fn div0(a: f64, b: f64) -> f64 {
    if b != 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Simpson integral of `y(x)` (`scipy.integrate.simpson(y, x=x)`, scipy ≥ 1.11).
///
/// With h_k = x_{k+1} − x_k, each pair of intervals contributes
/// (h₀+h₁)/6·[y₀(2 − h₁/h₀) + y₁(h₀+h₁)²/(h₀h₁) + y₂(2 − h₀/h₁)]; an even number
/// of samples N ≥ 4 integrates the first N−1 samples that way and adds
/// α y_{N−1} + β y_{N−2} − η y_{N−3} for the last interval; N = 2 is a trapezoid,
/// N = 1 gives 0. `scratch` holds the pair terms (summed pairwise, as NumPy does).
///
/// # Errors
/// [`KernelError::Shape`] if the lengths differ or `y` is empty.
pub fn simpson(y: &[f64], x: &[f64], scratch: &mut Vec<f64>) -> Result<f64, KernelError> {
    let n = y.len();
    if x.len() != n {
        return Err(KernelError::Shape(format!(
            "simpson: {} x for {} y",
            x.len(),
            n
        )));
    }
    if n == 0 {
        return Err(KernelError::Shape("simpson of an empty array".into()));
    }
    let basic = |stop: usize, scratch: &mut Vec<f64>| -> f64 {
        // pairs starting at 0, 2, ... < stop
        scratch.clear();
        let mut i = 0;
        while i < stop {
            let h0 = x[i + 1] - x[i];
            let h1 = x[i + 2] - x[i + 1];
            let hsum = h0 + h1;
            let hprod = h0 * h1;
            let h0divh1 = div0(h0, h1);
            let t = hsum / 6.0
                * (y[i] * (2.0 - div0(1.0, h0divh1))
                    + y[i + 1] * (hsum * div0(hsum, hprod))
                    + y[i + 2] * (2.0 - h0divh1));
            scratch.push(t);
            i += 2;
        }
        pairwise_sum(scratch)
    };
    if n % 2 == 1 {
        return Ok(basic(n.saturating_sub(2), scratch));
    }
    if n == 2 {
        return Ok(0.5 * (x[1] - x[0]) * (y[1] + y[0]));
    }
    let mut result = basic(n - 3, scratch);
    let h0 = x[n - 2] - x[n - 3];
    let h1 = x[n - 1] - x[n - 2];
    let alpha = div0(2.0 * h1 * h1 + 3.0 * h0 * h1, 6.0 * (h1 + h0));
    let beta = div0(h1 * h1 + 3.0 * h0 * h1, 6.0 * h0);
    let eta = div0(h1 * h1 * h1, 6.0 * h0 * (h0 + h1));
    result += alpha * y[n - 1] + beta * y[n - 2] - eta * y[n - 3];
    Ok(result)
}

#[cfg(test)]
mod tests;
