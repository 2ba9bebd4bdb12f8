//! Plain-data components and resources of the FastSpecFit engine.
//!
//! Targets are entities; per-target numbers live in components, run- and file-level data
//! (templates, filters, grids) in resources. Components are plain structs with pub fields
//! and units in their names or docs.
#![warn(missing_docs)]

pub mod photometry;
pub mod spectra;
pub mod target;
pub mod templates;

pub use photometry::{MilkyWayDust, ObservedPhotometry, PhotometricSetup};
pub use spectra::{CameraColumns, SpectraColumns};
pub use target::{FitStatus, Redshift, SkyPosition, Target};
