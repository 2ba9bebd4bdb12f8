//! Gaussian line profiles on a log-wavelength pixel grid and the
//! resolution-convolved multi-camera line model (SPEC.md §5.3).
//!
//! For line j (rest λ_j, amplitude A, shift v, width σ_v [km/s]):
//! λ* = λ_j (1 + z + v/c), σ = σ_v/c, σ_eff = √(σ² + (σ_G/λ*)²),
//! A_eff = A σ/σ_eff, and at pixel centres ℓ_i = ln λ_i within
//! [ln λ* − 5σ_eff, ln λ* + 5σ_eff] (bisection, left/right):
//! g_i = A_eff exp(−(ℓ_i − ln λ*)²/(2σ_eff²)). FastSpecFit evaluates the
//! pre-convolved Gaussian *point-wise at pixel centres* (no pixel
//! integration); so does this port. Lines with A = 0 are skipped. The camera
//! model is W_c · Σ_j g with W_c the deconvolved resolution matrix.

use crate::kernels::simd::dispatch;

use super::super::resolution::Resolution;
use super::super::KernelError;

/// Speed of light [km/s] (FastSpecFit's `C_LIGHT`).
pub const C_LIGHT: f64 = 299_792.458;
/// Profiles are evaluated within ±`MAX_SDEV` σ_eff of the centre.
pub const MAX_SDEV: f64 = 5.0;
/// σ of the Gaussian pre-convolution [Å] (FastSpecFit's `SIGMA0_ANGSTROM`).
pub const SIGMA_G: f64 = 0.5;

/// Geometry of one line on a grid: log centre, σ (log), σ_eff, A_eff, pixel range.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineGeom {
    pub log_center: f64,
    pub line_shift: f64,
    pub sigma: f64,
    pub sigma_eff: f64,
    pub lo: usize,
    pub hi: usize,
}

/// Centre, widths and the [lo, hi) pixel range; `None` if the range is empty
/// at an end of the grid (FastSpecFit's `hi == 0 or lo == n`).
pub(crate) fn line_geom(
    restwave: f64,
    vshift: f64,
    sigma_v: f64,
    logwave: &[f64],
    z: f64,
    sigma_g: f64,
) -> Option<LineGeom> {
    let sigma = sigma_v / C_LIGHT;
    let line_shift = 1.0 + z + vshift / C_LIGHT;
    let shifted = restwave * line_shift;
    let log_center = shifted.ln();
    let sg = sigma_g / shifted;
    let sigma_eff = (sigma * sigma + sg * sg).sqrt();
    let left = log_center - MAX_SDEV * sigma_eff;
    let right = log_center + MAX_SDEV * sigma_eff;
    // off the grid: the searches below would give hi == 0 (every pixel
    // right of `right`) or lo == n (every pixel left of `left`)
    match (logwave.first(), logwave.last()) {
        (Some(&first), Some(&last)) if right < first || last < left => return None,
        _ => {}
    }
    let lo = logwave.partition_point(|&v| v < left);
    let hi = logwave.partition_point(|&v| v <= right);
    if hi == 0 || lo == logwave.len() {
        return None;
    }
    Some(LineGeom {
        log_center,
        line_shift,
        sigma,
        sigma_eff,
        lo,
        hi: hi.max(lo),
    })
}

/// One line's profile: writes g into `vals[0 .. hi − lo]` and returns
/// (lo, hi) (FastSpecFit's `emline_model_core`); (0, 0) when the line is off
/// the grid. `vals` must hold at least `logwave.len()` values.
#[allow(clippy::too_many_arguments)]
pub fn line_profile(
    restwave: f64,
    amplitude: f64,
    vshift: f64,
    sigma_v: f64,
    logwave: &[f64],
    z: f64,
    sigma_g: f64,
    vals: &mut [f64],
) -> (usize, usize) {
    let Some(g) = line_geom(restwave, vshift, sigma_v, logwave, z, sigma_g) else {
        return (0, 0);
    };
    let amp_eff = amplitude * g.sigma / g.sigma_eff;
    let inv2 = 0.5 / (g.sigma_eff * g.sigma_eff);
    for (v, &l) in vals.iter_mut().zip(&logwave[g.lo..g.hi]) {
        let x = l - g.log_center;
        *v = amp_eff * (-x * x * inv2).exp();
    }
    (g.lo, g.hi)
}

/// Sum of all line profiles (un-convolved) on one grid (FastSpecFit's
/// `emline_model`): `params` = [amplitudes | v-shifts | σ] of `restwave`'s
/// lines; `out` is overwritten, `buf` is scratch of at least `logwave.len()`.
///
/// # Errors
/// [`KernelError::Shape`] on inconsistent lengths.
pub fn emline_model(
    restwave: &[f64],
    params: &[f64],
    logwave: &[f64],
    z: f64,
    sigma_g: f64,
    out: &mut [f64],
    buf: &mut [f64],
) -> Result<(), KernelError> {
    let n = restwave.len();
    if params.len() != 3 * n || out.len() != logwave.len() || buf.len() < logwave.len() {
        return Err(KernelError::Shape(format!(
            "emline_model: {n} lines, {} params, {} pixels, out {}, buf {}",
            params.len(),
            logwave.len(),
            out.len(),
            buf.len()
        )));
    }
    out.iter_mut().for_each(|v| *v = 0.0);
    for j in 0..n {
        let a = params[j];
        if a == 0.0 {
            continue;
        }
        let (s, e) = line_profile(
            restwave[j],
            a,
            params[n + j],
            params[2 * n + j],
            logwave,
            z,
            sigma_g,
            buf,
        );
        for (o, &b) in out[s..e].iter_mut().zip(&buf[..e - s]) {
            *o += b;
        }
    }
    Ok(())
}

/// One camera of an emission-line fit: its slot in the hstacked arrays,
/// log-wavelengths and deconvolved resolution matrix W.
#[derive(Debug, Clone)]
pub struct EmlineCamera {
    /// First hstacked pixel of the camera.
    pub start: usize,
    /// ln λ of the camera's pixels (ascending).
    pub logwave: Vec<f64>,
    /// Deconvolved resolution matrix W (§2.4).
    pub w: Resolution,
    /// Row data of W (npix × ndiag), for the Jacobian.
    pub rowdata: Vec<f64>,
    /// Smallest step of `logwave` (∞ below two pixels), for the Jacobian's
    /// buffer width.
    pub min_dlog: f64,
}

impl EmlineCamera {
    /// Camera from its wavelengths [Å], hstacked start and the *deconvolved*
    /// matrix W.
    ///
    /// # Errors
    /// [`KernelError::Shape`] if W's size differs from the grid's;
    /// [`KernelError::Domain`] for non-positive wavelengths.
    pub fn new(start: usize, wave: &[f64], w: Resolution) -> Result<Self, KernelError> {
        if w.npix != wave.len() {
            return Err(KernelError::Shape(format!(
                "emline camera: {} wavelengths, W of {}",
                wave.len(),
                w.npix
            )));
        }
        if wave.iter().any(|&x| x.is_nan() || x <= 0.0) {
            return Err(KernelError::Domain("non-positive wavelength".into()));
        }
        let mut rowdata = vec![0.0; w.npix * w.ndiag];
        w.row_data(&mut rowdata)?;
        let logwave: Vec<f64> = wave.iter().map(|x| x.ln()).collect();
        Ok(Self {
            start,
            min_dlog: super::jacobian::min_step(&logwave),
            logwave,
            w,
            rowdata,
        })
    }

    /// Number of pixels.
    pub fn npix(&self) -> usize {
        self.logwave.len()
    }
}

/// The multi-camera line model of one spectrum.
#[derive(Debug, Clone)]
pub struct EmlineSpectrum {
    /// Rest wavelengths of the lines [Å].
    pub restwave: Vec<f64>,
    /// Redshift.
    pub z: f64,
    /// Cameras, in hstacked order.
    pub cameras: Vec<EmlineCamera>,
    /// Total hstacked pixels.
    pub npix: usize,
}

/// Scratch space for [`EmlineSpectrum::model`].
#[derive(Debug, Clone, Default)]
pub struct ModelWorkspace {
    ideal: Vec<f64>,
    buf: Vec<f64>,
}

impl EmlineSpectrum {
    /// Assemble from cameras (their `start`s must tile [0, npix)).
    ///
    /// # Errors
    /// [`KernelError::Shape`] if cameras are not contiguous from 0.
    pub fn new(
        restwave: Vec<f64>,
        z: f64,
        cameras: Vec<EmlineCamera>,
    ) -> Result<Self, KernelError> {
        let mut npix = 0;
        for c in &cameras {
            if c.start != npix {
                return Err(KernelError::Shape(format!(
                    "emline cameras: camera starts at {}, expected {npix}",
                    c.start
                )));
            }
            npix += c.npix();
        }
        Ok(Self {
            restwave,
            z,
            cameras,
            npix,
        })
    }

    /// Resolution-convolved line model (objective form: not clipped) of the
    /// full parameter vector `params` into `out` (hstacked).
    ///
    /// # Errors
    /// [`KernelError::Shape`] on inconsistent lengths.
    pub fn model(
        &self,
        params: &[f64],
        out: &mut [f64],
        ws: &mut ModelWorkspace,
    ) -> Result<(), KernelError> {
        if out.len() != self.npix {
            return Err(KernelError::Shape(format!(
                "emline model: out of {}, spectrum of {}",
                out.len(),
                self.npix
            )));
        }
        for c in &self.cameras {
            let n = c.npix();
            if ws.ideal.len() < n {
                ws.ideal.resize(n, 0.0);
                ws.buf.resize(n, 0.0);
            }
            let ideal = &mut ws.ideal[..n];
            emline_model(
                &self.restwave,
                params,
                &c.logwave,
                self.z,
                SIGMA_G,
                ideal,
                &mut ws.buf,
            )?;
            c.w.dot(ideal, &mut out[c.start..c.start + n])?;
        }
        Ok(())
    }

    /// Best-fit form of [`model`](Self::model): negative pixels set to 0.
    ///
    /// # Errors
    /// As [`model`](Self::model).
    pub fn model_clipped(
        &self,
        params: &[f64],
        out: &mut [f64],
        ws: &mut ModelWorkspace,
    ) -> Result<(), KernelError> {
        self.model(params, out, ws)?;
        out.iter_mut().for_each(|v| {
            if *v < 0.0 {
                *v = 0.0
            }
        });
        Ok(())
    }
}

/// Analytic line flux F = √(2π) A λ* σ_v/c (×1e-17 erg s⁻¹ cm⁻²).
pub fn analytic_flux(restwave: f64, amplitude: f64, vshift: f64, sigma_v: f64, z: f64) -> f64 {
    let lam = restwave * (1.0 + z + vshift / C_LIGHT);
    (2.0 * std::f64::consts::PI).sqrt() * amplitude * lam * sigma_v / C_LIGHT
}

/// Rows [a, b) of W·x for a banded W of one camera (`data`: DIA
/// `[ndiag][n]`, `rowdata`: `[n][ndiag]`), into `out[..b − a]`: each row sums
/// its band in ascending column order (as [`super::jacobian`]'s `mulWMJ`
/// port). Interior rows are summed diagonal by diagonal over the whole block
/// at once (vectorised; pulp's runtime dispatch, no fused multiply–add, so
/// every instruction set gives the same bits), edge rows one at a time.
pub(crate) fn banded_rows(
    data: &[f64],
    rowdata: &[f64],
    nd: usize,
    x: &[f64],
    a: usize,
    b: usize,
    out: &mut [f64],
) {
    dispatch(
        #[inline(always)]
        || banded_rows_body(data, rowdata, nd, x, a, b, out),
    );
}

#[inline(always)]
fn banded_rows_body(
    data: &[f64],
    rowdata: &[f64],
    nd: usize,
    x: &[f64],
    a: usize,
    b: usize,
    out: &mut [f64],
) {
    let n = x.len();
    let h = nd / 2;
    let out = &mut out[..b - a];
    // interior rows [ilo, ihi): the whole band lies inside [0, n)
    let ilo = a.max(h);
    let ihi = b.min(n.saturating_sub(h));
    let edge = |i: usize, o: &mut f64| {
        let kmin = i.saturating_sub(h);
        let kmax = (i + h).min(n - 1);
        let rd = &rowdata[i * nd + kmin + h - i..i * nd + kmax + h - i + 1];
        let mut acc = 0.0;
        for (q, &v) in rd.iter().zip(&x[kmin..=kmax]) {
            acc += q * v;
        }
        *o = acc;
    };
    if ilo < ihi {
        let cnt = ihi - ilo;
        let o = &mut out[ilo - a..ihi - a];
        o.fill(0.0);
        for idx in 0..nd {
            let j0 = ilo - h + idx;
            let d = nd - 1 - idx;
            let dd = &data[d * n + j0..d * n + j0 + cnt];
            let xx = &x[j0..j0 + cnt];
            for t in 0..cnt {
                o[t] += dd[t] * xx[t];
            }
        }
        for i in (a..ilo).chain(ihi..b) {
            edge(i, &mut out[i - a]);
        }
    } else {
        for i in a..b {
            edge(i, &mut out[i - a]);
        }
    }
}
