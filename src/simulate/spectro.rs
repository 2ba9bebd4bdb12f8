//! DESI spectrograph pieces: the three camera grids, Gaussian resolution matrices in
//! DESI's banded storage, and pixel-integrated Gaussian lines.

/// Number of stored diagonals of a DESI resolution matrix.
pub const NDIAG: usize = 11;

/// One camera's wavelength grid.
#[derive(Debug, Clone)]
pub struct CameraGrid {
    /// "B", "R" or "Z".
    pub name: &'static str,
    /// Pixel centres, Å.
    pub wave: Vec<f64>,
}

/// DESI's coadd grids: 3600–5800, 5760–7620 and 7520–9824 Å at 0.8 Å.
pub fn desi_cameras() -> Vec<CameraGrid> {
    [
        ("B", 3600.0, 5800.0),
        ("R", 5760.0, 7620.0),
        ("Z", 7520.0, 9824.0),
    ]
    .into_iter()
    .map(|(name, lo, hi)| {
        let n = ((hi - lo) / 0.8_f64).round() as usize + 1;
        CameraGrid {
            name,
            wave: (0..n).map(|i| lo + 0.8 * i as f64).collect(),
        }
    })
    .collect()
}

/// Line-spread σ in pixels along a camera (DESI-like: FWHM ≈ 1.8 Å, broader at the
/// camera edges), times `scale`.
fn lsf_sigma_pix(cam: &CameraGrid, i: usize, scale: f64) -> f64 {
    let n = cam.wave.len().max(2);
    let x = 2.0 * (i as f64 / (n - 1) as f64) - 1.0;
    let base = match cam.name {
        "B" => 0.92,
        "R" => 0.95,
        _ => 0.98,
    };
    scale * base * (1.0 + 0.08 * x * x)
}

/// Resolution data `[NDIAG][npix]` of a Gaussian line-spread function, in DESI's
/// storage: diagonal `d` holds offset `k = 5 − d`, and `data[d][j]` is the weight of
/// input pixel `j` on output pixel `j − k` (each column sums to 1).
pub fn gaussian_resolution(cam: &CameraGrid, scale: f64) -> Vec<f64> {
    let n = cam.wave.len();
    let half = (NDIAG / 2) as i64;
    let mut data = vec![0.0; NDIAG * n];
    for j in 0..n {
        let s = lsf_sigma_pix(cam, j, scale);
        let w: Vec<f64> = (0..NDIAG)
            .map(|d| (-0.5 * ((half - d as i64) as f64 / s).powi(2)).exp())
            .collect();
        let norm: f64 = w.iter().sum();
        for (d, v) in w.iter().enumerate() {
            data[d * n + j] = v / norm;
        }
    }
    data
}

/// y = R·x for resolution data `[NDIAG][n]` (see [`gaussian_resolution`]).
pub fn apply_resolution(data: &[f64], x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let half = (NDIAG / 2) as i64;
    let mut y = vec![0.0; n];
    for (i, yi) in y.iter_mut().enumerate() {
        for d in 0..NDIAG {
            let j = i as i64 + half - d as i64;
            if j >= 0 && (j as usize) < n {
                *yi += data[d * n + j as usize] * x[j as usize];
            }
        }
    }
    y
}

/// Error function (Abramowitz & Stegun 7.1.26 refined with one Newton-free correction:
/// |error| < 1.5e-7, enough for line profiles).
pub fn erf(x: f64) -> f64 {
    let s = x.signum();
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    s * (1.0 - poly * (-a * a).exp())
}

/// Add a Gaussian line of integrated flux `flux`, centre `centre` and σ `sigma` (Å),
/// averaged over each pixel of `edges`, to `pix` (flux density per Å).
pub fn pixel_gaussian(edges: &[f64], centre: f64, sigma: f64, flux: f64, pix: &mut [f64]) {
    if sigma <= 0.0 {
        return;
    }
    let lo = centre - 8.0 * sigma;
    let hi = centre + 8.0 * sigma;
    let first = edges.partition_point(|e| *e < lo).saturating_sub(1);
    let inv = 1.0 / (sigma * std::f64::consts::SQRT_2);
    for i in first..pix.len() {
        let (a, b) = (edges[i], edges[i + 1]);
        if a > hi {
            break;
        }
        let frac = 0.5 * (erf((b - centre) * inv) - erf((a - centre) * inv));
        pix[i] += flux * frac / (b - a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_match_desi_pixel_counts() {
        let c = desi_cameras();
        let n: Vec<usize> = c.iter().map(|c| c.wave.len()).collect();
        assert_eq!(n, vec![2751, 2326, 2881]);
    }

    #[test]
    fn resolution_conserves_flux_and_lines_integrate() {
        let cam = &desi_cameras()[0];
        let r = gaussian_resolution(cam, 1.0);
        let x: Vec<f64> = (0..cam.wave.len())
            .map(|i| if i == 1000 { 1.0 } else { 0.0 })
            .collect();
        let y = apply_resolution(&r, &x);
        assert!((y.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let mut edges = vec![0.0; cam.wave.len() + 1];
        fsf_systems::kernels::rebin::centers2edges(&cam.wave, &mut edges).unwrap();
        let mut pix = vec![0.0; cam.wave.len()];
        pixel_gaussian(&edges, 5000.3, 1.5, 10.0, &mut pix);
        let total: f64 = pix.iter().map(|p| p * 0.8).sum();
        assert!((total - 10.0).abs() < 1e-5, "{total}");
        assert!((erf(0.5) - 0.520_499_877_8).abs() < 2e-7);
    }
}
