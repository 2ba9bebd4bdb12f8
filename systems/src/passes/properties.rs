//! Systems of the properties work (placeholder; owned by that work).

use bevy_ecs::prelude::Schedule;

/// Register this module's systems in the schedule.
pub fn register(_schedule: &mut Schedule) {}
