//! The emission-line mask of the camera-coadded spectrum (SPEC.md §2.5; FastSpecFit's
//! `LineMasker.build_linemask`), and its mapping onto the camera grids.
//!
//! Inputs are the camera-coadded wave / flux / ivar exactly as the camera
//! coaddition returns them (not dereddened) and the deconvolved coadd
//! resolution W. Steps:
//! 1. **Fit in patches** on the *strong* lines in range (λ_rest(1+z) inside
//!    (min λ + 4, max λ − 4)): lines grouped by their `patch` letter, each
//!    patch with an affine pedestal; [`linepix_and_contpix`] in patch mode
//!    (nσ = 5) selects the fitted pixels (weights √(ivar) on patch continuum
//!    and line pixels, 0 elsewhere); two iterations of
//!    [`optimize`](super::emlines::optimize) (ftol 1e-3, xtol 1e-5), the first
//!    from data-driven guesses with local-continuum subtraction, the second
//!    from the first's values and pixel masks. Run for the narrow-only model
//!    and, if an in-range patch holds a strong broad Balmer line, for the
//!    narrow+broad model; per-class summary σ / v / S/N (anchors with S/N >
//!    1.5, else any anchor, else defaults); the broad fit is adopted when its
//!    broad-Balmer S/N > 1.5.
//! 2. **Final mask** on the full line list with the adopted σ / v (broad
//!    Balmer σ raised to ≥ 1000 km/s), S/N against the adopted fit's
//!    residuals, and the removal of non-strong lines with S/N < 3.5.
//!
//! # QUIRKs reproduced (FastSpecFit 3.6.1)
//! * The final S/N cut zips the S/N of the lines *that got pixels* with the
//!   `isstrong` flags of *all* in-range lines, so the flags misalign once an
//!   in-range line has no unmasked pixel. Reproduced as is (a fixed port would
//!   pair each line with its own flag).
//! * A patch's pedestal covers pixels [min, max) of its continuum set: the
//!   last pixel is left out.
//! * After the first iteration the pedestal slopes keep their fitted values
//!   and an intercept keeps its fitted value (and bounds) when the new
//!   continuum quantiles are degenerate (q05 ≥ median or q05 ≥ q95).
//!
//! # Deviations
//! * With no strong line in range (or no free line parameter) FastSpecFit's
//!   patch fit crashes unpacking the optimiser's return value; this port
//!   carries on with all line values 0 (so the defaults are adopted).
//! * A patch whose pedestal range is empty gets noise 0 (FastSpecFit would
//!   raise on the empty quantile).

#[cfg(test)]
mod optimize_tests;
pub mod pixels;
#[cfg(test)]
pub(crate) mod testdata;
#[cfg(test)]
mod tests;

pub use pixels::{
    linepix_and_contpix, LinePixels, LineSnr, PatchLines, PixLine, SnrInput, MIN_CONT_PIX,
    MIN_LINE_SIGMA,
};

use super::emlines::guesses::GuessesAndBounds;
use super::emlines::optimize::{
    optimize_into, ContinuumPatch, FitTolerances, LineFit, OptimizeWorkspace, PatchInput,
};
use super::emlines::{
    build_linemodels, initial_guesses_and_bounds, Constraints, EmlineCamera, EmlineSpectrum,
    InitialKinematics, LineModel, LineTable, ParamTable, ParamType, IN_RANGE_PAD,
};
use super::resolution::Resolution;
use super::stats::{median, quantile, quantiles};
use super::KernelError;

/// Tuning of [`build_linemask`] (FastSpecFit's defaults via [`Default`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineMaskOptions {
    /// Initial σ / v per line class (3000 / 150 / 1000 km/s, v = 0).
    pub init: InitialKinematics,
    /// Broad-Balmer S/N needed to adopt the broad fit (1.5).
    pub minsnr_balmer_broad: f64,
    /// Non-strong lines below this S/N are dropped from the mask (3.5).
    pub minsnr_linemask: f64,
    /// Fit-in-patches iterations (2).
    pub niter: usize,
    /// Half-width of the line masks in σ (5).
    pub nsigma_mask: f64,
}

impl Default for LineMaskOptions {
    fn default() -> Self {
        Self {
            init: InitialKinematics::default(),
            minsnr_balmer_broad: 1.5,
            minsnr_linemask: 3.5,
            niter: 2,
            nsigma_mask: 5.0,
        }
    }
}

/// Result of [`build_linemask`] (FastSpecFit's `build_linemask` dictionary).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineMask {
    /// σ of broad UV/QSO lines [km/s] (INIT_SIGMA_UV).
    pub linesigma_broad: f64,
    /// σ of narrow lines (INIT_SIGMA_NARROW).
    pub linesigma_narrow: f64,
    /// σ of broad Balmer lines, ≥ the initial 1000 km/s (INIT_SIGMA_BALMER).
    pub linesigma_balmer_broad: f64,
    /// v of broad UV/QSO lines (INIT_VSHIFT_UV).
    pub linevshift_broad: f64,
    /// v of narrow lines (INIT_VSHIFT_NARROW).
    pub linevshift_narrow: f64,
    /// v of broad Balmer lines (INIT_VSHIFT_BALMER).
    pub linevshift_balmer_broad: f64,
    /// An in-range patch holds a strong broad Balmer line (INIT_BALMER_BROAD).
    pub balmerbroad: bool,
    /// (line index in the full table, ascending coadd pixels), FastSpecFit's
    /// key order (table order).
    pub coadd_linepix: Vec<(usize, Vec<usize>)>,
}

impl LineMask {
    /// The a-priori kinematics for the line fit's initial guesses.
    pub fn kinematics(&self) -> InitialKinematics {
        InitialKinematics {
            sigma_broad: self.linesigma_broad,
            sigma_narrow: self.linesigma_narrow,
            sigma_balmer_broad: self.linesigma_balmer_broad,
            vshift_broad: self.linevshift_broad,
            vshift_narrow: self.linevshift_narrow,
            vshift_balmer_broad: self.linevshift_balmer_broad,
        }
    }
}

/// Per-camera line mask and line pixels (SPEC §2.5 last paragraph): coadd
/// pixels of each line whose wavelength lies within [min, max] of the camera
/// are mapped to camera pixels by a left binary search of `camera_wave`
/// (ascending). Returns (mask per camera pixel, (line, camera pixels) for the
/// lines with at least one pixel on the camera).
///
/// # Errors
/// [`KernelError::Shape`] if a coadd pixel index is out of range.
#[allow(clippy::type_complexity)]
pub fn camera_linepix(
    coadd_wave: &[f64],
    coadd_linepix: &[(usize, Vec<usize>)],
    camera_wave: &[f64],
) -> Result<(Vec<bool>, Vec<(usize, Vec<usize>)>), KernelError> {
    let mut mask = vec![false; camera_wave.len()];
    let mut out = Vec::new();
    let lo = camera_wave.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = camera_wave
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    for (line, lp) in coadd_linepix {
        let mut idx = Vec::new();
        for &p in lp {
            let w = *coadd_wave.get(p).ok_or_else(|| {
                KernelError::Shape(format!("coadd pixel {p} beyond {}", coadd_wave.len()))
            })?;
            if w >= lo && w <= hi {
                idx.push(camera_wave.partition_point(|&x| x < w));
            }
        }
        if idx.is_empty() {
            continue;
        }
        for &i in &idx {
            if let Some(m) = mask.get_mut(i) {
                *m = true;
            }
        }
        out.push((*line, idx));
    }
    Ok((mask, out))
}

/// One continuum patch during the fit-in-patches (FastSpecFit's
/// `continuum_patches` row + `patchMap` entry).
#[derive(Debug, Clone)]
struct Patch {
    id: String,
    /// Positions of its lines among the in-range strong lines.
    lines_inr: Vec<usize>,
    /// Its lines in the strong table (in range or not).
    lines_all: Vec<usize>,
    pivot: f64,
    balmerbroad: bool,
    endpts: (usize, usize),
    slope: f64,
    intercept: f64,
    slope_bounds: (f64, f64),
    intercept_bounds: (f64, f64),
}

impl Patch {
    fn new(id: String, lines_inr: Vec<usize>, lines_all: Vec<usize>, pivot: f64, bb: bool) -> Self {
        Self {
            id,
            lines_inr,
            lines_all,
            pivot,
            balmerbroad: bb,
            endpts: (0, 0),
            slope: 0.0,
            intercept: 0.0,
            slope_bounds: (-1e2, 1e2),
            intercept_bounds: (-1e5, 1e5),
        }
    }
}

/// Summary of one fit-in-patches run.
struct PatchFit {
    /// (broad, narrow, broad Balmer) σ, v and max S/N.
    sigma: [f64; 3],
    vshift: [f64; 3],
    maxsnr: [f64; 3],
    /// flux − best-fit line model (continuum left in).
    residuals: Vec<f64>,
    /// Any remaining patch holds a strong broad Balmer line.
    balmerbroad: bool,
}

struct Ctx<'a> {
    pt: ParamTable,
    cons: &'a Constraints,
    spec: EmlineSpectrum,
    wave: &'a [f64],
    flux: &'a [f64],
    ivar: &'a [f64],
    z: f64,
    opts: &'a LineMaskOptions,
    /// In-range strong lines (strong-table indices).
    inr: Vec<usize>,
}

fn dom(e: String) -> KernelError {
    KernelError::Domain(e)
}

/// The emission-line mask of the camera-coadded spectrum (see the module
/// documentation). `table`/`cons` are the full line table and constraints,
/// `w` the deconvolved coadd resolution (npix = `wave.len()`; taken by value: the line
/// model keeps it).
///
/// # Errors
/// [`KernelError::Shape`] on inconsistent lengths or an empty spectrum;
/// [`KernelError::Domain`] for missing profiles / bounds in the constraints,
/// a line or patch without continuum pixels, or an optimiser failure.
#[allow(clippy::too_many_arguments)]
pub fn build_linemask(
    table: &LineTable,
    cons: &Constraints,
    wave: &[f64],
    flux: &[f64],
    ivar: &[f64],
    w: Resolution,
    z: f64,
    opts: &LineMaskOptions,
    ws: &mut OptimizeWorkspace,
) -> Result<LineMask, KernelError> {
    let n = wave.len();
    if n == 0 || flux.len() != n || ivar.len() != n || w.npix != n {
        return Err(KernelError::Shape(format!(
            "build_linemask: {n} wavelengths, {} fluxes, {} ivar, W of {}",
            flux.len(),
            ivar.len(),
            w.npix
        )));
    }
    let wmin = wave.iter().copied().fold(f64::INFINITY, f64::min);
    let wmax = wave.iter().copied().fold(f64::NEG_INFINITY, f64::max);

    let pt = ParamTable::new(table, cons, true);
    if pt.nlines() == 0 {
        return Err(KernelError::Domain("No strong lines in range!".into()));
    }
    let in_range = pt.lines_in_range(z, (wmin, wmax), IN_RANGE_PAD);
    let (lm_broad, lm_nobroad) = build_linemodels(&pt, cons, &in_range).map_err(dom)?;
    let inr: Vec<usize> = (0..pt.nlines()).filter(|&j| in_range[j]).collect();
    let cam = EmlineCamera::new(0, wave, w)?;
    let spec = EmlineSpectrum::new(pt.restwave.clone(), z, vec![cam])?;

    // patches of the in-range strong lines (sorted unique letters)
    let lines = &pt.lines.lines;
    let mut ids: Vec<&str> = inr.iter().map(|&j| lines[j].patch.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let patches: Vec<Patch> = ids
        .iter()
        .map(|&id| {
            let i: Vec<usize> = (0..inr.len())
                .filter(|&k| lines[inr[k]].patch == id)
                .collect();
            let j: Vec<usize> = (0..pt.nlines()).filter(|&k| lines[k].patch == id).collect();
            let zw = i.iter().map(|&k| pt.restwave[inr[k]] * (1.0 + z));
            let (lo, hi) = zw.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(x), b.max(x))
            });
            let bb = i
                .iter()
                .any(|&k| pt.is_balmer_broad_no_helium_strong[inr[k]]);
            Patch::new(id.to_owned(), i, j, 0.5 * (lo + hi), bb)
        })
        .collect();

    let ctx = Ctx {
        pt,
        cons,
        spec,
        wave,
        flux,
        ivar,
        z,
        opts,
        inr,
    };
    let nobroad = fit_patches(&ctx, patches.clone(), &lm_nobroad, false, ws)?;
    let balmerbroad = nobroad.balmerbroad;
    let adopted = if balmerbroad {
        let broad = fit_patches(&ctx, patches, &lm_broad, true, ws)?;
        if broad.maxsnr[2] > opts.minsnr_balmer_broad {
            broad
        } else {
            nobroad
        }
    } else {
        nobroad
    };

    // final mask on the full line list
    let full = ParamTable::new(table, cons, false);
    let in_full = full.lines_in_range(z, (wmin, wmax), IN_RANGE_PAD);
    let [sb, sn, mut sbb] = adopted.sigma;
    let [vb, vn, vbb] = adopted.vshift;
    let class = |j: usize, b: f64, nrw: f64, bb: f64| {
        if full.is_broad[j] {
            b
        } else if full.is_narrow[j] {
            nrw
        } else {
            bb
        }
    };
    let fl: Vec<usize> = (0..full.nlines()).filter(|&j| in_full[j]).collect();
    let mk = |sbb: f64| -> Vec<PixLine<'_>> {
        fl.iter()
            .map(|&j| PixLine {
                name: &full.lines.lines[j].name,
                restwave: full.restwave[j],
                sigma: class(j, sb, sn, sbb),
                vshift: class(j, vb, vn, vbb),
            })
            .collect()
    };
    let snr_in = Some(SnrInput {
        flux,
        residuals: &adopted.residuals,
    });
    let mut pix = linepix_and_contpix(wave, ivar, &mk(sbb), z, opts.nsigma_mask, None, snr_in)?;
    if sbb < opts.init.sigma_balmer_broad {
        sbb = opts.init.sigma_balmer_broad;
        pix = linepix_and_contpix(wave, ivar, &mk(sbb), z, opts.nsigma_mask, None, snr_in)?;
    }
    // [QUIRK] the S/N of the lines with pixels zipped with the isstrong flags
    // of all in-range lines
    let keys: Vec<usize> = (0..fl.len())
        .filter(|&k| pix.linepix[k].is_some())
        .collect();
    let mut drop = vec![false; fl.len()];
    for (&k, &j) in keys.iter().zip(&fl) {
        let strong = full.lines.lines[j].isstrong;
        let snr = pix.snr[k].map_or(0.0, |s| s.snr);
        if !strong && snr < opts.minsnr_linemask {
            drop[k] = true;
        }
    }
    let coadd_linepix = keys
        .iter()
        .filter(|&&k| !drop[k])
        .map(|&k| (fl[k], pix.linepix[k].take().expect("key has pixels")))
        .collect();
    Ok(LineMask {
        linesigma_broad: sb,
        linesigma_narrow: sn,
        linesigma_balmer_broad: sbb,
        linevshift_broad: vb,
        linevshift_narrow: vn,
        linevshift_balmer_broad: vbb,
        balmerbroad,
        coadd_linepix,
    })
}

/// FastSpecFit's `fit_patches`: iterated patch fits of one line model and
/// the per-class summary.
fn fit_patches(
    ctx: &Ctx<'_>,
    mut patches: Vec<Patch>,
    model: &LineModel,
    test_broad: bool,
    ws: &mut OptimizeWorkspace,
) -> Result<PatchFit, KernelError> {
    let pt = &ctx.pt;
    let nl = pt.nlines();
    let init = &ctx.opts.init;
    let n = ctx.wave.len();
    let mut sig = vec![0.0; nl];
    let mut vsh = vec![0.0; nl];
    for j in 0..nl {
        if pt.is_broad[j] {
            (sig[j], vsh[j]) = (init.sigma_broad, init.vshift_broad);
        }
        if pt.is_narrow[j] {
            (sig[j], vsh[j]) = (init.sigma_narrow, init.vshift_narrow);
        }
        if test_broad && pt.is_balmer_broad[j] {
            (sig[j], vsh[j]) = (init.sigma_balmer_broad, init.vshift_balmer_broad);
        }
    }
    let mut guesses: Option<GuessesAndBounds> = None;
    let mut fit = LineFit::default();
    let mut weights = vec![0.0; n];
    let mut selected = vec![false; n];
    let mut scratch = Vec::new();
    let mut vals = Vec::new();
    for iter in 0..ctx.opts.niter {
        let plines: Vec<PixLine<'_>> = ctx
            .inr
            .iter()
            .map(|&j| PixLine {
                name: &pt.lines.lines[j].name,
                restwave: pt.restwave[j],
                sigma: sig[j],
                vshift: vsh[j],
            })
            .collect();
        let pl: Vec<PatchLines> = patches
            .iter()
            .map(|p| PatchLines {
                id: p.id.clone(),
                lines: p.lines_inr.clone(),
            })
            .collect();
        let pix = linepix_and_contpix(
            ctx.wave,
            ctx.ivar,
            &plines,
            ctx.z,
            ctx.opts.nsigma_mask,
            Some(&pl),
            None,
        )?;
        patches.retain(|p| !pix.dropped.contains(&p.id));
        for (new_id, olds) in &pix.merged {
            let mut merged = Patch::new(new_id.clone(), Vec::new(), Vec::new(), 0.0, false);
            let (mut psum, mut cnt) = (0.0, 0);
            for p in patches.iter().filter(|p| olds.contains(&p.id)) {
                psum += p.pivot;
                cnt += 1;
                merged.balmerbroad |= p.balmerbroad;
            }
            merged.pivot = psum / cnt.max(1) as f64;
            for old in olds {
                if let Some(p) = patches.iter().find(|p| &p.id == old) {
                    merged.lines_inr.extend_from_slice(&p.lines_inr);
                    merged.lines_all.extend_from_slice(&p.lines_all);
                }
            }
            patches.retain(|p| !olds.contains(&p.id));
            patches.push(merged);
        }
        if patches.len() != pix.patch_contpix.len()
            || patches
                .iter()
                .zip(&pix.patch_contpix)
                .any(|(p, (id, _))| &p.id != id)
        {
            return Err(KernelError::Domain(
                "line masker: patch bookkeeping out of step".into(),
            ));
        }
        selected.iter_mut().for_each(|s| *s = false);
        for (p, (_, cp)) in patches.iter_mut().zip(&pix.patch_contpix) {
            p.endpts = (cp[0], cp[cp.len() - 1]);
            vals.clear();
            vals.extend(cp.iter().map(|&i| ctx.flux[i]));
            let mut q = [0.0; 3];
            quantiles(&vals, &[0.05, 0.5, 0.95], &mut q, &mut scratch)?;
            if q[0] < q[1] && q[0] < q[2] {
                p.intercept = q[1];
                p.intercept_bounds = (q[0], q[2]);
            }
            cp.iter().for_each(|&i| selected[i] = true);
        }
        for lp in pix.linepix.iter().flatten() {
            lp.iter().for_each(|&i| selected[i] = true);
        }
        for ((w, &iv), &sel) in weights.iter_mut().zip(ctx.ivar).zip(&selected) {
            *w = (iv * if sel { 1.0 } else { 0.0 }).sqrt();
        }
        if guesses.is_none() {
            guesses = Some(masker_guesses(ctx, &pix, ctx.flux, init)?);
        }
        let (g_init, g_bounds) = guesses.as_ref().expect("set above");
        let cps: Vec<ContinuumPatch> = patches
            .iter()
            .map(|p| ContinuumPatch {
                start: p.endpts.0,
                end: p.endpts.1,
                pivotwave: p.pivot,
                slope: p.slope,
                intercept: p.intercept,
                slope_bounds: p.slope_bounds,
                intercept_bounds: p.intercept_bounds,
            })
            .collect();
        optimize_into(
            &ctx.spec,
            pt,
            model,
            g_init,
            g_bounds,
            ctx.flux,
            &weights,
            Some(PatchInput {
                wave: ctx.wave,
                patches: &cps,
            }),
            FitTolerances::LOOSE,
            ws,
            &mut fit,
        )?;
        for (k, p) in patches.iter_mut().enumerate() {
            p.slope = fit.slopes[k];
            p.intercept = fit.intercepts[k];
        }
        if iter + 1 < ctx.opts.niter {
            let bounds = guesses.take().expect("set above").1;
            for j in 0..nl {
                vsh[j] = fit.values[pt.param_index(j, ParamType::Vshift)];
                sig[j] = fit.values[pt.param_index(j, ParamType::Sigma)];
            }
            guesses = Some((fit.values.clone(), bounds));
        }
    }

    // amplitudes (doublet ratios → amplitudes), residuals, per-patch noise
    let mut params = fit.values.clone();
    for (&t, &s) in pt.doublet_idx.iter().zip(&pt.doublet_src) {
        params[t] = fit.values[t] * fit.values[s];
    }
    let residuals: Vec<f64> = ctx
        .flux
        .iter()
        .zip(&fit.model)
        .map(|(f, m)| f - m)
        .collect();
    let mut snr = vec![0.0; nl];
    for p in &patches {
        let (s, e) = p.endpts;
        if e <= s {
            continue;
        }
        let mut q = [0.0; 2];
        quantiles(&residuals[s..e], &[0.25, 0.75], &mut q, &mut scratch)?;
        let noise = (q[1] - q[0]).abs() / 1.349;
        if noise != 0.0 {
            for &j in &p.lines_all {
                snr[j] = params[j] / noise;
            }
        }
    }

    // per-class summary over lines with a free σ
    let ifree: Vec<bool> = (0..nl)
        .map(|j| model.free[pt.param_index(j, ParamType::Sigma)])
        .collect();
    let minsnr = 1.5;
    let pick = |class: &[bool], use_max_sigma: bool| -> Option<(f64, f64, f64)> {
        let sel = |strong: bool| -> Vec<usize> {
            (0..nl)
                .filter(|&j| class[j] && ifree[j] && (!strong || snr[j] > minsnr))
                .collect()
        };
        let mut idx = sel(true);
        if idx.is_empty() {
            idx = sel(false);
        }
        let first = *idx.first()?;
        let sigma = if use_max_sigma {
            idx.iter()
                .map(|&j| params[2 * nl + j])
                .fold(f64::NEG_INFINITY, f64::max)
        } else {
            params[2 * nl + first]
        };
        let maxsnr = idx
            .iter()
            .map(|&j| snr[j])
            .fold(f64::NEG_INFINITY, f64::max);
        Some((sigma, params[nl + first], maxsnr))
    };
    let (bs, bv, bsnr) =
        pick(&pt.is_broad, false).unwrap_or((init.sigma_broad, init.vshift_broad, 0.0));
    let (ns, nv, nsnr) =
        pick(&pt.is_narrow, true).unwrap_or((init.sigma_narrow, init.vshift_narrow, 0.0));
    let (bbs, bbv, bbsnr) =
        pick(&pt.is_balmer_broad, false).unwrap_or((0.0, init.vshift_balmer_broad, 0.0));
    Ok(PatchFit {
        sigma: [bs, ns, bbs],
        vshift: [bv, nv, bbv],
        maxsnr: [bsnr, nsnr, bbsnr],
        residuals,
        balmerbroad: patches.iter().any(|p| p.balmerbroad),
    })
}

/// The first-iteration guesses of the patch fit: FastSpecFit's
/// `_initial_guesses_and_bounds` with `subtract_local_continuum=True`
/// (local = median of the line's continuum pixels; amplitude = max over
/// ±3 pixels of the line centre, or the 97.5% quantile for ≤ 5 pixels).
fn masker_guesses(
    ctx: &Ctx<'_>,
    pix: &LinePixels,
    flux: &[f64],
    init: &InitialKinematics,
) -> Result<GuessesAndBounds, KernelError> {
    let pt = &ctx.pt;
    // FastSpecFit passes the initial σ but v = 0 here
    let kin = InitialKinematics {
        vshift_broad: 0.0,
        vshift_narrow: 0.0,
        vshift_balmer_broad: 0.0,
        ..*init
    };
    let (mut iv, mut bounds) =
        initial_guesses_and_bounds(pt, ctx.cons, &[], &[], &kin).map_err(dom)?;
    let mut scratch = Vec::new();
    let mut vals = Vec::new();
    for (k, lp) in pix.linepix.iter().enumerate() {
        let Some(lp) = lp else { continue };
        let line = ctx.inr[k];
        let cp = pix.contpix[k].as_ref().ok_or_else(|| {
            dom(format!(
                "no continuum pixels for {}",
                pt.lines.lines[line].name
            ))
        })?;
        vals.clear();
        vals.extend(cp.iter().map(|&i| flux[i]));
        let local = median(&vals, &mut scratch)?;
        let np = lp.len();
        let amp = if np > 5 {
            let mid = lp[np / 2];
            let (lo, hi) = (mid.saturating_sub(3), (mid + 3).min(lp[np - 1]));
            let win = flux.get(lo..hi).filter(|w| !w.is_empty()).ok_or_else(|| {
                dom(format!(
                    "empty amplitude window for {}",
                    pt.lines.lines[line].name
                ))
            })?;
            win.iter().copied().fold(f64::NEG_INFINITY, f64::max) - local
        } else {
            vals.clear();
            vals.extend(lp.iter().map(|&i| flux[i]));
            quantile(&vals, 0.975, &mut scratch)? - local
        };
        let mx = 5.0
            * (lp
                .iter()
                .map(|&i| flux[i])
                .fold(f64::NEG_INFINITY, f64::max)
                - local);
        // doublet targets are overwritten by the YAML ratios afterwards
        if mx >= 0.0 && amp >= 0.0 && mx > amp && pt.doublet_src_of_line[line] < 0 {
            iv[line] = amp;
            bounds[line] = (0.0, mx);
        }
    }
    Ok((iv, bounds))
}
