//! File-level spectral columns (SoA): one block per camera, rows in target order.

use bevy_ecs::prelude::Resource;

/// One camera's data for every target of the current file, stored as FITS stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraColumns {
    /// Camera name as in the HDU names ("B", "R", "Z").
    pub name: String,
    /// Wavelength grid, Å (vacuum), `[npix]`.
    pub wave_ang: Vec<f64>,
    /// Pixels per spectrum.
    pub npix: usize,
    /// Flux, 1e-17 erg/s/cm²/Å, `[ntarget][npix]`.
    pub flux: Vec<f64>,
    /// Inverse variance, `[ntarget][npix]`.
    pub ivar: Vec<f64>,
    /// Pixel mask bits, `[ntarget][npix]`.
    pub mask: Vec<u32>,
    /// Number of resolution diagonals (11 for DESI).
    pub ndiag: usize,
    /// Resolution matrix diagonals (DIA format), `[ntarget][ndiag][npix]`.
    pub resolution: Vec<f64>,
}

impl CameraColumns {
    /// Flux of target row `row`.
    pub fn flux_row(&self, row: usize) -> &[f64] {
        &self.flux[row * self.npix..(row + 1) * self.npix]
    }
    /// Inverse variance of target row `row`.
    pub fn ivar_row(&self, row: usize) -> &[f64] {
        &self.ivar[row * self.npix..(row + 1) * self.npix]
    }
    /// Mask of target row `row`.
    pub fn mask_row(&self, row: usize) -> &[u32] {
        &self.mask[row * self.npix..(row + 1) * self.npix]
    }
    /// Resolution diagonals of target row `row`, `[ndiag][npix]`.
    pub fn resolution_row(&self, row: usize) -> &[f64] {
        let n = self.ndiag * self.npix;
        &self.resolution[row * n..(row + 1) * n]
    }
}

/// The spectra of the current file's targets, per camera (resource; read-only in passes).
///
/// Written by the loader; read by the spectrum-preparation systems, which get slices by
/// each target's `Target.row`.
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct SpectraColumns {
    /// Cameras in file order (b, r, z).
    pub cameras: Vec<CameraColumns>,
}
