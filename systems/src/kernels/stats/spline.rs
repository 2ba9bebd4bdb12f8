//! Smoothing spline of FITPACK's `curfit` as scipy's
//! `UnivariateSpline(x, y, w=w, k=k, s=None, ext=3)` computes it (SPEC A.4,
//! used by the smooth-continuum correction of §4.8).
//!
//! Finds the spline s(x) of degree k with the fewest knots such that
//!
//! ```text
//!     F(p) = Σᵢ (wᵢ (yᵢ − s(xᵢ)))² ≤ S        (S = m by default)
//! ```
//!
//! with FITPACK's automatic knot placement (`fpcurf`, Dierckx 1975): start from
//! the polynomial (no interior knots), add knots in the intervals with the
//! largest residual sums (`fpknot`) until F ≤ S, then solve for the smoothing
//! parameter p with rational interpolation (`fprati`) until |F(p) − S| ≤ 0.001·S
//! (at most 20 iterations). The first pass uses nest = max(⌊m/2⌋, 2(k+1)) knots
//! at most; if that is too few (ier = 1) the fit continues with nest = m + k + 1
//! from the current knots, as scipy does. Evaluation (`splev`) outside
//! \[x₁, x_m\] returns the boundary value (ext = 3).
//!
//! A line-by-line translation of the Fortran (Givens rotations `fpgivs` /
//! `fprota`, back substitution `fpback`, discontinuity jumps `fpdisc`, B-spline
//! values `fpbspl`), so knots and coefficients agree with scipy to rounding.
//!
//! # Errors
//! [`KernelError::Shape`] for mismatched lengths or m ≤ k;
//! [`KernelError::Domain`] for k outside 1..=5, decreasing x or S < 0;
//! [`KernelError::NonFinite`] for non-finite inputs.

#![allow(
    clippy::needless_range_loop,
    clippy::explicit_counter_loop,
    reason = "1-based index loops mirror the FITPACK Fortran line by line"
)]

use super::KernelError;

/// A fitted FITPACK smoothing spline; reusable (refitting reuses its buffers).
#[derive(Debug, Clone, Default)]
pub struct SmoothingSpline {
    k: usize,
    n: usize,
    t: Vec<f64>,
    c: Vec<f64>,
    fp: f64,
    ier: i32,
    work: Work,
}

/// FITPACK work arrays, 1-based like the Fortran (index 0 unused).
#[derive(Debug, Clone, Default)]
struct Work {
    fpint: Vec<f64>,
    nrdata: Vec<i64>,
    z: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    g: Vec<f64>,
    q: Vec<f64>,
}

/// Column strides of the 2-D work arrays (row-major, 1-based, stride 8 > k + 2).
const W: usize = 8;

/// FITPACK `fpgivs`: rotation that zeroes `piv` against `ww` (updated).
#[inline]
fn fpgivs(piv: f64, ww: &mut f64) -> (f64, f64) {
    let store = piv.abs();
    let dd = if store >= *ww {
        store * (1.0 + (*ww / piv) * (*ww / piv)).sqrt()
    } else {
        *ww * (1.0 + (piv / *ww) * (piv / *ww)).sqrt()
    };
    let cos = *ww / dd;
    let sin = piv / dd;
    *ww = dd;
    (cos, sin)
}

/// FITPACK `fprota`.
#[inline]
fn fprota(cos: f64, sin: f64, a: &mut f64, b: &mut f64) {
    let (s1, s2) = (*a, *b);
    *b = cos * s2 + sin * s1;
    *a = cos * s1 - sin * s2;
}

/// FITPACK `fpbspl`: the k+1 non-zero B-splines at x, t(l) ≤ x < t(l+1), into h[1..=k+1].
fn fpbspl(t: &[f64], k: usize, x: f64, l: usize, h: &mut [f64; 21]) {
    let mut hh = [0.0f64; 20];
    h[1] = 1.0;
    for j in 1..=k {
        hh[1..=j].copy_from_slice(&h[1..=j]);
        h[1] = 0.0;
        for i in 1..=j {
            let li = l + i;
            let lj = li - j;
            if t[li] == t[lj] {
                h[i + 1] = 0.0;
                continue;
            }
            let f = hh[i] / (t[li] - t[lj]);
            h[i] += f * (t[li] - x);
            h[i + 1] = f * (x - t[lj]);
        }
    }
}

/// FITPACK `fpback` on a banded upper-triangular matrix (bandwidth `kb`),
/// solving in place: `zc` holds z on entry and c on return.
fn fpback(a: &[f64], zc: &mut [f64], n: usize, kb: usize) {
    let k1 = kb - 1;
    zc[n] /= a[n * W + 1];
    if n == 1 {
        return;
    }
    let mut i = n - 1;
    for j in 2..=n {
        let mut store = zc[i];
        let i1 = if j <= k1 { j - 1 } else { k1 };
        let mut m = i;
        for l in 1..=i1 {
            m += 1;
            store -= zc[m] * a[i * W + l + 1];
        }
        zc[i] = store / a[i * W + 1];
        i -= 1;
    }
}

/// FITPACK `fpdisc`: discontinuity jumps of the k-th derivative into `b`.
fn fpdisc(t: &[f64], n: usize, k2: usize, b: &mut [f64]) {
    let k1 = k2 - 1;
    let k = k1 - 1;
    let nk1 = n - k1;
    let nrint = nk1 - k;
    let an = nrint as f64;
    let fac = an / (t[nk1 + 1] - t[k1]);
    let mut h = [0.0f64; 13];
    for l in k2..=nk1 {
        let lmk = l - k1;
        for j in 1..=k1 {
            let ik = j + k1;
            let lj = l + j;
            let lk = lj - k2;
            h[j] = t[l] - t[lk];
            h[ik] = t[l] - t[lj];
        }
        let mut lp = lmk;
        for j in 1..=k2 {
            let mut jk = j;
            let mut prod = h[j];
            for _ in 1..=k {
                jk += 1;
                prod = prod * h[jk] * fac;
            }
            let lk = lp + k1;
            b[lmk * W + j] = (t[lk] - t[lp]) / prod;
            lp += 1;
        }
    }
}

/// FITPACK `fpknot`: add a knot in the interval with the largest residual sum.
#[allow(clippy::too_many_arguments, reason = "FITPACK's argument list")]
fn fpknot(
    x: &[f64],
    t: &mut [f64],
    n: &mut usize,
    fpint: &mut [f64],
    nrdata: &mut [i64],
    nrint: &mut usize,
    istart: i64,
) {
    let k = (*n - *nrint - 1) / 2;
    let mut fpmax = 0.0;
    let mut jbegin = istart;
    let (mut number, mut maxpt, mut maxbeg) = (0usize, 0i64, 0i64);
    let mut found = false;
    for j in 1..=*nrint {
        let jpoint = nrdata[j];
        if !(fpmax >= fpint[j] || jpoint == 0) {
            found = true;
            fpmax = fpint[j];
            number = j;
            maxpt = jpoint;
            maxbeg = jbegin;
        }
        jbegin += jpoint + 1;
    }
    if found {
        let ihalf = maxpt / 2 + 1;
        let nrx = (maxbeg + ihalf) as usize;
        let next = number + 1;
        if next <= *nrint {
            for j in next..=*nrint {
                let jj = next + *nrint - j;
                fpint[jj + 1] = fpint[jj];
                nrdata[jj + 1] = nrdata[jj];
                let jk = jj + k;
                t[jk + 1] = t[jk];
            }
        }
        nrdata[number] = ihalf - 1;
        nrdata[next] = maxpt - ihalf;
        let am = maxpt as f64;
        let an = nrdata[number] as f64;
        fpint[number] = fpmax * an / am;
        let an = nrdata[next] as f64;
        fpint[next] = fpmax * an / am;
        let jk = next + k;
        t[jk] = x[nrx - 1];
    }
    *n += 1;
    *nrint += 1;
}

/// FITPACK `fprati`: next p from three (p, F(p) − S) pairs; updates the bracket.
fn fprati(p1: &mut f64, f1: &mut f64, p2: f64, f2: f64, p3: &mut f64, f3: &mut f64) -> f64 {
    let p = if *p3 > 0.0 {
        let h1 = *f1 * (f2 - *f3);
        let h2 = f2 * (*f3 - *f1);
        let h3 = *f3 * (*f1 - f2);
        -(*p1 * p2 * h3 + p2 * *p3 * h1 + *p3 * *p1 * h2) / (*p1 * h1 + p2 * h2 + *p3 * h3)
    } else {
        (*p1 * (*f1 - *f3) * f2 - p2 * (f2 - *f3) * *f1) / ((*f1 - f2) * *f3)
    };
    if f2 < 0.0 {
        *p3 = p2;
        *f3 = f2;
    } else {
        *p1 = p2;
        *f1 = f2;
    }
    p
}

mod fpcurf;

impl SmoothingSpline {
    /// An empty spline (fit it with [`SmoothingSpline::fit`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Fit `y(x)` with weights `w`, degree `k` and smoothing factor `s`
    /// (`None` = m, scipy's default), replacing any previous fit.
    ///
    /// # Errors
    /// See the module documentation.
    pub fn fit(
        &mut self,
        x: &[f64],
        y: &[f64],
        w: &[f64],
        k: usize,
        s: Option<f64>,
    ) -> Result<(), KernelError> {
        let m = x.len();
        if y.len() != m || w.len() != m {
            return Err(KernelError::Shape(format!(
                "spline: {m} x, {} y, {} weights",
                y.len(),
                w.len()
            )));
        }
        if !(1..=5).contains(&k) {
            return Err(KernelError::Domain(format!(
                "spline degree {k} outside 1..=5"
            )));
        }
        if m <= k {
            return Err(KernelError::Shape(format!(
                "spline: {m} points for degree {k}"
            )));
        }
        if x.iter().chain(y).chain(w).any(|v| !v.is_finite()) {
            return Err(KernelError::NonFinite("spline input".into()));
        }
        if x.windows(2).any(|p| p[1] < p[0]) {
            return Err(KernelError::Domain(
                "spline: x must be non-decreasing".into(),
            ));
        }
        let s = s.unwrap_or(m as f64);
        if s < 0.0 {
            return Err(KernelError::Domain(format!(
                "spline: smoothing factor {s} < 0"
            )));
        }
        fpcurf::fit(self, x, y, w, k, s);
        Ok(())
    }

    /// Degree k.
    pub fn degree(&self) -> usize {
        self.k
    }

    /// The n knots (scipy `get_knots` returns the interior ones plus the ends).
    pub fn knots(&self) -> &[f64] {
        &self.t[1..=self.n]
    }

    /// The n − k − 1 B-spline coefficients.
    pub fn coeffs(&self) -> &[f64] {
        &self.c[1..=self.n - self.k - 1]
    }

    /// Weighted residual sum of squares F (scipy `get_residual`).
    pub fn residual(&self) -> f64 {
        self.fp
    }

    /// FITPACK's `ier` (0 normal, −1 interpolating, −2 polynomial, 1–3 warnings).
    pub fn ier(&self) -> i32 {
        self.ier
    }

    /// s(x), with x clamped to the knot range (ext = 3).
    pub fn eval(&self, x: f64) -> f64 {
        let k1 = self.k + 1;
        let nk1 = self.n - k1;
        let t = &self.t;
        let arg = x.clamp(t[k1], t[nk1 + 1]);
        // largest l in [k1, nk1] with t(l) ≤ arg
        let mut l = k1;
        while l < nk1 && arg >= t[l + 1] {
            l += 1;
        }
        let mut h = [0.0f64; 21];
        fpbspl(t, self.k, arg, l, &mut h);
        let mut sp = 0.0;
        let mut ll = l - k1;
        for hj in &h[1..=k1] {
            ll += 1;
            sp += self.c[ll] * hj;
        }
        sp
    }

    /// s(xᵢ) for every xᵢ into `out`.
    ///
    /// # Errors
    /// [`KernelError::Shape`] if the lengths differ.
    pub fn eval_into(&self, x: &[f64], out: &mut [f64]) -> Result<(), KernelError> {
        if x.len() != out.len() {
            return Err(KernelError::Shape("spline: output length".into()));
        }
        for (o, &xi) in out.iter_mut().zip(x) {
            *o = self.eval(xi);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
