//! The FastSpecFit engine application: CLI, input/output, run driver.
#![warn(missing_docs)]

pub mod io;
