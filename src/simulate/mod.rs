//! `simulate`: DESI-format Redrock + coadd files (and photometry) from the templates.
//! (Placeholder: owned by the simulation work.)

use clap::Args;
use std::path::PathBuf;

/// Flags of `simulate`.
#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Output directory.
    #[arg(short = 'o', long)]
    pub outdir: PathBuf,
    /// Number of targets.
    #[arg(short = 'n', long, default_value_t = 200)]
    pub ntargets: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Run `simulate`.
///
/// # Errors
/// Not implemented yet.
pub fn run_simulate(_args: &SimulateArgs) -> anyhow::Result<()> {
    anyhow::bail!("simulate is not implemented yet")
}
