//! Synthetic AB photometry of a tabulated spectrum (SPEC.md §2.6 and the end of §3.5).
//!
//! For a spectrum f(λ) [erg s⁻¹ cm⁻² Å⁻¹] sampled at `wave` and a filter with
//! tabulated (λ_k, R_k), FastSpecFit's `get_ab_maggies_unchecked` computes
//!
//! * lo = #{i : wave_i ≤ λ_first} (right bisection), hi = #{i : wave_i < λ_last} + 1;
//! * r_i = interp(wave_i; λ, R, 0 outside) · wave_i for i ∈ [lo, hi);
//! * maggies = T(r·f) / T(r·f_AB), with T the trapezoid rule over wave[lo..hi] and
//!   f_AB(λ) = 3.631e-20 · (c · 1e13) / λ² (c in km/s, so c·1e13 is in Å/s).
//!
//! It requires wave_0 ≤ λ_first and λ_last ≤ wave_last. The lo/hi/r and the
//! reciprocal denominator depend only on the grid, so [`FilterPre`] computes them
//! once (for instance per target on its redshifted template grid) and
//! [`ab_maggies_unchecked`] then costs one dot product per filter.
//!
//! [`ab_maggies`] is `get_ab_maggies`: if some filter is not covered, the spectrum
//! is padded as speclite's `FilterSequence.pad_spectrum(method='edge')` does —
//! filters in order of increasing λ_eff, each prepending its own tabulated
//! wavelengths that are < the current first wavelength and appending those >
//! the current last one, with the first/last flux value repeated — and the
//! maggies are computed on the padded spectrum.
//!
//! [`maggies_to_flam`] is `get_photflam`: f_λ = maggies · 10^(−0.4·48.6) · c·1e13 / λ_eff².
//! [QUIRK] This AB constant, 10^(−19.44) = 3.6307805…e-20, differs from the 3.631e-20
//! used in the synthesis by 5e-5 relative; both are reproduced.
//!
//! DEVIATION (documented): when the grid has fewer than two points in a filter's
//! [lo, hi) range, or the AB integral over them is zero, FastSpecFit divides by
//! zero (inf/NaN maggies); here that is a [`KernelError::Domain`] error.

use super::cosmology::C_LIGHT_KMS;
use super::filters::FilterCurve;
use super::KernelError;

/// AB zero point f_ν used in the synthesis [erg s⁻¹ cm⁻² Hz⁻¹] (`get_ab_maggies_pre`).
pub const AB_FNU_SYNTH: f64 = 3.631e-20;

/// Factor converting maggies to f_λ [erg s⁻¹ cm⁻² Å⁻¹] at `lambda_eff` [Å]
/// (`get_photflam`; [QUIRK] uses 10^(−0.4·48.6), not 3.631e-20).
pub fn photflam_factor(lambda_eff: f64) -> f64 {
    10f64.powf(-0.4 * 48.6) * C_LIGHT_KMS * 1e13 / (lambda_eff * lambda_eff)
}

/// Convert maggies to f_λ at the filters' effective wavelengths (`get_photflam`).
///
/// # Errors
/// [`KernelError::Shape`] if the three slices differ in length.
pub fn maggies_to_flam(
    maggies: &[f64],
    lambda_eff: &[f64],
    out: &mut [f64],
) -> Result<(), KernelError> {
    if maggies.len() != lambda_eff.len() || out.len() != maggies.len() {
        return Err(KernelError::Shape(format!(
            "maggies_to_flam: {} maggies, {} wavelengths, {} outputs",
            maggies.len(),
            lambda_eff.len(),
            out.len()
        )));
    }
    for ((o, &m), &l) in out.iter_mut().zip(maggies).zip(lambda_eff) {
        *o = m * photflam_factor(l);
    }
    Ok(())
}

/// f_AB(λ) = 3.631e-20 · c·1e13 / λ², FastSpecFit's operation order.
#[inline]
fn ab_flam(w: f64) -> f64 {
    AB_FNU_SYNTH * C_LIGHT_KMS * 1e13 / (w * w)
}

/// Sequential trapezoid of `y(i)` over `x` (FastSpecFit's `util.trapz`).
#[inline]
fn trapz_by(x: &[f64], y: impl Fn(usize) -> f64) -> f64 {
    let mut res = 0.0;
    let mut prev = match x.len() {
        0 => return 0.0,
        _ => y(0),
    };
    for i in 1..x.len() {
        let cur = y(i);
        res += (x[i] - x[i - 1]) * (cur + prev);
        prev = cur;
    }
    0.5 * res
}

/// Pre-computed synthesis data of one filter on one wavelength grid
/// (one element of FastSpecFit's `get_ab_maggies_pre`).
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPre {
    /// First grid index used.
    pub lo: usize,
    /// One past the last grid index used.
    pub hi: usize,
    /// Interpolated response times wavelength, r_i = R(wave_i)·wave_i, i ∈ [lo, hi).
    pub resp: Vec<f64>,
    /// 1 / T(r·f_AB).
    pub idenom: f64,
}

impl FilterPre {
    /// Set up `filter` on `wave` (increasing, covering the filter).
    ///
    /// # Errors
    /// [`KernelError::Domain`] if `wave` does not cover the filter's tabulated
    /// range or has fewer than two points inside it.
    pub fn new(filter: &FilterCurve, wave: &[f64]) -> Result<Self, KernelError> {
        let mut pre = FilterPre {
            lo: 0,
            hi: 0,
            resp: Vec::new(),
            idenom: 0.0,
        };
        pre.recompute(filter, wave)?;
        Ok(pre)
    }

    /// Recompute in place (re-using the `resp` allocation) for a new grid.
    ///
    /// # Errors
    /// As [`FilterPre::new`].
    pub fn recompute(&mut self, filter: &FilterCurve, wave: &[f64]) -> Result<(), KernelError> {
        let (lo, hi) = coverage(filter, wave)?;
        let w = &wave[lo..hi];
        self.resp.clear();
        interp_zero_sorted(w, &filter.wave, &filter.resp, &mut self.resp);
        let denom = trapz_by(w, |i| self.resp[i] * ab_flam(w[i]));
        if !(denom > 0.0 && denom.is_finite()) {
            return Err(KernelError::Domain(format!(
                "filter {}: AB normalisation integral {denom} on this grid",
                filter.name
            )));
        }
        self.lo = lo;
        self.hi = hi;
        self.idenom = 1.0 / denom;
        Ok(())
    }

    /// AB maggies of `flux` (same grid as used to build this, same length as `wave`).
    ///
    /// # Panics
    /// If `flux` or `wave` is shorter than `self.hi` (use [`ab_maggies_unchecked`]
    /// for a checked call).
    #[inline]
    pub fn maggies(&self, flux: &[f64], wave: &[f64]) -> f64 {
        let (w, f) = (&wave[self.lo..self.hi], &flux[self.lo..self.hi]);
        trapz_by(w, |i| self.resp[i] * f[i]) * self.idenom
    }

    /// [`FilterPre::maggies`] of the spectrum whose value at grid index `i` is `flux(i)`
    /// (evaluated only on `[lo, hi)`; same arithmetic, so the same result as materialising
    /// the spectrum first).
    ///
    /// # Panics
    /// If `wave` is shorter than `self.hi`.
    #[inline]
    pub fn maggies_with(&self, wave: &[f64], flux: impl Fn(usize) -> f64) -> f64 {
        let (w, lo) = (&wave[self.lo..self.hi], self.lo);
        trapz_by(w, |i| self.resp[i] * flux(lo + i)) * self.idenom
    }

    /// Trapezoid weights t_i with T(r·f) = Σ t_i f_{lo+i}, i.e.
    /// t_i = ½ r_i (Δ_{i−1} + Δ_i) (one-sided at the ends): FastSpecFit's
    /// `phot_batch_weights`, used as maggies = (f·t)·idenom for many spectra at once.
    ///
    /// # Panics
    /// If `wave` is shorter than `self.hi`.
    pub fn trapz_weights(&self, wave: &[f64], out: &mut Vec<f64>) {
        let w = &wave[self.lo..self.hi];
        out.clear();
        out.resize(w.len(), 0.0);
        for i in 0..w.len().saturating_sub(1) {
            let d = w[i + 1] - w[i];
            out[i] += 0.5 * self.resp[i] * d;
            out[i + 1] += 0.5 * self.resp[i + 1] * d;
        }
    }
}

/// [`FilterPre::maggies_with`] for several filters at once, into `out` (one per filter).
///
/// Each filter's trapezoid is the same sequential sum as in [`FilterPre::maggies_with`]
/// (same terms, same order, so the same value), but filters whose ranges overlap are
/// summed in lockstep over the common part, so up to four independent sums progress per
/// grid step instead of one.
///
/// # Panics
/// If `out` is shorter than `pres` or `wave` is shorter than some filter's `hi`.
pub fn maggies_with_many(
    pres: &[FilterPre],
    wave: &[f64],
    flux: impl Fn(usize) -> f64,
    out: &mut [f64],
) {
    let out = &mut out[..pres.len()];
    // greedy groups of up to four filters whose common range covers at least half of each
    let mut groups: Vec<(usize, usize)> = Vec::new(); // [start, end) into pres
    let mut start = 0;
    while start < pres.len() {
        let (mut lo, mut hi) = (pres[start].lo, pres[start].hi);
        let mut end = start + 1;
        while end < pres.len() && end - start < 4 {
            let p = &pres[end];
            let (nlo, nhi) = (lo.max(p.lo), hi.min(p.hi));
            let common = nhi.saturating_sub(nlo);
            let ok = pres[start..=end]
                .iter()
                .all(|q| 2 * common >= q.hi.saturating_sub(q.lo));
            if !ok {
                break;
            }
            (lo, hi) = (nlo, nhi);
            end += 1;
        }
        groups.push((start, end));
        start = end;
    }
    for (s, e) in groups {
        let g = &pres[s..e];
        let o = &mut out[s..e];
        match g.len() {
            4 => lockstep::<4>(g, wave, &flux, o),
            3 => lockstep::<3>(g, wave, &flux, o),
            2 => lockstep::<2>(g, wave, &flux, o),
            _ => {
                for (v, p) in o.iter_mut().zip(g) {
                    *v = p.maggies_with(wave, &flux);
                }
            }
        }
    }
}

/// The trapezoids of `M` filters, stepping all of them together over their common range.
fn lockstep<const M: usize>(
    g: &[FilterPre],
    wave: &[f64],
    flux: &impl Fn(usize) -> f64,
    out: &mut [f64],
) {
    if g.iter().any(|p| p.hi <= p.lo) {
        for (v, p) in out.iter_mut().zip(g) {
            *v = p.maggies_with(wave, flux);
        }
        return;
    }
    let mut res = [0.0f64; M];
    let mut prev = [0.0f64; M];
    for j in 0..M {
        prev[j] = g[j].resp[0] * flux(g[j].lo);
    }
    // one trapezoid step of filter j at grid index a (a > lo_j)
    let step = |j: usize, a: usize, res: &mut [f64; M], prev: &mut [f64; M]| {
        let cur = g[j].resp[a - g[j].lo] * flux(a);
        res[j] += (wave[a] - wave[a - 1]) * (cur + prev[j]);
        prev[j] = cur;
    };
    let cs = g.iter().map(|p| p.lo + 1).max().unwrap_or(0);
    let ce = g.iter().map(|p| p.hi).min().unwrap_or(0);
    if cs < ce {
        for j in 0..M {
            for a in g[j].lo + 1..cs {
                step(j, a, &mut res, &mut prev);
            }
        }
        for a in cs..ce {
            let dw = wave[a] - wave[a - 1];
            let f = flux(a);
            for j in 0..M {
                let cur = g[j].resp[a - g[j].lo] * f;
                res[j] += dw * (cur + prev[j]);
                prev[j] = cur;
            }
        }
        for j in 0..M {
            for a in ce..g[j].hi {
                step(j, a, &mut res, &mut prev);
            }
        }
    } else {
        for j in 0..M {
            for a in g[j].lo + 1..g[j].hi {
                step(j, a, &mut res, &mut prev);
            }
        }
    }
    for j in 0..M {
        out[j] = 0.5 * res[j] * g[j].idenom;
    }
}

/// `out[i] = interp(x[i]; xp, fp, 0 outside) · x[i]` for increasing `x`, walking
/// `xp` once (same segment choice and arithmetic as NumPy `interp`).
fn interp_zero_sorted(x: &[f64], xp: &[f64], fp: &[f64], out: &mut Vec<f64>) {
    let n = xp.len();
    let mut j = 0usize; // segment [xp[j], xp[j+1]) with xp[j] <= x
    for &xi in x {
        let r = if n < 2 || xi.is_nan() || xi < xp[0] || xi > xp[n - 1] {
            0.0
        } else if xi == xp[n - 1] {
            fp[n - 1]
        } else {
            while xp[j + 1] <= xi {
                j += 1;
            }
            let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
            slope * (xi - xp[j]) + fp[j]
        };
        out.push(r * xi);
    }
}

/// lo/hi of `filter` on `wave`, or an error if the grid does not cover it.
fn coverage(filter: &FilterCurve, wave: &[f64]) -> Result<(usize, usize), KernelError> {
    let (Some(&f0), Some(&f1)) = (filter.wave.first(), filter.wave.last()) else {
        return Err(KernelError::Shape(format!(
            "filter {} has no wavelengths",
            filter.name
        )));
    };
    let (Some(&w0), Some(&w1)) = (wave.first(), wave.last()) else {
        return Err(KernelError::Shape("empty wavelength grid".into()));
    };
    if w0 > f0 || f1 > w1 || w0.is_nan() || w1.is_nan() {
        return Err(KernelError::Domain(format!(
            "filter {} ({f0}-{f1} Å) exceeds the wavelength array ({w0}-{w1} Å)",
            filter.name
        )));
    }
    let lo = wave.partition_point(|&w| w <= f0);
    let hi = wave.partition_point(|&w| w < f1) + 1;
    if hi < lo + 2 {
        return Err(KernelError::Domain(format!(
            "wavelength grid has fewer than two points inside filter {}",
            filter.name
        )));
    }
    Ok((lo, hi))
}

/// Pre-compute every filter of a set on `wave` (`get_ab_maggies_pre`).
///
/// # Errors
/// As [`FilterPre::new`], for the first failing filter.
pub fn ab_maggies_pre(
    filters: &[FilterCurve],
    wave: &[f64],
) -> Result<Vec<FilterPre>, KernelError> {
    filters.iter().map(|f| FilterPre::new(f, wave)).collect()
}

/// AB maggies of `flux` through pre-computed filters (`get_ab_maggies_unchecked`).
///
/// # Errors
/// [`KernelError::Shape`] if `flux` and `wave` differ in length, `out` is not one
/// per filter, or a `pre` reaches past the grid.
pub fn ab_maggies_unchecked(
    pre: &[FilterPre],
    flux: &[f64],
    wave: &[f64],
    out: &mut [f64],
) -> Result<(), KernelError> {
    if flux.len() != wave.len() || out.len() != pre.len() {
        return Err(KernelError::Shape(format!(
            "ab_maggies: {} fluxes, {} wavelengths, {} outputs for {} filters",
            flux.len(),
            wave.len(),
            out.len(),
            pre.len()
        )));
    }
    if let Some(p) = pre
        .iter()
        .find(|p| p.hi > wave.len() || p.resp.len() != p.hi - p.lo)
    {
        return Err(KernelError::Shape(format!(
            "pre-computed filter range [{}, {}) does not fit a {}-pixel grid",
            p.lo,
            p.hi,
            wave.len()
        )));
    }
    for (o, p) in out.iter_mut().zip(pre) {
        *o = p.maggies(flux, wave);
    }
    Ok(())
}

/// Reusable buffers for [`ab_maggies`] (padded spectrum, one `FilterPre`).
#[derive(Debug, Clone, Default)]
pub struct SynthScratch {
    wave: Vec<f64>,
    flux: Vec<f64>,
    pre: Option<FilterPre>,
    order: Vec<usize>,
}

impl SynthScratch {
    /// Empty scratch; buffers grow on first use and are then reused.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Pad (`wave`, `flux`) to cover every filter, speclite `pad_spectrum(method='edge')`
/// on a `FilterSequence`; writes the padded arrays into `pad_wave`, `pad_flux`.
///
/// Returns whether anything was added.
///
/// # Errors
/// [`KernelError::Shape`] for empty or unequal-length inputs.
pub fn pad_spectrum_edge(
    filters: &[FilterCurve],
    flux: &[f64],
    wave: &[f64],
    pad_flux: &mut Vec<f64>,
    pad_wave: &mut Vec<f64>,
) -> Result<bool, KernelError> {
    let mut order = Vec::new();
    pad_into(filters, flux, wave, pad_flux, pad_wave, &mut order)
}

fn pad_into(
    filters: &[FilterCurve],
    flux: &[f64],
    wave: &[f64],
    pad_flux: &mut Vec<f64>,
    pad_wave: &mut Vec<f64>,
    order: &mut Vec<usize>,
) -> Result<bool, KernelError> {
    if wave.is_empty() || flux.len() != wave.len() {
        return Err(KernelError::Shape(format!(
            "pad_spectrum: {} fluxes for {} wavelengths",
            flux.len(),
            wave.len()
        )));
    }
    order.clear();
    order.extend(0..filters.len());
    order.sort_by(|&a, &b| filters[a].lambda_eff.total_cmp(&filters[b].lambda_eff));
    // Final extent: each filter in turn sees the grid padded by the previous ones,
    // so the number of points added below/above is cumulative.
    let mut before: Vec<(usize, usize)> = Vec::new(); // (filter, count) in padding order
    let mut after: Vec<(usize, usize)> = Vec::new();
    let (mut first, mut last) = (wave[0], wave[wave.len() - 1]);
    for &k in order.iter() {
        let fw = &filters[k].wave;
        let (Some(&f0), Some(&f1)) = (fw.first(), fw.last()) else {
            continue;
        };
        if f0 < first {
            let n = fw.partition_point(|&w| w < first);
            before.push((k, n));
            first = fw[0];
        }
        if f1 > last {
            let n = fw.len() - fw.partition_point(|&w| w <= last);
            after.push((k, n));
            last = fw[fw.len() - 1];
        }
    }
    pad_wave.clear();
    pad_flux.clear();
    // Later prepends go in front of earlier ones.
    for &(k, n) in before.iter().rev() {
        pad_wave.extend_from_slice(&filters[k].wave[..n]);
    }
    let nb = pad_wave.len();
    pad_flux.resize(nb, flux[0]);
    pad_wave.extend_from_slice(wave);
    pad_flux.extend_from_slice(flux);
    for &(k, n) in after.iter() {
        let fw = &filters[k].wave;
        pad_wave.extend_from_slice(&fw[fw.len() - n..]);
    }
    pad_flux.resize(pad_wave.len(), flux[flux.len() - 1]);
    Ok(!before.is_empty() || !after.is_empty())
}

/// AB maggies of a spectrum through a filter set, padding the spectrum with its
/// edge values when it does not cover every filter (`Photometry.get_ab_maggies`).
///
/// # Errors
/// [`KernelError::Shape`] for mismatched lengths; [`KernelError::Domain`] if a
/// filter has fewer than two grid points inside it even after padding.
pub fn ab_maggies(
    filters: &[FilterCurve],
    flux: &[f64],
    wave: &[f64],
    out: &mut [f64],
    scratch: &mut SynthScratch,
) -> Result<(), KernelError> {
    if flux.len() != wave.len() || out.len() != filters.len() {
        return Err(KernelError::Shape(format!(
            "ab_maggies: {} fluxes, {} wavelengths, {} outputs for {} filters",
            flux.len(),
            wave.len(),
            out.len(),
            filters.len()
        )));
    }
    let covered = filters.iter().all(|f| coverage(f, wave).is_ok());
    let SynthScratch {
        wave: pw,
        flux: pf,
        pre,
        order,
    } = scratch;
    let (w, f): (&[f64], &[f64]) = if covered {
        (wave, flux)
    } else {
        pad_into(filters, flux, wave, pf, pw, order)?;
        (pw, pf)
    };
    for (o, filt) in out.iter_mut().zip(filters) {
        let p = match pre {
            Some(p) => {
                p.recompute(filt, w)?;
                p
            }
            None => pre.insert(FilterPre::new(filt, w)?),
        };
        *o = p.maggies(f, w);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
