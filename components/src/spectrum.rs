//! Per-target prepared spectra (owned by the spectrum-preparation work; fields grow with it).

use bevy_ecs::prelude::Component;

/// A target's spectra ready for fitting (SPEC §2.2, §2.3, §2.6).
///
/// Written by the preparation systems; read by the continuum and line fits.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct PreparedSpectrum {}
