//! The broadband filter curves of each photometric system and the per-band fitting
//! configuration (SPEC §1.5 "Filter curves", §2.3 step 2, §4.1): one resource per run.
//!
//! Written once by `fastspecfit::resources::insert_fit_resources`; read by the continuum
//! systems, which build their per-target synthetic-photometry data from it.

use bevy_ecs::prelude::Resource;

/// One filter response curve, as loaded (trimmed, Å, vacuum).
#[derive(Debug, Clone, PartialEq)]
pub struct BandFilter {
    /// speclite name, e.g. `"decam2014-r"`.
    pub name: String,
    /// Wavelengths, Å, strictly increasing.
    pub wave_ang: Vec<f64>,
    /// Dimensionless response at `wave_ang`.
    pub resp: Vec<f64>,
    /// Photon-weighted effective wavelength, Å.
    pub lambda_eff_ang: f64,
}

/// Band filters per photometric system plus the per-band fit configuration.
#[derive(Resource, Debug, Clone, PartialEq, Default)]
pub struct BandFilters {
    /// `(photsys, filters in band order)` for every configured photometric system.
    pub per_photsys: Vec<(String, Vec<BandFilter>)>,
    /// Whether each band enters the fit (`bands_to_fit`), in band order.
    pub bands_to_fit: Vec<bool>,
    /// Minimum magnitude uncertainty per band added in quadrature (`min_uncertainty`), mag.
    pub min_uncertainty_mag: Vec<f64>,
}

impl BandFilters {
    /// The band filters of photometric system `photsys`.
    pub fn for_photsys(&self, photsys: &str) -> Option<&[BandFilter]> {
        self.per_photsys
            .iter()
            .find(|(k, _)| k == photsys)
            .map(|(_, v)| v.as_slice())
    }
}
