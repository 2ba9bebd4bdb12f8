//! SPS properties from template coefficients (SPEC §4.12, FastSpecFit
//! `continuum_specfit._get_sps_properties`).

/// Coefficient unit, M☉.
pub const MASSNORM: f64 = 1e10;
/// SFR averaging window, yr.
pub const SFR_DT_YR: f64 = 100e6;

/// Per-template information the properties need (over all templates; excluded ones have
/// zero coefficients).
#[derive(Debug, Clone, Copy)]
pub struct TemplateInfo<'a> {
    /// Surviving stellar mass per M☉ formed.
    pub mstar: &'a [f64],
    /// log₁₀ Z/Z☉.
    pub zzsun: &'a [f64],
    /// Mean age, yr.
    pub age_yr: &'a [f64],
    /// Bin width, yr (templates ≥ 2.1.0).
    pub dt_yr: Option<&'a [f64]>,
    /// Instantaneous SFR per M☉ formed (fallback without `dt`).
    pub sfr: &'a [f64],
}

/// `[age_gyr, zzsun, logmstar, sfr]` of coefficients `coeff` restricted to `keep`
/// (all zero when the mass or the coefficient sum is not positive).
pub fn sps_properties(coeff: &[f64], keep: &[bool], info: &TemplateInfo<'_>) -> [f64; 4] {
    let used = |t: usize| keep.get(t).copied().unwrap_or(true);
    let n = coeff
        .len()
        .min(info.mstar.len())
        .min(info.zzsun.len())
        .min(info.age_yr.len());
    let (mut masstot, mut coefftot, mut zsum, mut agesum, mut sfrsum) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for t in (0..n).filter(|&t| used(t)) {
        let c = coeff[t];
        masstot += c * info.mstar[t];
        coefftot += c;
        zsum += c * info.mstar[t] * 10f64.powf(info.zzsun[t]);
        agesum += c * info.age_yr[t];
        sfrsum += c * match info.dt_yr {
            Some(dt) => {
                let (a, d) = (info.age_yr[t], dt.get(t).copied().unwrap_or(0.0));
                let t_near = a - d / 2.0;
                let frac = ((a + d / 2.0).min(SFR_DT_YR) - t_near) / d;
                // np.clip(NaN) stays NaN (d = 0); keep that behaviour.
                if frac.is_nan() {
                    frac
                } else {
                    frac.clamp(0.0, 1.0)
                }
            }
            None => info.sfr.get(t).copied().unwrap_or(0.0),
        };
    }
    if !(masstot > 0.0 && coefftot > 0.0) {
        return [0.0; 4];
    }
    let logmstar = (MASSNORM * masstot).log10();
    let zzsun = (zsum / masstot).log10();
    let age = agesum / coefftot / 1e9;
    let sfr = match info.dt_yr {
        Some(_) => MASSNORM * sfrsum / SFR_DT_YR,
        None => MASSNORM * sfrsum,
    };
    [age, zzsun, logmstar, sfr]
}
