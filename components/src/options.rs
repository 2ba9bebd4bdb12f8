//! Run options every system may read (one resource, set once per run).

use bevy_ecs::prelude::Resource;

/// Which program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Program {
    /// Spectra + photometry.
    #[default]
    Fastspec,
    /// Photometry only.
    Fastphot,
}

/// The fitting options of the run (FastSpecFit's flags), read-only in every pass.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// fastspec or fastphot.
    pub program: Program,
    /// Monte Carlo realizations (`--nmonte`).
    pub nmonte: usize,
    /// Master seed (`--seed`).
    pub seed: i64,
    /// Nominal velocity dispersion, km/s (`--vdisp-nominal`).
    pub vdisp_nominal_kms: f64,
    /// Velocity-dispersion kernel bounds, km/s (`--vdisp-bounds`).
    pub vdisp_bounds_kms: (f64, f64),
    /// Drop templates older than the universe (`--constrain-age`).
    pub constrain_age: bool,
    /// Do not fit the photometry (`--ignore-photometry`).
    pub ignore_photometry: bool,
    /// Skip the smooth continuum correction (`--no-smooth-continuum`).
    pub no_smooth_continuum: bool,
    /// Fit broad lines (not `--no-broadlinefit`).
    pub broadlinefit: bool,
    /// Monte Carlo σ★ refits along FastSpecFit's own TRF paths from its cold start
    /// (`--vdisp-mc fsf`) instead of converged to their χ² minima (`converged`, the default).
    pub vdisp_mc_fsf: bool,
    /// Fractional spectral uncertainty floor (`--uncertainty-floor`).
    pub uncertainty_floor: f64,
    /// Minimum broad Balmer S/N (`--minsnr-balmer-broad`).
    pub minsnr_balmer_broad: f64,
    /// Per-target Monte Carlo seeds (`--input-seeds`, with `--targetids`), in target order.
    pub input_seeds: Option<Vec<i64>>,
    /// Flux normalisation of the spectra, erg/s/cm²/Å per flux unit: FastSpecFit's FLUXNORM,
    /// 1e17 for DESI coadds and generic spectra (fluxes in 1e-17 erg/s/cm²/Å), **1 for
    /// `stackfit`** (FastSpecFit's `continuum_specfit(fitstack=True)` sets FLUXNORM = 1 for
    /// the template normalisation, photometry scaling and luminosities; SPEC Constants).
    pub fluxnorm: f64,
}

/// Number of targets of the run fitted before the current file: FastSpecFit draws one seed per
/// object over the whole run, so the current file's seeds continue that stream.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedOffset(pub usize);

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            program: Program::Fastspec,
            nmonte: 50,
            seed: 1,
            vdisp_nominal_kms: 150.0,
            vdisp_bounds_kms: (50.0, 500.0),
            constrain_age: false,
            ignore_photometry: false,
            no_smooth_continuum: false,
            broadlinefit: true,
            vdisp_mc_fsf: false,
            uncertainty_floor: 0.01,
            minsnr_balmer_broad: 2.5,
            input_seeds: None,
            fluxnorm: 1e17,
        }
    }
}
