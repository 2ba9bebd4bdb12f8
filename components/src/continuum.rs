//! Continuum-fit components (SPEC §4): the fit of a target's stellar continuum.

use bevy_ecs::prelude::Component;

/// The stellar-continuum fit of a target (SPEC §4.3, §4.9, §4.10).
///
/// Written by the continuum systems (`passes::continuum`); read by the derived-quantity
/// systems (`passes::properties`) and the writers. All-zero (`fitted == false`) means "not
/// fitted": every output keeps FastSpecFit's "not measured" convention (0, ivar 0).
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct ContinuumFit {
    /// Whether a fit was made.
    pub fitted: bool,
    /// Per-target Monte Carlo seed (SEED column).
    pub seed: i64,
    /// Template coefficients, 10¹⁰ M☉ formed, `[ntemplate]` (0 for excluded templates).
    pub coeff: Vec<f64>,
    /// Templates used (`--constrain-age` drops those older than the universe + 0.5 Gyr).
    pub agekeep: Vec<bool>,
    /// V-band optical depth τ_V as reported (TAUV column): [QUIRK] 0 when the Monte Carlo ran
    /// but gave no usable ivar (see `tauv_fit` for the fitted value).
    pub tauv: f64,
    /// Best-fit τ_V of the fit itself (use this to rebuild models).
    pub tauv_fit: f64,
    /// Inverse variance of τ_V (Monte Carlo; 0 if not measured).
    pub tauv_ivar: f64,
    /// Reported stellar velocity dispersion σ★ = √(kernel² + σ_C3K²), km/s.
    pub vdisp_kms: f64,
    /// Inverse variance of σ★, s²/km² (fastspec only).
    pub vdisp_ivar: f64,
    /// Reduced χ² of the photometry.
    pub rchi2_phot: f64,
    /// Number of photometric bands with ivar > 0 in the fit.
    pub ndof_phot: usize,
    /// Reduced χ² of the joint spectrum+photometry continuum fit (fastspec only).
    pub rchi2_cont: f64,
    /// Luminosity distance, Mpc (h = 1).
    pub dlum_mpc: f64,
    /// Distance modulus, mag.
    pub dmod: f64,
    /// Age of the universe at z, Gyr (100 unless `--constrain-age`).
    pub tuniv_gyr: f64,
    /// Band effective wavelengths of the object's photometric system, Å.
    pub lambda_eff_ang: Vec<f64>,
    /// Observed photometry, f_λ in 1e-17 erg/s/cm²/Å (dereddened, §4.1).
    pub phot_flam: Vec<f64>,
    /// Inverse variance of `phot_flam` including the error floor and bands_to_fit.
    pub phot_flam_ivar: Vec<f64>,
    /// Model photometry of the best fit, f_λ in 1e-17 units.
    pub model_flam: Vec<f64>,
    /// Best-fit SED (lines + dust emission), observed-frame f_λ in 1e-17 units on the
    /// redshifted template grid `wave·(1+z)`.
    pub sedmodel: Vec<f64>,
    /// Best-fit SED without emission lines and without dust emission, same grid and units.
    pub sedmodel_nolines: Vec<f64>,
    /// Coefficients of each Monte Carlo refit, `[nmonte][ntemplate]`.
    pub mc_coeff: Vec<Vec<f64>>,
    /// τ_V of each Monte Carlo refit.
    pub mc_tauv: Vec<f64>,
    /// fastspec: the kept templates convolved to the fitted velocity dispersion,
    /// `[nkept][nwave]` with lines and without (the Monte Carlo SEDs are rebuilt from these);
    /// empty for fastphot (nominal-σ templates).
    pub templates_vdisp: Option<std::sync::Arc<(Vec<f64>, Vec<f64>)>>,
}
