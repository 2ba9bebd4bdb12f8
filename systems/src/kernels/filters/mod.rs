//! Broadband filter curves: speclite's ECSV tables, trimming, effective
//! wavelength and band-shifted copies (SPEC.md §1.5, "Filter curves").
//!
//! FastSpecFit loads every filter with speclite (`load_filter`), which
//!
//! * reads the ECSV table (columns `wavelength` with a length unit, and a
//!   dimensionless `response`) and converts the wavelengths to Å by
//!   multiplying with astropy's scale factor (nm → 9.999999999999998,
//!   µm → 9999.999999999998; we use the same doubles so the grids are
//!   bit-identical);
//! * requires ≥ 3 strictly increasing wavelengths and non-negative responses
//!   that are not all zero and are zero at both ends;
//! * trims extra leading/trailing zeros, keeping exactly one zero at each end:
//!   indices `[first_nonzero − 1, last_nonzero + 1]`;
//! * computes the photon-weighted effective wavelength with the trapezoid
//!   rule on the filter's own grid,
//!   λ_eff = ∫ λ·R·(λ/hc) dλ / ∫ R·(λ/hc) dλ
//!   (the 1/hc cancels but is applied as speclite does, term by term).
//!
//! A band-shifted filter (`create_shifted(band_shift = s)`) divides the
//! tabulated wavelengths by 1 + s, keeps the responses, and recomputes λ_eff
//! on the shifted grid.
//!
//! The ECSV files of the filters FastSpecFit's configurations use (and their
//! groups) are embedded in the binary ([`load_filter`]); user files can be
//! parsed with [`FilterCurve::from_ecsv`].

use super::KernelError;

mod bundled;

/// h·c in erg·Å, astropy's `(h * c).to(erg * AA)` (speclite's photon weight).
const HC_ERG_ANGSTROM: f64 = 1.9864458571489284e-8;

/// A filter response curve on its own wavelength grid (Å, vacuum).
#[derive(Debug, Clone, PartialEq)]
pub struct FilterCurve {
    /// speclite name, e.g. `"decam2014-r"`.
    pub name: String,
    /// Wavelengths [Å], strictly increasing, after trimming (and shifting).
    pub wave: Vec<f64>,
    /// Dimensionless response at `wave`; zero at both ends.
    pub resp: Vec<f64>,
    /// Photon-weighted effective wavelength [Å].
    pub lambda_eff: f64,
    /// The band shift s applied (wavelengths divided by 1 + s), if any.
    pub band_shift: Option<f64>,
}

/// Trapezoid integral ∫ y dx (sequential sum).
fn trapz(y: impl Iterator<Item = f64>, x: &[f64]) -> f64 {
    let mut prev: Option<f64> = None;
    let mut sum = 0.0;
    for (i, yi) in y.enumerate() {
        if let Some(p) = prev {
            sum += (x[i] - x[i - 1]) * (yi + p);
        }
        prev = Some(yi);
    }
    0.5 * sum
}

/// Photon-weighted effective wavelength ∫λ²R dλ / ∫λR dλ (speclite's
/// arithmetic, trapezoid rule on `wave`).
///
/// The caller guarantees equal lengths; extra elements of the longer slice are ignored.
pub fn effective_wavelength(wave: &[f64], resp: &[f64]) -> f64 {
    let n = wave.len().min(resp.len());
    let (wave, resp) = (&wave[..n], &resp[..n]);
    let numer = trapz(
        wave.iter()
            .zip(resp)
            .map(|(&w, &r)| w * r * (w / HC_ERG_ANGSTROM)),
        wave,
    );
    let denom = trapz(
        wave.iter()
            .zip(resp)
            .map(|(&w, &r)| r * (w / HC_ERG_ANGSTROM)),
        wave,
    );
    numer / denom
}

impl FilterCurve {
    /// Validate, trim and measure a response curve (speclite `FilterResponse`).
    ///
    /// # Errors
    /// [`KernelError::Shape`] for unequal lengths or fewer than 3 points;
    /// [`KernelError::Domain`] for non-increasing or non-finite wavelengths, negative
    /// or non-finite responses, an all-zero response, or non-zero end points.
    pub fn new(name: &str, wave: Vec<f64>, resp: Vec<f64>) -> Result<Self, KernelError> {
        Self::build(name, wave, resp, None)
    }

    fn build(
        name: &str,
        mut wave: Vec<f64>,
        mut resp: Vec<f64>,
        band_shift: Option<f64>,
    ) -> Result<Self, KernelError> {
        let err = |m: String| KernelError::Domain(format!("filter {name}: {m}"));
        if wave.len() != resp.len() || wave.len() < 3 {
            return Err(KernelError::Shape(format!(
                "filter {name}: {} wavelengths and {} responses (need equal lengths >= 3)",
                wave.len(),
                resp.len()
            )));
        }
        if wave.iter().any(|w| !w.is_finite()) || wave.windows(2).any(|p| p[1] <= p[0]) {
            return Err(err(
                "wavelengths must be finite and strictly increasing".into()
            ));
        }
        if resp.iter().any(|r| !r.is_finite() || *r < 0.0) {
            return Err(err("response values must be finite and non-negative".into()));
        }
        let (Some(first), Some(last)) = (
            resp.iter().position(|&r| r > 0.0),
            resp.iter().rposition(|&r| r > 0.0),
        ) else {
            return Err(err("response values cannot all be zero".into()));
        };
        if resp[0] != 0.0 || resp[resp.len() - 1] != 0.0 {
            return Err(err("response must go to zero on both sides".into()));
        }
        // Keep one zero on each side (first > 0 and last < n-1 by the checks above).
        let (start, stop) = (first - 1, last + 2);
        if stop - start < wave.len() {
            wave.truncate(stop);
            wave.drain(..start);
            resp.truncate(stop);
            resp.drain(..start);
        }
        let lambda_eff = effective_wavelength(&wave, &resp);
        Ok(FilterCurve {
            name: name.to_string(),
            wave,
            resp,
            lambda_eff,
            band_shift,
        })
    }

    /// Parse a speclite ECSV filter file (space-delimited `wavelength response`
    /// table; wavelength unit Angstrom, nm or micron).
    ///
    /// # Errors
    /// [`KernelError::Domain`] for a malformed table or an unsupported unit, plus
    /// the errors of [`FilterCurve::new`].
    pub fn from_ecsv(name: &str, text: &str) -> Result<Self, KernelError> {
        let err = |m: String| KernelError::Domain(format!("filter {name}: {m}"));
        let mut unit: Option<&str> = None;
        let mut header_seen = false;
        let (mut wave, mut resp) = (Vec::new(), Vec::new());
        for (ln, line) in text.lines().enumerate() {
            let t = line.trim();
            if let Some(h) = t.strip_prefix('#') {
                // The column description in the `datatype:` block; later
                // serialisation metadata may mention the column again without a unit.
                let rest = h.split("{name: wavelength,").nth(1);
                if let (None, Some(rest)) = (unit, rest) {
                    unit = rest
                        .split("unit:")
                        .nth(1)
                        .and_then(|u| u.split([',', '}']).next())
                        .map(str::trim);
                }
                continue;
            }
            if t.is_empty() {
                continue;
            }
            let mut cols = t.split_whitespace();
            if !header_seen {
                if cols.next() != Some("wavelength") || cols.next() != Some("response") {
                    return Err(err(format!(
                        "expected columns 'wavelength response', got '{t}'"
                    )));
                }
                header_seen = true;
                continue;
            }
            let mut num = || -> Result<f64, KernelError> {
                cols.next()
                    .and_then(|c| c.parse::<f64>().ok())
                    .ok_or_else(|| err(format!("line {}: cannot parse '{t}'", ln + 1)))
            };
            wave.push(num()?);
            resp.push(num()?);
        }
        // astropy's scale factors to Angstrom, bit for bit.
        let scale = match unit {
            Some("Angstrom") | Some("AA") | Some("angstrom") => 1.0,
            Some("nm") => 9.999999999999998,
            Some("micron") | Some("um") => 9999.999999999998,
            other => {
                return Err(err(format!(
                    "unsupported or missing wavelength unit {other:?}"
                )))
            }
        };
        if scale != 1.0 {
            wave.iter_mut().for_each(|w| *w *= scale);
        }
        Self::new(name, wave, resp)
    }

    /// A copy with wavelengths divided by 1 + `band_shift` (speclite `create_shifted`).
    ///
    /// # Errors
    /// [`KernelError::Domain`] if `band_shift <= -1` or this filter is already shifted.
    pub fn shifted(&self, band_shift: f64) -> Result<Self, KernelError> {
        if self.band_shift.is_some() {
            return Err(KernelError::Domain(format!(
                "filter {} is already band-shifted",
                self.name
            )));
        }
        if !band_shift.is_finite() || band_shift <= -1.0 {
            return Err(KernelError::Domain(format!(
                "invalid band_shift {band_shift}"
            )));
        }
        let wave = self.wave.iter().map(|w| w / (1.0 + band_shift)).collect();
        Self::build(&self.name, wave, self.resp.clone(), Some(band_shift))
    }

    /// Response linearly interpolated at `x` [Å], zero outside the curve
    /// (NumPy `interp(x, wave, resp, left=0, right=0)`).
    pub fn response_at(&self, x: f64) -> f64 {
        interp_zero(x, &self.wave, &self.resp)
    }
}

/// NumPy `interp(x, xp, fp, left=0, right=0)` for increasing `xp` (len ≥ 2).
pub(crate) fn interp_zero(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let n = xp.len();
    if n == 0 || x.is_nan() || x < xp[0] || x > xp[n - 1] {
        return 0.0;
    }
    if x == xp[n - 1] {
        return fp[n - 1];
    }
    let j = xp.partition_point(|&v| v <= x) - 1;
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    slope * (x - xp[j]) + fp[j]
}

/// Names of the filters embedded in the binary, sorted.
pub fn bundled_filter_names() -> impl Iterator<Item = &'static str> {
    bundled::BUNDLED.iter().map(|(n, _)| *n)
}

/// The ECSV text of an embedded filter.
pub fn bundled_ecsv(name: &str) -> Option<&'static str> {
    bundled::BUNDLED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// Load an embedded filter by speclite name (e.g. `"BASS-g"`, `"wise2010-W1"`).
///
/// # Errors
/// [`KernelError::Domain`] if the filter is not bundled (the message lists the
/// bundled groups), or if its table is invalid.
pub fn load_filter(name: &str) -> Result<FilterCurve, KernelError> {
    let text = bundled_ecsv(name).ok_or_else(|| {
        let mut groups: Vec<&str> = bundled_filter_names()
            .filter_map(|n| n.rsplit_once('-').map(|(g, _)| g))
            .collect();
        groups.dedup();
        KernelError::Domain(format!(
            "unknown filter '{name}'; bundled filter groups: {}",
            groups.join(", ")
        ))
    })?;
    FilterCurve::from_ecsv(name, text)
}

#[cfg(test)]
mod tests;
