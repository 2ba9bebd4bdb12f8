//! Milky Way E(B−V) from the SFD98 dust maps (SPEC.md §1.6, Appendix B).
//!
//! FastSpecFit re-derives E(B−V) at every target's (RA, Dec) with desiutil's
//! `SFDMap(scaling=1)`:
//!
//! 1. ICRS → Galactic (l, b). astropy's transformation is a fixed rotation;
//!    [`ICRS_TO_GALACTIC`] is that rotation as astropy 8 applies it (the images
//!    of the ICRS unit vectors, full double precision), so l and b agree with
//!    astropy to ~1e-15 rad, ≪ one SFD pixel (2.4′).
//! 2. Hemisphere: the north map if b ≥ 0, else the south map; n = `LAM_NSGP`
//!    (+1 / −1) of that map.
//! 3. Lambert zenithal-equal-area pixel coordinates (0-indexed):
//!    x = CRPIX1 − 1 + LAM_SCAL·cos l·√(1 − n sin b),
//!    y = CRPIX2 − 1 − n·LAM_SCAL·sin l·√(1 − n sin b).
//! 4. Bilinear interpolation: x₀ = ⌊x⌋, x₁ = x₀ + 1, w_x = x − x₀ (same in y);
//!    then x₀, y₀ are clamped below at 0 and x₁, y₁ above at N − 1 (only those
//!    two clamps, as desiutil does), and
//!    E = (1−w_x)(1−w_y)D[y₀,x₀] + w_x(1−w_y)D[y₀,x₁] + (1−w_x)w_y D[y₁,x₀] + w_x w_y D[y₁,x₁]
//!    with the float32 map values promoted to f64.
//!
//! DEVIATION (documented): desiutil does not check the stencil. For the full
//! 4096² maps every sky position lands in [−0.5, 4095.5], where the clamps
//! above are exactly what is needed; for a cut-out map (such as the small
//! maps bundled in `tests/data/desi`) a position outside the image makes NumPy
//! wrap negative indices or raise, i.e. returns garbage. Here a stencil with
//! x₀ < −1 or x₀ > N − 1 (likewise y₀), where the clamps cannot produce a
//! valid pixel, is a [`KernelError::Domain`] error. Within that range the
//! clamped value is returned exactly as desiutil computes it.

use super::KernelError;

/// ICRS → Galactic rotation: `gal = M · icrs` for unit vectors.
///
/// Computed with astropy 8.0 (`SkyCoord(CartesianRepresentation(eye(3)),
/// frame='icrs').galactic`), i.e. including the ICRS→FK5 frame bias exactly as
/// astropy chains it; see `tests/fixtures/scripts/gen_phot_sfd.py`.
pub const ICRS_TO_GALACTIC: [[f64; 3]; 3] = [
    [
        -0.05487565771259163,
        -0.8734370519556159,
        -0.48383507361671546,
    ],
    [0.4941094371927268, -0.44482972122329517, 0.7469821839866676],
    [
        -0.8676661375596576,
        -0.19807633727300059,
        0.45598381368730156,
    ],
];

/// One hemisphere of the SFD98 E(B−V) map (one `SFD_dust_4096_{ngp,sgp}.fits`).
#[derive(Debug, Clone, PartialEq)]
pub struct SfdHemisphere {
    /// Map values [mag], row-major `[ny][nx]` (FITS axis 2 = rows = y).
    pub data: Vec<f32>,
    /// Number of columns (FITS `NAXIS1`).
    pub nx: usize,
    /// Number of rows (FITS `NAXIS2`).
    pub ny: usize,
    /// 1-indexed x pixel of the pole (`CRPIX1`).
    pub crpix1: f64,
    /// 1-indexed y pixel of the pole (`CRPIX2`).
    pub crpix2: f64,
    /// Pixels from b = 0 to the pole (`LAM_SCAL`, 2048 for the 4096² maps).
    pub lam_scal: f64,
    /// +1 for the north-Galactic-pole map, −1 for the south (`LAM_NSGP`).
    pub lam_nsgp: f64,
}

/// Galactic (l, b) in radians of an ICRS position given in degrees.
///
/// l ∈ (−π, π] (only cos l and sin l are used downstream), b ∈ [−π/2, π/2].
pub fn icrs_to_galactic(ra_deg: f64, dec_deg: f64) -> (f64, f64) {
    let (ra, dec) = (ra_deg.to_radians(), dec_deg.to_radians());
    let (sd, cd) = dec.sin_cos();
    let (sa, ca) = ra.sin_cos();
    let v = [cd * ca, cd * sa, sd];
    let m = &ICRS_TO_GALACTIC;
    let g: [f64; 3] = std::array::from_fn(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2]);
    let l = g[1].atan2(g[0]);
    let b = g[2].atan2(g[0].hypot(g[1]));
    (l, b)
}

/// Map row/column index after desiutil's clamping, or an error if the
/// stencil starts outside the range the clamps can repair.
fn stencil(p0: f64, n: usize, axis: &str) -> Result<(usize, usize), KernelError> {
    // p0 is an integer-valued float (floor of the coordinate).
    if !(p0 >= -1.0 && p0 <= n as f64 - 1.0) {
        return Err(KernelError::Domain(format!(
            "SFD map {axis} stencil at pixel {p0} lies outside the {n}-pixel map"
        )));
    }
    let lo = if p0 < 0.0 { 0 } else { p0 as usize };
    let hi = ((p0 + 1.0) as usize).min(n - 1);
    Ok((lo, hi))
}

impl SfdHemisphere {
    /// Bilinearly interpolated E(B−V) at Galactic (l, b) [radians], using this
    /// hemisphere's projection regardless of the sign of b.
    ///
    /// # Errors
    /// [`KernelError::Shape`] if `data.len() != nx·ny` or the map is empty;
    /// [`KernelError::Domain`] if the interpolation stencil is outside the map.
    pub fn ebv_lb(&self, l_rad: f64, b_rad: f64) -> Result<f64, KernelError> {
        if self.nx == 0 || self.ny == 0 || self.data.len() != self.nx * self.ny {
            return Err(KernelError::Shape(format!(
                "SFD map has {} values for {}x{} pixels",
                self.data.len(),
                self.nx,
                self.ny
            )));
        }
        let n = self.lam_nsgp;
        let r = (1.0 - n * b_rad.sin()).sqrt();
        let x = self.crpix1 - 1.0 + self.lam_scal * l_rad.cos() * r;
        let y = self.crpix2 - 1.0 - n * self.lam_scal * l_rad.sin() * r;
        if !(x.is_finite() && y.is_finite()) {
            return Err(KernelError::NonFinite(format!(
                "SFD pixel coordinates ({x}, {y})"
            )));
        }
        let (xf, yf) = (x.floor(), y.floor());
        let (xw, yw) = (x - xf, y - yf);
        let (x0, x1) = stencil(xf, self.nx, "x")?;
        let (y0, y1) = stencil(yf, self.ny, "y")?;
        let d = |iy: usize, ix: usize| f64::from(self.data[iy * self.nx + ix]);
        // Same association order as desiutil's expression.
        Ok((1.0 - xw) * (1.0 - yw) * d(y0, x0)
            + xw * (1.0 - yw) * d(y0, x1)
            + (1.0 - xw) * yw * d(y1, x0)
            + xw * yw * d(y1, x1))
    }
}

/// SFD98 E(B−V) [mag] at ICRS (RA, Dec) [deg] (desiutil `SFDMap(scaling=1).ebv`).
///
/// # Errors
/// [`KernelError::NonFinite`] for non-finite coordinates, otherwise the errors
/// of [`SfdHemisphere::ebv_lb`] (notably `Domain` outside a cut-out map).
pub fn ebv(
    ra_deg: f64,
    dec_deg: f64,
    ngp: &SfdHemisphere,
    sgp: &SfdHemisphere,
) -> Result<f64, KernelError> {
    if !(ra_deg.is_finite() && dec_deg.is_finite()) {
        return Err(KernelError::NonFinite(format!(
            "RA, Dec = ({ra_deg}, {dec_deg})"
        )));
    }
    let (l, b) = icrs_to_galactic(ra_deg, dec_deg);
    if b >= 0.0 {
        ngp.ebv_lb(l, b)
    } else {
        sgp.ebv_lb(l, b)
    }
}

#[cfg(test)]
mod tests;
