//! Derived quantities of a continuum fit (SPEC §4.11, §4.12, §4.9 variances, §6.7).
//!
//! Pure kernels, no ECS types:
//! * [`dn4000`] — the Balogh et al. (1999) narrow 4000-Å break with FastSpecFit's quirks
//!   (§4.11);
//! * [`kcorr`] — band-shifted rest-frame synthetic photometry, K-corrections and absolute
//!   magnitudes with the observed-band choice rule, and FLUX_SYNTH_PHOTMODEL (§4.12);
//! * [`cflux`] — continuum luminosities (LOGL_*, LOGLNU_*) and continuum fluxes (F*_CONT)
//!   from sigma-clipped straight-line fits on the rest template grid (§4.12);
//! * [`sps`] — stellar mass, metallicity, age and 100-Myr SFR from the coefficients (§4.12);
//! * [`sed`] — rebuilding an observed-frame SED from coefficients and τ_V (§3.3, §3.4), used
//!   for the Monte Carlo realisations;
//! * [`mcvar`] — the variance/ivar rules of the Monte Carlo (§4.9, §6.7).

pub mod cflux;
pub mod dn4000;
pub mod kcorr;
pub mod mcbatch;
pub mod mcvar;
pub mod sed;
pub mod sps;

#[cfg(test)]
mod tests;
