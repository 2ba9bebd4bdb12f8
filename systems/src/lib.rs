//! Systems (parallel passes over a file's targets) and numerical kernels of the
//! FastSpecFit engine.
//!
//! `kernels` holds pure functions on slices: they know nothing of the ECS and are
//! unit-tested against numbers computed by FastSpecFit's own Python functions.
//! `passes` holds the bevy_ecs systems: thin plumbing that maps queries onto kernel
//! calls, each under a `tracing` span of its name.
#![warn(missing_docs)]

pub mod kernels;
pub mod passes;

/// Make every faer call that does not pass an explicit `Par` sequential: parallelism belongs
/// to the passes (one thread pool, `--mp` threads), never nested inside a kernel.
pub fn use_sequential_kernels() {
    faer::set_global_parallelism(faer::Par::Seq);
}
