//! Dust attenuation, energy-balance dust emission and the redshift factors
//! (SPEC.md §3.3 and §3.4).
//!
//! * Attenuation curve k(λ_r) = (λ_r/5500 Å)^−0.7 and A(λ_r) = exp(−τ_V k(λ_r))
//!   (a single screen, τ_V ∈ [0, 2] in the fits).
//! * Without dust emission: M′ = M·A·Z.
//! * With dust emission (energy balance, no self-absorption):
//!   L_abs = trapz over the rest template grid of M·(1 − A) and
//!   M′ = (M·A + L_abs·DUSTFLUX)·Z. DUSTFLUX is used as stored in the template
//!   file (unit integral assumed, not renormalised).
//! * "zfactors" Z(λ) = T_IGM(z, λ_obs)·FLUXNORM·MASSNORM·(10 pc/D_L)²/(1+z) with
//!   D_L in Mpc, i.e. the scale (10/(10⁶ D_L))², on the observed template grid
//!   λ_obs = λ_r(1+z).
//!
//! The arithmetic order follows FastSpecFit's `ContinuumTools.attenuate`,
//! `attenuate_nodust` and `get_zfactors`.

use super::igm::Inoue14;
use super::KernelError;

/// Pivot wavelength of the attenuation curve [Å].
pub const DUST_PIVOT_ANGSTROM: f64 = 5500.0;
/// Power-law slope of the attenuation curve.
pub const DUST_POWER: f64 = -0.7;

fn same_len(what: &str, lens: &[usize]) -> Result<(), KernelError> {
    if lens.windows(2).any(|w| w[0] != w[1]) {
        return Err(KernelError::Shape(format!(
            "{what}: slice lengths differ {lens:?}"
        )));
    }
    Ok(())
}

/// k(λ_r) = (λ_r/5500)^−0.7 on the rest-frame template grid, into `out`.
///
/// # Errors
/// [`KernelError::Shape`] if the lengths differ.
pub fn klambda(rest_wave: &[f64], out: &mut [f64]) -> Result<(), KernelError> {
    same_len("klambda", &[rest_wave.len(), out.len()])?;
    for (o, &w) in out.iter_mut().zip(rest_wave) {
        *o = (w / DUST_PIVOT_ANGSTROM).powf(DUST_POWER);
    }
    Ok(())
}

/// A = exp(−τ_V k) for every pixel, into `out`.
///
/// # Errors
/// [`KernelError::Shape`] if the lengths differ; [`KernelError::NonFinite`] if
/// τ_V is not finite.
pub fn attenuation(tauv: f64, klambda: &[f64], out: &mut [f64]) -> Result<(), KernelError> {
    same_len("attenuation", &[klambda.len(), out.len()])?;
    if !tauv.is_finite() {
        return Err(KernelError::NonFinite(format!(
            "attenuation: tauv = {tauv}"
        )));
    }
    crate::kernels::fastexp::exp_scaled_into(-tauv, klambda, out);
    Ok(())
}

/// In place M ← M·A·Z (no dust emission).
///
/// # Errors
/// [`KernelError::Shape`] if the lengths differ.
pub fn attenuate_nodust(
    model: &mut [f64],
    atten: &[f64],
    zfactors: &[f64],
) -> Result<(), KernelError> {
    same_len(
        "attenuate_nodust",
        &[model.len(), atten.len(), zfactors.len()],
    )?;
    for ((m, &a), &z) in model.iter_mut().zip(atten).zip(zfactors) {
        *m *= a * z;
    }
    Ok(())
}

/// In place M ← (M·A + L_abs·DUSTFLUX)·Z with L_abs = trapz(M·(1−A), λ_r)
/// computed on the input M; returns L_abs.
///
/// # Errors
/// [`KernelError::Shape`] if the lengths differ or are zero.
pub fn attenuate(
    model: &mut [f64],
    atten: &[f64],
    zfactors: &[f64],
    rest_wave: &[f64],
    dustflux: &[f64],
) -> Result<f64, KernelError> {
    let n = model.len();
    same_len(
        "attenuate",
        &[
            n,
            atten.len(),
            zfactors.len(),
            rest_wave.len(),
            dustflux.len(),
        ],
    )?;
    if n == 0 {
        return Err(KernelError::Shape("attenuate: empty model".into()));
    }
    // replace M by M·A while integrating d = M − M·A with the trapezoid rule
    let ma = model[0] * atten[0];
    let mut prev_d = model[0] - ma;
    model[0] = ma;
    let mut labs = 0.0;
    for i in 1..n {
        let ma = model[i] * atten[i];
        let d = model[i] - ma;
        model[i] = ma;
        labs += (rest_wave[i] - rest_wave[i - 1]) * (d + prev_d);
        prev_d = d;
    }
    labs *= 0.5;
    for ((m, &df), &z) in model.iter_mut().zip(dustflux).zip(zfactors) {
        *m = (*m + labs * df) * z;
    }
    Ok(labs)
}

/// [`attenuate`] of two models at once (`a` with `atten_a`, `b` with `atten_b`) on the same
/// grid: the same operations in the same order for each, with the two sequential L_abs
/// sums interleaved in one loop (so each takes about half the time). Returns both L_abs.
///
/// # Errors
/// As [`attenuate`].
pub fn attenuate_pair(
    a: &mut [f64],
    atten_a: &[f64],
    b: &mut [f64],
    atten_b: &[f64],
    zfactors: &[f64],
    rest_wave: &[f64],
    dustflux: &[f64],
) -> Result<(f64, f64), KernelError> {
    let n = a.len();
    same_len(
        "attenuate_pair",
        &[
            n,
            atten_a.len(),
            b.len(),
            atten_b.len(),
            zfactors.len(),
            rest_wave.len(),
            dustflux.len(),
        ],
    )?;
    if n == 0 {
        return Err(KernelError::Shape("attenuate: empty model".into()));
    }
    let ma = a[0] * atten_a[0];
    let mut prev_da = a[0] - ma;
    a[0] = ma;
    let mb = b[0] * atten_b[0];
    let mut prev_db = b[0] - mb;
    b[0] = mb;
    let (mut labs_a, mut labs_b) = (0.0, 0.0);
    for i in 1..n {
        let h = rest_wave[i] - rest_wave[i - 1];
        let ma = a[i] * atten_a[i];
        let da = a[i] - ma;
        a[i] = ma;
        labs_a += h * (da + prev_da);
        prev_da = da;
        let mb = b[i] * atten_b[i];
        let db = b[i] - mb;
        b[i] = mb;
        labs_b += h * (db + prev_db);
        prev_db = db;
    }
    labs_a *= 0.5;
    labs_b *= 0.5;
    for (((ma, mb), &df), &z) in a.iter_mut().zip(b.iter_mut()).zip(dustflux).zip(zfactors) {
        *ma = (*ma + labs_a * df) * z;
        *mb = (*mb + labs_b * df) * z;
    }
    Ok((labs_a, labs_b))
}

/// Trapezoid weights w with trapz(f, x) = Σ f·w (for pre-integrating template
/// sums once per fit, as the VARPRO solver does).
///
/// # Errors
/// [`KernelError::Shape`] if the lengths differ.
pub fn trapz_weights(x: &[f64], out: &mut [f64]) -> Result<(), KernelError> {
    same_len("trapz_weights", &[x.len(), out.len()])?;
    out.fill(0.0);
    for i in 1..x.len() {
        let h = 0.5 * (x[i] - x[i - 1]);
        out[i - 1] += h;
        out[i] += h;
    }
    Ok(())
}

/// The wavelength-independent part of the zfactors:
/// FLUXNORM·MASSNORM·(10/(10⁶ D_L))²/(1+z).
///
/// # Errors
/// [`KernelError::Domain`] unless D_L > 0 and z > −1 (both finite).
pub fn zfactor_scale(
    z: f64,
    dlum_mpc: f64,
    fluxnorm: f64,
    massnorm: f64,
) -> Result<f64, KernelError> {
    if !(dlum_mpc.is_finite() && dlum_mpc > 0.0 && z.is_finite() && z > -1.0) {
        return Err(KernelError::Domain(format!(
            "zfactors: z = {z}, D_L = {dlum_mpc} Mpc"
        )));
    }
    let r = 10.0 / (1e6 * dlum_mpc);
    Ok(fluxnorm * massnorm * (r * r) / (1.0 + z))
}

/// Z(λ) = T_IGM(z, λ_obs)·[`zfactor_scale`] on the observed template grid
/// `obs_wave` (= rest wave × (1+z)), into `out`.
///
/// # Errors
/// As [`zfactor_scale`] and [`Inoue14::transmission`].
pub fn zfactors(
    igm: &Inoue14,
    z: f64,
    dlum_mpc: f64,
    fluxnorm: f64,
    massnorm: f64,
    obs_wave: &[f64],
    out: &mut [f64],
) -> Result<(), KernelError> {
    let scale = zfactor_scale(z, dlum_mpc, fluxnorm, massnorm)?;
    igm.transmission(z, obs_wave, out)?;
    for o in out.iter_mut() {
        *o *= scale;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> serde_json::Value {
        crate::kernels::test_fixtures::load("dust/attenuate.json")
    }

    use crate::kernels::test_fixtures::f64s as vec;

    fn assert_close(got: &[f64], want: &[f64], rtol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= rtol * w.abs() + 1e-300,
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    /// klambda, A, zfactors (real IGM + DESI cosmology distance) and both
    /// attenuate variants against FastSpecFit on an irregular real template
    /// sub-grid (700 Å – 200 µm) at the two bundled redshifts, τ_V ∈ {0, 0.37, 1.5}.
    #[test]
    fn matches_fastspecfit_fixture() {
        let fx = fixture();
        let rest = vec(&fx["rest_wave"]);
        let model0 = vec(&fx["model"]);
        let dustflux = vec(&fx["dustflux"]);
        let n = rest.len();
        let mut kl = vec![0.0; n];
        klambda(&rest, &mut kl).unwrap();
        assert_close(&kl, &vec(&fx["klambda"]), 1e-14, "klambda");
        let igm = Inoue14::new().unwrap();
        let (mut a, mut zf) = (vec![0.0; n], vec![0.0; n]);
        for case in fx["cases"].as_array().unwrap() {
            let z = case["z"].as_f64().unwrap();
            let tauv = case["tauv"].as_f64().unwrap();
            let dlum = case["dlum"].as_f64().unwrap();
            let obs: Vec<f64> = rest.iter().map(|w| w * (1.0 + z)).collect();
            zfactors(&igm, z, dlum, 1e17, 1e10, &obs, &mut zf).unwrap();
            assert_close(&zf, &vec(&case["zfactors"]), 1e-11, "zfactors");
            attenuation(tauv, &kl, &mut a).unwrap();
            assert_close(&a, &vec(&case["atten"]), 1e-13, "atten");
            let mut m = model0.clone();
            attenuate_nodust(&mut m, &a, &zf).unwrap();
            assert_close(&m, &vec(&case["no_dust"]), 1e-11, "no_dust");
            let mut m = model0.clone();
            let labs = attenuate(&mut m, &a, &zf, &rest, &dustflux).unwrap();
            assert!(labs >= 0.0 && (tauv > 0.0 || labs == 0.0));
            assert_close(&m, &vec(&case["with_dust"]), 1e-11, "with_dust");
        }
    }

    #[test]
    fn identities_and_errors() {
        // A = 1, Z = 1: identity; A = 0: only the re-emitted dust remains
        let w = [1000.0, 2000.0, 4000.0];
        let mut m = [1.0, 2.0, 3.0];
        attenuate_nodust(&mut m, &[1.0; 3], &[1.0; 3]).unwrap();
        assert_eq!(m, [1.0, 2.0, 3.0]);
        let labs = attenuate(&mut m, &[0.0; 3], &[1.0; 3], &w, &[0.0; 3]).unwrap();
        assert_eq!(m, [0.0; 3]);
        assert_eq!(labs, 0.5 * (1000.0 * 3.0 + 2000.0 * 5.0));
        let mut tw = [0.0; 3];
        trapz_weights(&w, &mut tw).unwrap();
        assert_eq!(tw, [500.0, 1500.0, 1000.0]);
        assert!(matches!(
            attenuate(&mut m, &[0.0; 2], &[1.0; 3], &w, &[0.0; 3]),
            Err(KernelError::Shape(_))
        ));
        assert!(matches!(
            zfactor_scale(0.0, 0.0, 1e17, 1e10),
            Err(KernelError::Domain(_))
        ));
        assert!(matches!(
            attenuation(f64::NAN, &[1.0], &mut [0.0]),
            Err(KernelError::NonFinite(_))
        ));
    }
}
