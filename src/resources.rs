//! Run-level resources for the fits (templates, cosmology, filters, ...), loaded once per run.
//! (Placeholder: owned by the continuum work.)

use bevy_ecs::prelude::World;

use crate::io::IoError;
use crate::run::RunContext;

/// Insert every run-level resource the fitting systems need.
///
/// # Errors
/// Unreadable template, line-list or configuration files, naming the file.
pub fn insert_fit_resources(_world: &mut World, _ctx: &RunContext) -> Result<(), IoError> {
    Ok(())
}
