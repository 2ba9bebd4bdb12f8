//! The smooth residual continuum of fastspec (SPEC §4.8, FastSpecFit
//! `ContinuumTools.smooth_continuum`), per camera:
//!
//! * mask = line mask | ivar ≤ 0, plus the first and last 9 pixels;
//! * windows of 75 pixels starting every 125 pixels (a window must fit entirely);
//! * per window: the unmasked values (≥ 15 needed), iterative 2σ clipping (≥ 15 survivors),
//!   node = (mean wavelength of the unmasked pixels, median, weight 1/σ_robust) with
//!   σ_robust = (q75 − q25)/1.349; windows with median 0 or σ ≤ 0 are skipped;
//! * more than 3 nodes: FITPACK smoothing spline (k = 2, s = number of nodes, constant
//!   extrapolation) evaluated at the camera wavelengths, else zeros;
//! * pixels with flux == 0 and ivar == 0 are set to 0.

use crate::kernels::stats::{pairwise_sum, quantiles, sigmaclip, SmoothingSpline};
use crate::kernels::KernelError;

/// Window width, pixels.
pub const SMOOTH_WINDOW: usize = 75;
/// Window step, pixels.
pub const SMOOTH_STEP: usize = 125;
/// Clipping threshold, σ.
pub const SMOOTH_CLIP_SIGMA: f64 = 2.0;
/// Minimum good pixels per window.
pub const SMOOTH_NMINPIX: usize = 15;
/// Pixels masked at each camera edge.
pub const SMOOTH_NMASKPIX: usize = 9;

/// Reusable buffers of [`smooth_continuum`].
#[derive(Debug, Default, Clone)]
pub struct SmoothScratch {
    mask: Vec<bool>,
    vals: Vec<f64>,
    waves: Vec<f64>,
    keep: Vec<bool>,
    clipped: Vec<f64>,
    q: Vec<f64>,
    sw: Vec<f64>,
    sf: Vec<f64>,
    ss: Vec<f64>,
    spline: SmoothingSpline,
}

/// Smooth continuum of one camera into `out` (same length as `wave`).
///
/// # Errors
/// Length mismatches; a failed spline fit.
pub fn smooth_camera(
    wave: &[f64],
    flux: &[f64],
    ivar: &[f64],
    linemask: &[bool],
    s: &mut SmoothScratch,
    out: &mut [f64],
) -> Result<(), KernelError> {
    let n = wave.len();
    if flux.len() != n || ivar.len() != n || linemask.len() != n || out.len() != n {
        return Err(KernelError::Shape("smooth continuum: lengths".into()));
    }
    s.mask.clear();
    s.mask
        .extend(linemask.iter().zip(ivar).map(|(&m, &iv)| m || iv <= 0.0));
    for i in 0..SMOOTH_NMASKPIX.min(n) {
        s.mask[i] = true;
        s.mask[n - 1 - i] = true;
    }
    s.sw.clear();
    s.sf.clear();
    s.ss.clear();
    let mut start = 0;
    while start + SMOOTH_WINDOW <= n {
        let r = start..start + SMOOTH_WINDOW;
        start += SMOOTH_STEP;
        s.vals.clear();
        s.waves.clear();
        for i in r {
            if !s.mask[i] {
                s.vals.push(flux[i]);
                s.waves.push(wave[i]);
            }
        }
        if s.vals.len() < SMOOTH_NMINPIX {
            continue;
        }
        s.keep.resize(s.vals.len(), true);
        let nk = sigmaclip(&s.vals, SMOOTH_CLIP_SIGMA, SMOOTH_CLIP_SIGMA, &mut s.keep)?;
        if nk < SMOOTH_NMINPIX {
            continue;
        }
        s.clipped.clear();
        s.clipped
            .extend(s.vals.iter().zip(&s.keep).filter(|p| *p.1).map(|p| *p.0));
        let mut q = [0.0; 3];
        quantiles(&s.clipped, &[0.5, 0.25, 0.75], &mut q, &mut s.q)?;
        let sig = (q[2] - q[1]) / 1.349;
        if q[0] == 0.0 || sig <= 0.0 {
            continue;
        }
        s.sw.push(pairwise_sum(&s.waves) / s.waves.len() as f64);
        s.sf.push(q[0]);
        s.ss.push(1.0 / sig);
    }
    if s.sw.len() > 3 {
        s.spline.fit(&s.sw, &s.sf, &s.ss, 2, None)?;
        s.spline.eval_into(wave, out)?;
    } else {
        out.fill(0.0);
    }
    for i in 0..n {
        if flux[i] == 0.0 && ivar[i] == 0.0 {
            out[i] = 0.0;
        }
    }
    Ok(())
}

/// Smooth continuum of the hstacked spectrum (per camera `camerapix`) into `out`.
///
/// # Errors
/// As [`smooth_camera`]; `camerapix` outside the arrays.
pub fn smooth_continuum(
    wave: &[f64],
    flux: &[f64],
    ivar: &[f64],
    linemask: &[bool],
    camerapix: &[(usize, usize)],
    s: &mut SmoothScratch,
    out: &mut [f64],
) -> Result<(), KernelError> {
    let n = wave.len();
    if flux.len() != n || ivar.len() != n || linemask.len() != n || out.len() != n {
        return Err(KernelError::Shape("smooth continuum: lengths".into()));
    }
    for &(a, b) in camerapix {
        if a > b || b > n {
            return Err(KernelError::Shape("smooth continuum: camerapix".into()));
        }
        smooth_camera(
            &wave[a..b],
            &flux[a..b],
            &ivar[a..b],
            &linemask[a..b],
            s,
            &mut out[a..b],
        )?;
    }
    Ok(())
}
