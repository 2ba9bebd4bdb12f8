//! Coadd spectra reader: B/R/Z WAVELENGTH, FLUX, IVAR, MASK, RESOLUTION into SoA columns.

use std::path::Path;

use fsf_components::{CameraColumns, SpectraColumns};

use super::fits::FitsReader;
use super::IoError;

/// Pixels of one target and camera that were unusable as read (non-finite flux or ivar, or
/// negative ivar) and have been masked.
#[derive(Debug, Clone, PartialEq)]
pub struct BadPixels {
    /// Index of the target in `rows`.
    pub target: usize,
    /// Camera name.
    pub camera: String,
    /// Number of pixels masked.
    pub npix: usize,
}

/// Mask pixels FastSpecFit cannot survive: non-finite flux or ivar, negative ivar.
///
/// DEVIATION (a fix): FastSpecFit loses the whole file to one NaN flux pixel; here such a
/// pixel gets flux 0, ivar 0 and mask bit 2³¹ (set only by this reader), which every later
/// step already treats as "not measured".
pub const MASK_BAD_INPUT: u32 = 1 << 31;

fn sanitize(cam: &mut CameraColumns, bad: &mut Vec<BadPixels>) {
    let n = cam.npix;
    for t in 0..cam.flux.len() / n.max(1) {
        let mut count = 0;
        for i in t * n..(t + 1) * n {
            let (f, iv) = (cam.flux[i], cam.ivar[i]);
            if !f.is_finite() || !iv.is_finite() || iv < 0.0 {
                cam.flux[i] = 0.0;
                cam.ivar[i] = 0.0;
                cam.mask[i] |= MASK_BAD_INPUT;
                count += 1;
            }
        }
        let res = &mut cam.resolution[t * cam.ndiag * n..(t + 1) * cam.ndiag * n];
        let nonfinite_res = res.iter().filter(|x| !x.is_finite()).count();
        if nonfinite_res > 0 {
            res.iter_mut()
                .filter(|x| !x.is_finite())
                .for_each(|x| *x = 0.0);
        }
        if count > 0 || nonfinite_res > 0 {
            bad.push(BadPixels {
                target: t,
                camera: cam.name.clone(),
                npix: count + nonfinite_res,
            });
        }
    }
}

/// Read the spectra of the coadd rows `rows` (in that order) for every camera present,
/// masking unusable pixels (see [`MASK_BAD_INPUT`]) and reporting them.
///
/// # Errors
/// Missing or truncated HDUs, or arrays whose shapes disagree with the FIBERMAP.
pub fn read_spectra_checked(
    coadd: &Path,
    rows: &[usize],
    nrows_file: usize,
) -> Result<(SpectraColumns, Vec<BadPixels>), IoError> {
    let mut sp = read_spectra(coadd, rows, nrows_file)?;
    let mut bad = Vec::new();
    for cam in &mut sp.cameras {
        sanitize(cam, &mut bad);
    }
    Ok((sp, bad))
}

/// Rows `rows` (in that order) of the row-major `all` (`width` values a row): in place when
/// the rows are ascending (every kept row moves down or stays, no second buffer), else a copy.
fn pick_rows<T: Copy>(mut all: Vec<T>, rows: &[usize], width: usize) -> Vec<T> {
    if rows.windows(2).all(|w| w[0] < w[1]) {
        for (k, &r) in rows.iter().enumerate() {
            if r != k {
                all.copy_within(r * width..(r + 1) * width, k * width);
            }
        }
        all.truncate(rows.len() * width);
        all.shrink_to_fit();
        all
    } else {
        let mut out = Vec::with_capacity(rows.len() * width);
        for &r in rows {
            out.extend_from_slice(&all[r * width..(r + 1) * width]);
        }
        out
    }
}

/// Read the spectra of the coadd rows `rows` (in that order) for every camera present, as
/// stored (no checks of the values).
///
/// # Errors
/// Missing or truncated HDUs, or arrays whose shapes disagree with the FIBERMAP.
pub fn read_spectra(
    coadd: &Path,
    rows: &[usize],
    nrows_file: usize,
) -> Result<SpectraColumns, IoError> {
    let mut f = FitsReader::open(coadd)?;
    let mut cameras = Vec::new();
    for cam in ["B", "R", "Z"] {
        if !f.has_hdu(&format!("{cam}_WAVELENGTH")) {
            continue;
        }
        let (wave, _) = f.image_f64(&format!("{cam}_WAVELENGTH"))?;
        let npix = wave.len();
        let shape_err = |what: &str, shape: &[usize], want: &[usize]| {
            IoError::input(
                coadd,
                format!("{cam}_{what} has shape {shape:?}, expected {want:?}"),
            )
        };
        let (flux_all, s) = f.image_f64(&format!("{cam}_FLUX"))?;
        if s != [nrows_file, npix] {
            return Err(shape_err("FLUX", &s, &[nrows_file, npix]));
        }
        let (ivar_all, s) = f.image_f64(&format!("{cam}_IVAR"))?;
        if s != [nrows_file, npix] {
            return Err(shape_err("IVAR", &s, &[nrows_file, npix]));
        }
        let (mask_all, s) = if f.has_hdu(&format!("{cam}_MASK")) {
            f.image_u32(&format!("{cam}_MASK"))?
        } else {
            (vec![0u32; nrows_file * npix], vec![nrows_file, npix])
        };
        if s != [nrows_file, npix] {
            return Err(shape_err("MASK", &s, &[nrows_file, npix]));
        }
        let (res_all, s) = f.image_f64(&format!("{cam}_RESOLUTION"))?;
        if s.len() != 3 || s[0] != nrows_file || s[2] != npix {
            return Err(shape_err("RESOLUTION", &s, &[nrows_file, 11, npix]));
        }
        let ndiag = s[1];
        cameras.push(CameraColumns {
            name: cam.to_string(),
            flux: pick_rows(flux_all, rows, npix),
            ivar: pick_rows(ivar_all, rows, npix),
            resolution: pick_rows(res_all, rows, ndiag * npix),
            mask: pick_rows(mask_all, rows, npix),
            ndiag,
            npix,
            wave_ang: wave,
        });
    }
    if cameras.is_empty() {
        return Err(IoError::input(
            coadd,
            "no camera found (no B/R/Z_WAVELENGTH HDU)",
        ));
    }
    Ok(SpectraColumns { cameras })
}
