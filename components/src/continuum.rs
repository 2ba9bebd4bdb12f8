//! Continuum-fit components (owned by the continuum work; fields grow with it).

use bevy_ecs::prelude::Component;

/// The stellar-continuum fit of a target (SPEC §4).
///
/// Written by the continuum systems; read by the derived-quantity systems and the writers.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct ContinuumFit {}
