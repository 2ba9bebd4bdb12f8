//! Broadband photometry components and the per-run photometric setup resource.

use bevy_ecs::prelude::{Component, Resource};

/// Catalogue photometry as read (nanomaggies, not corrected for Milky Way dust).
///
/// Written at spawn by the loader; read by `correct_mw_dust`.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct ObservedPhotometry {
    /// Photometric system key into the filter table ('N', 'S', or '' for external catalogues).
    pub photsys: String,
    /// Total flux per band, nanomaggies (float32 as in the catalogues).
    pub flux_nmgy: Vec<f32>,
    /// Inverse variance per band, nanomaggies⁻².
    pub ivar_nmgy2: Vec<f32>,
    /// FIBERFLUX per fiber band, nanomaggies.
    pub fiberflux_nmgy: Vec<f32>,
    /// FIBERTOTFLUX per fiber band, nanomaggies.
    pub fibertotflux_nmgy: Vec<f32>,
}

/// Milky Way dust along the line of sight and the dereddened photometry (SPEC §1.6).
///
/// Written by `correct_mw_dust`; read by the METADATA writer and the fits.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct MilkyWayDust {
    /// SFD98 E(B−V), mag.
    pub ebv: f64,
    /// Transmission per band, float32 as FastSpecFit stores it (MW_TRANSMISSION_*).
    pub transmission: Vec<f32>,
    /// Dereddened flux per band, nanomaggies (float32 arithmetic, as FastSpecFit).
    pub flux_nmgy: Vec<f32>,
    /// Dereddened inverse variance per band, nanomaggies⁻² (no error floor).
    pub ivar_nmgy2: Vec<f32>,
    /// Dereddened FIBERFLUX per fiber band.
    pub fiberflux_nmgy: Vec<f32>,
    /// Dereddened FIBERTOTFLUX per fiber band.
    pub fibertotflux_nmgy: Vec<f32>,
}

/// Filters of the run's photometric configuration, per photometric system.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct PhotometricSetup {
    /// Band names in output order (e.g. g, r, z, W1..W4).
    pub bands: Vec<String>,
    /// Filter names per photometric system, parallel to `bands`.
    pub filters: Vec<(String, Vec<String>)>,
    /// Fiber band names.
    pub fiber_bands: Vec<String>,
    /// Fiber filter names per photometric system, parallel to `fiber_bands`.
    pub fiber_filters: Vec<(String, Vec<String>)>,
}

impl PhotometricSetup {
    /// The band filters of photometric system `photsys`.
    pub fn filters_for(&self, photsys: &str) -> Option<&[String]> {
        self.filters
            .iter()
            .find(|(k, _)| k == photsys)
            .map(|(_, v)| v.as_slice())
    }
    /// The fiber filters of photometric system `photsys`.
    pub fn fiber_filters_for(&self, photsys: &str) -> Option<&[String]> {
        self.fiber_filters
            .iter()
            .find(|(k, _)| k == photsys)
            .map(|(_, v)| v.as_slice())
    }
}
