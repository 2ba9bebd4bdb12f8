//! bevy_ecs systems: one parallel pass over all targets of a file per system.
