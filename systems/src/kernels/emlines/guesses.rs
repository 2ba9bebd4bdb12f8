//! Initial guesses and bounds of the line parameters (FastSpecFit's
//! `_initial_guesses_and_bounds` with `subtract_local_continuum = False`,
//! SPEC.md §5.4).

use super::super::stats::quantile;
use super::params::{ParamTable, ParamType};
use super::table::Constraints;

/// Initial values and (lower, upper) bounds of every parameter.
pub type GuessesAndBounds = (Vec<f64>, Vec<(f64, f64)>);

/// Lower / upper amplitude bounds without data.
pub const AMP_BOUNDS: (f64, f64) = (0.0, 1e5);

/// A-priori kinematics (the line masker's estimates; defaults as FastSpecFit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InitialKinematics {
    /// σ of broad UV/QSO lines [km/s].
    pub sigma_broad: f64,
    /// σ of narrow lines.
    pub sigma_narrow: f64,
    /// σ of broad Balmer (+He) lines.
    pub sigma_balmer_broad: f64,
    /// v of broad UV/QSO lines.
    pub vshift_broad: f64,
    /// v of narrow lines.
    pub vshift_narrow: f64,
    /// v of broad Balmer lines.
    pub vshift_balmer_broad: f64,
}

impl Default for InitialKinematics {
    fn default() -> Self {
        Self {
            sigma_broad: 3000.0,
            sigma_narrow: 150.0,
            sigma_balmer_broad: 1000.0,
            vshift_broad: 0.0,
            vshift_narrow: 0.0,
            vshift_balmer_broad: 0.0,
        }
    }
}

/// Initial values and (lower, upper) bounds of all 3n parameters.
///
/// `linepix`: (line index, coadd-grid pixels of the line) from the line
/// masker, in its key order; `coadd_flux`: the coadd-grid residual flux.
/// Pass an empty `linepix` for the data-free guesses.
///
/// # Errors
/// A message (FastSpecFit's words) if a line is missing from the constraint
/// file, a line-pixel window is empty, or an initial value lies outside its
/// bounds.
pub fn initial_guesses_and_bounds(
    pt: &ParamTable,
    c: &Constraints,
    linepix: &[(usize, Vec<usize>)],
    coadd_flux: &[f64],
    kin: &InitialKinematics,
) -> Result<GuessesAndBounds, String> {
    let np = pt.nparams();
    let mut init = vec![0.0; np];
    let mut bounds = vec![(0.0, 0.0); np];
    for (i, line) in pt.lines.lines.iter().enumerate() {
        let (pa, pv, ps) = (
            pt.param_index(i, ParamType::Amplitude),
            pt.param_index(i, ParamType::Vshift),
            pt.param_index(i, ParamType::Sigma),
        );
        init[pa] = 1.0;
        bounds[pa] = AMP_BOUNDS;
        let b = c
            .line_bounds(&line.name)
            .ok_or_else(|| format!("Line '{}' not found in constraint file", line.name))?;
        if b.sigma_max == 0.0 {
            init[pv] = 0.0;
            init[ps] = 0.0;
            bounds[pv] = (0.0, 0.0);
            bounds[ps] = (0.0, 0.0);
            continue;
        }
        (init[pv], init[ps]) = match (line.isbroad, line.isbalmer) {
            (true, true) => (kin.vshift_balmer_broad, kin.sigma_balmer_broad),
            (true, false) => (kin.vshift_broad, kin.sigma_broad),
            _ => (kin.vshift_narrow, kin.sigma_narrow),
        };
        bounds[pv] = (-b.vshift_max, b.vshift_max);
        bounds[ps] = (b.sigma_min, b.sigma_max);
    }

    let mut scratch = Vec::new();
    let at = |p: usize| {
        coadd_flux
            .get(p)
            .copied()
            .ok_or_else(|| format!("line pixel {p} beyond the coadd grid"))
    };
    for (line, lp) in linepix {
        let n = lp.len();
        if n == 0 {
            return Err(format!("empty line-pixel list for line {line}"));
        }
        let mut vals = Vec::with_capacity(n);
        for &p in lp {
            vals.push(at(p)?);
        }
        let amp = if n > 5 {
            let mid = lp[n / 2];
            let lo = mid.saturating_sub(3);
            let hi = (mid + 3).min(lp[n - 1]);
            let win = coadd_flux.get(lo..hi).filter(|w| !w.is_empty());
            let win = win.ok_or_else(|| format!("empty amplitude window for line {line}"))?;
            win.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        } else {
            quantile(&vals, 0.975, &mut scratch).map_err(|e| e.to_string())?
        };
        let mx = 5.0 * vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if mx >= 0.0 && amp >= 0.0 && mx > amp {
            let pa = pt.param_index(*line, ParamType::Amplitude);
            init[pa] = amp;
            bounds[pa] = (0.0, mx);
        }
    }

    for &p in &pt.doublet_idx {
        let name = &pt.param_names[p];
        let d = c
            .doublet_ratios
            .iter()
            .rev()
            .find(|d| &d.param_name == name)
            .ok_or_else(|| format!("doublet ratio {name} not in constraint file"))?;
        bounds[p] = (d.min, d.max);
        init[p] = d.initial;
    }

    for p in 0..np {
        let (iv, (lb, ub)) = (init[p], bounds[p]);
        if iv < lb {
            return Err(format!(
                "Initial parameter {} is outside its bound, {iv:.2} < {lb:.2}.",
                pt.param_names[p]
            ));
        }
        if iv > ub {
            return Err(format!(
                "Initial parameter {} is outside its bound, {iv:.2} > {ub:.2}.",
                pt.param_names[p]
            ));
        }
    }
    Ok((init, bounds))
}
