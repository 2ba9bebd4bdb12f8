//! Per-line measurements and the final model of the emission-line stage (SPEC.md §5.7, §5.8,
//! §4.11): FastSpecFit's `EMFitTools.populate_emtable`, the rebuild of the best-fit line model
//! from the float32 output columns, RCHI2, `build_coadded_models` (the MODELS rows),
//! FLUX_SYNTH_SPECMODEL_* and the Dn(4000) values, as plain kernels.
//!
//! * [`measure_lines`] — every `{LINE}_*` column, the doublet-ratio columns and the moments,
//!   from the preferred fit (full parameter vector with doublet ratios, observed amplitudes),
//!   the hstacked arrays and, optionally, the Monte Carlo refits ([`MonteInputs`]).
//! * [`final_model`] — the float32 rebuild of the line model, RCHI2, the MODELS rows on the
//!   uniform output grid, synthetic photometry of continuum + line model and DN4000.
//! * [`dn4000_observed`] — DN4000_OBS / DN4000_IVAR (computed by FastSpecFit in the continuum
//!   stage, from the hstacked dereddened spectrum and its ivar without the line mask).
//!
//! # Algorithm (populate_emtable)
//! Sorted copies (by wavelength, stable sort) of the hstacked arrays; pixel widths
//! `dwaves` from the bin edges of the sorted wavelengths; `dpix` = median of the *unsorted*
//! wavelength differences. Per line, with λ_z = λ_rest(1 + z + v/c) and σ the fitted width
//! (75 km/s, or 1200 km/s for broad Balmer lines, when it is 0), the window half-width is
//! w = max(σλ_z/c, 2·dpix); line pixels are (λ_z − 3w, λ_z + 3w] with emlineivar > 0, a null
//! patch if the window is empty or more than 30 % of it has original ivar 0; the continuum
//! comes from (λ_z − 10w, λ_z − 3w] ∪ (λ_z + 3w, λ_z + 10w] with original ivar > 0,
//! 3σ-clipped. See SPEC.md §5.7 for which columns are written in which case; the code below
//! follows FastSpecFit 3.6.1 line by line in that respect, including:
//!
//! * the flux uses the *fitted* σ (0 → flux 0) while the widths use the default;
//! * lines with 0 < NPIX < 7 get only NPIX and (with MC) a CONT_IVAR, which is that of the most
//!   recent earlier line with NPIX ≥ 7 **[QUIRK, kept]**;
//! * out-of-range lines and NPIX = 0 lines that are not fully tied have their best-fit v and σ
//!   zeroed *before* the moments are measured (a moment group whose first line was zeroed uses
//!   v = 0 and the default σ);
//! * IVARs are written only when below float32's maximum; FLUX_LIMIT and EW use the float64
//!   ivars even when those were not written.
//!
//! # Deviations (documented)
//! * **Stale CONT_IVAR without an earlier line**: where FastSpecFit raises
//!   `UnboundLocalError` (a line with 0 < NPIX < 7 before any line with NPIX ≥ 7, with Monte
//!   Carlo on), this port writes CONT_IVAR = 0 for that line (as if the continuum had no MC
//!   variance) and carries on.
//! * The "Ivar should never be zero within an emission line" check of FastSpecFit can never
//!   fire (line pixels are selected by emlineivar > 0) and is not reproduced.
//! * The per-group NARROW/BROAD/UV summary kinematics are only logged by FastSpecFit and are
//!   not computed.
//! * Summation order: sums over pixels use NumPy's pairwise summation ([`pairwise_sum`]);
//!   the wavelength sort is stable (NumPy's default sort is not, which only matters for
//!   exactly equal wavelengths, absent from DESI's hstacked grids).
//!
//! # Final model (§5.8)
//! The line parameters are read back from the float32 columns (`{LINE}_MODELAMP`,
//! `_VSHIFT`, `_SIGMA`; doublet targets: ratio column × reference MODELAMP, the product
//! rounded to float32 as NumPy does on a float32 array). FastSpecFit then evaluates the
//! un-convolved Gaussians into a **float32** buffer (each pixel value rounded to float32,
//! accumulated in float32) because the parameter array is float32 **[QUIRK, reproduced]**,
//! multiplies by the deconvolved W in float64 and clips negative pixels to 0. The MODELS
//! rows are `np.interp` of the wavelength-sorted hstacked arrays onto
//! λ_min + Δ·k (λ_min = ⌊1000·min⌋/1000 of the coadd grid, Δ = its first step rounded to
//! 10⁻³ Å), cast to float32.
//!
//! # Tests
//! `tests.rs` feeds the inputs FastSpecFit's own `populate_emtable` / `build_coadded_models`
//! received on the two real targets (captured by `tests/fixtures/scripts/gen_measure.py`,
//! run with 10 Monte Carlo realisations to keep the fixtures small) and compares every
//! column; they agree bit for bit in float32, the final model to ~1e-8.

use super::linemodel::LineModel;
use super::params::{ParamTable, ParamType};
use super::profile::{line_geom, EmlineSpectrum, C_LIGHT, SIGMA_G};
use crate::kernels::derived::dn4000::{dn4000, Dn4000Scratch};
use crate::kernels::filters::FilterCurve;
use crate::kernels::stats::{median, pairwise_sum, sigmaclip, TINY};
use crate::kernels::synthphot::{ab_maggies, SynthScratch};
use crate::kernels::KernelError;

#[cfg(test)]
mod tests;

/// Minimum number of unmasked pixels for a line (and for its continuum).
pub const NMINPIX: usize = 7;
/// Half-width of the line window in units of w.
pub const NSIGMA: f64 = 3.0;
/// Half-width of the moment window in units of w.
pub const MOMENT_NSIGMA: f64 = 5.0;
/// Default σ (km/s) of a dropped (σ = 0) narrow or UV line, for the windows.
pub const LIMITSIGMA_NARROW: f64 = 75.0;
/// Default σ (km/s) of a dropped broad Balmer line, for the windows.
pub const LIMITSIGMA_BROAD: f64 = 1200.0;
/// Largest float32; IVARs at or above it are not written.
pub const F32MAX: f64 = f32::MAX as f64;
/// FastSpecFit's flux normalisation (1e-17 erg s⁻¹ cm⁻² Å⁻¹ units).
pub const FLUXNORM: f64 = 1e17;
/// Column suffixes of one line, in output order (`{NAME}_{suffix}`): the FASTSPEC schema's.
pub use fsf_components::fastspec::LINE_SUFFIXES;

/// Monte Carlo refits of the preferred line model (all row-major, `nmonte` rows).
#[derive(Debug, Clone, Copy)]
pub struct MonteInputs<'a> {
    /// Number of realisations.
    pub nmonte: usize,
    /// Fitted full parameter vectors (doublet slots hold ratios), `nmonte × nparams`.
    pub values: &'a [f64],
    /// Observed (peak, resolution-convolved) amplitudes, `nmonte × nlines`.
    pub obsamps: &'a [f64],
    /// Line residual spectra `specflux_mc − continuum(_mc) − smooth`, hstacked order,
    /// `nmonte × npix` (*without* the bad-pixel interpolation of §5.4, as FastSpecFit).
    pub emlineflux: &'a [f64],
    /// `specflux_mc − line model_mc`, hstacked order, `nmonte × npix`.
    pub specflux_nolines: &'a [f64],
}

/// Inputs of [`measure_lines`] (FastSpecFit's `populate_emtable` arguments).
#[derive(Debug, Clone, Copy)]
pub struct MeasureInputs<'a> {
    /// Parameter table (line table, doublet bookkeeping, fixed-ratio columns).
    pub params: &'a ParamTable,
    /// The preferred line model (its `tiedtoparam` / `tiedfactor` are read).
    pub model: &'a LineModel,
    /// Lines inside the hstacked coverage ([`ParamTable::lines_in_range`]).
    pub in_range: &'a [bool],
    /// Moment groups (label, line names), e.g. `Constraints::moments`.
    pub moments: &'a [(String, Vec<String>)],
    /// Redshift.
    pub z: f64,
    /// Preferred fit: full parameter vector, doublet slots holding the ratios (`nparams`).
    pub values: &'a [f64],
    /// Preferred fit: observed amplitudes per line (`nlines`).
    pub obsamps: &'a [f64],
    /// Hstacked wavelengths (Å) (not monotonic at camera overlaps).
    pub emlinewave: &'a [f64],
    /// Line residual (bad pixels interpolated, §5.4).
    pub emlineflux: &'a [f64],
    /// Line-fit ivar (bad pixels interpolated).
    pub emlineivar: &'a [f64],
    /// Original ivar (dereddened, floored; masked pixels 0).
    pub oemlineivar: &'a [f64],
    /// Preferred best-fit line model (clipped).
    pub model_pref: &'a [f64],
    /// `specflux − model_pref`.
    pub specflux_nolines: &'a [f64],
    /// Monte Carlo refits, if any.
    pub monte: Option<MonteInputs<'a>>,
}

/// The 18 output columns of one line (float32 as written; NPIX int32). All default to 0.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LineColumns {
    /// Model amplitude (doublet targets: ratio × reference amplitude).
    pub modelamp: f32,
    /// Observed (resolution-convolved) peak amplitude.
    pub amp: f32,
    /// MC ivar of `amp`.
    pub amp_ivar: f32,
    /// Analytic Gaussian flux.
    pub flux: f32,
    /// MC ivar of `flux`.
    pub flux_ivar: f32,
    /// Boxcar flux over the line pixels.
    pub boxflux: f32,
    /// MC ivar of `boxflux`.
    pub boxflux_ivar: f32,
    /// Velocity shift (km/s).
    pub vshift: f32,
    /// MC ivar of `vshift`.
    pub vshift_ivar: f32,
    /// Width σ (km/s).
    pub sigma: f32,
    /// MC ivar of `sigma`.
    pub sigma_ivar: f32,
    /// Continuum level.
    pub cont: f32,
    /// MC ivar of `cont` (possibly stale, see the module docs).
    pub cont_ivar: f32,
    /// Rest-frame equivalent width (Å).
    pub ew: f32,
    /// MC ivar of `ew`.
    pub ew_ivar: f32,
    /// 1σ flux upper limit.
    pub flux_limit: f32,
    /// χ² over the line pixels (not reduced).
    pub chi2: f32,
    /// Number of unmasked line pixels.
    pub npix: i32,
}

impl LineColumns {
    /// The float columns in [`LINE_SUFFIXES`] order (NPIX last, as f64).
    pub fn values(&self) -> [f64; 18] {
        let f = |x: f32| f64::from(x);
        [
            f(self.modelamp),
            f(self.amp),
            f(self.amp_ivar),
            f(self.flux),
            f(self.flux_ivar),
            f(self.boxflux),
            f(self.boxflux_ivar),
            f(self.vshift),
            f(self.vshift_ivar),
            f(self.sigma),
            f(self.sigma_ivar),
            f(self.cont),
            f(self.cont_ivar),
            f(self.ew),
            f(self.ew_ivar),
            f(self.flux_limit),
            f(self.chi2),
            f64::from(self.npix),
        ]
    }
}

/// A doublet-ratio column (free ratio with MC ivar, or fixed ratio 1/factor with ivar 0).
#[derive(Debug, Clone, PartialEq)]
pub struct RatioColumn {
    /// Column name, upper case (e.g. `OII_DOUBLET_RATIO`); its ivar is `<name>_IVAR`.
    pub name: String,
    /// Value.
    pub value: f32,
    /// Inverse variance.
    pub ivar: f32,
}

/// Non-parametric moments of one moment group.
#[derive(Debug, Clone, PartialEq)]
pub struct MomentColumns {
    /// Label (column prefix, e.g. `HBETA`): columns `{label}_MOMENT{n}` and `_IVAR`.
    pub label: String,
    /// First three moments [Å, Å², Å³].
    pub moments: [f32; 3],
    /// Their MC inverse variances.
    pub ivar: [f32; 3],
}

/// Everything [`measure_lines`] writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineMeasurements {
    /// Per line, table order.
    pub lines: Vec<LineColumns>,
    /// Doublet-ratio columns in line order (only for in-range lines).
    pub ratios: Vec<RatioColumn>,
    /// Moments, in the order of the moment groups (groups naming no table line skipped).
    pub moments: Vec<MomentColumns>,
}

/// Reusable buffers of [`measure_lines`] and [`final_model`].
#[derive(Debug, Clone, Default)]
pub struct MeasureWorkspace {
    srt: Vec<usize>,
    wave_s: Vec<f64>,
    flux_s: Vec<f64>,
    ivar_s: Vec<f64>,
    oivar_s: Vec<f64>,
    model_s: Vec<f64>,
    nolines_s: Vec<f64>,
    dwaves: Vec<f64>,
    params: Vec<f64>,
    params_mc: Vec<f64>,
    vals_mc: Vec<f64>,
    buf: Vec<f64>,
    buf2: Vec<f64>,
    keep: Vec<bool>,
    border: Vec<usize>,
    mc_box: Vec<f64>,
    mc_flux: Vec<f64>,
    mc_cont: Vec<f64>,
    mc_cont_valid: bool,
    ideal32: Vec<f32>,
    ideal: Vec<f64>,
    synth: SynthScratch,
    dn: Dn4000Scratch,
}

impl MeasureWorkspace {
    /// Empty workspace; buffers grow on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

/// NumPy `var` of a 1-D array (pairwise sums).
fn np_var(v: &[f64], scratch: &mut Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len() as f64;
    let mean = pairwise_sum(v) / n;
    scratch.clear();
    scratch.extend(v.iter().map(|x| (x - mean) * (x - mean)));
    pairwise_sum(scratch) / n
}

/// NumPy `var(a, axis=0)` of one column of a row-major `rows × ncol` array (row-by-row sums).
fn np_var_col(a: &[f64], ncol: usize, col: usize) -> f64 {
    let rows = a.len() / ncol.max(1);
    if rows == 0 {
        return f64::NAN;
    }
    let n = rows as f64;
    let mut s = 0.0;
    for r in 0..rows {
        s += a[r * ncol + col];
    }
    let mean = s / n;
    let mut ss = 0.0;
    for r in 0..rows {
        let d = a[r * ncol + col] - mean;
        ss += d * d;
    }
    ss / n
}

/// `var2ivar`: 1/var if var > TINY else 0 (NaN → 0).
fn var2ivar(var: f64) -> f64 {
    if var > TINY {
        1.0 / var
    } else {
        0.0
    }
}

/// The value to write for an IVAR: itself if below float32's maximum, else nothing (`None`).
fn capped(ivar: f64) -> Option<f32> {
    (ivar < F32MAX).then_some(ivar as f32)
}

/// `np.searchsorted(a, v, side='right')` (the reference of [`ss_right_near`]).
#[cfg(test)]
fn ss_right(a: &[f64], v: f64) -> usize {
    a.partition_point(|&x| x <= v)
}

/// [`ss_right`] on sorted `a`, searched outward from `*hint` (galloping, then
/// bisection of the bracket) and stored back into `*hint`: the same index
/// (the partition point of a sorted array is unique) in O(log distance) —
/// the Monte-Carlo realisations of a line look for nearly the same edges.
fn ss_right_near(a: &[f64], v: f64, hint: &mut usize) -> usize {
    let n = a.len();
    let h = (*hint).min(n);
    let (lo, hi) = if h < n && a[h] <= v {
        // the answer is > h
        let (mut lo, mut step) = (h + 1, 1);
        loop {
            let probe = h + step;
            if probe >= n {
                break (lo, n);
            }
            if a[probe] > v {
                break (lo, probe);
            }
            lo = probe + 1;
            step *= 2;
        }
    } else {
        // the answer is <= h
        let (mut hi, mut step) = (h, 1);
        loop {
            if hi == 0 {
                break (0, 0);
            }
            let probe = hi.saturating_sub(step);
            if a[probe] <= v {
                break (probe + 1, hi);
            }
            hi = probe;
            step *= 2;
        }
    };
    let r = lo + a[lo..hi].partition_point(|&x| x <= v);
    *hint = r;
    r
}

/// FastSpecFit's `centers2edges` widths (`np.diff` of the edges) of sorted centres: interior
/// edges halfway between centres, the outer ones mirrored (c₀ − (c₁ − e₁)); needs ≥ 2 centres.
fn bin_widths(c: &[f64], out: &mut Vec<f64>) {
    out.clear();
    let n = c.len();
    if n < 2 {
        return;
    }
    let mid = |k: usize| 0.5 * (c[k - 1] + c[k]);
    let edge = |k: usize| -> f64 {
        if k == 0 {
            c[0] - (c[1] - mid(1))
        } else if k == n {
            c[n - 1] + (c[n - 1] - mid(n - 1))
        } else {
            mid(k)
        }
    };
    let mut prev = edge(0);
    for k in 1..=n {
        let e = edge(k);
        out.push(e - prev);
        prev = e;
    }
}

/// Immutable per-target context of the per-line measurements.
struct Ctx<'a> {
    z: f64,
    dpix: f64,
    wave_s: &'a [f64],
    ivar_s: &'a [f64],
    oivar_s: &'a [f64],
    dwaves: &'a [f64],
}

/// One line's geometry (FastSpecFit's `preprocess_linesigma` + windows).
#[derive(Debug, Clone, Copy)]
struct Widths {
    linezwave: f64,
    /// Fitted σ (km/s) as given (0 for dropped lines).
    sigma0: f64,
    /// σ in observed Å, from the defaulted σ.
    sigma_ang: f64,
    /// Window half-width unit w.
    window: f64,
}

impl Ctx<'_> {
    /// Widths of a line: λ_z = λ_rest(1 + (z + v/c)) as in `get_fluxes`.
    fn widths(&self, restwave: f64, vshift: f64, sigma0: f64, broad_balmer: bool) -> Widths {
        self.widths_at(
            restwave * (1.0 + (self.z + vshift / C_LIGHT)),
            sigma0,
            broad_balmer,
        )
    }

    /// Widths of a moment group: λ_z = λ_ref((1 + z) + v/c) as in `get_moments`.
    fn moment_widths(&self, restwave: f64, vshift: f64, sigma0: f64, broad_balmer: bool) -> Widths {
        self.widths_at(
            restwave * (1.0 + self.z + vshift / C_LIGHT),
            sigma0,
            broad_balmer,
        )
    }

    fn widths_at(&self, linezwave: f64, sigma0: f64, broad_balmer: bool) -> Widths {
        let sigma = if sigma0 == 0.0 {
            if broad_balmer {
                LIMITSIGMA_BROAD
            } else {
                LIMITSIGMA_NARROW
            }
        } else {
            sigma0
        };
        let sigma_ang = sigma * linezwave / C_LIGHT;
        let window = if sigma_ang < 2.0 * self.dpix {
            2.0 * self.dpix
        } else {
            sigma_ang
        };
        Widths {
            linezwave,
            sigma0,
            sigma_ang,
            window,
        }
    }
}

/// Result of FastSpecFit's `get_fluxes` for one line and one realisation.
#[derive(Debug, Clone, Copy, Default)]
struct Fluxes {
    boxflux: f64,
    flux: f64,
    cont: f64,
    /// Line-window index range and null-patch flag (patch = window pixels with ivar > 0).
    s: usize,
    e: usize,
    null: bool,
    npix: usize,
}

/// `get_fluxes`: box flux, analytic flux and continuum of one line for one parameter set;
/// `flux_s(j)` / `nolines_s(j)` read the sorted residual / no-lines spectrum.
#[allow(clippy::too_many_arguments)]
fn get_fluxes(
    ctx: &Ctx<'_>,
    w: &Widths,
    amplitude: f64,
    obsamp: f64,
    flux_s: impl Fn(usize) -> f64,
    nolines_s: impl Fn(usize) -> f64,
    buf: &mut Vec<f64>,
    border: &mut Vec<usize>,
    keep: &mut Vec<bool>,
    hints: &mut [usize; 6],
) -> Fluxes {
    let lz = w.linezwave;
    let s = ss_right_near(ctx.wave_s, lz - NSIGMA * w.window, &mut hints[0]);
    let e = ss_right_near(ctx.wave_s, lz + NSIGMA * w.window, &mut hints[1]).max(s);
    let mut out = Fluxes {
        s,
        e,
        ..Fluxes::default()
    };
    if obsamp > TINY {
        out.flux = (2.0 * std::f64::consts::PI).sqrt() * amplitude * lz * w.sigma0 / C_LIGHT;
    }
    let nzero = ctx.oivar_s[s..e].iter().filter(|&&v| v == 0.0).count();
    if s == e || (nzero as f64) > 0.3 * ((e - s) as f64) {
        out.null = true;
        return out;
    }
    let npix = ctx.ivar_s[s..e].iter().filter(|&&v| v > 0.0).count();
    out.npix = npix;
    if npix >= NMINPIX {
        buf.clear();
        buf.extend(
            (s..e)
                .filter(|&j| ctx.ivar_s[j] > 0.0)
                .map(|j| flux_s(j) * ctx.dwaves[j]),
        );
        out.boxflux = pairwise_sum(buf);
        let slo = ss_right_near(ctx.wave_s, lz - 10.0 * w.window, &mut hints[2]);
        let elo = ss_right_near(ctx.wave_s, lz - 3.0 * w.window, &mut hints[3]).max(slo);
        let shi = ss_right_near(ctx.wave_s, lz + 3.0 * w.window, &mut hints[4]);
        let ehi = ss_right_near(ctx.wave_s, lz + 10.0 * w.window, &mut hints[5]).max(shi);
        border.clear();
        border.extend((slo..elo).filter(|&j| ctx.oivar_s[j] > 0.0));
        border.extend((shi..ehi).filter(|&j| ctx.oivar_s[j] > 0.0));
        if border.len() >= NMINPIX {
            buf.clear();
            buf.extend(border.iter().map(|&j| nolines_s(j)));
            keep.resize(buf.len(), true);
            // sigmaclip only fails on a length mismatch, excluded above
            let nkeep = sigmaclip(buf, 3.0, 3.0, keep).unwrap_or(buf.len());
            if nkeep > 0 && nkeep < buf.len() {
                let mut k = 0;
                for i in 0..buf.len() {
                    if keep[i] {
                        buf[k] = buf[i];
                        k += 1;
                    }
                }
                buf.truncate(k);
            }
            out.cont = pairwise_sum(buf) / buf.len() as f64;
        }
    }
    out
}

/// `get_moments`: first three moments of the residual in (λ_z − 5w, λ_z + 5w].
fn get_moments(
    ctx: &Ctx<'_>,
    w: &Widths,
    flux_s: impl Fn(usize) -> f64,
    buf: &mut Vec<f64>,
    buf2: &mut Vec<f64>,
    hints: &mut [usize; 2],
) -> [f64; 3] {
    let lz = w.linezwave;
    let s = ss_right_near(ctx.wave_s, lz - MOMENT_NSIGMA * w.window, &mut hints[0]);
    let e = ss_right_near(ctx.wave_s, lz + MOMENT_NSIGMA * w.window, &mut hints[1]).max(s);
    buf2.clear();
    buf2.extend((s..e).map(&flux_s));
    let norm = pairwise_sum(buf2);
    if norm == 0.0 {
        return [0.0; 3];
    }
    let ww = &ctx.wave_s[s..e];
    buf.clear();
    buf.extend(ww.iter().zip(buf2.iter()).map(|(w, f)| w * f));
    let m1 = pairwise_sum(buf) / norm;
    buf.clear();
    buf.extend(
        ww.iter()
            .zip(buf2.iter())
            .map(|(w, f)| (w - m1) * (w - m1) * f),
    );
    let m2 = pairwise_sum(buf) / norm;
    buf.clear();
    buf.extend(
        ww.iter()
            .zip(buf2.iter())
            .map(|(w, f)| (w - m1).powf(3.0) * f),
    );
    let m3 = pairwise_sum(buf) / norm;
    [m1, m2, m3]
}

/// Convert doublet ratios to amplitudes (`parameters[doublet_idx] *= parameters[doublet_src]`).
fn ratios_to_amps(pt: &ParamTable, values: &[f64], out: &mut Vec<f64>) {
    out.clear();
    out.extend_from_slice(values);
    for (&t, &s) in pt.doublet_idx.iter().zip(&pt.doublet_src) {
        out[t] *= out[s];
    }
}

fn check_len(what: &str, got: usize, want: usize) -> Result<(), KernelError> {
    if got == want {
        Ok(())
    } else {
        Err(KernelError::Shape(format!(
            "measure_lines: {what} has {got} values, expected {want}"
        )))
    }
}

/// Per-line measurements, doublet ratios and moments (FastSpecFit's `populate_emtable`,
/// SPEC.md §5.7); see the module docs for the rules and deviations.
///
/// # Errors
/// [`KernelError::Shape`] on inconsistent lengths; [`KernelError::Domain`] for an empty
/// spectrum or non-finite wavelengths.
#[allow(clippy::needless_range_loop)] // parallel per-line / per-parameter arrays
pub fn measure_lines(
    inp: &MeasureInputs<'_>,
    ws: &mut MeasureWorkspace,
) -> Result<LineMeasurements, KernelError> {
    let pt = inp.params;
    let nl = pt.nlines();
    let np = pt.nparams();
    let npix = inp.emlinewave.len();
    check_len("in_range", inp.in_range.len(), nl)?;
    check_len("values", inp.values.len(), np)?;
    check_len("obsamps", inp.obsamps.len(), nl)?;
    check_len("model.tiedtoparam", inp.model.tiedtoparam.len(), np)?;
    check_len("model.tiedfactor", inp.model.tiedfactor.len(), np)?;
    for (name, a) in [
        ("emlineflux", inp.emlineflux),
        ("emlineivar", inp.emlineivar),
        ("oemlineivar", inp.oemlineivar),
        ("model_pref", inp.model_pref),
        ("specflux_nolines", inp.specflux_nolines),
    ] {
        check_len(name, a.len(), npix)?;
    }
    if npix < 2 {
        return Err(KernelError::Domain(
            "measure_lines: fewer than two pixels".into(),
        ));
    }
    if inp.emlinewave.iter().any(|w| !w.is_finite()) {
        return Err(KernelError::Domain(
            "measure_lines: non-finite wavelength".into(),
        ));
    }
    if let Some(mc) = &inp.monte {
        check_len("monte.values", mc.values.len(), mc.nmonte * np)?;
        check_len("monte.obsamps", mc.obsamps.len(), mc.nmonte * nl)?;
        check_len("monte.emlineflux", mc.emlineflux.len(), mc.nmonte * npix)?;
        check_len(
            "monte.specflux_nolines",
            mc.specflux_nolines.len(),
            mc.nmonte * npix,
        )?;
    }

    // median pixel size of the unsorted hstacked grid
    ws.buf.clear();
    ws.buf
        .extend(inp.emlinewave.windows(2).map(|p| p[1] - p[0]));
    let dpix = median(&ws.buf, &mut ws.buf2)?;

    // stable wavelength sort
    ws.srt.clear();
    ws.srt.extend(0..npix);
    let wave = inp.emlinewave;
    ws.srt.sort_by(|&a, &b| wave[a].total_cmp(&wave[b]));
    let gather = |src: &[f64], dst: &mut Vec<f64>, srt: &[usize]| {
        dst.clear();
        dst.extend(srt.iter().map(|&i| src[i]));
    };
    gather(wave, &mut ws.wave_s, &ws.srt);
    gather(inp.emlineflux, &mut ws.flux_s, &ws.srt);
    gather(inp.emlineivar, &mut ws.ivar_s, &ws.srt);
    gather(inp.oemlineivar, &mut ws.oivar_s, &ws.srt);
    gather(inp.model_pref, &mut ws.model_s, &ws.srt);
    gather(inp.specflux_nolines, &mut ws.nolines_s, &ws.srt);
    bin_widths(&ws.wave_s, &mut ws.dwaves);

    let mut values = inp.values.to_vec();
    let mut obsamps = inp.obsamps.to_vec();
    ratios_to_amps(pt, &values, &mut ws.params);
    let nmonte = inp.monte.map_or(0, |m| m.nmonte);
    if let Some(mc) = &inp.monte {
        ws.params_mc.clear();
        for k in 0..nmonte {
            ratios_to_amps(pt, &mc.values[k * np..(k + 1) * np], &mut ws.vals_mc);
            ws.params_mc.extend_from_slice(&ws.vals_mc);
        }
    }
    ws.mc_cont_valid = false;

    let MeasureWorkspace {
        srt,
        wave_s,
        flux_s,
        ivar_s,
        oivar_s,
        model_s,
        nolines_s,
        dwaves,
        params,
        params_mc,
        buf,
        buf2,
        keep,
        border,
        mc_box,
        mc_flux,
        mc_cont,
        mc_cont_valid,
        ..
    } = ws;
    let ctx = Ctx {
        z: inp.z,
        dpix,
        wave_s,
        ivar_s,
        oivar_s,
        dwaves,
    };
    let srt: &[usize] = srt;

    let mut out = LineMeasurements {
        lines: vec![LineColumns::default(); nl],
        ratios: Vec::new(),
        moments: Vec::new(),
    };
    let amp_idx = |l: usize| pt.param_index(l, ParamType::Amplitude);
    let v_idx = |l: usize| pt.param_index(l, ParamType::Vshift);
    let s_idx = |l: usize| pt.param_index(l, ParamType::Sigma);
    let mc_var = |col: usize, ncol: usize, arr: &[f64]| np_var_col(arr, ncol, col);

    for il in 0..nl {
        let (pa, pv, ps) = (amp_idx(il), v_idx(il), s_idx(il));
        if !inp.in_range[il] {
            obsamps[il] = 0.0;
            params[pa] = 0.0;
            values[pa] = 0.0;
            values[pv] = 0.0;
            values[ps] = 0.0;
            continue;
        }
        let modelname = pt.param_names[pa].to_uppercase();
        if modelname.contains("DOUBLET_RATIO") {
            let ivar = inp
                .monte
                .map_or(0.0, |mc| var2ivar(mc_var(pa, np, mc.values)));
            out.ratios.push(RatioColumn {
                name: modelname.clone(),
                value: values[pa] as f32,
                ivar: capped(ivar).unwrap_or(0.0),
            });
        }
        if let Some((_, col)) = pt.amp_fixed_col.iter().find(|(p, _)| *p == pa) {
            out.ratios.push(RatioColumn {
                name: col.to_uppercase(),
                value: (1.0 / inp.model.tiedfactor[pa]) as f32,
                ivar: 0.0,
            });
        }

        let line = &pt.lines.lines[il];
        let broad_balmer = line.isbroad && line.isbalmer;
        let w = ctx.widths(pt.restwave[il], values[pv], values[ps], broad_balmer);
        // search hints for the window edges, shared by the line's realisations
        let mut hints = [0usize; 6];
        let f = get_fluxes(
            &ctx,
            &w,
            params[pa],
            obsamps[il],
            |j| flux_s[j],
            |j| nolines_s[j],
            buf,
            border,
            keep,
            &mut hints,
        );
        let npatch = if f.null { 0 } else { f.npix };
        let col = &mut out.lines[il];
        col.npix = npatch as i32;

        if npatch == 0 {
            let tied = &inp.model.tiedtoparam;
            if tied[pa] != -1 && tied[pv] != -1 && tied[ps] != -1 {
                col.amp = obsamps[il] as f32;
                col.vshift = values[pv] as f32;
                col.sigma = values[ps] as f32;
                col.modelamp = params[pa] as f32;
                col.flux = f.flux as f32;
                if let Some(mc) = &inp.monte {
                    if let Some(v) = capped(var2ivar(mc_var(il, nl, mc.obsamps))) {
                        col.amp_ivar = v;
                    }
                    if let Some(v) = capped(var2ivar(mc_var(pv, np, mc.values))) {
                        col.vshift_ivar = v;
                    }
                    if let Some(v) = capped(var2ivar(mc_var(ps, np, mc.values))) {
                        col.sigma_ivar = v;
                    }
                }
            } else {
                obsamps[il] = 0.0;
                params[pa] = 0.0;
                values[pa] = 0.0;
                values[pv] = 0.0;
                values[ps] = 0.0;
            }
            continue;
        }

        let (mut flux_ivar, mut cont_ivar) = (0.0, 0.0);
        if npatch >= NMINPIX {
            col.amp = obsamps[il] as f32;
            col.vshift = values[pv] as f32;
            col.sigma = values[ps] as f32;
            col.modelamp = params[pa] as f32;
            col.boxflux = f.boxflux as f32;
            col.flux = f.flux as f32;
            col.cont = f.cont as f32;

            if let Some(mc) = &inp.monte {
                mc_box.clear();
                mc_flux.clear();
                mc_cont.clear();
                for k in 0..nmonte {
                    let vk = &mc.values[k * np..(k + 1) * np];
                    let wk = ctx.widths(pt.restwave[il], vk[pv], vk[ps], broad_balmer);
                    let ef = &mc.emlineflux[k * npix..(k + 1) * npix];
                    let sn = &mc.specflux_nolines[k * npix..(k + 1) * npix];
                    let fk = get_fluxes(
                        &ctx,
                        &wk,
                        params_mc[k * np + pa],
                        mc.obsamps[k * nl + il],
                        |j| ef[srt[j]],
                        |j| sn[srt[j]],
                        buf,
                        border,
                        keep,
                        &mut hints,
                    );
                    mc_box.push(fk.boxflux);
                    mc_flux.push(fk.flux);
                    mc_cont.push(fk.cont);
                }
                *mc_cont_valid = true;
                if let Some(v) = capped(var2ivar(mc_var(il, nl, mc.obsamps))) {
                    col.amp_ivar = v;
                }
                if let Some(v) = capped(var2ivar(mc_var(pv, np, mc.values))) {
                    col.vshift_ivar = v;
                }
                if let Some(v) = capped(var2ivar(mc_var(ps, np, mc.values))) {
                    col.sigma_ivar = v;
                }
                if let Some(v) = capped(var2ivar(np_var(mc_box, buf))) {
                    col.boxflux_ivar = v;
                }
            }

            if obsamps[il] > TINY {
                buf.clear();
                buf.extend((f.s..f.e).filter(|&j| ivar_s[j] > 0.0).map(|j| {
                    let r = flux_s[j] - model_s[j];
                    ivar_s[j] * (r * r)
                }));
                col.chi2 = pairwise_sum(buf) as f32;
                if inp.monte.is_some() {
                    flux_ivar = var2ivar(np_var(mc_flux, buf));
                    if let Some(v) = capped(flux_ivar) {
                        col.flux_ivar = v;
                    }
                }
            }
        }

        if inp.monte.is_some() {
            // [QUIRK] for 0 < NPIX < 7 these are the MC continua of the last line with
            // NPIX >= 7; FastSpecFit fails when there is none, we write 0 (module docs).
            if *mc_cont_valid {
                cont_ivar = var2ivar(np_var(mc_cont, buf));
                if let Some(v) = capped(cont_ivar) {
                    col.cont_ivar = v;
                }
            }
        }

        if f.cont != 0.0 && cont_ivar > 0.0 {
            let limit = (2.0 * std::f64::consts::PI).sqrt() * w.sigma_ang / cont_ivar.sqrt();
            col.flux_limit = limit as f32;
            if f.flux > 0.0 && flux_ivar > 0.0 {
                let zf = 1.0 + inp.z;
                col.ew = (f.flux / f.cont / zf) as f32;
                if inp.monte.is_some() {
                    buf2.clear();
                    buf2.extend(
                        mc_flux
                            .iter()
                            .zip(mc_cont.iter())
                            .filter(|(_, &c)| c != 0.0)
                            .map(|(fl, c)| fl / c / zf),
                    );
                    if buf2.len() > 2 {
                        let var = {
                            let (a, b) = (&*buf2, &mut *buf);
                            np_var(a, b)
                        };
                        if let Some(v) = capped(var2ivar(var)) {
                            col.ew_ivar = v;
                        }
                    }
                }
            }
        }
    }

    // moments, with the (possibly zeroed) best-fit kinematics
    for (label, names) in inp.moments {
        let idx: Vec<usize> = names
            .iter()
            .filter_map(|n| pt.line_map.get(n).copied())
            .collect();
        let Some(&first) = idx.first() else {
            continue;
        };
        let mut rsum = 0.0;
        for &i in &idx {
            rsum += pt.restwave[i];
        }
        let restwave = rsum / idx.len() as f64;
        let line = &pt.lines.lines[first];
        let broad_balmer = line.isbroad && line.isbalmer;
        let (pv, ps) = (v_idx(first), s_idx(first));
        let w = ctx.moment_widths(restwave, values[pv], values[ps], broad_balmer);
        let mut mhints = [0usize; 2];
        let m = get_moments(&ctx, &w, |j| flux_s[j], buf, buf2, &mut mhints);
        let mut mom = MomentColumns {
            label: label.clone(),
            moments: m.map(|x| x as f32),
            ivar: [0.0; 3],
        };
        if let Some(mc) = &inp.monte {
            // per-moment realisations stored contiguously in mc_box/mc_flux/mc_cont
            mc_box.clear();
            mc_flux.clear();
            mc_cont.clear();
            for k in 0..nmonte {
                let vk = &mc.values[k * np..(k + 1) * np];
                let wk = ctx.moment_widths(restwave, vk[pv], vk[ps], broad_balmer);
                let ef = &mc.emlineflux[k * npix..(k + 1) * npix];
                let mk = get_moments(&ctx, &wk, |j| ef[srt[j]], buf, buf2, &mut mhints);
                mc_box.push(mk[0]);
                mc_flux.push(mk[1]);
                mc_cont.push(mk[2]);
            }
            for (n, arr) in [&*mc_box, &*mc_flux, &*mc_cont].into_iter().enumerate() {
                if let Some(v) = capped(var2ivar(np_var(arr, buf))) {
                    mom.ivar[n] = v;
                }
            }
            // the moment loop reuses the MC continuum buffer: the stale-CONT_IVAR quirk only
            // concerns the line loop, which is over
            *mc_cont_valid = false;
        }
        out.moments.push(mom);
    }
    Ok(out)
}

/// Inputs of [`final_model`].
#[derive(Debug, Clone, Copy)]
pub struct FinalInputs<'a> {
    /// Parameter table.
    pub params: &'a ParamTable,
    /// The multi-camera line model (rest wavelengths, z, cameras with deconvolved W).
    pub spectrum: &'a EmlineSpectrum,
    /// The columns written by [`measure_lines`].
    pub measured: &'a LineMeasurements,
    /// Hstacked wavelengths (Å).
    pub emlinewave: &'a [f64],
    /// Hstacked dereddened flux.
    pub specflux: &'a [f64],
    /// Original hstacked ivar.
    pub oemlineivar: &'a [f64],
    /// Stellar continuum model (aperture-corrected), hstacked.
    pub continuum: &'a [f64],
    /// Smooth continuum correction, hstacked.
    pub smooth: &'a [f64],
    /// Wavelengths of the camera-coadded spectrum (only its first two values and extremes
    /// are used).
    pub coadd_wave: &'a [f64],
    /// Camera-coadded flux (not dereddened) on the output grid (same length as the grid).
    pub coadd_flux: &'a [f64],
    /// Synthetic-photometry filters (`synth_filters[photsys]`), band order.
    pub synth_filters: &'a [FilterCurve],
    /// DN4000_IVAR of the data (from [`dn4000_observed`]); DN4000 is measured only if > 0.
    pub dn4000_ivar: f64,
}

/// The MODELS rows of one object (FastSpecFit's `build_coadded_models`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRows {
    /// Wavelength of pixel 0 (CRVAL1) (Å).
    pub crval1: f64,
    /// Pixel size (CDELT1) (Å).
    pub cdelt1: f64,
    /// CONTINUUM row.
    pub continuum: Vec<f32>,
    /// SMOOTHCONTINUUM row.
    pub smooth: Vec<f32>,
    /// EMLINEMODEL row.
    pub emline: Vec<f32>,
}

/// Outputs of [`final_model`].
#[derive(Debug, Clone, PartialEq)]
pub struct FinalModel {
    /// Best-fit line model rebuilt from the float32 columns (hstacked, clipped at 0).
    pub emline_model: Vec<f64>,
    /// RCHI2 (§5.8).
    pub rchi2: f64,
    /// MODELS rows.
    pub models: ModelRows,
    /// FLUX_SYNTH_SPECMODEL_* (nanomaggies), filter order.
    pub flux_synth_specmodel: Vec<f64>,
    /// DN4000 of the line-subtracted coadd (0 unless `dn4000_ivar > 0`).
    pub dn4000: f64,
}

/// NumPy `interp(x, xp, fp)` (default left/right = end values) for increasing `xp`.
#[cfg(test)]
fn np_interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    np_interp_at(x, xp.partition_point(|&v| v <= x), xp, fp)
}

/// [`np_interp`] with `pp` = the partition point of `xp` at x (#{xp ≤ x}).
fn np_interp_at(x: f64, pp: usize, xp: &[f64], fp: &[f64]) -> f64 {
    let n = xp.len();
    if x.is_nan() {
        return x;
    }
    if x < xp[0] {
        return fp[0];
    }
    if x > xp[n - 1] {
        return fp[n - 1];
    }
    let j = pp - 1;
    if j == n - 1 || xp[j] == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    let r = slope * (x - xp[j]) + fp[j];
    if r.is_nan() {
        let r2 = slope * (x - xp[j + 1]) + fp[j + 1];
        if r2.is_nan() && fp[j] == fp[j + 1] {
            return fp[j];
        }
        return r2;
    }
    r
}

/// The output grid of `build_coadded_models`: (λ_min, Δ, npix).
///
/// # Errors
/// [`KernelError::Domain`] for fewer than two coadd wavelengths or a non-positive step.
pub fn output_grid(coadd_wave: &[f64]) -> Result<(f64, f64, usize), KernelError> {
    if coadd_wave.len() < 2 {
        return Err(KernelError::Domain(
            "output grid: fewer than two coadd wavelengths".into(),
        ));
    }
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &w in coadd_wave {
        lo = lo.min(w);
        hi = hi.max(w);
    }
    let minwave = (lo * 1000.0).floor() / 1000.0;
    let maxwave = (hi * 1000.0).floor() / 1000.0;
    let dwave = ((coadd_wave[1] - coadd_wave[0]) * 1000.0).round_ties_even() / 1000.0;
    if dwave.is_nan() || dwave <= 0.0 || !minwave.is_finite() || !maxwave.is_finite() {
        return Err(KernelError::Domain(format!(
            "output grid: step {dwave} from {lo} to {hi}"
        )));
    }
    let npix = ((maxwave - minwave) / dwave).round_ties_even() as usize + 1;
    Ok((minwave, dwave, npix))
}

/// Rebuild the best-fit line model from the float32 columns into `out` (hstacked): the
/// un-convolved Gaussians summed in float32 (FastSpecFit's float32 parameter array), times
/// W per camera, negative pixels clipped.
///
/// # Errors
/// [`KernelError::Shape`] on inconsistent lengths.
pub fn rebuild_line_model(
    pt: &ParamTable,
    spectrum: &EmlineSpectrum,
    measured: &LineMeasurements,
    out: &mut [f64],
    ws: &mut MeasureWorkspace,
) -> Result<(), KernelError> {
    let nl = pt.nlines();
    if measured.lines.len() != nl || spectrum.restwave.len() != nl || out.len() != spectrum.npix {
        return Err(KernelError::Shape(format!(
            "rebuild_line_model: {} line columns, {} lines, {} spectrum lines, out {} of {}",
            measured.lines.len(),
            nl,
            spectrum.restwave.len(),
            out.len(),
            spectrum.npix
        )));
    }
    // float32 parameter vector as read from the columns
    let mut amps: Vec<f32> = measured.lines.iter().map(|c| c.modelamp).collect();
    for (&t, &s) in pt.doublet_idx.iter().zip(&pt.doublet_src) {
        let name = pt.param_names[t].to_uppercase();
        let ratio = measured
            .ratios
            .iter()
            .find(|r| r.name == name)
            .map_or(0.0, |r| r.value);
        amps[t] = ratio * measured.lines[s].modelamp;
    }
    for c in &spectrum.cameras {
        let n = c.npix();
        ws.ideal32.clear();
        ws.ideal32.resize(n, 0.0);
        for (j, &a32) in amps.iter().enumerate() {
            if a32 == 0.0 {
                continue;
            }
            let col = &measured.lines[j];
            let (a, v, s) = (f64::from(a32), f64::from(col.vshift), f64::from(col.sigma));
            let Some(g) = line_geom(spectrum.restwave[j], v, s, &c.logwave, spectrum.z, SIGMA_G)
            else {
                continue;
            };
            let amp_eff = a * g.sigma / g.sigma_eff;
            let inv2 = 0.5 / (g.sigma_eff * g.sigma_eff);
            for (o, &l) in ws.ideal32[g.lo..g.hi]
                .iter_mut()
                .zip(&c.logwave[g.lo..g.hi])
            {
                let x = l - g.log_center;
                *o += (amp_eff * (-x * x * inv2).exp()) as f32;
            }
        }
        ws.ideal.clear();
        ws.ideal.extend(ws.ideal32.iter().map(|&v| f64::from(v)));
        c.w.dot(&ws.ideal, &mut out[c.start..c.start + n])?;
    }
    for v in out.iter_mut() {
        if *v < 0.0 {
            *v = 0.0;
        }
    }
    Ok(())
}

/// The final model of the emission-line stage (SPEC.md §5.8): rebuilt line model, RCHI2,
/// MODELS rows, FLUX_SYNTH_SPECMODEL_* and DN4000.
///
/// # Errors
/// [`KernelError::Shape`] on inconsistent lengths (including `coadd_flux` not matching the
/// output grid); errors of the synthetic photometry (a filter with fewer than two grid points).
pub fn final_model(
    inp: &FinalInputs<'_>,
    ws: &mut MeasureWorkspace,
) -> Result<FinalModel, KernelError> {
    let npix = inp.spectrum.npix;
    for (name, a) in [
        ("emlinewave", inp.emlinewave),
        ("specflux", inp.specflux),
        ("oemlineivar", inp.oemlineivar),
        ("continuum", inp.continuum),
        ("smooth", inp.smooth),
    ] {
        if a.len() != npix {
            return Err(KernelError::Shape(format!(
                "final_model: {name} has {} values for {npix} pixels",
                a.len()
            )));
        }
    }
    let mut best = vec![0.0; npix];
    rebuild_line_model(inp.params, inp.spectrum, inp.measured, &mut best, ws)?;

    // RCHI2
    ws.buf.clear();
    ws.buf.extend((0..npix).map(|i| {
        let r = inp.specflux[i] - (inp.continuum[i] + inp.smooth[i] + best[i]);
        inp.oemlineivar[i] * (r * r)
    }));
    let ngood = inp.oemlineivar.iter().filter(|&&v| v > 0.0).count();
    let rchi2 = pairwise_sum(&ws.buf) / ngood as f64;

    // MODELS rows
    let (minwave, dwave, nout) = output_grid(inp.coadd_wave)?;
    if inp.coadd_flux.len() != nout {
        return Err(KernelError::Shape(format!(
            "final_model: coadd_flux has {} values for a {nout}-pixel output grid",
            inp.coadd_flux.len()
        )));
    }
    ws.srt.clear();
    ws.srt.extend(0..npix);
    let wave = inp.emlinewave;
    ws.srt.sort_by(|&a, &b| wave[a].total_cmp(&wave[b]));
    ws.wave_s.clear();
    ws.wave_s.extend(ws.srt.iter().map(|&i| wave[i]));
    let wave_out: Vec<f64> = (0..nout).map(|k| minwave + dwave * k as f64).collect();
    // the partition points of the (ascending) output grid, found once by one
    // forward scan for the three interpolations (the same indices as a
    // binary search per point)
    let mut pps = Vec::with_capacity(nout);
    let mut p = 0usize;
    let mut prev = f64::NEG_INFINITY;
    for &x in &wave_out {
        if x < prev || x.is_nan() {
            p = ws.wave_s.partition_point(|&v| v <= x);
        } else {
            while p < ws.wave_s.len() && ws.wave_s[p] <= x {
                p += 1;
            }
            prev = x;
        }
        pps.push(p);
    }
    let mut interp = |src: &[f64], dst: &mut Vec<f64>| {
        ws.buf2.clear();
        ws.buf2.extend(ws.srt.iter().map(|&i| src[i]));
        dst.clear();
        dst.extend(
            wave_out
                .iter()
                .zip(&pps)
                .map(|(&x, &pp)| np_interp_at(x, pp, &ws.wave_s, &ws.buf2)),
        );
    };
    let (mut cont_out, mut smooth_out, mut line_out) = (Vec::new(), Vec::new(), Vec::new());
    interp(inp.continuum, &mut cont_out);
    interp(inp.smooth, &mut smooth_out);
    interp(&best, &mut line_out);

    // synthetic photometry of continuum + line model (no smooth continuum)
    ws.buf.clear();
    ws.buf.extend(
        cont_out
            .iter()
            .zip(&line_out)
            .map(|(c, l)| (c + l) / FLUXNORM),
    );
    let mut maggies = vec![0.0; inp.synth_filters.len()];
    ab_maggies(
        inp.synth_filters,
        &ws.buf,
        &wave_out,
        &mut maggies,
        &mut ws.synth,
    )?;
    let flux_synth_specmodel = maggies.iter().map(|m| m * 1e9).collect();

    // DN4000 of the line-subtracted coadd
    let dn4000_value = if inp.dn4000_ivar > 0.0 {
        ws.buf.clear();
        ws.buf
            .extend(inp.coadd_flux.iter().zip(&line_out).map(|(f, l)| f - l));
        dn4000(&wave_out, &ws.buf, None, Some(inp.spectrum.z), &mut ws.dn).0
    } else {
        0.0
    };

    let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    Ok(FinalModel {
        emline_model: best,
        rchi2,
        models: ModelRows {
            crval1: minwave,
            cdelt1: dwave,
            continuum: to32(&cont_out),
            smooth: to32(&smooth_out),
            emline: to32(&line_out),
        },
        flux_synth_specmodel,
        dn4000: dn4000_value,
    })
}

/// DN4000_OBS and DN4000_IVAR (§4.11): Dn(4000) of the hstacked (unsorted) dereddened
/// spectrum with the ivar *without* the emission-line mask (FastSpecFit computes these in the
/// continuum stage).
pub fn dn4000_observed(
    wave: &[f64],
    flux: &[f64],
    ivar_nolinemask: &[f64],
    z: f64,
    ws: &mut MeasureWorkspace,
) -> (f64, f64) {
    dn4000(wave, flux, Some(ivar_nolinemask), Some(z), &mut ws.dn)
}
