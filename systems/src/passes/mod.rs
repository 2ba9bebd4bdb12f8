//! bevy_ecs systems: one parallel pass over all targets of a file per system.
//!
//! Each system is thin plumbing from queries to kernels, runs under a `tracing` span of its
//! name (so `--profile` can attribute time), and flags a target it cannot process instead of
//! stopping the file. [`add_systems`] registers them in FastSpecFit's order.

use bevy_ecs::prelude::*;

pub mod continuum;
pub mod fastspec;
pub mod mw_dust;
pub mod properties;
pub mod spectrum;

/// The batching of the per-target passes: one target per task. A target costs from a few
/// ms to half a second (the σ fit with its Monte Carlo refits), so bevy's default (the
/// targets split into one contiguous batch per thread) left one thread idle while the other
/// finished a batch holding more σ-fit targets; per-target tasks balance the load (the
/// task overhead is microseconds). Results never depend on the batching.
pub(crate) const PER_TARGET: bevy_ecs::batching::BatchingStrategy =
    bevy_ecs::batching::BatchingStrategy::fixed(1);

/// The ordered phases of a file's schedule.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum FitSystems {
    /// Per-target preparation of inputs (dust, spectra, masks).
    Prepare,
    /// Continuum fitting.
    Continuum,
    /// Emission-line fitting.
    Lines,
    /// Derived quantities and output models.
    Finalize,
}

/// Register every system of the fitting schedule, phases chained in order.
pub fn add_systems(schedule: &mut Schedule) {
    schedule.configure_sets(
        (
            FitSystems::Prepare,
            FitSystems::Continuum,
            FitSystems::Lines,
            FitSystems::Finalize,
        )
            .chain(),
    );
    schedule.add_systems(mw_dust::correct_mw_dust.in_set(FitSystems::Prepare));
    spectrum::register(schedule);
    continuum::register(schedule);
    properties::register(schedule);
    fastspec::register(schedule);
}
