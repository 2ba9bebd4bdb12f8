//! `compare A.fits B.fits`: per-column agreement between two fastspec/fastphot catalogues.
//! (Placeholder: owned by the simulation work.)

use clap::Args;
use std::path::PathBuf;

/// Flags of `compare`.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// First catalogue.
    pub a: PathBuf,
    /// Second catalogue.
    pub b: PathBuf,
}

/// Run `compare`, returning the report text.
///
/// # Errors
/// Not implemented yet.
pub fn run_compare(_args: &CompareArgs) -> anyhow::Result<String> {
    anyhow::bail!("compare is not implemented yet")
}
