//! SFD98 dust-map loading (SPEC.md §1.6).
//!
//! Reads `SFD_dust_4096_ngp.fits` and `SFD_dust_4096_sgp.fits` from the map
//! directory (`--mapdir`, default `$DUST_DIR/maps`, as desiutil's `SFDMap`):
//! the primary image (float32, `[NAXIS2][NAXIS1]`) and the projection keywords
//! `CRPIX1`, `CRPIX2`, `LAM_SCAL`, `LAM_NSGP`. FastSpecFit uses `scaling=1`, so
//! the map values are used as stored.

use std::path::Path;

use fsf_systems::kernels::sfd::SfdHemisphere;

use super::fits::FitsReader;
use super::IoError;

/// File name of the north-Galactic-pole map.
pub const SFD_NGP_FILE: &str = "SFD_dust_4096_ngp.fits";
/// File name of the south-Galactic-pole map.
pub const SFD_SGP_FILE: &str = "SFD_dust_4096_sgp.fits";

/// Both hemispheres of the SFD98 E(B−V) map.
#[derive(Debug, Clone)]
pub struct SfdMaps {
    /// North Galactic hemisphere (`LAM_NSGP = +1`).
    pub ngp: SfdHemisphere,
    /// South Galactic hemisphere (`LAM_NSGP = −1`).
    pub sgp: SfdHemisphere,
}

/// Load both SFD98 maps from `mapdir`.
///
/// # Errors
/// A missing or unreadable file, a primary HDU that is not a 2-D image, a
/// missing projection keyword, or a `LAM_NSGP` that is not +1 (north file) /
/// −1 (south file). Every error names the file.
pub fn load_sfd(mapdir: &Path) -> Result<SfdMaps, IoError> {
    if !mapdir.is_dir() {
        return Err(IoError::input(
            mapdir,
            "SFD dust-map directory not found; pass --mapdir or set $DUST_DIR (maps are read from $DUST_DIR/maps)",
        ));
    }
    let ngp = load_hemisphere(&mapdir.join(SFD_NGP_FILE), 1.0)?;
    let sgp = load_hemisphere(&mapdir.join(SFD_SGP_FILE), -1.0)?;
    Ok(SfdMaps { ngp, sgp })
}

/// Load one hemisphere file and check that its `LAM_NSGP` is `expected_sign`.
///
/// # Errors
/// As [`load_sfd`].
pub fn load_hemisphere(path: &Path, expected_sign: f64) -> Result<SfdHemisphere, IoError> {
    let mut r = FitsReader::open(path)?;
    let (data, shape) = r.image_f64("PRIMARY")?;
    if shape.len() != 2 || shape[0] == 0 || shape[1] == 0 {
        return Err(IoError::input(
            path,
            format!("primary HDU is not a 2-D image (shape {shape:?})"),
        ));
    }
    let mut key = |k: &str| {
        r.key_f64("PRIMARY", k)
            .filter(|v| v.is_finite())
            .ok_or_else(|| {
                IoError::input(path, format!("missing or non-numeric header keyword {k}"))
            })
    };
    let crpix1 = key("CRPIX1")?;
    let crpix2 = key("CRPIX2")?;
    let lam_scal = key("LAM_SCAL")?;
    let lam_nsgp = key("LAM_NSGP")?;
    if lam_nsgp != expected_sign {
        return Err(IoError::input(
            path,
            format!("LAM_NSGP = {lam_nsgp}, expected {expected_sign} for this hemisphere"),
        ));
    }
    // The image is float32 on disk; the f64 read is exact, so narrowing back is lossless.
    let data: Vec<f32> = data.into_iter().map(|v| v as f32).collect();
    Ok(SfdHemisphere {
        data,
        nx: shape[1],
        ny: shape[0],
        crpix1,
        crpix2,
        lam_scal,
        lam_nsgp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fsf_systems::kernels::sfd::ebv;
    use std::path::PathBuf;

    fn mapdir() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/desi"))
    }

    /// E(B−V) of the two reference targets equals FastSpecFit's METADATA EBV.
    #[test]
    fn reference_targets_ebv() {
        let maps = load_sfd(&mapdir()).expect("bundled SFD cut-outs load");
        assert_eq!((maps.ngp.nx, maps.ngp.ny), (891, 1634));
        assert_eq!((maps.sgp.nx, maps.sgp.ny), (636, 2991));
        let cases = [
            (105.48977452498902, 56.669300058331935, 0.051411786479653276),
            (149.465404248889, 1.7936467486355945, 0.020889620865572847),
        ];
        for (ra, dec, want) in cases {
            let got = ebv(ra, dec, &maps.ngp, &maps.sgp).expect("inside the cut-out");
            assert!(
                ((got - want) / want).abs() < 1e-12,
                "RA {ra} Dec {dec}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn missing_dir_and_file_are_named() {
        let e = load_sfd(Path::new("/nonexistent/sfd"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/sfd"), "{e}");
        let tmp = tempfile::tempdir().expect("tempdir");
        let e = load_sfd(tmp.path()).unwrap_err().to_string();
        assert!(e.contains(SFD_NGP_FILE), "{e}");
    }
}
