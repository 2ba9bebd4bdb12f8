//! DESI spectral resolution matrices in DIA storage (SPEC.md §2.4, §3.5 step 2).
//!
//! Storage is DESI's/scipy's diagonal format: `data[d * npix + j]` (d = 0…ndiag−1)
//! holds diagonal offset k = w2 − d (w2 = ndiag/2), and the matrix element is
//! M[i, j] = D[w2 + i − j, j] for |i − j| ≤ w2; DIA entries that would point
//! outside the npix × npix matrix are stored but ignored. The product is
//! (R·x)_i = Σ_j M[i, j] x_j = Σ_d D[d, i + w2 − d] · x[i + w2 − d].
//!
//! Two matrices per camera: the raw R (continuum models, after trapezoidal
//! rebinning) and the deconvolved W with R ≈ W·G, G a Gaussian of σ = 0.5 Å on
//! 0.8 Å pixels (emission lines, whose model is pre-convolved with G); see
//! [`Resolution::deconvolved`] for the construction and its two [QUIRK]s.
//!
//! * [`dia_matvec_scalar`]: the reference product, summing the diagonals in
//!   storage order exactly as FastSpecFit's `_matvec` (bit-identical).
//! * [`dia_matvec`]: the fast product (`wide::f64x4`, 8 rows per step with four
//!   independent accumulators, scalar edges and remainder); equal to the scalar
//!   twin up to summation-order roundoff.

mod deconvolve;
mod matvec;
#[cfg(test)]
mod tests;

pub use deconvolve::{deconvolve_dia, gaussian_matrix};
pub(crate) use matvec::dia_matvec_rows;
pub use matvec::{dia_matvec, dia_matvec_scalar};

use super::KernelError;

/// Standard DESI resolution-matrix bandwidth (number of stored diagonals).
pub const NDIAG: usize = 11;
/// σ of the Gaussian the emission-line model is pre-convolved with [Å].
pub const SIGMA0_ANGSTROM: f64 = 0.5;
/// Pixel size assumed by the deconvolution [Å].
pub const PIX_SIZE_ANGSTROM: f64 = 0.8;

/// A banded npix × npix resolution matrix in DIA storage.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    /// Number of stored diagonals (odd; 11 for DESI, 1 for stacks without RES).
    pub ndiag: usize,
    /// Matrix size (pixels of the camera).
    pub npix: usize,
    /// Diagonals, `[ndiag][npix]` row-major: `data[d * npix + j]` = D[d, j].
    pub data: Vec<f64>,
}

impl Resolution {
    /// Wrap DIA data `[ndiag][npix]` (e.g. one target's `B_RESOLUTION` slab).
    ///
    /// # Errors
    /// [`KernelError::Shape`] if `ndiag` is even or zero, `npix` is zero or
    /// `data.len() != ndiag * npix`; [`KernelError::NonFinite`] if an entry is
    /// not finite.
    pub fn new(ndiag: usize, npix: usize, data: Vec<f64>) -> Result<Self, KernelError> {
        let r = Self { ndiag, npix, data };
        r.check()?;
        if r.data.iter().any(|v| !v.is_finite()) {
            return Err(KernelError::NonFinite(
                "resolution matrix has non-finite entries".into(),
            ));
        }
        Ok(r)
    }

    fn check(&self) -> Result<(), KernelError> {
        check_shape(self.ndiag, self.npix, self.data.len())
    }

    /// Matrix element M[i, j] (0 outside the band or the matrix).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        let w2 = self.ndiag / 2;
        if i >= self.npix || j >= self.npix || i.abs_diff(j) > w2 {
            return 0.0;
        }
        self.data
            .get((w2 + i - j) * self.npix + j)
            .copied()
            .unwrap_or(0.0)
    }

    /// out = M·x with the fast (SIMD) product.
    ///
    /// # Errors
    /// [`KernelError::Shape`] if `x` or `out` is not `npix` long or the matrix
    /// is malformed.
    pub fn dot(&self, x: &[f64], out: &mut [f64]) -> Result<(), KernelError> {
        self.check_vec(x, out)?;
        dia_matvec(&self.data, self.ndiag, x, out)
    }

    /// out = M·x with the scalar reference product (FastSpecFit's order).
    ///
    /// # Errors
    /// As [`Resolution::dot`].
    pub fn dot_scalar(&self, x: &[f64], out: &mut [f64]) -> Result<(), KernelError> {
        self.check_vec(x, out)?;
        dia_matvec_scalar(&self.data, self.ndiag, x, out)
    }

    fn check_vec(&self, x: &[f64], out: &[f64]) -> Result<(), KernelError> {
        if x.len() != self.npix || out.len() != self.npix {
            return Err(KernelError::Shape(format!(
                "resolution: matrix of {} pixels, x of {}, out of {}",
                self.npix,
                x.len(),
                out.len()
            )));
        }
        Ok(())
    }

    /// The deconvolved matrix W (R = W·G, σ_G = 0.5 Å on 0.8 Å pixels), with
    /// FastSpecFit's [QUIRK]s; see [`deconvolve_dia`].
    ///
    /// # Errors
    /// [`KernelError::Shape`] if the matrix is malformed or npix < ndiag;
    /// [`KernelError::Domain`] if the Gaussian matrix is singular.
    pub fn deconvolved(&self) -> Result<Resolution, KernelError> {
        self.check()?;
        let data = deconvolve_dia(
            &self.data,
            self.ndiag,
            self.npix,
            SIGMA0_ANGSTROM,
            PIX_SIZE_ANGSTROM,
        )?;
        Ok(Resolution {
            ndiag: self.ndiag,
            npix: self.npix,
            data,
        })
    }

    /// "Row data" `out[i * ndiag + idx] = M[i, i − w2 + idx]` (npix × ndiag), the
    /// form used by the sparse emission-line Jacobian; slots outside the matrix
    /// are 0 (FastSpecFit leaves them uninitialised).
    ///
    /// # Errors
    /// [`KernelError::Shape`] if `out.len() != npix * ndiag` or the matrix is
    /// malformed.
    pub fn row_data(&self, out: &mut [f64]) -> Result<(), KernelError> {
        self.check()?;
        let (n, nd, w2) = (self.npix, self.ndiag, self.ndiag / 2);
        if out.len() != n * nd {
            return Err(KernelError::Shape(format!(
                "row_data: output of {} for {n} x {nd}",
                out.len()
            )));
        }
        for (i, row) in out.chunks_exact_mut(nd).enumerate() {
            for (idx, o) in row.iter_mut().enumerate() {
                // column j = i − w2 + idx, diagonal ndiag − 1 − idx
                *o = match (i + idx).checked_sub(w2) {
                    Some(j) if j < n => self.data[(nd - 1 - idx) * n + j],
                    _ => 0.0,
                };
            }
        }
        Ok(())
    }
}

/// Validate a DIA shape: odd ndiag ≥ 1, npix ≥ 1, len = ndiag·npix.
fn check_shape(ndiag: usize, npix: usize, len: usize) -> Result<(), KernelError> {
    if ndiag.is_multiple_of(2) || npix == 0 || len != ndiag * npix {
        return Err(KernelError::Shape(format!(
            "resolution: {len} values for {ndiag} diagonals (must be odd) x {npix} pixels"
        )));
    }
    Ok(())
}
