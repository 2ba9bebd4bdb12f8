//! Emission-line foundations (SPEC.md §5.1–§5.4): the line table and
//! kinematic constraints as plain data, the 3-per-line parameter table, the
//! two line models (free / fixed / tied), the free↔full parameter mapping,
//! initial guesses and bounds, the line-profile model on a pixel grid
//! (pre-convolved Gaussians times the deconvolved resolution matrix W) and
//! its analytic sparse Jacobian.
//!
//! Reading the files is the application's job (`src/io/emlines.rs`); these
//! kernels take the parsed, validated [`table::LineTable`] and
//! [`table::Constraints`].

#![warn(missing_docs)]

pub mod fit;
pub mod guesses;
pub mod jacobian;
pub mod linemodel;
pub mod mapping;
pub mod measure;
pub mod optimize;
pub mod params;
pub mod profile;
pub mod table;
#[cfg(test)]
mod tests;

pub use guesses::{initial_guesses_and_bounds, InitialKinematics};
pub use jacobian::{max_buffer_width, EmlineJacobian};
pub use linemodel::{build_linemodels, LineModel};
pub use mapping::ParamsMapping;
pub use params::{ParamTable, ParamType, IN_RANGE_PAD};
pub use profile::{
    analytic_flux, emline_model, line_profile, EmlineCamera, EmlineSpectrum, ModelWorkspace,
    C_LIGHT, SIGMA_G,
};
pub use table::{
    Constraints, DoubletRatio, EmLine, FixedRatio, KinBounds, KinGroup, LineTable, Profile,
};
