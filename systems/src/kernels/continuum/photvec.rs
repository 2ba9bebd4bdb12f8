//! The photometric data vector of the continuum fit (SPEC §2.3 step 2 and §4.1).
//!
//! * [`parse_photometry`]: dereddened nanomaggies → f_λ with the magnitude error floor
//!   (`min_uncertainty`) added in quadrature, only for bands with flux ≠ 0 and ivar > 0:
//!   σ_mag = (2.5/ln10)/(√ivar·f), ivar′ = (2.5/ln10)²/(f²(σ_mag² + m_b²)). Then
//!   f_λ = f·1e-9·10^(−0.4·48.6)·(c·1e13)/λ_eff² and ivar_λ = ivar′/factor² [QUIRK: the
//!   10^(−19.44) AB constant, not 3.631e-20].
//! * [`phot_vector`]: objflam = f_λ·FLUXNORM, objflamivar = ivar_λ/FLUXNORM²·bands_to_fit,
//!   non-finite fluxes masked, and "no IR-only fits": if any band is fitted but every band
//!   with 3000 < λ_eff < 10000 Å has ivar 0, every ivar is zeroed.

use crate::kernels::cosmology::C_LIGHT_KMS;
use crate::kernels::KernelError;

/// 2.5/ln 10, the magnitude–flux error factor.
const MAG_FACTOR: f64 = 2.5 / std::f64::consts::LN_10;

/// The maggies→f_λ factor of `parse_photometry` for nanomaggies at `lambda_eff` Å, in
/// FastSpecFit's operation order.
pub fn nanomaggies_flam_factor(lambda_eff: f64) -> f64 {
    1e-9 * 10f64.powf(-0.4 * 48.6) * C_LIGHT_KMS * 1e13 / (lambda_eff * lambda_eff)
}

/// `Photometry.parse_photometry` for the fit columns: `flam`, `flam_ivar` in
/// erg s⁻¹ cm⁻² Å⁻¹ from nanomaggies `nmgy` and their inverse variance `ivar`.
///
/// # Errors
/// [`KernelError::Shape`] on length mismatches; [`KernelError::Domain`] if an ivar is
/// negative (or NaN) or a flux is −99 (FastSpecFit raises).
pub fn parse_photometry(
    nmgy: &[f64],
    ivar: &[f64],
    lambda_eff: &[f64],
    min_uncertainty: Option<&[f64]>,
    flam: &mut [f64],
    flam_ivar: &mut [f64],
) -> Result<(), KernelError> {
    let n = nmgy.len();
    if ivar.len() != n
        || lambda_eff.len() != n
        || flam.len() != n
        || flam_ivar.len() != n
        || min_uncertainty.is_some_and(|m| m.len() != n)
    {
        return Err(KernelError::Shape(format!(
            "parse_photometry: {n} bands but mismatched inputs"
        )));
    }
    if ivar.iter().any(|&v| v < 0.0 || v.is_nan()) || nmgy.iter().any(|&f| f == -99.0) {
        return Err(KernelError::Domain(
            "all ivarmaggies must be zero or positive (and no flux = -99)".into(),
        ));
    }
    for b in 0..n {
        let (f, mut iv) = (nmgy[b], ivar[b]);
        if let Some(mu) = min_uncertainty {
            if f != 0.0 && iv > 0.0 {
                let magerr = MAG_FACTOR / (iv.sqrt() * f);
                let magerr2 = magerr * magerr + mu[b] * mu[b];
                iv = MAG_FACTOR * MAG_FACTOR / (f * f * magerr2);
            }
        }
        let factor = nanomaggies_flam_factor(lambda_eff[b]);
        flam[b] = f * factor;
        flam_ivar[b] = iv / (factor * factor);
    }
    Ok(())
}

/// Fill `objflam`, `objflamivar` (FLUXNORM units) from f_λ and its ivar (SPEC §4.1);
/// returns ndof_phot = #(objflamivar > 0).
///
/// # Errors
/// [`KernelError::Shape`] on length mismatches.
pub fn phot_vector(
    flam: &[f64],
    flam_ivar: &[f64],
    bands_to_fit: &[bool],
    lambda_eff: &[f64],
    fluxnorm: f64,
    objflam: &mut [f64],
    objflamivar: &mut [f64],
) -> Result<usize, KernelError> {
    let n = flam.len();
    if [
        flam_ivar.len(),
        bands_to_fit.len(),
        lambda_eff.len(),
        objflam.len(),
        objflamivar.len(),
    ]
    .iter()
    .any(|&l| l != n)
    {
        return Err(KernelError::Shape(format!(
            "phot_vector: {n} bands but mismatched inputs"
        )));
    }
    for b in 0..n {
        objflam[b] = flam[b] * fluxnorm;
        objflamivar[b] =
            flam_ivar[b] / (fluxnorm * fluxnorm) * if bands_to_fit[b] { 1.0 } else { 0.0 };
        if !objflam[b].is_finite() {
            objflam[b] = 0.0;
            objflamivar[b] = 0.0;
        }
    }
    if bands_to_fit.iter().any(|&k| k) {
        let optical_all_zero = (0..n)
            .filter(|&b| lambda_eff[b] > 3e3 && lambda_eff[b] < 1e4)
            .all(|b| objflamivar[b] == 0.0);
        if optical_all_zero {
            objflamivar.fill(0.0);
        }
    }
    Ok(objflamivar.iter().filter(|&&v| v > 0.0).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_and_units() {
        let (nmgy, ivar, lam) = ([10.0, 0.0, 5.0], [4.0, 1.0, 0.0], [4800.0, 6400.0, 9000.0]);
        let (mut f, mut iv) = ([0.0; 3], [0.0; 3]);
        parse_photometry(
            &nmgy,
            &ivar,
            &lam,
            Some(&[0.02, 0.02, 0.02]),
            &mut f,
            &mut iv,
        )
        .unwrap();
        let fac = nanomaggies_flam_factor(4800.0);
        assert!((f[0] / (10.0 * fac) - 1.0).abs() < 1e-15);
        // σ_f² = 1/4 + (10·0.02/MAG_FACTOR)²
        let s2 = 0.25 + (10.0 * 0.02 / MAG_FACTOR).powi(2);
        assert!((iv[0] * fac * fac * s2 - 1.0).abs() < 1e-12);
        // zero flux: no floor
        let fac1 = nanomaggies_flam_factor(6400.0);
        assert!((iv[1] * fac1 * fac1 - 1.0).abs() < 1e-12);
        assert!(parse_photometry(&nmgy, &[-1.0, 0.0, 0.0], &lam, None, &mut f, &mut iv).is_err());
    }

    #[test]
    fn no_ir_only_fits() {
        let (mut of, mut oi) = ([0.0; 3], [0.0; 3]);
        let nd = phot_vector(
            &[1e-17; 3],
            &[0.0, 0.0, 1e34],
            &[true; 3],
            &[4800.0, 6400.0, 34000.0],
            1e17,
            &mut of,
            &mut oi,
        )
        .unwrap();
        assert_eq!(nd, 0);
        assert_eq!(oi, [0.0; 3]);
        let nd = phot_vector(
            &[1e-17; 3],
            &[1e34, 0.0, 1e34],
            &[true, true, false],
            &[4800.0, 6400.0, 34000.0],
            1e17,
            &mut of,
            &mut oi,
        )
        .unwrap();
        assert_eq!(nd, 1);
        assert!((of[0] - 1.0).abs() < 1e-15 && (oi[0] - 1.0).abs() < 1e-15 && oi[2] == 0.0);
    }
}
