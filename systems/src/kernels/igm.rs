//! Intergalactic-medium transmission of Inoue et al. (2014) (SPEC.md §3.4).
//!
//! FastSpecFit's `Inoue14` (adapted from eazy-py), scale_tau = 1. For a source at
//! z_S, Z₁ = 1 + z_S and observed wavelength λ [Å], T = exp(−τ) with
//! τ = τ_LS,LAF + τ_LS,DLA + τ_LC,LAF + τ_LC,DLA:
//!
//! * Lyman series, summed over the 39 lines j with λ < λ_j Z₁ (λ_j from
//!   `LAFcoeff.txt`, coefficients A from `LAFcoeff.txt`/`DLAcoeff.txt`):
//!   τ_LS,LAF += A_LAF1 (λ/λ_j)^1.2 if λ < 2.2 λ_j, A_LAF2 (λ/λ_j)^3.7 if λ < 5.7 λ_j,
//!   else A_LAF3 (λ/λ_j)^5.5; τ_LS,DLA += A_DLA1 (λ/λ_j)² if λ < 3 λ_j else
//!   A_DLA2 (λ/λ_j)³. As in FastSpecFit the coefficients are pre-divided,
//!   c = A/λ_j^p, and multiplied by λ^p.
//! * Lyman continuum, with X = λ/911.8 and only where X < Z₁: the piecewise
//!   polynomials of SPEC §3.4 (DLA: Z₁ < 3 / ≥ 3; LAF: Z₁ < 2.2, < 5.7, ≥ 5.7).
//!
//! No clipping of negative τ. Redward of both Lyman-α and the Lyman limit
//! (λ ≥ max λ_j · Z₁ and X ≥ Z₁) every term is zero and T = 1 exactly, which the
//! kernel returns without evaluating any power.

use super::KernelError;

/// Lyman-limit wavelength used by the continuum terms [Å].
const LAMBDA_LYMAN_LIMIT: f64 = 911.8;

const LAF_COEFF: &str = include_str!("../../../tests/data/config/LAFcoeff.txt");
const DLA_COEFF: &str = include_str!("../../../tests/data/config/DLAcoeff.txt");

/// Inoue (2014) IGM model: Lyman-series wavelengths and pre-divided coefficients.
#[derive(Debug, Clone)]
pub struct Inoue14 {
    /// Rest wavelengths of the Lyman-series lines λ_j [Å].
    lam: Vec<f64>,
    /// A_LAF1/λ^1.2, A_LAF2/λ^3.7, A_LAF3/λ^5.5 per line.
    c_laf: Vec<[f64; 3]>,
    /// A_DLA1/λ², A_DLA2/λ³ per line.
    c_dla: Vec<[f64; 2]>,
    /// max_j λ_j: T = 1 for λ ≥ lam_max·Z₁ (and beyond the Lyman limit).
    lam_max: f64,
}

impl Inoue14 {
    /// The model with FastSpecFit's bundled coefficient files (embedded).
    ///
    /// # Errors
    /// Never in practice; see [`Inoue14::from_coeff_text`].
    pub fn new() -> Result<Self, KernelError> {
        Self::from_coeff_text(LAF_COEFF, DLA_COEFF)
    }

    /// The model from the texts of `LAFcoeff.txt` (columns: index, λ_j, A_LAF1..3)
    /// and `DLAcoeff.txt` (index, λ_j, A_DLA1..2). The DLA file's wavelength
    /// column is ignored, as in FastSpecFit.
    ///
    /// # Errors
    /// [`KernelError::Shape`] if a row has the wrong number of columns, a number
    /// does not parse, or the two files have different row counts;
    /// [`KernelError::NonFinite`] for non-finite or non-positive wavelengths.
    pub fn from_coeff_text(laf: &str, dla: &str) -> Result<Self, KernelError> {
        let laf_rows = parse_rows::<5>(laf, "LAFcoeff")?;
        let dla_rows = parse_rows::<4>(dla, "DLAcoeff")?;
        if laf_rows.len() != dla_rows.len() || laf_rows.is_empty() {
            return Err(KernelError::Shape(format!(
                "IGM coefficient files have {} LAF and {} DLA rows",
                laf_rows.len(),
                dla_rows.len()
            )));
        }
        let mut lam = Vec::with_capacity(laf_rows.len());
        let mut c_laf = Vec::with_capacity(laf_rows.len());
        let mut c_dla = Vec::with_capacity(laf_rows.len());
        for (l, d) in laf_rows.iter().zip(&dla_rows) {
            let lj = l[1];
            if !(lj.is_finite() && lj > 0.0) {
                return Err(KernelError::NonFinite(format!("IGM line wavelength {lj}")));
            }
            lam.push(lj);
            c_laf.push([
                l[2] / lj.powf(1.2),
                l[3] / lj.powf(3.7),
                l[4] / lj.powf(5.5),
            ]);
            c_dla.push([d[2] / lj.powf(2.0), d[3] / lj.powf(3.0)]);
        }
        let lam_max = lam.iter().copied().fold(f64::MIN, f64::max);
        Ok(Self {
            lam,
            c_laf,
            c_dla,
            lam_max,
        })
    }

    /// Number of Lyman-series lines (39 for the bundled files).
    pub fn nlines(&self) -> usize {
        self.lam.len()
    }

    /// IGM transmission T(z, λ) at observed wavelengths `lobs` [Å] into `out`.
    ///
    /// # Errors
    /// [`KernelError::Shape`] if `out.len() != lobs.len()`;
    /// [`KernelError::Domain`] unless z is finite and > −1;
    /// [`KernelError::NonFinite`] if a wavelength is not finite and positive
    /// (`out` is then partially written).
    pub fn transmission(&self, z: f64, lobs: &[f64], out: &mut [f64]) -> Result<(), KernelError> {
        if out.len() != lobs.len() {
            return Err(KernelError::Shape(format!(
                "igm: {} wavelengths but output of length {}",
                lobs.len(),
                out.len()
            )));
        }
        if !(z.is_finite() && z > -1.0) {
            return Err(KernelError::Domain(format!("igm: redshift {z}")));
        }
        let z1 = 1.0 + z;
        let lc = LymanContinuum::new(z1);
        let lam_cut = self.lam_max * z1;
        let x_cut = z1 * LAMBDA_LYMAN_LIMIT;
        for (t, &l) in out.iter_mut().zip(lobs) {
            if !(l.is_finite() && l > 0.0) {
                return Err(KernelError::NonFinite(format!("igm: wavelength {l}")));
            }
            if l >= lam_cut && l >= x_cut {
                *t = 1.0;
                continue;
            }
            let tau = self.tau_lyman_series(z1, l) + lc.tau(l / LAMBDA_LYMAN_LIMIT);
            *t = (-tau).exp();
        }
        Ok(())
    }

    /// τ_LS,LAF + τ_LS,DLA at one wavelength (sums in line order, as FastSpecFit).
    fn tau_lyman_series(&self, z1: f64, l: f64) -> f64 {
        let (p12, p37, p55) = (l.powf(1.2), l.powf(3.7), l.powf(5.5));
        let (p2, p3) = (l * l, l.powf(3.0));
        let mut laf = 0.0;
        let mut dla = 0.0;
        for ((&lj, c), d) in self.lam.iter().zip(&self.c_laf).zip(&self.c_dla) {
            if l < lj * z1 {
                laf += if l < lj * 2.2 {
                    c[0] * p12
                } else if l < lj * 5.7 {
                    c[1] * p37
                } else {
                    c[2] * p55
                };
                dla += if l < lj * 3.0 { d[0] * p2 } else { d[1] * p3 };
            }
        }
        laf + dla
    }
}

/// Redshift-dependent constants of the Lyman-continuum terms.
struct LymanContinuum {
    z1: f64,
    z1_2: f64,
    z1_23: f64,
    z1_3: f64,
    z1_33: f64,
    z1_m09: f64,
    z1_16: f64,
    z1_34: f64,
}

impl LymanContinuum {
    fn new(z1: f64) -> Self {
        Self {
            z1,
            z1_2: z1.powf(2.0),
            z1_23: z1.powf(2.3),
            z1_3: z1.powf(3.0),
            z1_33: z1.powf(3.3),
            z1_m09: z1.powf(-0.9),
            z1_16: z1.powf(1.6),
            z1_34: z1.powf(3.4),
        }
    }

    /// τ_LC,LAF + τ_LC,DLA at X = λ/911.8 (zero for X ≥ Z₁).
    fn tau(&self, x: f64) -> f64 {
        if x >= self.z1 {
            return 0.0;
        }
        let xm03 = x.powf(-0.3);
        let x2 = x.powf(2.0);
        let x21 = x.powf(2.1);
        // DLA
        let dla = if self.z1 < 3.0 {
            0.2113 * self.z1_2 - 0.07661 * self.z1_23 * xm03 - 0.1347 * x2
        } else if x < 3.0 {
            0.6340 + 0.04696 * self.z1_3 - 0.01779 * self.z1_33 * xm03 - 0.1347 * x2 - 0.2905 * xm03
        } else {
            0.04696 * self.z1_3 - 0.01779 * self.z1_33 * xm03 - 0.02916 * x.powf(3.0)
        };
        // LAF
        let laf = if self.z1 < 2.2 {
            0.3248 * (x.powf(1.2) - self.z1_m09 * x21)
        } else if self.z1 < 5.7 {
            if x < 2.2 {
                0.02545 * self.z1_16 * x21 + 0.3248 * x.powf(1.2) - 0.2496 * x21
            } else {
                0.02545 * (self.z1_16 * x21 - x.powf(3.7))
            }
        } else if x < 2.2 {
            5.221e-4 * self.z1_34 * x21 + 0.3248 * x.powf(1.2) - 0.03140 * x21
        } else if x < 5.7 {
            5.221e-4 * self.z1_34 * x21 + 0.2182 * x21 - 0.02545 * x.powf(3.7)
        } else {
            5.221e-4 * (self.z1_34 * x21 - x.powf(5.5))
        };
        laf + dla
    }
}

/// Numeric rows of a whitespace table with exactly N columns ('#' comments skipped).
fn parse_rows<const N: usize>(text: &str, what: &str) -> Result<Vec<[f64; N]>, KernelError> {
    let mut rows = Vec::new();
    for (lineno, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut row = [0.0; N];
        let mut ncol = 0;
        for tok in line.split_whitespace() {
            if ncol == N {
                ncol += 1;
                break;
            }
            row[ncol] = tok
                .parse::<f64>()
                .map_err(|e| KernelError::Shape(format!("{what} line {}: {e}", lineno + 1)))?;
            ncol += 1;
        }
        if ncol != N {
            return Err(KernelError::Shape(format!(
                "{what} line {}: expected {N} columns",
                lineno + 1
            )));
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> serde_json::Value {
        crate::kernels::test_fixtures::load("igm/inoue14.json")
    }

    use crate::kernels::test_fixtures::f64s as vec;

    /// SPEC §3.4 / FastSpecFit test_igm (rtol 1e-5 there).
    #[test]
    fn spec_values_z5p8() {
        let igm = Inoue14::new().unwrap();
        assert_eq!(igm.nlines(), 39);
        let lobs = [3600.0 + 0.8 * 4000.0, 3600.0 + 0.8 * 5000.0];
        let mut t = [0.0; 2];
        igm.transmission(5.8, &lobs, &mut t).unwrap();
        for (got, want) in t.iter().zip([0.09645156, 0.08515676]) {
            assert!((got - want).abs() <= 1e-7 * want, "{got} vs {want}");
        }
    }

    /// All branches (Z₁ < 2.2, < 3, < 5.7, ≥ 5.7) on a 400–12380 Å grid against
    /// fastspecfit.igm.Inoue14.full_IGM.
    #[test]
    fn matches_fastspecfit_fixture() {
        let fx = fixture();
        let n = fx["n"].as_u64().unwrap() as usize;
        let (start, step) = (
            fx["lobs_start"].as_f64().unwrap(),
            fx["lobs_step"].as_f64().unwrap(),
        );
        let lobs: Vec<f64> = (0..n).map(|i| start + step * i as f64).collect();
        let igm = Inoue14::new().unwrap();
        let mut t = vec![0.0; n];
        let mut worst = 0.0_f64;
        for case in fx["cases"].as_array().unwrap() {
            let z = case["z"].as_f64().unwrap();
            igm.transmission(z, &lobs, &mut t).unwrap();
            for (i, (&got, want)) in t.iter().zip(vec(&case["trans"])).enumerate() {
                // absolute floor for deeply absorbed pixels (T down to ~1e-60)
                let err = (got - want).abs() / (want.abs() + 1e-300);
                assert!(
                    err <= 1e-11 || (got - want).abs() < 1e-200,
                    "z={z} lobs={}: {got} vs {want}",
                    lobs[i]
                );
                worst = worst.max(err);
            }
        }
        assert!(worst <= 1e-11);
        let z58 = &fx["z5p8"];
        let l = vec(&z58["lobs"]);
        let mut t2 = vec![0.0; l.len()];
        igm.transmission(5.8, &l, &mut t2).unwrap();
        for (got, want) in t2.iter().zip(vec(&z58["trans"])) {
            assert!((got - want).abs() <= 1e-12 * want);
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let igm = Inoue14::new().unwrap();
        let mut t = [0.0; 2];
        assert!(matches!(
            igm.transmission(1.0, &[1000.0], &mut t),
            Err(KernelError::Shape(_))
        ));
        assert!(matches!(
            igm.transmission(f64::NAN, &[1.0, 2.0], &mut t),
            Err(KernelError::Domain(_))
        ));
        assert!(matches!(
            igm.transmission(1.0, &[1000.0, f64::NAN], &mut t),
            Err(KernelError::NonFinite(_))
        ));
        assert!(Inoue14::from_coeff_text("2 1215.67 1 2\n", DLA_COEFF).is_err());
        // redward of Lyman-alpha the transmission is exactly 1
        igm.transmission(2.0, &[1215.67 * 3.0, 9000.0], &mut t)
            .unwrap();
        assert_eq!(t, [1.0, 1.0]);
    }
}
