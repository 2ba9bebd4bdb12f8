//! Derived physical properties (owned by the derived-quantities work; fields grow with it).

use bevy_ecs::prelude::Component;

/// K-corrections, absolute magnitudes, luminosities and SPS properties (SPEC §4.12).
///
/// Written by the derived-quantity systems; read by the SPECPHOT writer.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct PhysicalProperties {}
