//! Per-target prepared spectra (SPEC §2.2–§2.4, §2.6) and the synth-photometry setup.

use std::sync::Arc;

use bevy_ecs::prelude::{Component, Resource};

/// One kept camera of a target after `one_spectrum`'s preprocessing (SPEC §2.3 steps 1–6).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraSpectrum {
    /// Camera name ("B", "R", "Z").
    pub name: String,
    /// Index of the camera in the file's camera order (b, r, z).
    pub file_index: usize,
    /// Wavelength grid, Å (shared by every target of the file).
    pub wave_ang: Arc<Vec<f64>>,
    /// Dereddened flux, 1e-17 erg/s/cm²/Å.
    pub flux: Vec<f64>,
    /// Dereddened inverse variance with the uncertainty floor; 0 on masked pixels.
    pub ivar: Vec<f64>,
    /// Pixel mask (`mask0 != 0` or within 3 pixels of an edge).
    pub mask: Vec<bool>,
    /// Number of resolution diagonals.
    pub ndiag: usize,
    /// Raw resolution matrix R, DIA `[ndiag][npix]` (continuum).
    pub res: Vec<f64>,
    /// Deconvolved resolution matrix W, DIA `[ndiag][npix]` (emission lines).
    pub res_deconv: Vec<f64>,
}

/// A target's spectra ready for fitting (SPEC §2.2, §2.3, §2.6).
///
/// Written by the preparation systems (fastspec only); read by the continuum and line fits.
/// Left at its default (no cameras) for fastphot and for targets flagged while preparing.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct PreparedSpectrum {
    /// Kept cameras in file order (fully masked cameras dropped).
    pub cameras: Vec<CameraSpectrum>,
    /// `[start, end)` of each kept camera in the concatenated ("hstacked") arrays.
    pub camerapix: Vec<(usize, usize)>,
    /// Median S/N per camera of the *file* (index = file camera index; 0 for dropped
    /// cameras), float32 as FastSpecFit stores it (SNR_B/R/Z).
    pub snr: Vec<f32>,
    /// Camera-coadded wavelength grid, Å (shared by every target of the file).
    pub coadd_wave: Arc<Vec<f64>>,
    /// Camera-coadded flux (not dereddened), 1e-17 erg/s/cm²/Å.
    pub coadd_flux: Vec<f64>,
    /// Camera-coadded inverse variance (no floor, no extra masking).
    pub coadd_ivar: Vec<f64>,
    /// Number of diagonals of the coadded resolution matrix.
    pub coadd_ndiag: usize,
    /// Coadded raw resolution matrix, DIA `[ndiag][npix]`.
    pub coadd_res: Vec<f64>,
    /// Deconvolved coadded resolution matrix (line masker), DIA `[ndiag][npix]`.
    pub coadd_res_deconv: Vec<f64>,
    /// Photometry synthesized from the coadded spectrum, nanomaggies, one per
    /// [`SynthPhotometry::bands`] entry (FLUX_SYNTH_*); empty if not computed.
    pub flux_synth_nmgy: Vec<f64>,
}

/// Bands and filters used to synthesize photometry from the coadded spectrum (the
/// photometry YAML's `synth_bands` / `synth_filters`; SPEC §2.6).
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct SynthPhotometry {
    /// Band names in output order (e.g. g, r, z).
    pub bands: Vec<String>,
    /// Filter names per photometric system, parallel to `bands`.
    pub filters: Vec<(String, Vec<String>)>,
}

impl SynthPhotometry {
    /// The synth filters of photometric system `photsys`.
    pub fn filters_for(&self, photsys: &str) -> Option<&[String]> {
        self.filters
            .iter()
            .find(|(k, _)| k == photsys)
            .map(|(_, v)| v.as_slice())
    }
}
