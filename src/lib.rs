//! The FastSpecFit engine application: CLI, input/output, run driver.
#![warn(missing_docs)]

pub mod cli;
pub mod comm;
pub mod compare;
pub mod fastspec;
pub mod io;
pub mod metadata;
pub mod production;
pub mod profile;
pub mod progress;
pub mod qa;
pub mod resources;
pub mod run;
pub mod simulate;
pub mod specphot;
