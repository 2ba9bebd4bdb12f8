//! Gaussian velocity-dispersion convolution of rest-frame templates (SPEC §3.2).
//!
//! Only the pixels `[lo, hi)` of the template grid, which are uniformly spaced in
//! ln λ (`pixkms` km/s per pixel), are convolved; pixels outside are copied. For a
//! kernel σ_v (km/s) the kernel in pixels is
//!
//! ```text
//! σ = σ_v / pixkms,   r = ⌊4σ + 0.5⌋,   g_k = exp(−k²/(2σ²)) / Σ_j exp(−j²/(2σ²)),  k = −r..r
//! ```
//!
//! and the output on the segment x = flux[lo..hi] (length n) is the "same"-mode linear
//! convolution with zero padding, `out[i] = Σ_k x[i − k]·g_k` over 0 ≤ i − k < n, so the
//! segment edges are darkened exactly as in FastSpecFit. σ_v ≤ 0 leaves the input unchanged.
//!
//! Two equivalent evaluations are provided:
//! * [`convolve_direct`] / [`convolve_direct_rows`]: the sum above, exact up to roundoff;
//! * the FFT pre-cache ([`precompute`] once per template set, [`convolve_from_pre`] per
//!   call): rfft_L of every template segment zero-padded to L = [`pre_fft_len`] (the smallest
//!   5-smooth length ≥ n + 2·r_max, scipy's `next_fast_len(real=True)` rule, r_max the
//!   radius of the 500 km/s kernel). A coefficient-weighted sum Σ_t c_t·flux_t is then
//!   convolved as irfft_L((Σ_t c_t·F_t)·rfft_L(g))[r .. r + n], which equals the direct
//!   result because L ≥ n + 2r leaves no circular wrap-around.
//!
//! All buffers live in a [`VdispWorkspace`] built once (FFT plans and scratch included);
//! the kernel transform of the last σ is cached there.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use super::KernelError;

/// Kernel truncation in units of σ (scipy's `gaussian_filter1d` default, as FastSpecFit).
pub const TRUNCATE_SIGMA: f64 = 4.0;

/// Largest kernel σ, km/s, the FFT pre-cache supports (FastSpecFit `MAX_PRE_VDISP`).
pub const MAX_PRE_VDISP_KMS: f64 = 500.0;

/// The uniform-velocity segment of a template grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VdispGrid {
    /// First convolved pixel.
    pub lo: usize,
    /// One past the last convolved pixel.
    pub hi: usize,
    /// Pixel size in the segment, km/s.
    pub pixkms: f64,
}

impl VdispGrid {
    fn check(&self, nwave: usize) -> Result<usize, KernelError> {
        if self.lo > self.hi || self.hi > nwave {
            return Err(KernelError::Shape(format!(
                "convolution segment [{}, {}) does not fit {nwave} pixels",
                self.lo, self.hi
            )));
        }
        if !(self.pixkms.is_finite() && self.pixkms > 0.0) {
            return Err(KernelError::Domain(format!(
                "pixel size {} km/s",
                self.pixkms
            )));
        }
        Ok(self.hi - self.lo)
    }

    /// Kernel σ in pixels for a dispersion of `sigma_kms`; `None` means "no convolution".
    fn sigma_pix(&self, sigma_kms: f64) -> Result<Option<f64>, KernelError> {
        if sigma_kms.is_nan() || sigma_kms == f64::INFINITY {
            return Err(KernelError::Domain(format!(
                "velocity dispersion {sigma_kms} km/s"
            )));
        }
        Ok((sigma_kms > 0.0).then(|| sigma_kms / self.pixkms))
    }
}

/// Kernel radius r = ⌊4σ + 0.5⌋ for σ in pixels (0 for σ ≤ 0).
pub fn gaussian_radius(sigma_pix: f64) -> usize {
    let r = TRUNCATE_SIGMA * sigma_pix + 0.5;
    if r > 0.0 {
        r as usize
    } else {
        0
    }
}

/// Fill `out` (length 2r + 1) with the unit-sum Gaussian g_k = exp(−k²/(2σ²)), k = −r..r.
///
/// σ ≤ 0 with r = 0 gives the identity kernel `[1]`.
///
/// # Errors
/// [`KernelError::Shape`] if `out` has even length; [`KernelError::Domain`] if σ is not
/// finite, or σ ≤ 0 with r > 0.
pub fn gaussian_kernel(sigma_pix: f64, out: &mut [f64]) -> Result<(), KernelError> {
    if out.len() % 2 != 1 {
        return Err(KernelError::Shape(format!(
            "kernel length {} is not odd",
            out.len()
        )));
    }
    let r = (out.len() / 2) as f64;
    if !sigma_pix.is_finite() || (sigma_pix <= 0.0 && r > 0.0) {
        return Err(KernelError::Domain(format!(
            "kernel sigma {sigma_pix} pixels"
        )));
    }
    if r == 0.0 {
        out[0] = 1.0;
        return Ok(());
    }
    let a = -0.5 / (sigma_pix * sigma_pix);
    let mut sum = 0.0;
    for (k, g) in out.iter_mut().enumerate() {
        let x = k as f64 - r;
        *g = (a * (x * x)).exp();
        sum += *g;
    }
    out.iter_mut().for_each(|g| *g /= sum);
    Ok(())
}

/// Smallest 5-smooth integer (2^a·3^b·5^c) ≥ `n`: scipy's `next_fast_len(n, real=True)`.
/// Returns 1 for `n` ≤ 1.
pub fn next_fast_len_real(n: usize) -> usize {
    if n <= 6 {
        return n.max(1);
    }
    let mut best = n.next_power_of_two();
    let mut p5 = 1usize;
    while p5 < best {
        let mut p35 = p5;
        while p35 < best {
            // smallest power-of-two multiple of p35 that is ≥ n
            let mut m = p35;
            while m < n {
                m *= 2;
            }
            best = best.min(m);
            p35 *= 3;
        }
        p5 *= 5;
    }
    best
}

/// FFT length of the pre-cache for a segment of `mid_len` pixels and kernels up to radius
/// `max_radius`: next_fast_len_real(mid_len + 2·max_radius).
pub fn pre_fft_len(mid_len: usize, max_radius: usize) -> usize {
    next_fast_len_real(mid_len + 2 * max_radius)
}

/// Radius of the largest kernel the pre-cache supports on a grid of `pixkms` km/s pixels.
pub fn pre_max_radius(pixkms: f64) -> usize {
    gaussian_radius(MAX_PRE_VDISP_KMS / pixkms)
}

struct FftPlans {
    r2c: Arc<dyn RealToComplex<f64>>,
    c2r: Arc<dyn ComplexToReal<f64>>,
}

/// Reusable buffers and FFT plans for the convolutions of one thread.
pub struct VdispWorkspace {
    fft_len: usize,
    plans: Option<FftPlans>,
    kernel: Vec<f64>,
    real: Vec<f64>,
    spec: Vec<Complex<f64>>,
    kernel_ft: Vec<Complex<f64>>,
    kernel_ft_sigma: Option<f64>,
    scratch: Vec<Complex<f64>>,
}

impl VdispWorkspace {
    /// A workspace for FFT length `fft_len` (from [`pre_fft_len`]); `fft_len` = 0 gives a
    /// workspace for the direct methods only. Kernel storage for radii up to
    /// `max_radius` is reserved; larger direct kernels grow it once.
    pub fn new(fft_len: usize, max_radius: usize) -> Self {
        let nfreq = if fft_len > 0 { fft_len / 2 + 1 } else { 0 };
        let plans = (fft_len > 0).then(|| {
            let mut planner = RealFftPlanner::<f64>::new();
            FftPlans {
                r2c: planner.plan_fft_forward(fft_len),
                c2r: planner.plan_fft_inverse(fft_len),
            }
        });
        let nscratch = plans
            .as_ref()
            .map_or(0, |p| p.r2c.get_scratch_len().max(p.c2r.get_scratch_len()));
        VdispWorkspace {
            fft_len,
            plans,
            kernel: Vec::with_capacity(2 * max_radius + 1),
            real: vec![0.0; fft_len],
            spec: vec![Complex::default(); nfreq],
            kernel_ft: vec![Complex::default(); nfreq],
            kernel_ft_sigma: None,
            scratch: vec![Complex::default(); nscratch],
        }
    }

    /// The FFT length this workspace was planned for (0: direct only).
    pub fn fft_len(&self) -> usize {
        self.fft_len
    }

    fn set_kernel(&mut self, sigma_pix: f64) -> Result<usize, KernelError> {
        let r = gaussian_radius(sigma_pix);
        self.kernel.resize(2 * r + 1, 0.0);
        gaussian_kernel(sigma_pix, &mut self.kernel)?;
        Ok(r)
    }
}

/// Output pixels per block of [`convolve_same`]: the block and its input window stay in L1.
const BLOCK: usize = 512;

/// "Same"-mode zero-padded convolution of `x` with the odd-length kernel `g` into `out`.
///
/// Evaluated block by block and, within a block, tap by tap (`out += g_k · shifted x`), so
/// each inner loop is a contiguous, vectorisable axpy on cache-resident data and every
/// output pixel accumulates its taps in the same order (k = −r … r).
fn convolve_same(x: &[f64], g: &[f64], out: &mut [f64]) {
    convolve_same_part(x, g, out, 0..x.len());
}

/// [`convolve_same`] on the output pixels `part` only (the others are not written); each
/// of them gets the same value, bit for bit, as from the whole convolution. Runs under
/// runtime SIMD dispatch.
fn convolve_same_part(x: &[f64], g: &[f64], out: &mut [f64], part: std::ops::Range<usize>) {
    let (p0, p1) = (part.start, part.end);
    let out = &mut out[part];
    crate::kernels::simd::dispatch(
        #[inline(always)]
        || {
            let n = x.len();
            let r = g.len() / 2;
            out.iter_mut().for_each(|o| *o = 0.0);
            for b0 in (p0..p1).step_by(BLOCK) {
                let b1 = (b0 + BLOCK).min(p1);
                for (k, &w) in g.iter().rev().enumerate() {
                    // out[i] += w · x[i + k − r], valid where 0 ≤ i + k − r < n
                    let i0 = r.saturating_sub(k).max(b0);
                    let i1 = (n + r).saturating_sub(k).min(b1);
                    if i0 >= i1 {
                        continue;
                    }
                    let j0 = i0 + k - r;
                    let src = &x[j0..j0 + (i1 - i0)];
                    for (o, &s) in out[i0 - p0..i1 - p0].iter_mut().zip(src) {
                        *o += w * s;
                    }
                }
            }
        },
    );
}

fn check_len(name: &str, got: usize, want: usize) -> Result<(), KernelError> {
    if got != want {
        return Err(KernelError::Shape(format!(
            "{name} has length {got}, expected {want}"
        )));
    }
    Ok(())
}

/// Convolve one spectrum `flux` (length nwave) by σ_v = `sigma_kms` into `out` (same length).
///
/// # Errors
/// [`KernelError::Shape`] for mismatched lengths or a segment outside the grid;
/// [`KernelError::Domain`] for a NaN/+∞ σ or a non-positive pixel size.
pub fn convolve_direct(
    flux: &[f64],
    grid: &VdispGrid,
    sigma_kms: f64,
    ws: &mut VdispWorkspace,
    out: &mut [f64],
) -> Result<(), KernelError> {
    check_len("output", out.len(), flux.len())?;
    grid.check(flux.len())?;
    out.copy_from_slice(flux);
    let Some(sigma_pix) = grid.sigma_pix(sigma_kms)? else {
        return Ok(());
    };
    ws.set_kernel(sigma_pix)?;
    let (lo, hi) = (grid.lo, grid.hi);
    convolve_same(&flux[lo..hi], &ws.kernel, &mut out[lo..hi]);
    Ok(())
}

/// [`convolve_direct`] applied to every row of a flat `[nrow][nwave]` array.
///
/// # Errors
/// As [`convolve_direct`], plus [`KernelError::Shape`] if `flux.len()` is not a multiple
/// of `nwave`.
pub fn convolve_direct_rows(
    flux: &[f64],
    nwave: usize,
    grid: &VdispGrid,
    sigma_kms: f64,
    ws: &mut VdispWorkspace,
    out: &mut [f64],
) -> Result<(), KernelError> {
    convolve_direct_rows_range(flux, nwave, grid, sigma_kms, ws, out, 0..nwave)
}

/// [`convolve_direct_rows`] on the output pixels `part` of every row only (the others are
/// not written): the same values, bit for bit, on `part` — for callers that read only a
/// window of the convolved templates (e.g. the pixels a spectral operator reads).
///
/// # Errors
/// As [`convolve_direct_rows`], plus [`KernelError::Shape`] for `part` beyond `nwave`.
pub fn convolve_direct_rows_range(
    flux: &[f64],
    nwave: usize,
    grid: &VdispGrid,
    sigma_kms: f64,
    ws: &mut VdispWorkspace,
    out: &mut [f64],
    part: std::ops::Range<usize>,
) -> Result<(), KernelError> {
    if flux.len().checked_rem(nwave) != Some(0) {
        return Err(KernelError::Shape(format!(
            "{} values are not rows of {nwave}",
            flux.len()
        )));
    }
    check_len("output", out.len(), flux.len())?;
    grid.check(nwave)?;
    if part.start > part.end || part.end > nwave {
        return Err(KernelError::Shape(format!(
            "pixel range {part:?} outside {nwave} pixels"
        )));
    }
    let sigma_pix = grid.sigma_pix(sigma_kms)?;
    if let Some(s) = sigma_pix {
        ws.set_kernel(s)?;
    }
    let (lo, hi) = (grid.lo, grid.hi);
    // the convolved part, relative to the segment [lo, hi)
    let (clo, chi) = (part.start.max(lo), part.end.min(hi));
    for (row, orow) in flux.chunks_exact(nwave).zip(out.chunks_exact_mut(nwave)) {
        orow[part.clone()].copy_from_slice(&row[part.clone()]);
        if sigma_pix.is_some() && clo < chi {
            convolve_same_part(
                &row[lo..hi],
                &ws.kernel,
                &mut orow[lo..hi],
                clo - lo..chi - lo,
            );
        }
    }
    Ok(())
}

/// A borrowed FFT pre-cache (FastSpecFit's `conv_pre`), as built by [`precompute`].
#[derive(Debug, Clone, Copy)]
pub struct PreCache<'a> {
    /// Number of templates.
    pub ntemplate: usize,
    /// Real-FFT length L.
    pub fft_len: usize,
    /// Largest supported kernel radius, pixels.
    pub max_radius: usize,
    /// Outer pixels `[ntemplate][nwave − (hi − lo)]`: `[0, lo)` then `[hi, nwave)`.
    pub flux_outer: &'a [f64],
    /// Re rfft_L(flux[t, lo..hi]), `[ntemplate][L/2 + 1]`.
    pub ft_re: &'a [f64],
    /// Im rfft_L(flux[t, lo..hi]), `[ntemplate][L/2 + 1]`.
    pub ft_im: &'a [f64],
}

impl<'a> From<&'a fsf_components::templates::ConvPre> for PreCache<'a> {
    /// The borrowed view of a template file's owned pre-cache.
    fn from(p: &'a fsf_components::templates::ConvPre) -> Self {
        PreCache {
            ntemplate: p.ntemplate,
            fft_len: p.fft_len,
            max_radius: p.max_radius_pix,
            flux_outer: &p.flux_outer,
            ft_re: &p.ft_re,
            ft_im: &p.ft_im,
        }
    }
}

fn fft_err(e: realfft::FftError) -> KernelError {
    KernelError::Shape(format!("FFT: {e}"))
}

/// Build the FFT pre-cache of the templates `flux` (`[ntemplate][nwave]`) into
/// `flux_outer`, `ft_re`, `ft_im` (shapes as in [`PreCache`]).
///
/// `ws` must be planned for `pre_fft_len(hi − lo, max_radius)`.
///
/// # Errors
/// [`KernelError::Shape`] for inconsistent lengths or a workspace with another FFT length.
#[allow(clippy::too_many_arguments)]
pub fn precompute(
    flux: &[f64],
    nwave: usize,
    grid: &VdispGrid,
    max_radius: usize,
    ws: &mut VdispWorkspace,
    flux_outer: &mut [f64],
    ft_re: &mut [f64],
    ft_im: &mut [f64],
) -> Result<(), KernelError> {
    let n = grid.check(nwave)?;
    if flux.len().checked_rem(nwave) != Some(0) {
        return Err(KernelError::Shape(format!(
            "{} values are not rows of {nwave}",
            flux.len()
        )));
    }
    let nt = flux.len() / nwave;
    let l = pre_fft_len(n, max_radius);
    check_len("workspace FFT", ws.fft_len, l)?;
    let nf = l / 2 + 1;
    let nout = nwave - n;
    check_len("flux_outer", flux_outer.len(), nt * nout)?;
    check_len("ft_re", ft_re.len(), nt * nf)?;
    check_len("ft_im", ft_im.len(), nt * nf)?;
    let plans = ws
        .plans
        .as_ref()
        .ok_or_else(|| KernelError::Shape("no FFT plan".into()))?;
    for t in 0..nt {
        let row = &flux[t * nwave..(t + 1) * nwave];
        let orow = &mut flux_outer[t * nout..(t + 1) * nout];
        orow[..grid.lo].copy_from_slice(&row[..grid.lo]);
        orow[grid.lo..].copy_from_slice(&row[grid.hi..]);
        ws.real[..n].copy_from_slice(&row[grid.lo..grid.hi]);
        ws.real[n..].iter_mut().for_each(|v| *v = 0.0);
        plans
            .r2c
            .process_with_scratch(&mut ws.real, &mut ws.spec, &mut ws.scratch)
            .map_err(fft_err)?;
        for (f, c) in ws.spec.iter().enumerate() {
            ft_re[t * nf + f] = c.re;
            ft_im[t * nf + f] = c.im;
        }
    }
    Ok(())
}

/// Convolve the coefficient-weighted template sum Σ_t `coeff[t]`·flux_t by σ_v =
/// `sigma_kms` using the pre-cache `pre`, writing the full spectrum (length nwave) to `out`.
///
/// Templates not in use take coefficient 0. σ_v ≤ 0 returns the unconvolved sum (where
/// FastSpecFit's cached path would produce NaN). The kernel transform is cached in `ws`
/// and reused while σ_v stays the same.
///
/// # Errors
/// [`KernelError::Shape`] for inconsistent lengths or a workspace with another FFT length;
/// [`KernelError::Domain`] for a NaN/+∞ σ_v or a kernel wider than the pre-cache supports
/// (σ_v above [`MAX_PRE_VDISP_KMS`]: use [`convolve_direct`] on the sum instead).
pub fn convolve_from_pre(
    pre: &PreCache<'_>,
    grid: &VdispGrid,
    coeff: &[f64],
    sigma_kms: f64,
    ws: &mut VdispWorkspace,
    out: &mut [f64],
) -> Result<(), KernelError> {
    let nwave = out.len();
    let n = grid.check(nwave)?;
    let nt = pre.ntemplate;
    check_len("coefficients", coeff.len(), nt)?;
    let l = pre.fft_len;
    check_len("workspace FFT", ws.fft_len, l)?;
    if l < n + 2 * pre.max_radius {
        return Err(KernelError::Shape(format!(
            "FFT length {l} too short for the segment"
        )));
    }
    let nf = l / 2 + 1;
    let nout = nwave - n;
    check_len("flux_outer", pre.flux_outer.len(), nt * nout)?;
    check_len("ft_re", pre.ft_re.len(), nt * nf)?;
    check_len("ft_im", pre.ft_im.len(), nt * nf)?;
    let sigma_pix = grid.sigma_pix(sigma_kms)?.unwrap_or(0.0);
    let r = gaussian_radius(sigma_pix);
    if r > pre.max_radius {
        return Err(KernelError::Domain(format!(
            "kernel radius {r} px (σ = {sigma_kms} km/s) exceeds the pre-cache radius {}",
            pre.max_radius
        )));
    }
    let plans = ws
        .plans
        .as_ref()
        .ok_or_else(|| KernelError::Shape("no FFT plan".into()))?;

    // kernel transform, cached per σ
    if ws.kernel_ft_sigma != Some(sigma_pix) {
        ws.kernel.resize(2 * r + 1, 0.0);
        gaussian_kernel(sigma_pix, &mut ws.kernel)?;
        ws.real.iter_mut().for_each(|v| *v = 0.0);
        ws.real[..ws.kernel.len()].copy_from_slice(&ws.kernel);
        plans
            .r2c
            .process_with_scratch(&mut ws.real, &mut ws.kernel_ft, &mut ws.scratch)
            .map_err(fft_err)?;
        ws.kernel_ft_sigma = Some(sigma_pix);
    }

    // outer pixels: plain weighted sum, in template order
    let (lo, hi) = (grid.lo, grid.hi);
    out[..lo].iter_mut().for_each(|v| *v = 0.0);
    out[hi..].iter_mut().for_each(|v| *v = 0.0);
    // (zero coefficients are skipped: adding 0·f changes nothing for finite templates)
    for (t, &c) in coeff.iter().enumerate().filter(|(_, &c)| c != 0.0) {
        let orow = &pre.flux_outer[t * nout..(t + 1) * nout];
        for (o, &f) in out[..lo].iter_mut().zip(&orow[..lo]) {
            *o += c * f;
        }
        for (o, &f) in out[hi..].iter_mut().zip(&orow[lo..]) {
            *o += c * f;
        }
    }

    // segment: combine transforms, multiply by the kernel transform, invert, slice
    ws.spec.iter_mut().for_each(|s| *s = Complex::default());
    for (t, &c) in coeff.iter().enumerate().filter(|(_, &c)| c != 0.0) {
        let re = &pre.ft_re[t * nf..(t + 1) * nf];
        let im = &pre.ft_im[t * nf..(t + 1) * nf];
        for ((s, &a), &b) in ws.spec.iter_mut().zip(re).zip(im) {
            s.re += c * a;
            s.im += c * b;
        }
    }
    for (s, k) in ws.spec.iter_mut().zip(&ws.kernel_ft) {
        *s *= *k;
    }
    // the DC (and, for even L, Nyquist) terms of a real signal's spectrum are real
    ws.spec[0].im = 0.0;
    if l % 2 != 1 {
        ws.spec[nf - 1].im = 0.0;
    }
    plans
        .c2r
        .process_with_scratch(&mut ws.spec, &mut ws.real, &mut ws.scratch)
        .map_err(fft_err)?;
    let norm = 1.0 / l as f64;
    for (o, &v) in out[lo..hi].iter_mut().zip(&ws.real[r..r + n]) {
        *o = v * norm;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
