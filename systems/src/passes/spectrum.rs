//! `prepare_spectra`: fastspec's spectrum preparation (SPEC §2.2 camera coaddition, §2.3
//! per-camera preprocessing, §2.4 resolution matrices, §2.6 synthesized photometry).
//!
//! Thin plumbing from the file-level [`SpectraColumns`] to the kernels in
//! [`crate::kernels::prepare`]; fills each target's [`PreparedSpectrum`].

use std::collections::HashMap;
use std::sync::Arc;

use bevy_ecs::prelude::*;
use fsf_components::spectrum::{CameraSpectrum, SynthPhotometry};
use fsf_components::{
    FitOptions, FitStatus, MilkyWayDust, ObservedPhotometry, PreparedSpectrum, Program,
    SpectraColumns, Target,
};

use super::{mw_dust, FitSystems};
use crate::kernels::filters::{load_filter, FilterCurve};
use crate::kernels::mwdust::{Fitzpatrick99, RV_DEFAULT};
use crate::kernels::prepare::{
    coadd_cameras, prepare_camera, synth_nanomaggies, CameraInput, CameraOutcome, CoaddLayout,
};
use crate::kernels::resolution::Resolution;
use crate::kernels::synthphot::SynthScratch;
use crate::kernels::KernelError;

/// Register this module's systems in the schedule (Prepare phase, after `correct_mw_dust`).
pub fn register(schedule: &mut Schedule) {
    schedule.add_systems(
        prepare_spectra
            .in_set(FitSystems::Prepare)
            .after(mw_dust::correct_mw_dust),
    );
}

/// The synth filter curves per photometric system, loaded once per run (a failed load is
/// kept as its message and reported per target).
#[derive(Default)]
pub struct SynthFilterCache {
    source: Option<SynthPhotometry>,
    curves: HashMap<String, Result<Vec<FilterCurve>, String>>,
}

impl SynthFilterCache {
    fn refresh(&mut self, synth: &SynthPhotometry) {
        if self.source.as_ref() == Some(synth) {
            return;
        }
        self.curves = load_synth_curves(synth);
        self.source = Some(synth.clone());
    }
}

/// The synth filter curves of every photometric system of `synth` (a failed load is kept as
/// its message).
pub fn load_synth_curves(
    synth: &SynthPhotometry,
) -> HashMap<String, Result<Vec<FilterCurve>, String>> {
    synth
        .filters
        .iter()
        .map(|(photsys, names)| {
            let curves = names
                .iter()
                .map(|n| load_filter(n).map_err(|e| e.to_string()))
                .collect();
            (photsys.clone(), curves)
        })
        .collect()
}

/// The per-file inputs shared by every target: coadd layout and shared wavelength grids.
#[derive(Debug, Clone)]
pub struct FileGeometry {
    /// Camera-coaddition layout of the file's cameras.
    pub layout: CoaddLayout,
    /// The coadd grid, shared by every target's [`PreparedSpectrum`].
    pub coadd_wave: Arc<Vec<f64>>,
    /// Each camera's grid (file order), shared likewise.
    pub camera_waves: Vec<Arc<Vec<f64>>>,
}

/// Build the [`FileGeometry`] of a file's cameras.
///
/// # Errors
/// As [`CoaddLayout::new`].
pub fn file_geometry(sp: &SpectraColumns) -> Result<FileGeometry, KernelError> {
    let waves: Vec<&[f64]> = sp.cameras.iter().map(|c| c.wave_ang.as_slice()).collect();
    let layout = CoaddLayout::new(&waves)?;
    Ok(FileGeometry {
        coadd_wave: Arc::new(layout.wave.clone()),
        camera_waves: sp
            .cameras
            .iter()
            .map(|c| Arc::new(c.wave_ang.clone()))
            .collect(),
        layout,
    })
}

/// Per-target kernel: coadd, preprocess every camera, synthesize photometry.
///
/// `synth_filters` is `None` when no synth photometry is configured (the field stays empty).
///
/// # Errors
/// A malformed row, a failed kernel, no surviving camera, or an unknown synth photsys; the
/// message names the step.
pub fn prepare_target(
    sp: &SpectraColumns,
    geo: &FileGeometry,
    row: usize,
    ebv: f64,
    floor: f64,
    synth_filters: Option<&[FilterCurve]>,
    mut on_drop: impl FnMut(&str, &str),
) -> Result<PreparedSpectrum, String> {
    let ncam = sp.cameras.len();
    for c in &sp.cameras {
        let need = (row + 1) * c.npix;
        if c.flux.len() < need
            || c.ivar.len() < need
            || c.mask.len() < need
            || c.resolution.len() < need * c.ndiag
        {
            return Err(format!("camera {}: no data for row {row}", c.name));
        }
    }
    let inputs: Vec<CameraInput<'_>> = sp
        .cameras
        .iter()
        .map(|c| CameraInput {
            flux: c.flux_row(row),
            ivar: c.ivar_row(row),
            mask: c.mask_row(row),
            ndiag: c.ndiag,
            res: c.resolution_row(row),
        })
        .collect();
    let coadd = coadd_cameras(&geo.layout, &inputs).map_err(|e| format!("coadd_cameras: {e}"))?;
    let npix = coadd.flux.len();
    // the Resolution takes the coadded R (no copy) and hands it back below
    let coadd_r = Resolution::new(coadd.ndiag, npix, coadd.res)
        .map_err(|e| format!("coadd resolution: {e}"))?;
    let coadd_res_deconv = coadd_r
        .deconvolved()
        .map_err(|e| format!("coadd resolution: {e}"))?
        .data;

    let f99 = Fitzpatrick99::new(RV_DEFAULT);
    let mut out = PreparedSpectrum {
        snr: vec![0.0; ncam],
        ..Default::default()
    };
    let mut start = 0;
    for (icam, (c, inp)) in sp.cameras.iter().zip(&inputs).enumerate() {
        let outcome = prepare_camera(&c.wave_ang, inp.flux, inp.ivar, inp.mask, ebv, floor, &f99)
            .map_err(|e| format!("camera {}: {e}", c.name))?;
        match outcome {
            CameraOutcome::Dropped(why) => on_drop(&c.name, why),
            CameraOutcome::Kept(p) => {
                // SNR at the file camera index (FastSpecFit's `snr[icam]`, SPEC §2.3 step 4)
                out.snr[icam] = p.snr;
                let r = Resolution::new(c.ndiag, c.npix, inp.res.to_vec())
                    .map_err(|e| format!("camera {} resolution: {e}", c.name))?;
                let res_deconv = r
                    .deconvolved()
                    .map_err(|e| format!("camera {} resolution: {e}", c.name))?
                    .data;
                let res = r.data;
                out.camerapix.push((start, start + c.npix));
                start += c.npix;
                out.cameras.push(CameraSpectrum {
                    name: c.name.clone(),
                    file_index: icam,
                    wave_ang: geo.camera_waves[icam].clone(),
                    flux: p.flux,
                    ivar: p.ivar,
                    mask: p.mask,
                    ndiag: c.ndiag,
                    res,
                    res_deconv,
                });
            }
        }
    }
    if out.cameras.is_empty() {
        return Err("no good data: every camera is fully masked".into());
    }
    if let Some(filters) = synth_filters {
        let mut synth = vec![0.0; filters.len()];
        let (mut scaled, mut scratch) = (Vec::with_capacity(npix), SynthScratch::new());
        synth_nanomaggies(
            filters,
            &coadd.flux,
            &geo.coadd_wave,
            &mut synth,
            &mut scaled,
            &mut scratch,
        )
        .map_err(|e| format!("synthesized photometry: {e}"))?;
        out.flux_synth_nmgy = synth;
    }
    out.coadd_wave = geo.coadd_wave.clone();
    out.coadd_flux = coadd.flux;
    out.coadd_ivar = coadd.ivar;
    out.coadd_ndiag = coadd.ndiag;
    out.coadd_res = coadd_r.data;
    out.coadd_res_deconv = coadd_res_deconv;
    Ok(out)
}

/// System: prepare every target's spectra (fastspec only).
///
/// Reads `Target`, `MilkyWayDust` (E(B−V)), `ObservedPhotometry` (photsys), resources
/// `FitOptions`, `SpectraColumns`, optional `SynthPhotometry`; writes `PreparedSpectrum` or
/// flags `FitStatus::FLAG_SPECTRUM` with a log line naming the TARGETID. Targets whose dust
/// lookup failed are skipped (already flagged).
pub fn prepare_spectra(
    opts: Res<FitOptions>,
    spectra: Option<Res<SpectraColumns>>,
    synth: Option<Res<SynthPhotometry>>,
    mut cache: Local<SynthFilterCache>,
    mut q: Query<(
        &Target,
        &MilkyWayDust,
        &ObservedPhotometry,
        &mut PreparedSpectrum,
        &mut FitStatus,
    )>,
) {
    if opts.program != Program::Fastspec {
        return;
    }
    let _span = tracing::info_span!("prepare_spectra").entered();
    let Some(sp) = spectra else {
        q.iter_mut().for_each(|(t, _, _, _, mut status)| {
            tracing::warn!(
                targetid = t.targetid,
                "no spectra loaded for a fastspec run"
            );
            status.flag(FitStatus::FLAG_SPECTRUM, "no spectra loaded");
        });
        return;
    };
    if let Some(s) = synth.as_deref() {
        cache.refresh(s);
    }
    let geo = match file_geometry(&sp) {
        Ok(g) => g,
        Err(e) => {
            q.iter_mut().for_each(|(t, _, _, _, mut status)| {
                tracing::warn!(targetid = t.targetid, "camera coaddition: {e}");
                status.flag(FitStatus::FLAG_SPECTRUM, format!("camera coaddition: {e}"));
            });
            return;
        }
    };
    let cache = &*cache;
    let has_synth = synth.is_some();
    let floor = opts.uncertainty_floor;
    q.par_iter_mut()
        .batching_strategy(super::PER_TARGET)
        .for_each(|(target, dust, phot, mut prep, mut status)| {
            if status.flags & FitStatus::FLAG_MW_DUST != 0 {
                return;
            }
            let tid = target.targetid;
            let filters: Result<Option<&[FilterCurve]>, String> = if has_synth {
                match cache.curves.get(&phot.photsys) {
                    Some(Ok(c)) => Ok(Some(c.as_slice())),
                    Some(Err(e)) => Err(format!("synth filters: {e}")),
                    None => Err(format!("no synth filters for PHOTSYS '{}'", phot.photsys)),
                }
            } else {
                Ok(None)
            };
            let res = filters.and_then(|f| {
                prepare_target(&sp, &geo, target.row, dust.ebv, floor, f, |cam, why| {
                    tracing::warn!(targetid = tid, "dropping camera {cam}: {why}")
                })
            });
            match res {
                Ok(p) => *prep = p,
                Err(reason) => {
                    tracing::warn!(targetid = tid, "{reason}");
                    *prep = PreparedSpectrum::default();
                    status.flag(FitStatus::FLAG_SPECTRUM, reason);
                }
            }
        });
}
