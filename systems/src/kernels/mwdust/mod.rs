//! Milky Way dust transmission: per band and per wavelength (SPEC.md §1.6, Appendix B).
//!
//! **Photometry** (FastSpecFit `util.mwdust_transmission`): T_X = 10^(−0.4 k_X E(B−V))
//! with a fixed table of k_X = A_X / E(B−V) per speclite filter name
//! ([`mw_extinction_coefficient`]); an unknown filter is an error.
//!
//! **Spectra** (desiutil `dust.dust_transmission`, R_V = 3.1):
//! A(λ) = [F99(λ)/F99(1 μm)] · E(B−V) · 1.029 and T(λ) = 10^(−A/2.5), where F99 is the
//! Fitzpatrick (1999) curve A(λ)/A(V) in x = 10⁴/λ [μm⁻¹]:
//!
//! * x ≥ 10⁴/2700: the Fitzpatrick–Massa UV function
//!   y(x) = c₁ + c₂x + c₃x²/((x² − x₀²)² + (γx)²) + c₄[0.5392(x−5.9)² + 0.05644(x−5.9)³]·[x > 5.9] + R_V
//!   with x₀ = 4.596, γ = 0.99, c₃ = 3.23, c₄ = 0.41, c₂ = −0.824 + 4.717/R_V, c₁ = 2.030 − 3.007c₂;
//! * x < 10⁴/2700: a natural cubic spline through nine anchors — x = 0, 10⁴/26500,
//!   10⁴/12200 (IR: 0, 0.26469, 0.82925, times R_V/3.1), x = 10⁴/6000, 10⁴/5470,
//!   10⁴/4670, 10⁴/4110 (optical: polynomials in R_V) and the UV function at 10⁴/2700,
//!   10⁴/2600;
//!
//! all divided by R_V (the division cancels in the ratio but is kept so the
//! floating-point operations follow desiutil's).

use super::KernelError;

/// A_X / E(B−V) per speclite filter name, FastSpecFit 3.6.1's table.
const K_X: &[(&str, f64)] = &[
    ("BASS-g", 3.258),
    ("BASS-r", 2.176),
    ("MzLS-z", 1.199),
    ("decam2014-u", 3.994),
    ("decam2014-g", 3.212),
    ("decam2014-r", 2.164),
    ("decam2014-i", 1.591),
    ("decam2014-z", 1.211),
    ("decam2014-Y", 1.063),
    ("cfht_megacam-u", 4.01),
    ("cfht_megacam-ustar", 4.12),
    ("odin-N419", 4.324),
    ("odin-N501", 3.540),
    ("odin-N673", 2.438),
    ("hsc2017-g", 3.24),
    ("hsc2017-r", 2.276),
    ("hsc2017-r2", 2.276),
    ("hsc2017-i", 1.633),
    ("hsc2017-i2", 1.633),
    ("hsc2017-z", 1.263),
    ("hsc2017-y", 1.075),
    ("suprime-IB427", 4.202),
    ("suprime-IB464", 3.894),
    ("suprime-IB484", 3.694),
    ("suprime-IB505", 3.490),
    ("suprime-IB527", 3.304),
    ("wise2010-W1", 0.184),
    ("wise2010-W2", 0.113),
    ("wise2010-W3", 0.0241),
    ("wise2010-W4", 0.00910),
];

/// Default total-to-selective extinction ratio used by FastSpecFit.
pub const RV_DEFAULT: f64 = 3.1;

/// k_X = A_X/E(B−V) of a speclite filter (e.g. `"decam2014-r"`).
///
/// # Errors
/// [`KernelError::Domain`] if FastSpecFit's table has no entry for `filter`.
pub fn mw_extinction_coefficient(filter: &str) -> Result<f64, KernelError> {
    K_X.iter()
        .find(|(name, _)| *name == filter)
        .map(|&(_, k)| k)
        .ok_or_else(|| {
            KernelError::Domain(format!(
                "filter {filter} is missing from the table of Milky Way extinction coefficients"
            ))
        })
}

/// Milky Way transmission (0–1) in band `filter` for E(B−V) = `ebv`: 10^(−0.4 k_X E(B−V)).
///
/// # Errors
/// Unknown filter (see [`mw_extinction_coefficient`]).
pub fn mwdust_transmission(filter: &str, ebv: f64) -> Result<f64, KernelError> {
    let a_x = mw_extinction_coefficient(filter)? * ebv;
    Ok(10f64.powf(-0.4 * a_x))
}

/// The Fitzpatrick (1999) curve A(λ)/A(V) for one R_V, with its optical/IR
/// spline set up once.
#[derive(Debug, Clone)]
pub struct Fitzpatrick99 {
    r_v: f64,
    c1: f64,
    c2: f64,
    /// Spline knots (x, increasing) and values.
    kx: [f64; 9],
    ky: [f64; 9],
    /// Second derivatives of the natural spline at the knots.
    m: [f64; 9],
}

const X0: f64 = 4.596;
const GAMMA: f64 = 0.99;
const C3: f64 = 3.23;
const C4: f64 = 0.41;
const X_CUT_UV: f64 = 10000.0 / 2700.0;

/// Evaluate a polynomial, coefficients highest power first (NumPy `polyval`).
fn polyval(coef: &[f64], x: f64) -> f64 {
    coef.iter().fold(0.0, |acc, &c| acc * x + c)
}

impl Fitzpatrick99 {
    /// Set up the curve for `r_v` (FastSpecFit uses [`RV_DEFAULT`]).
    pub fn new(r_v: f64) -> Self {
        let c2 = -0.824 + 4.717 / r_v;
        let c1 = 2.030 - 3.007 * c2;
        let mut f = Fitzpatrick99 {
            r_v,
            c1,
            c2,
            kx: [0.0; 9],
            ky: [0.0; 9],
            m: [0.0; 9],
        };
        f.kx = [
            0.0,
            10000.0 / 26500.0,
            10000.0 / 12200.0,
            10000.0 / 6000.0,
            10000.0 / 5470.0,
            10000.0 / 4670.0,
            10000.0 / 4110.0,
            10000.0 / 2700.0,
            10000.0 / 2600.0,
        ];
        f.ky = [
            0.0 * r_v / 3.1,
            0.26469 * r_v / 3.1,
            0.82925 * r_v / 3.1,
            polyval(&[2.13572e-04, 1.00270, -4.22809e-01], r_v),
            polyval(&[-7.35778e-05, 1.00216, -5.13540e-02], r_v),
            polyval(&[-3.32598e-05, 1.00184, 7.00127e-01], r_v),
            polyval(
                &[-4.45636e-05, 7.97809e-04, -5.46959e-03, 1.01707, 1.19456],
                r_v,
            ),
            f.uv(f.kx[7]),
            f.uv(f.kx[8]),
        ];
        f.m = natural_spline_second_derivatives(&f.kx, &f.ky);
        f
    }

    /// The Fitzpatrick–Massa UV function (before division by R_V).
    fn uv(&self, x: f64) -> f64 {
        let x2 = x * x;
        let mut y = self.c1 + self.c2 * x;
        y += C3 * x2 / ((x2 - X0 * X0).powi(2) + (x * GAMMA).powi(2));
        let f = x.max(5.9) - 5.9;
        y += C4 * (0.5392 * f * f + 0.05644 * f * f * f);
        y + self.r_v
    }

    /// The natural cubic spline at x (extrapolating the end polynomials).
    fn spline(&self, x: f64) -> f64 {
        let (kx, ky, m) = (&self.kx, &self.ky, &self.m);
        // interval i with kx[i] <= x < kx[i+1], clamped to the first/last interval
        let i = kx[1..8].partition_point(|&k| k <= x);
        let h = kx[i + 1] - kx[i];
        let t = x - kx[i];
        // Local cubic: y_i + b t + (m_i/2) t² + (m_{i+1} − m_i)/(6h) t³
        let b = (ky[i + 1] - ky[i]) / h - h * (2.0 * m[i] + m[i + 1]) / 6.0;
        let c = m[i] / 2.0;
        let d = (m[i + 1] - m[i]) / (6.0 * h);
        ky[i] + t * (b + t * (c + t * d))
    }

    /// A(λ)/A(V) at vacuum wavelength `wave_ang` [Å] (desiutil `ext_fitzpatrick`).
    pub fn a_over_av(&self, wave_ang: f64) -> f64 {
        let x = 10000.0 / wave_ang;
        let curve = if x >= X_CUT_UV {
            self.uv(x)
        } else {
            self.spline(x)
        };
        curve / self.r_v
    }
}

/// Second derivatives of the natural cubic spline through (x, y) (tridiagonal solve).
fn natural_spline_second_derivatives(x: &[f64; 9], y: &[f64; 9]) -> [f64; 9] {
    const N: usize = 9;
    let mut m = [0.0; N];
    // Thomas algorithm on the interior equations
    // h_{i-1} m_{i-1} + 2(h_{i-1}+h_i) m_i + h_i m_{i+1} = 6(Δ_i − Δ_{i−1}).
    let mut cp = [0.0; N];
    let mut dp = [0.0; N];
    for i in 1..N - 1 {
        let (h0, h1) = (x[i] - x[i - 1], x[i + 1] - x[i]);
        let rhs = 6.0 * ((y[i + 1] - y[i]) / h1 - (y[i] - y[i - 1]) / h0);
        let diag = 2.0 * (h0 + h1) - h0 * cp[i - 1];
        cp[i] = h1 / diag;
        dp[i] = (rhs - h0 * dp[i - 1]) / diag;
    }
    for i in (1..N - 1).rev() {
        m[i] = dp[i] - cp[i] * m[i + 1];
    }
    m
}

/// Milky Way transmission T(λ) = 10^(−A(λ)/2.5) of a spectrum (desiutil
/// `dust_transmission(wave, ebv, Rv=r_v)`), written into `out`.
///
/// # Errors
/// [`KernelError::Shape`] if `out.len() != wave.len()`; [`KernelError::Domain`]
/// if a wavelength is not strictly positive and finite.
pub fn dust_transmission(
    curve: &Fitzpatrick99,
    wave_ang: &[f64],
    ebv: f64,
    out: &mut [f64],
) -> Result<(), KernelError> {
    if out.len() != wave_ang.len() {
        return Err(KernelError::Shape(format!(
            "dust_transmission: {} wavelengths but {} outputs",
            wave_ang.len(),
            out.len()
        )));
    }
    let norm = curve.a_over_av(10000.0);
    for (o, &w) in out.iter_mut().zip(wave_ang) {
        if !(w > 0.0 && w.is_finite()) {
            return Err(KernelError::Domain(format!(
                "dust_transmission: wavelength {w} Å"
            )));
        }
        let ext = curve.a_over_av(w) / norm * ebv * 1.029;
        *o = 10f64.powf(-ext / 2.5);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
