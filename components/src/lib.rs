//! Plain-data components and resources of the FastSpecFit engine.
//!
//! Targets are entities; per-target numbers live in components, run- and file-level data
//! (templates, filters, grids) in resources. Components are plain structs with pub fields
//! and units in their names or docs.
#![warn(missing_docs)]

pub mod continuum;
pub mod fastspec;
pub mod options;
pub mod photfilters;
pub mod photometry;
pub mod properties;
pub mod spectra;
pub mod spectrum;
pub mod target;
pub mod templates;

pub use continuum::ContinuumFit;
pub use fastspec::{FastspecSchema, SpectralFit};
pub use options::{FitOptions, Program, SeedOffset};
pub use photfilters::{BandFilter, BandFilters};
pub use photometry::{MilkyWayDust, ObservedPhotometry, PhotometricSetup};
pub use properties::PhysicalProperties;
pub use spectra::{CameraColumns, SpectraColumns};
pub use spectrum::PreparedSpectrum;
pub use target::{FitStatus, InputEbv, Redshift, SkyPosition, Target};
