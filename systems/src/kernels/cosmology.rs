//! Cosmology: distances and ages (SPEC.md §3.6).
//!
//! Two models, both with H₀ = 100 km/s/Mpc (h = 1, so every distance is really in
//! Mpc/h and is used as Mpc, the DESI convention):
//!
//! * [`CosmologyModel::TabulatedDesi`] (the default): the DESI fiducial table
//!   `desi_fiducial_cosmology.dat` — columns z, E(z), χ(z) [Mpc/h] on
//!   z = {0} ∪ logspace(−8, 2, 40001). E and χ are linearly interpolated
//!   (NumPy `interp` arithmetic); z outside the table's [0, 100] is an error.
//! * [`CosmologyModel::FlatLcdm`]: E(z) = √(Ωm(1+z)³ + 1 − Ωm); χ is the cumulative
//!   trapezoid of (c/H₀)/E on the same z grid, then linearly interpolated.
//!
//! Derived quantities: D_L = χ(z)(1+z), DM = 5 log₁₀ D_L + 25 and the age of the
//! universe t(z) = t_H ∫_z^{z_end} dz′ / ((1+z′) E(z′)) in Gyr with
//! t_H = 3.08567758e19 / 3.15576e16 / H₀ Gyr.
//!
//! FastSpecFit evaluates the age integral with adaptive QUADPACK quadrature over
//! the interpolated E (up to z_end = 100 for the table, to ∞ for flat ΛCDM). Here
//! the table integral is done once at construction, exactly enough (3-point
//! Gauss–Legendre on every table segment, where E is linear), and stored as a
//! cumulative array, so an age lookup is one bisection plus one partial segment.
//! The flat-ΛCDM integral to ∞ has the closed form
//! t = t_H · 2/(3√Ω_Λ) · asinh(√(Ω_Λ/Ωm) (1+z)^{−3/2}) (arcsin form for Ω_Λ < 0).
//! Both agree with FastSpecFit's `quad` to ≈ 2e-9 relative (its own tolerance).

use super::KernelError;

/// Speed of light [km/s], scipy `constants.c / 1000`.
pub const C_LIGHT_KMS: f64 = 299_792.458;
/// Hubble constant used by every model [km/s/Mpc] (h = 1).
pub const H0: f64 = 100.0;
/// Hubble time 1/H₀ in Gyr for H₀ = 100, FastSpecFit's exact expression.
pub const HUBBLE_TIME_GYR: f64 = 3.08567758e19 / 3.15576e16 / H0;

/// The DESI fiducial cosmology table shipped with FastSpecFit, embedded so the
/// binary needs no data path.
const DESI_FIDUCIAL_TABLE: &str =
    include_str!("../../../tests/data/config/desi_fiducial_cosmology.dat");

/// Which cosmology a [`Cosmology`] evaluates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CosmologyModel {
    /// Tabulated DESI fiducial cosmology (FastSpecFit's `TabulatedDESI`, the default).
    TabulatedDesi,
    /// Analytic flat ΛCDM with matter density `omega_m` (`--cosmology flatLCDM`).
    FlatLcdm {
        /// Matter density parameter Ωm (Ω_Λ = 1 − Ωm).
        omega_m: f64,
    },
}

/// A cosmology: z grid with E(z), comoving distance and the age integral.
///
/// Built once per run and shared read-only; every lookup is a bisection on the
/// 40002-point grid.
#[derive(Debug, Clone)]
pub struct Cosmology {
    model: CosmologyModel,
    /// Redshift grid, increasing.
    z: Vec<f64>,
    /// E(z) = H(z)/H₀ on `z`.
    efunc: Vec<f64>,
    /// Comoving radial distance [Mpc/h] on `z`.
    comoving: Vec<f64>,
    /// ∫_{z_k}^{z_last} dz/((1+z)E) on `z` (tabulated model only; empty otherwise).
    age_above: Vec<f64>,
}

impl Cosmology {
    /// The default DESI fiducial cosmology from the embedded table.
    ///
    /// # Errors
    /// Never in practice (the embedded table is valid); the signature matches
    /// [`Cosmology::from_table_text`].
    pub fn desi_fiducial() -> Result<Self, KernelError> {
        Self::from_table_text(DESI_FIDUCIAL_TABLE)
    }

    /// A tabulated cosmology from the text of a table in the format of
    /// `desi_fiducial_cosmology.dat`: `#` comment lines, then rows `z E(z) χ(z)`.
    ///
    /// # Errors
    /// [`KernelError::Shape`] for rows without exactly 3 numbers, unparsable
    /// numbers, fewer than 2 rows or a non-increasing z column;
    /// [`KernelError::NonFinite`] for non-finite entries or E ≤ 0.
    pub fn from_table_text(text: &str) -> Result<Self, KernelError> {
        let (mut z, mut efunc, mut comoving) = (Vec::new(), Vec::new(), Vec::new());
        for (lineno, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut cols = [0.0; 3];
            let mut ncol = 0;
            for tok in line.split_whitespace() {
                if ncol == 3 {
                    ncol += 1;
                    break;
                }
                cols[ncol] = tok.parse::<f64>().map_err(|e| {
                    KernelError::Shape(format!("cosmology table line {}: {e}", lineno + 1))
                })?;
                ncol += 1;
            }
            if ncol != 3 {
                return Err(KernelError::Shape(format!(
                    "cosmology table line {}: expected 3 columns (z, E(z), chi(z))",
                    lineno + 1
                )));
            }
            if cols.iter().any(|v| !v.is_finite()) || cols[1] <= 0.0 {
                return Err(KernelError::NonFinite(format!(
                    "cosmology table line {}: non-finite value or E(z) <= 0",
                    lineno + 1
                )));
            }
            z.push(cols[0]);
            efunc.push(cols[1]);
            comoving.push(cols[2]);
        }
        check_grid(&z)?;
        let age_above = cumulative_age(&z, &efunc);
        Ok(Self {
            model: CosmologyModel::TabulatedDesi,
            z,
            efunc,
            comoving,
            age_above,
        })
    }

    /// Flat ΛCDM with matter density `omega_m` (FastSpecFit's `FlatLambdaCDM`).
    ///
    /// # Errors
    /// [`KernelError::Domain`] unless 0 < Ωm is finite.
    pub fn flat_lcdm(omega_m: f64) -> Result<Self, KernelError> {
        if !(omega_m.is_finite() && omega_m > 0.0) {
            return Err(KernelError::Domain(format!(
                "flat LCDM needs omega_m > 0, got {omega_m}"
            )));
        }
        let z = fiducial_z_grid();
        let efunc: Vec<f64> = z.iter().map(|&zz| flat_efunc(omega_m, zz)).collect();
        // cumulative trapezoid of 1/E, scaled by the Hubble distance afterwards
        let hubble_distance = C_LIGHT_KMS / H0;
        let mut comoving = Vec::with_capacity(z.len());
        comoving.push(0.0);
        let mut acc = 0.0;
        for k in 1..z.len() {
            acc += (z[k] - z[k - 1]) * (1.0 / efunc[k] + 1.0 / efunc[k - 1]) / 2.0;
            comoving.push(hubble_distance * acc);
        }
        Ok(Self {
            model: CosmologyModel::FlatLcdm { omega_m },
            z,
            efunc,
            comoving,
            age_above: Vec::new(),
        })
    }

    /// Which model this is.
    pub fn model(&self) -> CosmologyModel {
        self.model
    }

    /// Largest redshift accepted by the lookups (100).
    pub fn z_max(&self) -> f64 {
        self.z.last().copied().unwrap_or(0.0)
    }

    /// Check 0 ≤ z ≤ z_max and return the grid segment k with z_k ≤ z < z_{k+1}
    /// (k = n − 2 at z = z_max).
    fn segment(&self, z: f64) -> Result<usize, KernelError> {
        if z.is_nan() {
            return Err(KernelError::NonFinite("redshift is NaN".into()));
        }
        let n = self.z.len();
        if z < self.z[0] || z > self.z[n - 1] {
            return Err(KernelError::Domain(format!(
                "z = {z} outside the cosmology range [{}, {}]",
                self.z[0],
                self.z[n - 1]
            )));
        }
        let k = self.z.partition_point(|&g| g <= z);
        Ok(k.saturating_sub(1).min(n - 2))
    }

    /// Linear interpolation of `table` at z (NumPy `interp` arithmetic).
    fn interp(&self, table: &[f64], z: f64) -> Result<f64, KernelError> {
        let k = self.segment(z)?;
        Ok(lerp(&self.z, table, k, z))
    }

    /// E(z) = H(z)/H₀ (interpolated for the table, analytic for flat ΛCDM).
    ///
    /// # Errors
    /// [`KernelError::Domain`] for z outside [0, 100], `NonFinite` for NaN.
    pub fn efunc(&self, z: f64) -> Result<f64, KernelError> {
        match self.model {
            CosmologyModel::TabulatedDesi => self.interp(&self.efunc, z),
            CosmologyModel::FlatLcdm { omega_m } => {
                self.segment(z)?;
                Ok(flat_efunc(omega_m, z))
            }
        }
    }

    /// Comoving radial distance χ(z) [Mpc/h].
    ///
    /// # Errors
    /// As [`Cosmology::efunc`].
    pub fn comoving_radial_distance(&self, z: f64) -> Result<f64, KernelError> {
        self.interp(&self.comoving, z)
    }

    /// Luminosity distance D_L = χ(z)(1+z) [Mpc/h, used as Mpc].
    ///
    /// # Errors
    /// As [`Cosmology::efunc`].
    pub fn luminosity_distance(&self, z: f64) -> Result<f64, KernelError> {
        Ok(self.comoving_radial_distance(z)? * (1.0 + z))
    }

    /// Distance modulus 5 log₁₀ D_L + 25 [mag] (−∞ at z = 0).
    ///
    /// # Errors
    /// As [`Cosmology::efunc`].
    pub fn distance_modulus(&self, z: f64) -> Result<f64, KernelError> {
        Ok(5.0 * self.luminosity_distance(z)?.log10() + 25.0)
    }

    /// Age of the universe at redshift z [Gyr].
    ///
    /// # Errors
    /// As [`Cosmology::efunc`].
    pub fn universe_age(&self, z: f64) -> Result<f64, KernelError> {
        let k = self.segment(z)?;
        match self.model {
            CosmologyModel::TabulatedDesi => {
                let (z1, e_at) = (self.z[k + 1], lerp(&self.z, &self.efunc, k, z));
                let partial = gauss3(z, z1, e_at, self.efunc[k + 1]);
                Ok((partial + self.age_above[k + 1]) * HUBBLE_TIME_GYR)
            }
            CosmologyModel::FlatLcdm { omega_m } => Ok(flat_age(omega_m, z) * HUBBLE_TIME_GYR),
        }
    }
}

/// NumPy-`interp` value on segment k: slope·(z − z_k) + y_k (exact at nodes).
fn lerp(zg: &[f64], y: &[f64], k: usize, z: f64) -> f64 {
    if z == zg[k] {
        return y[k];
    }
    let slope = (y[k + 1] - y[k]) / (zg[k + 1] - zg[k]);
    slope * (z - zg[k]) + y[k]
}

fn check_grid(z: &[f64]) -> Result<(), KernelError> {
    if z.len() < 2 {
        return Err(KernelError::Shape(
            "cosmology table needs at least 2 rows".into(),
        ));
    }
    if z.windows(2).any(|w| w[1] <= w[0]) {
        return Err(KernelError::Shape(
            "cosmology table z column must increase".into(),
        ));
    }
    Ok(())
}

/// ∫_{a}^{b} dz/((1+z)E(z)) with E linear from `ea` (at a) to `eb` (at b), by
/// 3-point Gauss–Legendre on sub-intervals over which 1+z and E change by at
/// most 1% (error < 1e-12 relative). A segment of the DESI table is a single
/// sub-interval (its relative width is ≤ 6e-4); coarse user tables get more.
fn gauss3(a: f64, b: f64, ea: f64, eb: f64) -> f64 {
    const NODES: [f64; 3] = [0.112_701_665_379_258_31, 0.5, 0.887_298_334_620_741_7];
    const WEIGHTS: [f64; 3] = [5.0 / 18.0, 8.0 / 18.0, 5.0 / 18.0];
    let h = b - a;
    if h == 0.0 {
        return 0.0;
    }
    let spread = (h / (1.0 + a.min(b)))
        .abs()
        .max((eb - ea).abs() / ea.min(eb));
    let nsub = (spread / 0.01).ceil().clamp(1.0, 1.0e5) as usize;
    let hs = h / nsub as f64;
    let mut s = 0.0;
    for k in 0..nsub {
        let z0 = a + k as f64 * hs;
        for (t, w) in NODES.iter().zip(WEIGHTS) {
            let frac = (z0 - a + t * hs) / h;
            let zz = z0 + t * hs;
            let e = ea + frac * (eb - ea);
            s += w / ((1.0 + zz) * e);
        }
    }
    s * hs
}

/// age_above[k] = ∫_{z_k}^{z_last} dz/((1+z)E), summed from the top.
fn cumulative_age(z: &[f64], efunc: &[f64]) -> Vec<f64> {
    let n = z.len();
    let mut out = vec![0.0; n];
    for k in (0..n - 1).rev() {
        out[k] = out[k + 1] + gauss3(z[k], z[k + 1], efunc[k], efunc[k + 1]);
    }
    out
}

/// z = {0} ∪ 10^linspace(−8, 2, 40001), NumPy's arithmetic (the table's grid).
fn fiducial_z_grid() -> Vec<f64> {
    const NUM: usize = 40_001;
    let (start, stop) = (-8.0_f64, 2.0_f64);
    let step = (stop - start) / (NUM - 1) as f64;
    let mut z = Vec::with_capacity(NUM + 1);
    z.push(0.0);
    for i in 0..NUM {
        let y = if i == NUM - 1 {
            stop
        } else {
            i as f64 * step + start
        };
        z.push(10.0_f64.powf(y));
    }
    z
}

fn flat_efunc(omega_m: f64, z: f64) -> f64 {
    (omega_m * (1.0 + z).powf(3.0) + (1.0 - omega_m)).sqrt()
}

/// ∫_z^∞ dz′/((1+z′)E(z′)) for flat ΛCDM, closed form (in units of t_H).
fn flat_age(omega_m: f64, z: f64) -> f64 {
    let omega_l = 1.0 - omega_m;
    let u = (1.0 + z).powf(-1.5);
    if omega_l > 0.0 {
        2.0 / (3.0 * omega_l.sqrt()) * (u * (omega_l / omega_m).sqrt()).asinh()
    } else if omega_l < 0.0 {
        let ol = -omega_l;
        2.0 / (3.0 * ol.sqrt()) * (u * (ol / omega_m).sqrt()).min(1.0).asin()
    } else {
        2.0 / 3.0 * u / omega_m.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> serde_json::Value {
        crate::kernels::test_fixtures::load("cosmology/distances.json")
    }

    use crate::kernels::test_fixtures::f64s as vec;

    fn close(a: f64, b: f64, rtol: f64, what: &str) {
        let tol = rtol * b.abs().max(1e-300);
        assert!(
            (a - b).abs() <= tol,
            "{what}: got {a}, want {b} (rtol {rtol})"
        );
    }

    /// SPEC §3.6 test values (FastSpecFit's test_cosmo, rtol 1e-5 there).
    #[test]
    fn spec_values() {
        let zs = [1e-4, 0.113423, 1.87988, 8.2323];
        let c = Cosmology::desi_fiducial().unwrap();
        let dl = [0.299823456, 368.257334, 9956.10914, 57194.1290];
        let age = [9.28173365, 8.26036459, 2.32759459, 0.40124926];
        for i in 0..4 {
            close(
                c.luminosity_distance(zs[i]).unwrap(),
                dl[i],
                5e-8,
                "tab D_L",
            );
            close(c.universe_age(zs[i]).unwrap(), age[i], 5e-8, "tab age");
        }
        close(c.universe_age(0.0).unwrap(), 9.28271137, 5e-8, "tab age(0)");
        let f = Cosmology::flat_lcdm(0.3).unwrap();
        let dl = [0.299815691, 368.733413, 10082.6214, 58222.3197];
        let age = [9.42591104, 8.40324420, 2.39719007, 0.42404841];
        for i in 0..4 {
            close(
                f.luminosity_distance(zs[i]).unwrap(),
                dl[i],
                5e-8,
                "flat D_L",
            );
            close(f.universe_age(zs[i]).unwrap(), age[i], 5e-8, "flat age");
        }
        close(
            f.universe_age(0.0).unwrap(),
            9.42688876,
            5e-8,
            "flat age(0)",
        );
    }

    /// Every quantity of three cosmologies against fastspecfit.cosmo on a z list
    /// spanning the whole table, including both ends.
    #[test]
    fn matches_fastspecfit_fixture() {
        let fx = fixture();
        let zs = vec(&fx["z"]);
        let models = [
            ("tabulated", Cosmology::desi_fiducial().unwrap()),
            ("flat_0.3", Cosmology::flat_lcdm(0.3).unwrap()),
            ("flat_0.25", Cosmology::flat_lcdm(0.25).unwrap()),
        ];
        for (key, c) in &models {
            let m = &fx[*key];
            for (i, &z) in zs.iter().enumerate() {
                close(c.efunc(z).unwrap(), vec(&m["efunc"])[i], 1e-13, "efunc");
                close(
                    c.comoving_radial_distance(z).unwrap(),
                    vec(&m["comoving"])[i],
                    1e-12,
                    "chi",
                );
                close(
                    c.luminosity_distance(z).unwrap(),
                    vec(&m["dlum"])[i],
                    1e-12,
                    "D_L",
                );
                let want = vec(&m["age"])[i];
                // quad's own absolute tolerance (1.49e-8) dominates near z = 100
                let got = c.universe_age(z).unwrap();
                assert!(
                    (got - want).abs() <= 1e-8 * want + 1.5e-8 * HUBBLE_TIME_GYR,
                    "{key} age z={z}: {got} vs {want}"
                );
            }
            for (i, &z) in vec(&m["dmod_z"]).iter().enumerate() {
                close(
                    c.distance_modulus(z).unwrap(),
                    vec(&m["dmod"])[i],
                    1e-13,
                    "DM",
                );
            }
        }
    }

    #[test]
    fn out_of_range_is_an_error() {
        let c = Cosmology::desi_fiducial().unwrap();
        assert!(matches!(
            c.luminosity_distance(-0.1),
            Err(KernelError::Domain(_))
        ));
        assert!(matches!(c.universe_age(100.5), Err(KernelError::Domain(_))));
        assert!(matches!(c.efunc(f64::NAN), Err(KernelError::NonFinite(_))));
        assert_eq!(c.universe_age(100.0).unwrap(), 0.0);
        let f = Cosmology::flat_lcdm(0.3).unwrap();
        assert!(matches!(
            f.distance_modulus(101.0),
            Err(KernelError::Domain(_))
        ));
        assert!(Cosmology::flat_lcdm(0.0).is_err());
        assert!(Cosmology::from_table_text("# only a comment\n0 1 0\n").is_err());
        assert!(Cosmology::from_table_text("0 1 0\n1 2\n").is_err());
        assert!(Cosmology::from_table_text("0 1 0\n1 2 x\n").is_err());
    }

    #[test]
    fn user_table_text() {
        // a two-row table with E linear: age integral has a closed form
        let c = Cosmology::from_table_text("# z E chi\n0 1 0\n1 3 10\n").unwrap();
        close(c.luminosity_distance(0.5).unwrap(), 5.0 * 1.5, 1e-15, "D_L");
        // ∫_0^1 dz/((1+z)(1+2z)) = ln((1+2z)/(1+z)) |_0^1 = ln(3/2)
        close(
            c.universe_age(0.0).unwrap(),
            1.5_f64.ln() * HUBBLE_TIME_GYR,
            1e-11,
            "age",
        );
    }
}
