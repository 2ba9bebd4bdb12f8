//! Numerical kernels: pure functions on slices, no ECS types.
//!
//! Every kernel documents which SPEC.md section it implements and is tested
//! against fixtures produced by the real FastSpecFit 3.6.1 (see `tests/fixtures`).

pub mod brent;
pub mod continuum;
pub mod cosmology;
pub mod derived;
pub mod dust;
pub mod emlines;
pub mod fastexp;
pub mod filters;
pub mod igm;
pub mod linemask;
pub mod mwdust;
pub mod nnls;
pub mod prepare;
pub mod rebin;
pub mod resolution;
pub mod sfd;
pub(crate) mod simd;
pub mod stats;
pub mod synthphot;
#[cfg(test)]
pub(crate) mod test_fixtures;
pub mod trf;
pub mod vdisp;

/// Errors a kernel reports for inputs it cannot process.
///
/// Kernels never panic on data; they return one of these and the calling system
/// turns it into a per-target flag and a log line naming the TARGETID.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    /// An input slice has the wrong length or inconsistent shapes.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// The input lies outside the domain the kernel is defined on.
    #[error("out of domain: {0}")]
    Domain(String),
    /// An iterative solver did not converge.
    #[error("no convergence: {0}")]
    NoConvergence(String),
    /// Non-finite numbers where finite ones are required.
    #[error("non-finite input: {0}")]
    NonFinite(String),
}
