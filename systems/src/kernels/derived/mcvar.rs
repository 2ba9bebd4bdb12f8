//! Monte Carlo variance rules (SPEC §4.9, §6.7).
//!
//! * "nan" rules (TAUV, DN4000_MODEL, VDISP, AGE/ZZSUN/LOGMSTAR/SFR): NaN realisations are
//!   skipped (`np.nanvar`), ivar = 1/var if var > TINY else 0, then written only if
//!   < F32MAX ([`nan_ivar_capped`]).
//! * "plain" rules (ABSMAG*_SYNTH_IVAR, LOGL*, LOGLNU*, F*_CONT): a single NaN (or ±inf)
//!   realisation makes the variance NaN → ivar 0; else 1/var if var > TINY, no F32MAX test
//!   ([`plain_ivar`]).

/// Smallest positive float32 subnormal.
pub const TINY: f64 = 1.401_298_464_324_817e-45;
/// Largest float32.
pub const F32MAX: f64 = 3.402_823_466_385_288_6e38;

/// Population variance (`np.var`): NaN if any value is not finite or the slice is empty.
pub fn plain_var(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n
}

/// `np.nanvar`: population variance of the non-NaN values (NaN if none).
pub fn nan_var(v: &[f64]) -> f64 {
    let k: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    plain_var(&k)
}

/// `var2ivar`: 1/var if var > TINY else 0 (NaN → 0).
pub fn var2ivar(var: f64) -> f64 {
    if var > TINY {
        1.0 / var
    } else {
        0.0
    }
}

/// Plain-variance ivar (no F32MAX test).
pub fn plain_ivar(v: &[f64]) -> f64 {
    var2ivar(plain_var(v))
}

/// NaN-skipping ivar, 0 unless below F32MAX.
pub fn nan_ivar_capped(v: &[f64]) -> f64 {
    let iv = var2ivar(nan_var(v));
    if iv < F32MAX {
        iv
    } else {
        0.0
    }
}
