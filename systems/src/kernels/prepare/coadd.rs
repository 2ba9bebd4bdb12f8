//! Camera coaddition (SPEC §2.2), as desispec 0.70.0's `coadd_cameras` (the version the
//! FastSpecFit 3.6.1 reference outputs were made with).
//!
//! That release differs from the SPEC §2.2 description (written from later desispec
//! sources): it applies no FIBERSTATUS bad-bit masks and no pixel-mask weights. Instead:
//!
//! * a camera pixel is an *overlap* pixel when a wavelength of the previous or next camera
//!   (file order) lies within 1e-4 Å of it;
//! * non-overlap pixels are copied (flux, ivar, mask, resolution column);
//! * overlap pixels are ivar-weighted: flux = Σ ivar·f / Σ ivar (0 where Σ ivar = 0),
//!   ivar = Σ ivar, mask = OR; resolution R[d, j] = Σ w R_cam[d, j] / Σ w with
//!   w = ivar_cam[(j + d − w2) mod npix_cam] (the periodic index of `_resolution_coadd`);
//! * the output mask is cleared wherever the coadded ivar is positive.
//!
//! The per-file part (grid, camera offsets, overlap flags) is [`CoaddLayout`]; the per-target
//! part is [`coadd_cameras`].

use crate::kernels::KernelError;

/// Wavelength tolerance of the grid alignment and overlap tests, Å.
pub const COADD_TOLERANCE_ANG: f64 = 1e-4;

/// The per-file geometry of the camera coaddition.
#[derive(Debug, Clone, PartialEq)]
pub struct CoaddLayout {
    /// Output wavelength grid, Å.
    pub wave: Vec<f64>,
    /// Cameras (file indices) in order of increasing mean wavelength.
    pub sorted: Vec<usize>,
    /// Output index of each camera's first pixel (file order).
    pub start: Vec<usize>,
    /// Per camera (file order), whether each pixel overlaps a neighbouring camera.
    pub overlap: Vec<Vec<bool>>,
    /// Per output pixel, whether it is normalised (overlap flag of the last camera, in
    /// file order, covering it).
    pub normalize: Vec<bool>,
    /// Per output pixel, its index among the normalised pixels (`u32::MAX` if it is not
    /// normalised): the resolution weights are accumulated only there.
    pub norm_index: Vec<u32>,
    /// Number of normalised pixels.
    pub nnorm: usize,
}

fn mean(a: &[f64]) -> f64 {
    crate::kernels::stats::pairwise_sum(a) / a.len() as f64
}

/// Whether some element of `grid` lies within `tol` of `w` (binary search when `grid` is
/// increasing, a scan otherwise).
fn near(w: f64, grid: &[f64], sorted: bool, tol: f64) -> bool {
    if sorted {
        let i = grid.partition_point(|&g| g < w);
        (i < grid.len() && (grid[i] - w).abs() <= tol) || (i > 0 && (grid[i - 1] - w).abs() <= tol)
    } else {
        grid.iter().any(|&g| (w - g).abs() <= tol)
    }
}

impl CoaddLayout {
    /// Build the layout from the cameras' wavelength grids (file order).
    ///
    /// # Errors
    /// [`KernelError::Shape`] for no camera or an empty grid; [`KernelError::Domain`] if a
    /// camera's grid is not aligned with the combined grid or the combined grid is not
    /// strictly increasing.
    pub fn new(waves: &[&[f64]]) -> Result<Self, KernelError> {
        if waves.is_empty() || waves.iter().any(|w| w.is_empty()) {
            return Err(KernelError::Shape(
                "coadd_cameras: no camera or an empty wavelength grid".into(),
            ));
        }
        let tol = COADD_TOLERANCE_ANG;
        let means: Vec<f64> = waves.iter().map(|w| mean(w)).collect();
        let mut sorted: Vec<usize> = (0..waves.len()).collect();
        sorted.sort_by(|&a, &b| means[a].total_cmp(&means[b]));
        let mut wave: Vec<f64> = Vec::new();
        for &b in &sorted {
            match wave.last().copied() {
                None => wave.extend_from_slice(waves[b]),
                Some(last) => wave.extend(waves[b].iter().copied().filter(|&w| w > last + tol)),
            }
        }
        if wave
            .windows(2)
            .any(|p| p[1].partial_cmp(&p[0]) != Some(std::cmp::Ordering::Greater))
        {
            return Err(KernelError::Domain(
                "coadd_cameras: combined grid not strictly increasing".into(),
            ));
        }
        let mut start = Vec::with_capacity(waves.len());
        for (b, wb) in waves.iter().enumerate() {
            // alignment check (argmin of |Δλ|, first minimum)
            let mut imin = 0;
            let mut best = f64::INFINITY;
            for (i, &w) in wave.iter().enumerate() {
                let d = (wb[0] - w).abs();
                if d < best {
                    best = d;
                    imin = i;
                }
            }
            let aligned = imin + wb.len() <= wave.len()
                && wb
                    .iter()
                    .zip(&wave[imin..])
                    .all(|(a, g)| (a - g).abs() <= tol);
            if !aligned {
                return Err(KernelError::Domain(format!(
                    "coadd_cameras: camera {b} grid not aligned with the combined grid"
                )));
            }
            // placement as desispec: searchsorted(wave, wb[0]) (left)
            let s = wave.partition_point(|&g| g < wb[0]);
            if s + wb.len() > wave.len() {
                return Err(KernelError::Domain(format!(
                    "coadd_cameras: camera {b} runs off the combined grid"
                )));
            }
            start.push(s);
        }
        let inc: Vec<bool> = waves
            .iter()
            .map(|w| w.windows(2).all(|p| p[1] > p[0]))
            .collect();
        let n = waves.len();
        let overlap: Vec<Vec<bool>> = (0..n)
            .map(|i| {
                waves[i]
                    .iter()
                    .map(|&w| {
                        (i > 0 && near(w, waves[i - 1], inc[i - 1], tol))
                            || (i + 1 < n && near(w, waves[i + 1], inc[i + 1], tol))
                    })
                    .collect()
            })
            .collect();
        let mut normalize = vec![false; wave.len()];
        for b in 0..n {
            normalize[start[b]..start[b] + waves[b].len()].copy_from_slice(&overlap[b]);
        }
        let mut nnorm = 0;
        let norm_index = normalize
            .iter()
            .map(|&nz| {
                if nz {
                    nnorm += 1;
                    (nnorm - 1) as u32
                } else {
                    u32::MAX
                }
            })
            .collect();
        Ok(CoaddLayout {
            wave,
            sorted,
            start,
            overlap,
            normalize,
            norm_index,
            nnorm,
        })
    }

    /// Number of output pixels.
    pub fn npix(&self) -> usize {
        self.wave.len()
    }
}

/// One camera's spectrum of one target (as stored in the coadd file).
#[derive(Debug, Clone, Copy)]
pub struct CameraInput<'a> {
    /// Flux `[npix]`.
    pub flux: &'a [f64],
    /// Inverse variance `[npix]`.
    pub ivar: &'a [f64],
    /// Mask bits `[npix]`.
    pub mask: &'a [u32],
    /// Number of resolution diagonals.
    pub ndiag: usize,
    /// Resolution diagonals `[ndiag][npix]`.
    pub res: &'a [f64],
}

/// The camera-coadded spectrum of one target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coadd {
    /// Flux on the layout's grid.
    pub flux: Vec<f64>,
    /// Inverse variance.
    pub ivar: Vec<f64>,
    /// OR of the camera masks where the coadded ivar is 0, else 0.
    pub mask: Vec<u32>,
    /// Number of resolution diagonals (the largest of the cameras').
    pub ndiag: usize,
    /// Resolution diagonals `[ndiag][npix]`.
    pub res: Vec<f64>,
}

/// Coadd one target's cameras onto `layout` (desispec 0.70.0 `coadd_cameras`); with a
/// single camera its data are returned unchanged.
///
/// # Errors
/// [`KernelError::Shape`] if the cameras do not match the layout.
#[allow(clippy::needless_range_loop)] // several arrays indexed at offsets of `j`
pub fn coadd_cameras(layout: &CoaddLayout, cams: &[CameraInput<'_>]) -> Result<Coadd, KernelError> {
    if cams.len() != layout.start.len() {
        return Err(KernelError::Shape(format!(
            "coadd_cameras: {} cameras for a layout of {}",
            cams.len(),
            layout.start.len()
        )));
    }
    for (b, c) in cams.iter().enumerate() {
        let n = layout.overlap[b].len();
        if c.flux.len() != n
            || c.ivar.len() != n
            || c.mask.len() != n
            || c.ndiag == 0
            || c.res.len() != c.ndiag * n
        {
            return Err(KernelError::Shape(format!(
                "coadd_cameras: camera {b} arrays do not match its {n} pixels"
            )));
        }
    }
    if cams.len() == 1 {
        let c = &cams[0];
        return Ok(Coadd {
            flux: c.flux.to_vec(),
            ivar: c.ivar.to_vec(),
            mask: c.mask.to_vec(),
            ndiag: c.ndiag,
            res: c.res.to_vec(),
        });
    }
    let nw = layout.npix();
    let nd = cams.iter().map(|c| c.ndiag).max().unwrap_or(1);
    let mut out = Coadd {
        flux: vec![0.0; nw],
        ivar: vec![0.0; nw],
        mask: vec![0; nw],
        ndiag: nd,
        res: vec![0.0; nd * nw],
    };
    // the resolution weights, kept only for the normalised pixels (the only ones read)
    let nnorm = layout.nnorm;
    let mut rnorm = vec![0.0; nd * nnorm];
    // Each (diagonal, pixel) element is touched once per camera, cameras in `sorted` order;
    // the loops run diagonal by diagonal over contiguous rows (same operations per element).
    for &b in &layout.sorted {
        let c = &cams[b];
        let (s, n, ov) = (layout.start[b], c.flux.len(), &layout.overlap[b]);
        let (ndc, ww) = (c.ndiag, c.ndiag / 2);
        let off = (nd - ndc) / 2;
        for j in 0..n {
            let o = s + j;
            if !ov[j] {
                out.flux[o] = c.flux[j];
                out.ivar[o] = c.ivar[j];
                out.mask[o] = c.mask[j];
            } else {
                out.flux[o] += c.ivar[j] * c.flux[j];
                out.ivar[o] += c.ivar[j];
                out.mask[o] |= c.mask[j];
            }
        }
        let nidx = &layout.norm_index[s..s + n];
        for d in 0..ndc {
            let row = (off + d) * nw + s;
            let ores = &mut out.res[row..row + n];
            let onorm = &mut rnorm[(off + d) * nnorm..(off + d + 1) * nnorm];
            let cres = &c.res[d * n..(d + 1) * n];
            // periodic index (j + d − ww) mod n = (j + base) mod n
            let base = d + n - ww % n;
            for j in 0..n {
                let ni = nidx[j] as usize;
                if !ov[j] {
                    ores[j] = cres[j];
                    if let Some(r) = onorm.get_mut(ni) {
                        *r = 1.0;
                    }
                } else {
                    let mut k = j + base;
                    while k >= n {
                        k -= n;
                    }
                    let w = c.ivar[k];
                    ores[j] += w * cres[j];
                    if let Some(r) = onorm.get_mut(ni) {
                        *r += w;
                    }
                }
            }
        }
    }
    for o in 0..nw {
        if layout.normalize[o] {
            let iv = out.ivar[o];
            out.flux[o] /= iv + if iv == 0.0 { 1.0 } else { 0.0 };
        }
        if out.ivar[o] > 0.0 {
            out.mask[o] = 0;
        }
    }
    for d in 0..nd {
        let (ores, onorm) = (
            &mut out.res[d * nw..(d + 1) * nw],
            &rnorm[d * nnorm..(d + 1) * nnorm],
        );
        for (r, &ni) in ores.iter_mut().zip(&layout.norm_index) {
            if let Some(&rn) = onorm.get(ni as usize) {
                *r /= rn + if rn == 0.0 { 1.0 } else { 0.0 };
            }
        }
    }
    Ok(out)
}
