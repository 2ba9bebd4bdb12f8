//! FastSpecFit's stacked-spectra input (`stackfit`, SPEC §7.2, §8.2) and the driver shared by
//! the two "simple" inputs (stacks and [generic spectra](super::generic)).
//!
//! # Stack file format (FastSpecFit's `read_stacked`)
//!
//! * `WAVE`: float64 image `[npix]`, Å (vacuum);
//! * `FLUX`, `IVAR`: images `[nobj, npix]` (any float type, read as float64);
//! * `RES` (optional): image `[nobj, ndiag, npix]` in DESI's DIA storage; absent, every stack
//!   gets a one-diagonal matrix of ones (FastSpecFit's "identity" hack);
//! * `STACKINFO`: table with `STACKID` and `Z` per stack (other columns ignored).
//!
//! # Rules reproduced
//!
//! * selection: `--targetids` picks STACKIDs **in file order** (not in the order given),
//!   then `--firsttarget`/`--ntargets` apply; no redshift or quality cuts; `--input-redshifts`
//!   is ignored (as FastSpecFit, which never passes it to the stack reader); duplicated
//!   STACKIDs are an error; files are read in sorted order with duplicates removed;
//! * Z ≤ 0 becomes 1e-8 (METADATA shows the replaced value);
//! * no photometry (all fluxes and ivars zero, `bands_to_fit` all false: `--ignore-photometry`
//!   is forced), the bundled copy of FastSpecFit's `data/stacked-phot.yaml` unless
//!   `--fphotofile` is given, PHOTSYS `''`;
//! * no Milky Way dust correction (E(B−V) = 0 through [`fsf_components::InputEbv`]; no SFD map
//!   is read) and no uncertainty floor; FLUXNORM = 1 ([`fsf_components::FitOptions::fluxnorm`]);
//! * one camera named "brz" (FASTSPEC `SNR_BRZ`, `SMOOTHCORR_BRZ`); the camera coadd is the
//!   spectrum itself;
//! * without `RES` the matrix has one diagonal and the deconvolved W = R / G(0) = R / 0.6383
//!   (SPEC §2.4 [QUIRK], reproduced by the shared resolution kernel);
//! * PRIMARY `SPECPROD = COADDTYP = 'stacked'`; METADATA = `STACKID`, `SURVEY`, `PROGRAM`
//!   (both 'stacked'), `Z`, `PHOTSYS` ([`simple_metadata`]).
//!
//! [QUIRK] reproduced: FastSpecFit's coadd arrays of a stack *are* the camera arrays
//! (the same NumPy objects), so masking the three first and last pixels of the camera also
//! zeroes the coadd ivar there. The reader zeroes those six ivars up front, which gives the
//! same camera and coadd arrays through the shared preparation pass.
//!
//! DEVIATIONS (documented): the uncertainty-floor step runs with a zero floor, so the
//! camera ivar is 1/(1/ivar) (≤ 1 ulp from FastSpecFit's untouched ivar) and pixels with
//! 0 < ivar ≤ 1e-8 are dropped (FastSpecFit keeps them with negligible weight);
//! non-finite flux/ivar pixels are masked (bit [`MASK_BAD_INPUT`]) instead of
//! stopping the run; STACKID is written as int32 (FastSpecFit's stack files store `J`) when
//! every value fits, else int64 (FastSpecFit copies the input column type).

use std::path::{Path, PathBuf};
use std::time::Instant;

use fsf_components::{CameraColumns, SpectraColumns};

use super::desi::{CoaddHeader, FileTargets, SelectOptions, StrColumn};
use super::fits::{ColData, FitsReader, OutColumn};
use super::photometry::{GatheredPhotometry, PhotometryConfig, PhotometrySource};
use super::spectra::MASK_BAD_INPUT;
use super::IoError;
use crate::cli::FitArgs;
use crate::metadata::FileMeta;
use crate::run::{
    validate, write_output, Engine, InputKind, LoadedFile, Mode, RunContext, RunSummary,
};

/// FastSpecFit's `data/stacked-phot.yaml` (bundled copy), the default `stackfit` and
/// `fitspec` photometry configuration.
pub const STACKED_PHOTOMETRY_YAML: &str = include_str!("../../tests/data/config/stacked-phot.yaml");

/// Coadd type / specprod written for stacks.
pub const STACKED: &str = "stacked";

/// Camera name of a stack or generic spectrum ("brz", as FastSpecFit names a stack's camera).
pub const SIMPLE_CAMERA: &str = "BRZ";

/// Pixels masked at each end of a camera by the preparation (FastSpecFit's `mask[:3]`).
const EDGE_PIX: usize = 3;

/// The selected stacks of one stack file.
#[derive(Debug, Clone)]
pub struct StackFile {
    /// The file.
    pub path: PathBuf,
    /// Row of each selected stack in the file (STACKINFO / FLUX row).
    pub rows: Vec<usize>,
    /// Number of stacks in the file.
    pub nrows_file: usize,
    /// STACKID of each selected stack.
    pub stackid: Vec<i64>,
    /// Z of each selected stack as stored (≤ 0 is replaced by 1e-8 when fitting).
    pub z: Vec<f64>,
    /// The spectra of the selected stacks: one camera "BRZ" (see the module docs for the
    /// edge-ivar quirk applied here).
    pub spectra: SpectraColumns,
    /// Pixels made unusable (non-finite flux/ivar or negative ivar), per selected stack.
    pub bad_pixels: Vec<usize>,
}

/// FastSpecFit's stack selection: `targetids` in file order, then `firsttarget`/`ntargets`.
fn select_rows(stackids: &[i64], opts: &SelectOptions) -> Vec<usize> {
    let mut idx: Vec<usize> = match &opts.targetids {
        None => (0..stackids.len()).collect(),
        Some(want) => (0..stackids.len())
            .filter(|&i| want.contains(&stackids[i]))
            .collect(),
    };
    let n = opts.ntargets.unwrap_or(idx.len());
    if n > idx.len() {
        tracing::warn!(
            ntargets = n,
            available = idx.len(),
            "--ntargets exceeds the number of stacks; reading all of them"
        );
    }
    let start = opts.firsttarget.min(idx.len());
    let end = start.saturating_add(n).min(idx.len());
    idx.drain(end..);
    idx.drain(..start);
    idx
}

/// Mask non-finite or negative-ivar pixels (flux 0, ivar 0, [`MASK_BAD_INPUT`]) and zero the
/// ivar of the `EDGE_PIX` first and last pixels (the coadd quirk); returns the bad count.
fn clean_row(flux: &mut [f64], ivar: &mut [f64], mask: &mut [u32]) -> usize {
    let n = flux.len();
    let mut bad = 0;
    for i in 0..n {
        if !flux[i].is_finite() || !ivar[i].is_finite() || ivar[i] < 0.0 {
            flux[i] = 0.0;
            ivar[i] = 0.0;
            mask[i] |= MASK_BAD_INPUT;
            bad += 1;
        }
        if i < EDGE_PIX || i + EDGE_PIX >= n {
            ivar[i] = 0.0;
        }
    }
    bad
}

/// Read the stacks of `path` selected by `opts` (see the module docs for the rules).
///
/// Returns `Ok(None)` when no stack is selected.
///
/// # Errors
/// Missing HDUs or columns, arrays whose shapes disagree, duplicated STACKIDs.
pub fn read_stack(path: &Path, opts: &SelectOptions) -> Result<Option<StackFile>, IoError> {
    let mut f = FitsReader::open(path)?;
    let all_ids: Vec<i64> = f.col("STACKINFO", "STACKID")?;
    let nrows_file = all_ids.len();
    let rows = select_rows(&all_ids, opts);
    if rows.is_empty() {
        tracing::info!(file = %path.display(), "no requested stacks in this file");
        return Ok(None);
    }
    let stackid: Vec<i64> = rows.iter().map(|&r| all_ids[r]).collect();
    let mut sorted = stackid.clone();
    sorted.sort_unstable();
    let dups: Vec<String> = sorted
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0].to_string())
        .collect();
    if !dups.is_empty() {
        return Err(IoError::input(
            path,
            format!("duplicate STACKIDs in STACKINFO: {}", dups.join(" ")),
        ));
    }
    let all_z: Vec<f64> = f.col("STACKINFO", "Z")?;
    let z: Vec<f64> = rows.iter().map(|&r| all_z[r]).collect();

    let (wave, s) = f.image_f64("WAVE")?;
    let npix = wave.len();
    if s.len() != 1 || npix == 0 {
        return Err(IoError::input(
            path,
            format!("WAVE has shape {s:?}, expected [npix]"),
        ));
    }
    let read2d = |f: &mut FitsReader, name: &str| -> Result<Vec<f64>, IoError> {
        let (all, s) = f.image_f64(name)?;
        // a single stack may be stored as a 1-d image
        let ok = s == [nrows_file, npix] || (nrows_file == 1 && s == [npix]);
        if !ok {
            return Err(IoError::input(
                path,
                format!("{name} has shape {s:?}, expected [{nrows_file}, {npix}]"),
            ));
        }
        let mut out = Vec::with_capacity(rows.len() * npix);
        for &r in &rows {
            out.extend_from_slice(&all[r * npix..(r + 1) * npix]);
        }
        Ok(out)
    };
    let mut flux = read2d(&mut f, "FLUX")?;
    let mut ivar = read2d(&mut f, "IVAR")?;
    let (ndiag, resolution) = if f.has_hdu("RES") {
        let (all, s) = f.image_f64("RES")?;
        if s.len() != 3 || s[0] != nrows_file || s[2] != npix || s[1] % 2 == 0 {
            return Err(IoError::input(
                path,
                format!("RES has shape {s:?}, expected [{nrows_file}, ndiag (odd), {npix}]"),
            ));
        }
        let w = s[1] * npix;
        let mut out = Vec::with_capacity(rows.len() * w);
        for &r in &rows {
            out.extend_from_slice(&all[r * w..(r + 1) * w]);
        }
        if out.iter().any(|v| !v.is_finite()) {
            return Err(IoError::input(path, "RES has non-finite entries"));
        }
        (s[1], out)
    } else {
        tracing::warn!(file = %path.display(), "no resolution matrix (RES); using a one-diagonal identity");
        (1, vec![1.0; rows.len() * npix])
    };
    let mut mask = vec![0u32; rows.len() * npix];
    let mut bad_pixels = Vec::with_capacity(rows.len());
    for k in 0..rows.len() {
        let r = k * npix..(k + 1) * npix;
        bad_pixels.push(clean_row(
            &mut flux[r.clone()],
            &mut ivar[r.clone()],
            &mut mask[r],
        ));
    }
    Ok(Some(StackFile {
        path: path.to_path_buf(),
        rows,
        nrows_file,
        stackid,
        z,
        spectra: SpectraColumns {
            cameras: vec![CameraColumns {
                name: SIMPLE_CAMERA.into(),
                wave_ang: wave,
                npix,
                flux,
                ivar,
                mask,
                ndiag,
                resolution,
            }],
        },
        bad_pixels,
    }))
}

/// The DESI-shaped target table of a simple input (stack or generic spectrum): identifiers,
/// redshifts and header facts; every Redrock/fibermap column is empty or zero.
pub fn simple_targets(
    path: &Path,
    kind: InputKind,
    rows: Vec<usize>,
    nrows_file: usize,
    ids: Vec<i64>,
    z: Vec<f64>,
) -> FileTargets {
    let n = ids.len();
    let (coadd_type, specprod, survey) = match kind {
        InputKind::Stack => (STACKED, STACKED, STACKED),
        _ => ("generic", "", ""),
    };
    let empty = || StrColumn {
        values: vec![String::new(); n],
        width: 1,
    };
    FileTargets {
        redrock_path: path.to_path_buf(),
        coadd_path: path.to_path_buf(),
        header: CoaddHeader {
            coadd_type: coadd_type.into(),
            specprod: specprod.into(),
            survey: survey.into(),
            program: survey.into(),
            has_survey: kind == InputKind::Stack,
            healpix: None,
            uniqpix: None,
            tileid: None,
            petal: None,
            night: None,
            expid: None,
        },
        rows,
        nrows_file,
        targetid: ids,
        z_rr: z.clone(),
        z,
        zwarn: vec![0; n],
        deltachi2: vec![0.0; n],
        spectype: empty(),
        subtype: empty(),
        zwarn_rr: vec![0; n],
        tsnr2: std::array::from_fn(|_| vec![0.0; n]),
        target_ra: vec![0.0; n],
        target_dec: vec![0.0; n],
        coadd_fiberstatus: vec![0; n],
        photsys: empty(),
        release: vec![0; n],
        brickname: vec![String::new(); n],
        brickid: vec![0; n],
        brick_objid: vec![0; n],
        fibermap_flux: vec![],
        targeting: vec![],
        fiber: None,
        tileid_list: None,
    }
}

/// No photometry: zero fluxes and ivars in every configured band, PHOTSYS `''`.
pub fn no_photometry(cfg: &PhotometryConfig, ra: Vec<f64>, dec: Vec<f64>) -> GatheredPhotometry {
    let n = ra.len();
    let nb = cfg.bands.len();
    let nf = cfg.fiber_bands.as_ref().map_or(0, Vec::len);
    GatheredPhotometry {
        ra,
        dec,
        photsys: vec![String::new(); n],
        ls_id: None,
        flux: vec![vec![0.0; n]; nb],
        flux_ivar: vec![vec![0.0; n]; nb],
        fiberflux: vec![vec![0.0; n]; nf],
        fibertotflux: vec![vec![0.0; n]; nf],
        keep: vec![true; n],
    }
}

/// Read one stack file into the structures the DESI path produces (fastspec mode).
///
/// # Errors
/// As [`read_stack`].
pub fn load_stack(path: &Path, ctx: &RunContext) -> Result<Option<LoadedFile>, IoError> {
    let _span = tracing::info_span!("load").entered();
    let Some(st) = read_stack(path, &ctx.select)? else {
        return Ok(None);
    };
    for (k, &b) in st.bad_pixels.iter().enumerate() {
        if b > 0 {
            tracing::warn!(
                stackid = st.stackid[k],
                npix = b,
                "non-finite or negative-ivar pixels masked (FastSpecFit would stop the file)"
            );
        }
    }
    let n = st.stackid.len();
    let targets = simple_targets(
        path,
        InputKind::Stack,
        st.rows,
        st.nrows_file,
        st.stackid,
        st.z,
    );
    let phot = no_photometry(&ctx.phot_cfg, vec![0.0; n], vec![0.0; n]);
    Ok(Some(LoadedFile {
        targets,
        phot,
        kept: (0..n).collect(),
        spectra: Some(st.spectra),
        input_ebv: Some(vec![0.0; n]),
    }))
}

/// METADATA of a stack or generic run (`None` for DESI inputs, which
/// [`crate::metadata::build_metadata`] handles).
///
/// Stacks: `STACKID`, `SURVEY`, `PROGRAM`, `Z`, `PHOTSYS` (FastSpecFit's
/// `create_output_meta(fitstack=True)`). Generic spectra: `TARGETID`, `RA`, `DEC` (deg),
/// `Z`, `EBV` (mag).
pub fn simple_metadata(files: &[FileMeta]) -> Option<Vec<OutColumn>> {
    let kind = |m: &FileMeta| m.targets.header.coadd_type.clone();
    let first = kind(files.first()?);
    if first != STACKED && first != "generic" {
        return None;
    }
    let ids: Vec<i64> = files
        .iter()
        .flat_map(|m| m.rows.iter().map(move |&r| m.targets.targetid[r]))
        .collect();
    let z: Vec<f64> = files.iter().flat_map(|m| m.z.iter().copied()).collect();
    let mut cols = Vec::new();
    if first == STACKED {
        let id = if ids.iter().all(|&v| i32::try_from(v).is_ok()) {
            ColData::I32(ids.iter().map(|&v| v as i32).collect())
        } else {
            ColData::I64(ids)
        };
        let n = z.len();
        cols.push(OutColumn::new("STACKID", id));
        for c in ["SURVEY", "PROGRAM"] {
            cols.push(OutColumn::new(
                c,
                ColData::Str(vec![STACKED.into(); n], STACKED.len()),
            ));
        }
        cols.push(OutColumn::new("Z", ColData::F64(z)));
        cols.push(OutColumn::new(
            "PHOTSYS",
            ColData::Str(vec![String::new(); n], 1),
        ));
    } else {
        let per_row = |f: &dyn Fn(&FileMeta, usize) -> f64| -> Vec<f64> {
            files
                .iter()
                .flat_map(|m| m.rows.iter().map(move |&r| f(m, r)))
                .collect()
        };
        cols.push(OutColumn::new("TARGETID", ColData::I64(ids)));
        cols.push(OutColumn::with_unit(
            "RA",
            "deg",
            ColData::F64(per_row(&|m, r| m.phot.ra[r])),
        ));
        cols.push(OutColumn::with_unit(
            "DEC",
            "deg",
            ColData::F64(per_row(&|m, r| m.phot.dec[r])),
        ));
        cols.push(OutColumn::new("Z", ColData::F64(z)));
        let ebv: Vec<f64> = files
            .iter()
            .flat_map(|m| m.dust.iter().map(|d| d.ebv))
            .collect();
        cols.push(OutColumn::with_unit("EBV", "mag", ColData::F64(ebv)));
    }
    Some(cols)
}

/// The run context of a simple input: no photometry source, the stacked photometry
/// configuration unless `--fphotofile`, `--ignore-photometry` forced.
///
/// # Errors
/// Bad flags, unreadable configuration files.
pub fn simple_context(args: &FitArgs, kind: InputKind) -> Result<RunContext, IoError> {
    let mut args = args.clone();
    args.ignore_photometry = true;
    validate(&args)?;
    let phot_cfg = match &args.fphotofile {
        Some(p) => PhotometryConfig::load(Some(p))?,
        None => {
            // recorded as FPHOTO_FILE in the PRIMARY header, as FastSpecFit does
            args.fphotofile = Some(crate::run::bundled_data_dir().join("config/stacked-phot.yaml"));
            PhotometryConfig::from_yaml(
                STACKED_PHOTOMETRY_YAML,
                Path::new("<bundled stacked-phot.yaml>"),
            )?
        }
    };
    let select = SelectOptions {
        targetids: args.targetids.clone(),
        input_redshifts: if args.targetids.is_some() {
            args.input_redshifts.clone()
        } else {
            None
        },
        ntargets: args.ntargets,
        firsttarget: args.firsttarget,
        ..SelectOptions::default()
    };
    if kind == InputKind::Stack && args.input_redshifts.is_some() {
        tracing::warn!(
            "--input-redshifts is ignored by stackfit (FastSpecFit reads Z from STACKINFO)"
        );
    }
    let emlines = Some(std::sync::Arc::new(crate::io::emlines::EmlineConfig::load(
        args.emlinesfile.as_deref(),
        args.constraintsfile.as_deref(),
    )?));
    Ok(RunContext {
        mode: Mode::Fastspec,
        select,
        phot_cfg,
        source: PhotometrySource::Fibermap,
        emlines,
        args,
        input: kind,
    })
}

/// A loader of one input file of a simple run: `(file, index on the command line, context)`.
pub type SimpleLoader = fn(&Path, usize, &RunContext) -> Result<Option<LoadedFile>, IoError>;

/// Fit the simple-input `files` (in this order) into one output file, through the same
/// engine and writers as `fastspec`.
///
/// # Errors
/// Configuration, input or output errors, each naming the file concerned; no target
/// selected.
pub fn run_simple(
    args: &FitArgs,
    kind: InputKind,
    files: &[PathBuf],
    load: SimpleLoader,
) -> anyhow::Result<RunSummary> {
    let t0 = Instant::now();
    let Some(outfile) = &args.outfile else {
        return Err(IoError::input(Path::new("command line"), "-o/--outfile is required").into());
    };
    if files.is_empty() {
        return Err(IoError::input(
            Path::new("command line"),
            "at least one input spectrum file is required",
        )
        .into());
    }
    crate::io::fits::check_output_path(outfile)?;
    let ctx = simple_context(args, kind)?;
    let mut engine = Engine::new(&ctx)?;
    let mut metas: Vec<FileMeta> = Vec::new();
    let mut summary = RunSummary::default();
    for (i, path) in files.iter().enumerate() {
        let Some(loaded) = load(path, i, &ctx)? else {
            continue;
        };
        tracing::info!(file = %path.display(), ntargets = loaded.kept.len(), "read spectra");
        metas.push(engine.fit_file(loaded, &mut summary));
    }
    if summary.targets == 0 {
        anyhow::bail!(
            "no targets selected in {} input file(s); nothing written",
            files.len()
        );
    }
    write_output(outfile, &metas, &ctx, engine.schema())?;
    tracing::info!(
        outfile = %outfile.display(),
        files = summary.files,
        targets = summary.targets,
        flagged = summary.flagged,
        seconds = t0.elapsed().as_secs_f64(),
        "done"
    );
    Ok(summary)
}

/// `stackfit`: fit the stacks of `args.redrockfiles` (sorted, duplicates removed, as
/// FastSpecFit) into `args.outfile`.
///
/// # Errors
/// As [`run_simple`].
pub fn run_stackfit(args: &FitArgs) -> anyhow::Result<RunSummary> {
    let mut files = args.redrockfiles.clone();
    files.sort();
    files.dedup();
    run_simple(args, InputKind::Stack, &files, |p, _, ctx| {
        load_stack(p, ctx)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_follows_fastspecfit() {
        let ids = [5, 3, 9, 7];
        let mut o = SelectOptions::default();
        assert_eq!(select_rows(&ids, &o), vec![0, 1, 2, 3]);
        // targetids: file order, not the order given
        o.targetids = Some(vec![9, 5]);
        assert_eq!(select_rows(&ids, &o), vec![0, 2]);
        o.firsttarget = 1;
        assert_eq!(select_rows(&ids, &o), vec![2]);
        o.targetids = None;
        o.ntargets = Some(2);
        assert_eq!(select_rows(&ids, &o), vec![1, 2]);
        o.firsttarget = 10;
        assert!(select_rows(&ids, &o).is_empty());
    }

    #[test]
    fn clean_row_masks_bad_and_zeroes_edge_ivar() {
        let mut f = vec![1.0; 10];
        let mut iv = vec![2.0; 10];
        let mut m = vec![0u32; 10];
        f[5] = f64::NAN;
        iv[6] = -1.0;
        assert_eq!(clean_row(&mut f, &mut iv, &mut m), 2);
        assert_eq!(iv, vec![0.0, 0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(f[5], 0.0);
        assert_eq!(m[5], MASK_BAD_INPUT);
        assert_eq!(m[6], MASK_BAD_INPUT);
        assert_eq!(m[3], 0);
    }
}
