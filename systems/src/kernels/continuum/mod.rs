//! The stellar-continuum fit (SPEC §4): photometric data vector (§2.3, §4.1), per-target
//! photometric forward model (§3.3–§3.5, §4.2), the VARPRO solver (§4.3), the Monte Carlo
//! random numbers (§4.9, Appendix A.7) and the fastphot fit (§4.10).

pub mod cheb;
pub mod fastphot;
pub mod fastspec;
pub mod jointcheb;
pub mod model;
pub mod photvec;
pub mod rng;
pub mod smooth;
pub mod specmodel;
pub mod varpro;
pub mod vdispfit;
pub mod vdispmc;

pub use cheb::ChebPsi;
pub use fastphot::{fit_fastphot, FastphotInputs, FastphotResult};
pub use fastspec::{
    fit_fastspec, FastspecInputs, FastspecResult, FastspecTemplates, FastspecWorkspace,
};
pub use model::{PhotModel, TemplateArrays, FLUXNORM, MASSNORM};
pub use specmodel::{CameraData, SpecOperator};
pub use varpro::{varpro_phot, varpro_phot_interp, VarproFit, VarproWorkspace};
