//! Command-line interface: FastSpecFit's command names and flags, in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A data-oriented Rust engine for DESI's FastSpecFit.
#[derive(Parser, Debug)]
#[command(name = "fastspecfit", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fit spectra and photometry (FastSpecFit's `fastspec`).
    Fastspec(FitArgs),
    /// Fit broadband photometry only (FastSpecFit's `fastphot`).
    Fastphot(FitArgs),
    /// Fit stacked spectra (FastSpecFit's `stackfit`): positional arguments are stack files
    /// (WAVE, FLUX, IVAR, optional RES, STACKINFO); `--targetids` selects STACKIDs. No
    /// photometry, no dust correction.
    Stackfit(FitArgs),
    /// Fit single spectra from any instrument: positional arguments are generic spectrum
    /// files (FITS table or text/ECSV with WAVE, FLUX, IVAR, optional MASK and RES_SIGMA or a
    /// RESOLUTION matrix; keywords Z, TARGETID, RA, DEC, EBV). See the README.
    Fitspec(FitArgs),
    /// Production driver (FastSpecFit's `mpi-fastspecfit`): one output per input file,
    /// files balanced across MPI ranks, existing outputs skipped.
    Production(ProductionArgs),
    /// Write simulated DESI-format Redrock + coadd files with photometry and a truth table.
    Simulate(crate::simulate::SimulateArgs),
    /// Compare two fastspec/fastphot catalogues column by column (matched on TARGETID).
    Compare(crate::compare::CompareArgs),
    /// QA figures (one PNG per target) and a static HTML report (FastSpecFit's `fastqa`).
    Qa(crate::qa::QaArgs),
}

/// Flags of the production driver (plus every `fastspec` flag).
#[derive(Args, Debug, Clone)]
pub struct ProductionArgs {
    /// Fitting flags; positional Redrock files, if given, replace the production search.
    #[command(flatten)]
    pub fit: FitArgs,
    /// Output root: outputs go to `{outdir}/{specprod}/<same layout as the inputs>`.
    #[arg(long = "outdir-data", alias = "outdir", env = "FASTSPECFIT_OUTDIR")]
    pub outdir: PathBuf,
    /// Coadd type searched in the production: healpix, cumulative, pernight or perexp.
    #[arg(long = "coadd-type", default_value = "healpix")]
    pub coadd_type: String,
    /// Surveys to search (comma list; default all).
    #[arg(long, value_delimiter = ',')]
    pub survey: Option<Vec<String>>,
    /// Programs to search (comma list; default all).
    #[arg(long, value_delimiter = ',')]
    pub program: Option<Vec<String>>,
    /// HEALPix pixels to search (comma list).
    #[arg(long, value_delimiter = ',')]
    pub healpix: Option<Vec<String>>,
    /// Tiles to search (comma list).
    #[arg(long, value_delimiter = ',')]
    pub tile: Option<Vec<String>>,
    /// Nights to search (pernight; comma list).
    #[arg(long, value_delimiter = ',')]
    pub night: Option<Vec<String>>,
    /// Photometry-only fits (fastphot outputs).
    #[arg(long)]
    pub fastphot: bool,
    /// Refit files whose output exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Print the files and targets left to do, then exit.
    #[arg(long)]
    pub plan: bool,
}

/// Flags shared by `fastspec` and `fastphot` (FastSpecFit's names and defaults).
#[derive(Args, Debug, Clone)]
pub struct FitArgs {
    /// Redrock file(s) to fit; the coadd file is found by replacing the prefix.
    pub redrockfiles: Vec<PathBuf>,
    /// Output FITS file (written atomically: `<outfile>.tmp`, then renamed). Required by
    /// `fastspec`/`fastphot`; `production` names one output per input instead.
    #[arg(short = 'o', long)]
    pub outfile: Option<PathBuf>,
    /// Number of threads in total for this process.
    #[arg(long, default_value_t = 1)]
    pub mp: usize,
    /// Targets fitted together in one pass through the systems (default 32 per thread):
    /// bounds the memory of a file of any size; outputs do not depend on it.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// No progress bar (it is drawn only when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Fit at most this many targets per file (after selection).
    #[arg(short = 'n', long)]
    pub ntargets: Option<usize>,
    /// Index of the first selected target to fit, per file.
    #[arg(long, default_value_t = 0)]
    pub firsttarget: usize,
    /// Comma-separated TARGETIDs to fit (no quality cuts; output in this order).
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub targetids: Option<Vec<i64>>,
    /// Comma-separated redshifts for `--targetids` (same length).
    #[arg(
        long = "input-redshifts",
        value_delimiter = ',',
        num_args = 1,
        allow_negative_numbers = true
    )]
    pub input_redshifts: Option<Vec<f64>>,
    /// Minimum redshift (default 1e-3).
    #[arg(long)]
    pub zmin: Option<f64>,
    /// Master random seed for the Monte Carlo.
    #[arg(long, default_value_t = 1)]
    pub seed: i64,
    /// Comma-separated per-target seeds for `--targetids`.
    #[arg(long = "input-seeds", value_delimiter = ',', num_args = 1)]
    pub input_seeds: Option<Vec<i64>>,
    /// Number of Monte Carlo realizations.
    #[arg(long, default_value_t = 50)]
    pub nmonte: usize,
    /// Spectroscopic reductions directory (for `{specprod}/tiles-{specprod}.csv`).
    #[arg(long = "redux_dir", env = "DESI_SPECTRO_REDUX")]
    pub redux_dir: Option<PathBuf>,
    /// On-disk production directory name under `--redux_dir`.
    #[arg(long)]
    pub specprod: Option<String>,
    /// Directory with `SFD_dust_4096_{ngp,sgp}.fits` (default `$DUST_DIR/maps`, else the bundled cut-outs).
    #[arg(long)]
    pub mapdir: Option<PathBuf>,
    /// Legacy Surveys root, or `file.fits[EXT]` for an external catalogue (default `$FPHOTO_DIR`).
    #[arg(long)]
    pub fphotodir: Option<String>,
    /// Photometry YAML (default: FastSpecFit's legacysurvey-dr9.yaml, bundled).
    #[arg(long)]
    pub fphotofile: Option<PathBuf>,
    /// Redrock file-name prefix.
    #[arg(long = "redrockfile-prefix", default_value = "redrock-")]
    pub redrockfile_prefix: String,
    /// Coadd file-name prefix.
    #[arg(long = "specfile-prefix", default_value = "coadd-")]
    pub specfile_prefix: String,
    /// QuasarNet afterburner file-name prefix.
    #[arg(long = "qnfile-prefix", default_value = "qso_qn-")]
    pub qnfile_prefix: String,
    /// Template file (default `$FTEMPLATES_DIR/{version}/ftemplates-{imf}-{version}.fits`, else bundled BC03).
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Template version.
    #[arg(long, default_value = "2.2.0")]
    pub templateversion: String,
    /// Initial mass function of the templates.
    #[arg(long, default_value = "chabrier")]
    pub imf: String,
    /// Emission-line table (default: FastSpecFit's emlines.ecsv, bundled).
    #[arg(long)]
    pub emlinesfile: Option<PathBuf>,
    /// Emission-line constraints (default: FastSpecFit's emline-constraints.yaml, bundled).
    #[arg(long)]
    pub constraintsfile: Option<PathBuf>,
    /// Cosmology: the DESI fiducial table by default, or `flatLCDM`.
    #[arg(long)]
    pub cosmology: Option<String>,
    /// Ωm for `--cosmology flatLCDM`.
    #[arg(long = "omega-m", default_value_t = 0.3)]
    pub omega_m: f64,
    /// Nominal velocity dispersion, km/s.
    #[arg(long = "vdisp-nominal", default_value_t = 150.0)]
    pub vdisp_nominal: f64,
    /// Velocity-dispersion kernel bounds MIN MAX, km/s (equal values fix it).
    #[arg(long = "vdisp-bounds", num_args = 2, value_names = ["MIN", "MAX"], default_values_t = [50.0, 500.0])]
    pub vdisp_bounds: Vec<f64>,
    /// Monte Carlo σ★ refits (VDISP_IVAR): `converged` minimises each refit's χ² from the best
    /// fit (variable projection, ≈ 10 passes); `fsf` follows FastSpecFit's cold-started TRF
    /// paths exactly (≈ 50 passes; its VDISP_IVAR includes where those fits stop).
    #[arg(long = "vdisp-mc", value_enum, default_value_t = VdispMc::Converged)]
    pub vdisp_mc: VdispMc,
    /// Do not fit broad emission lines.
    #[arg(long = "no-broadlinefit")]
    pub no_broadlinefit: bool,
    /// Do not fit the broadband photometry.
    #[arg(long = "ignore-photometry")]
    pub ignore_photometry: bool,
    /// Do not use QuasarNet redshifts.
    #[arg(long = "ignore-quasarnet")]
    pub ignore_quasarnet: bool,
    /// Drop templates older than the age of the universe at z (+0.5 Gyr).
    #[arg(long = "constrain-age")]
    pub constrain_age: bool,
    /// Skip the smooth continuum correction.
    #[arg(long = "no-smooth-continuum")]
    pub no_smooth_continuum: bool,
    /// Fractional spectral uncertainty floor.
    #[arg(long = "uncertainty-floor", default_value_t = 0.01)]
    pub uncertainty_floor: f64,
    /// Minimum broad Balmer S/N to keep a broad-line model.
    #[arg(long = "minsnr-balmer-broad", default_value_t = 2.5)]
    pub minsnr_balmer_broad: f64,
    /// Debug logging.
    #[arg(long)]
    pub verbose: bool,
    /// Print a per-system time profile at the end.
    #[arg(long)]
    pub profile: bool,
    /// Write a Chrome trace (chrome://tracing, Perfetto) of every system span to this file.
    #[arg(long)]
    pub trace: Option<PathBuf>,
}

/// How the Monte Carlo σ★ refits are solved (`--vdisp-mc`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VdispMc {
    /// Each refit converged to its χ² minimum from the best fit.
    #[default]
    Converged,
    /// FastSpecFit's TRF from its cold start x0, ftol = 1e-6.
    Fsf,
}
