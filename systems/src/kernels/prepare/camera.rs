//! Per-camera preprocessing of `one_spectrum` (SPEC §2.3 "Spectra", steps 1–6).

use crate::kernels::mwdust::{dust_transmission, Fitzpatrick99};
use crate::kernels::stats::median;
use crate::kernels::KernelError;

/// Pixels masked at each end of every camera.
pub const EDGE_MASK_PIX: usize = 3;
/// ivar threshold of FastSpecFit's `ivar2var` (clip).
pub const IVAR_CLIP: f64 = 1e-8;

/// One camera after preprocessing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreparedCamera {
    /// Dereddened flux.
    pub flux: Vec<f64>,
    /// Dereddened inverse variance with the uncertainty floor (0 on masked pixels).
    pub ivar: Vec<f64>,
    /// Pixel mask (`mask0 != 0` or an edge pixel).
    pub mask: Vec<bool>,
    /// Median of flux0·√ivar (after masking and floor, before dereddening), float32.
    pub snr: f32,
}

/// Why a camera was not kept.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraOutcome {
    /// Kept and preprocessed.
    Kept(PreparedCamera),
    /// Σ ivar0 = 0 or every pixel masked: dropped with a warning (not an error).
    Dropped(&'static str),
}

/// Preprocess one camera: drop it if empty, mask (`mask0 != 0` and 3 edge pixels), add the
/// fractional uncertainty `floor` in quadrature, measure the median S/N, deredden with the
/// F99 transmission for `ebv` (R_V of `curve`).
///
/// # Errors
/// [`KernelError::Shape`] for unequal lengths; [`KernelError::Domain`] if no pixel has a
/// positive ivar after masking while some is nonzero (FastSpecFit's "All values are
/// masked!"), or for a non-positive wavelength.
pub fn prepare_camera(
    wave: &[f64],
    flux0: &[f64],
    ivar0: &[f64],
    mask0: &[u32],
    ebv: f64,
    floor: f64,
    curve: &Fitzpatrick99,
) -> Result<CameraOutcome, KernelError> {
    let n = wave.len();
    if flux0.len() != n || ivar0.len() != n || mask0.len() != n {
        return Err(KernelError::Shape(format!(
            "prepare_camera: {n} wavelengths, {} fluxes, {} ivars, {} masks",
            flux0.len(),
            ivar0.len(),
            mask0.len()
        )));
    }
    if crate::kernels::stats::pairwise_sum(ivar0) == 0.0 {
        return Ok(CameraOutcome::Dropped(
            "fully masked camera (sum of ivar is 0)",
        ));
    }
    let mask: Vec<bool> = mask0
        .iter()
        .enumerate()
        .map(|(i, &m)| m != 0 || i < EDGE_MASK_PIX || i + EDGE_MASK_PIX >= n)
        .collect();
    let mut ivar: Vec<f64> = ivar0
        .iter()
        .zip(&mask)
        .map(|(&v, &m)| if m { 0.0 } else { v })
        .collect();
    if ivar.iter().all(|&v| v == 0.0) {
        return Ok(CameraOutcome::Dropped(
            "fully masked camera (all ivar 0 after masking)",
        ));
    }
    // uncertainty floor (ivar2var: clip at 1e-8, else at 0)
    let clip = if ivar.iter().any(|&v| v > IVAR_CLIP) {
        IVAR_CLIP
    } else if ivar.iter().any(|&v| v > 0.0) {
        0.0
    } else {
        return Err(KernelError::Domain(
            "prepare_camera: all values are masked (no positive ivar)".into(),
        ));
    };
    for (v, &f) in ivar.iter_mut().zip(flux0) {
        *v = if *v > clip {
            let minvar = (floor * f) * (floor * f);
            1.0 / (minvar + 1.0 / *v)
        } else {
            0.0
        };
    }
    let snr_pix: Vec<f64> = flux0
        .iter()
        .zip(&ivar)
        .map(|(&f, &v)| f * v.sqrt())
        .collect();
    let mut scratch = Vec::with_capacity(n);
    let snr = median(&snr_pix, &mut scratch)? as f32;
    let mut t = vec![0.0; n];
    dust_transmission(curve, wave, ebv, &mut t)?;
    let flux: Vec<f64> = flux0.iter().zip(&t).map(|(&f, &t)| f / t).collect();
    for (v, &t) in ivar.iter_mut().zip(&t) {
        *v *= t * t;
    }
    Ok(CameraOutcome::Kept(PreparedCamera {
        flux,
        ivar,
        mask,
        snr,
    }))
}
