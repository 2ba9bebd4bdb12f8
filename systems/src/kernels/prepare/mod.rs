//! The fastspec "Prepare" kernels: camera coaddition (SPEC §2.2), per-camera preprocessing
//! (§2.3 "Spectra" steps 1–6; resolution matrices §2.4 via [`crate::kernels::resolution`])
//! and photometry synthesized from the coadded spectrum (§2.6).
//!
//! * [`CoaddLayout`] / [`coadd_cameras`]: desispec 0.70.0 `coadd_cameras` (see
//!   [`coadd`] for how that release differs from the SPEC text).
//! * [`prepare_camera`]: masking, uncertainty floor, median S/N, MW dereddening.
//! * [`synth_nanomaggies`]: FLUX_SYNTH_* of the (not dereddened) coadd, with edge padding.

pub mod camera;
pub mod coadd;
#[cfg(test)]
mod tests;

pub use camera::{prepare_camera, CameraOutcome, PreparedCamera, EDGE_MASK_PIX, IVAR_CLIP};
pub use coadd::{coadd_cameras, CameraInput, Coadd, CoaddLayout, COADD_TOLERANCE_ANG};

use super::filters::FilterCurve;
use super::synthphot::{ab_maggies, SynthScratch};
use super::KernelError;

/// FastSpecFit's flux normalisation (spectra are in units of 1e-17 erg/s/cm²/Å).
pub const FLUXNORM: f64 = 1e17;

/// Photometry synthesized from a spectrum in 1e-17 erg/s/cm²/Å units, in nanomaggies
/// (`get_ab_maggies(filters, flux / FLUXNORM, wave)` × 1e9, padding the spectrum with its
/// edge values where it does not cover a filter); `flux_scaled` is scratch.
///
/// # Errors
/// As [`ab_maggies`].
pub fn synth_nanomaggies(
    filters: &[FilterCurve],
    flux: &[f64],
    wave: &[f64],
    out: &mut [f64],
    flux_scaled: &mut Vec<f64>,
    scratch: &mut SynthScratch,
) -> Result<(), KernelError> {
    flux_scaled.clear();
    flux_scaled.extend(flux.iter().map(|&f| f / FLUXNORM));
    ab_maggies(filters, flux_scaled, wave, out, scratch)?;
    for o in out.iter_mut() {
        *o *= 1e9;
    }
    Ok(())
}
