//! Redrock and coadd readers and target selection (SPEC §1.1–§1.4).
//!
//! One [`FileTargets`] per input Redrock file: the selected targets' metadata in SoA
//! form (one `Vec` per column, rows in selection order), ready to become entities.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::fits::FitsReader;
use super::IoError;

/// Redrock ZWARN bit NODATA (2⁹): such rows are never selected.
pub const ZWARN_NODATA: i64 = 512;

/// Targeting-bit columns written for main/special surveys.
pub const TARGETING_DEFAULT: [&str; 4] = ["DESI_TARGET", "BGS_TARGET", "MWS_TARGET", "SCND_TARGET"];

/// Targeting-bit columns written for every other survey (cmx, sv1–sv3, ...).
pub const TARGETING_ALL: [&str; 17] = [
    "CMX_TARGET",
    "DESI_TARGET",
    "BGS_TARGET",
    "MWS_TARGET",
    "SCND_TARGET",
    "SV1_DESI_TARGET",
    "SV1_BGS_TARGET",
    "SV1_MWS_TARGET",
    "SV2_DESI_TARGET",
    "SV2_BGS_TARGET",
    "SV2_MWS_TARGET",
    "SV3_DESI_TARGET",
    "SV3_BGS_TARGET",
    "SV3_MWS_TARGET",
    "SV1_SCND_TARGET",
    "SV2_SCND_TARGET",
    "SV3_SCND_TARGET",
];

/// How targets are chosen from a file (the CLI's selection flags).
#[derive(Debug, Clone)]
pub struct SelectOptions {
    /// `--targetids`: fit exactly these (no quality cuts), in this order.
    pub targetids: Option<Vec<i64>>,
    /// `--input-redshifts`: replace Z of the `targetids` (same length).
    pub input_redshifts: Option<Vec<f64>>,
    /// `--zmin` (default 1e-3).
    pub zmin: f64,
    /// Maximum redshift (fixed at 99).
    pub zmax: f64,
    /// Maximum ZWARN (fixed at 99999).
    pub zwarnmax: i64,
    /// `--ntargets`.
    pub ntargets: Option<usize>,
    /// `--firsttarget`.
    pub firsttarget: usize,
    /// `--redux_dir`: where `{specprod}/tiles-{specprod}.csv` is looked up.
    pub redux_dir: Option<PathBuf>,
    /// `--specprod`: on-disk production directory name override.
    pub specprod: Option<String>,
    /// `--redrockfile-prefix`.
    pub redrock_prefix: String,
    /// `--specfile-prefix`.
    pub specfile_prefix: String,
    /// `--qnfile-prefix` (QuasarNet afterburner files).
    pub qnfile_prefix: String,
    /// Use the QuasarNet/MgII afterburners when present (not `--ignore-quasarnet`).
    pub use_quasarnet: bool,
}

impl Default for SelectOptions {
    fn default() -> Self {
        SelectOptions {
            targetids: None,
            input_redshifts: None,
            zmin: 1e-3,
            zmax: 99.0,
            zwarnmax: 99999,
            ntargets: None,
            firsttarget: 0,
            redux_dir: None,
            specprod: None,
            redrock_prefix: "redrock-".into(),
            specfile_prefix: "coadd-".into(),
            qnfile_prefix: "qso_qn-".into(),
            use_quasarnet: true,
        }
    }
}

/// A string column with its FITS width (kept so outputs reproduce the input formats).
#[derive(Debug, Clone, PartialEq)]
pub struct StrColumn {
    /// Values with trailing blanks removed.
    pub values: Vec<String>,
    /// Declared width in characters.
    pub width: usize,
}

/// Coadd-level facts from the coadd primary header (and the tiles table).
#[derive(Debug, Clone, PartialEq)]
pub struct CoaddHeader {
    /// `SPGRP`: healpix, uniqpix, custom, cumulative, pernight or perexp.
    pub coadd_type: String,
    /// Production name from the DEPNAM/DEPVER pair named SPECPROD ('' if absent).
    pub specprod: String,
    /// Survey ('' when a tile coadd has no tiles table).
    pub survey: String,
    /// Program ('' likewise).
    pub program: String,
    /// Whether SURVEY/PROGRAM columns are written (false for tile coadds without a tiles table).
    pub has_survey: bool,
    /// HEALPIX (healpix and custom coadds).
    pub healpix: Option<i32>,
    /// UNIQPIX (uniqpix coadds).
    pub uniqpix: Option<i32>,
    /// TILEID (tile coadds).
    pub tileid: Option<i32>,
    /// PETAL (tile coadds).
    pub petal: Option<i16>,
    /// NIGHT (tile coadds; the through-night for cumulative).
    pub night: Option<i32>,
    /// EXPID (perexp coadds).
    pub expid: Option<i32>,
}

impl CoaddHeader {
    /// Whether this is a pixel-based coadd (healpix, uniqpix, custom).
    pub fn is_pixel(&self) -> bool {
        matches!(self.coadd_type.as_str(), "healpix" | "uniqpix" | "custom")
    }
}

/// The selected targets of one Redrock/coadd pair, SoA, rows in selection order.
#[derive(Debug, Clone)]
pub struct FileTargets {
    /// The Redrock file.
    pub redrock_path: PathBuf,
    /// The coadd file.
    pub coadd_path: PathBuf,
    /// Header facts.
    pub header: CoaddHeader,
    /// Row index of each selected target in the coadd FIBERMAP / Redrock REDSHIFTS.
    pub rows: Vec<usize>,
    /// Number of rows (spectra) in the file.
    pub nrows_file: usize,
    /// TARGETID.
    pub targetid: Vec<i64>,
    /// Redshift used for fitting (input redshift if given; ≤ 0 becomes 1e-8 later).
    pub z: Vec<f64>,
    /// ZWARN.
    pub zwarn: Vec<i64>,
    /// DELTACHI2.
    pub deltachi2: Vec<f64>,
    /// SPECTYPE.
    pub spectype: StrColumn,
    /// SUBTYPE.
    pub subtype: StrColumn,
    /// Z_RR (Redrock Z before any update; equals Z when input redshifts are given).
    pub z_rr: Vec<f64>,
    /// ZWARN_RR.
    pub zwarn_rr: Vec<i64>,
    /// TSNR2_BGS, _LRG, _ELG, _QSO, _LYA.
    pub tsnr2: [Vec<f32>; 5],
    /// FIBERMAP TARGET_RA.
    pub target_ra: Vec<f64>,
    /// FIBERMAP TARGET_DEC.
    pub target_dec: Vec<f64>,
    /// FIBERMAP COADD_FIBERSTATUS.
    pub coadd_fiberstatus: Vec<i32>,
    /// FIBERMAP PHOTSYS ('' if the column is absent).
    pub photsys: StrColumn,
    /// FIBERMAP RELEASE (0 if absent).
    pub release: Vec<i32>,
    /// FIBERMAP BRICKNAME ('' if absent).
    pub brickname: Vec<String>,
    /// FIBERMAP BRICKID (0 if absent).
    pub brickid: Vec<i64>,
    /// FIBERMAP BRICK_OBJID (0 if absent).
    pub brick_objid: Vec<i64>,
    /// FIBERMAP fluxes used only when no photometry catalogue is given: `(column, values)`.
    pub fibermap_flux: Vec<(String, Vec<f32>)>,
    /// Targeting-bit columns present in the FIBERMAP: `(column, values)`.
    pub targeting: Vec<(String, Vec<i64>)>,
    /// FIBER (tile coadds): first EXP_FIBERMAP row of each target.
    pub fiber: Option<Vec<i32>>,
    /// TILEID_LIST (pixel coadds): sorted unique contributing tiles, space-separated.
    pub tileid_list: Option<Vec<String>>,
}

impl FileTargets {
    /// Number of selected targets.
    pub fn len(&self) -> usize {
        self.targetid.len()
    }
    /// Whether no target was selected.
    pub fn is_empty(&self) -> bool {
        self.targetid.is_empty()
    }
}

/// The coadd file that goes with `redrock` (same directory, prefix replaced).
///
/// # Errors
/// The Redrock basename lacks the Redrock prefix.
pub fn coadd_path_for(redrock: &Path, opts: &SelectOptions) -> Result<PathBuf, IoError> {
    let base = redrock
        .file_name()
        .and_then(|s| s.to_str())
        .ok_or_else(|| IoError::input(redrock, "not a file name"))?;
    if !base.contains(&opts.redrock_prefix) {
        return Err(IoError::input(
            redrock,
            format!(
                "file name lacks the Redrock prefix '{}' (set --redrockfile-prefix)",
                opts.redrock_prefix
            ),
        ));
    }
    let coadd = base.replacen(&opts.redrock_prefix, &opts.specfile_prefix, 1);
    Ok(redrock.with_file_name(coadd))
}

fn specprod_from_header(f: &mut FitsReader) -> String {
    for i in 0..100 {
        let name = match f.key_str("PRIMARY", &format!("DEPNAM{i:02}")) {
            Some(n) => n,
            None => continue,
        };
        if name == "SPECPROD" {
            return f
                .key_str("PRIMARY", &format!("DEPVER{i:02}"))
                .unwrap_or_default();
        }
    }
    String::new()
}

/// Look up (SURVEY, PROGRAM) of `tileid` in `{redux_dir}/{dir}/tiles-{specprod}.csv`.
fn tiles_lookup(
    redux_dir: &Path,
    dir: &str,
    specprod: &str,
    tileid: i32,
) -> Result<Option<(String, String)>, IoError> {
    let path = redux_dir.join(dir).join(format!("tiles-{specprod}.csv"));
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| IoError::input(&path, e.to_string()))?;
    let mut lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim())
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(it), Some(is), Some(ip)) = (col("TILEID"), col("SURVEY"), col("PROGRAM")) else {
        return Err(IoError::input(
            &path,
            "tiles table lacks TILEID, SURVEY or PROGRAM",
        ));
    };
    for line in lines {
        let f: Vec<&str> = line.split(',').map(|s| s.trim()).collect();
        if f.get(it).and_then(|s| s.parse::<i32>().ok()) == Some(tileid) {
            let s = f.get(is).unwrap_or(&"").to_string();
            let p = f.get(ip).unwrap_or(&"").to_string();
            return Ok(Some((s, p)));
        }
    }
    Err(IoError::input(
        &path,
        format!("TILEID {tileid} not found in the tiles table"),
    ))
}

fn read_header(coadd: &mut FitsReader, opts: &SelectOptions) -> Result<CoaddHeader, IoError> {
    let path = coadd.path().to_path_buf();
    let specprod = specprod_from_header(coadd);
    let coadd_type = match coadd.key_str("PRIMARY", "SPGRP") {
        Some(t) => t,
        None => {
            tracing::warn!(file = %path.display(), "SPGRP header card missing; assuming a custom coadd");
            "custom".into()
        }
    };
    let need_i = |f: &mut FitsReader, key: &str| -> Result<i64, IoError> {
        f.key_i64("PRIMARY", key).ok_or_else(|| {
            IoError::input(
                &path,
                format!("primary header lacks {key} (needed for a {coadd_type} coadd)"),
            )
        })
    };
    let need_s = |f: &mut FitsReader, key: &str| -> Result<String, IoError> {
        f.key_str("PRIMARY", key).ok_or_else(|| {
            IoError::input(
                &path,
                format!("primary header lacks {key} (needed for a {coadd_type} coadd)"),
            )
        })
    };
    let mut h = CoaddHeader {
        coadd_type: coadd_type.clone(),
        specprod: specprod.clone(),
        survey: String::new(),
        program: String::new(),
        has_survey: true,
        healpix: None,
        uniqpix: None,
        tileid: None,
        petal: None,
        night: None,
        expid: None,
    };
    match coadd_type.as_str() {
        "healpix" => {
            h.survey = need_s(coadd, "SURVEY")?;
            h.program = need_s(coadd, "PROGRAM")?;
            h.healpix = Some(need_i(coadd, "SPGRPVAL")? as i32);
        }
        "uniqpix" => {
            h.survey = need_s(coadd, "SURVEY")?;
            h.program = need_s(coadd, "PROGRAM")?;
            h.uniqpix = Some(need_i(coadd, "SPGRPVAL")? as i32);
        }
        "custom" => {
            h.survey = "custom".into();
            h.program = "custom".into();
            h.healpix = Some(0);
        }
        _ => {
            let tileid = need_i(coadd, "TILEID")? as i32;
            h.tileid = Some(tileid);
            h.petal = Some(need_i(coadd, "PETAL")? as i16);
            h.night = Some(need_i(coadd, "NIGHT")? as i32);
            if coadd_type == "perexp" {
                h.expid = Some(need_i(coadd, "EXPID")? as i32);
            }
            let found = match &opts.redux_dir {
                Some(dir) => {
                    let sub = opts.specprod.clone().unwrap_or_else(|| specprod.clone());
                    tiles_lookup(dir, &sub, &specprod, tileid)?
                }
                None => None,
            };
            match found {
                Some((s, p)) => {
                    h.survey = s;
                    h.program = p;
                }
                None => h.has_survey = false,
            }
        }
    }
    Ok(h)
}

fn col_or_default<T: fitsio::tables::ReadsCol + Clone>(
    f: &mut FitsReader,
    hdu: &str,
    col: &str,
    n: usize,
    default: T,
) -> Result<Vec<T>, IoError> {
    if f.has_column(hdu, col) {
        f.col(hdu, col)
    } else {
        Ok(vec![default; n])
    }
}

fn retain_mask<T>(v: &mut Vec<T>, keep: &[bool]) {
    let mut k = keep.iter();
    v.retain(|_| *k.next().unwrap_or(&false));
}

fn take<T: Clone>(v: &[T], rows: &[usize]) -> Vec<T> {
    rows.iter().map(|&r| v[r].clone()).collect()
}

/// Read one Redrock file and its coadd and select targets as FastSpecFit does (SPEC §1.3).
///
/// Returns `Ok(None)` when no target survives the selection (the file is skipped).
///
/// # Errors
/// Missing or unreadable files, HDUs or columns; Redrock and FIBERMAP TARGETIDs that
/// disagree; duplicate TARGETIDs; requested TARGETIDs that are not in the file.
pub fn read_targets(redrock: &Path, opts: &SelectOptions) -> Result<Option<FileTargets>, IoError> {
    let coadd_path = coadd_path_for(redrock, opts)?;
    let mut rr = FitsReader::open(redrock)?;
    let mut co = FitsReader::open(&coadd_path)?;
    let header = read_header(&mut co, opts)?;

    let rr_tid: Vec<i64> = rr.col("REDSHIFTS", "TARGETID")?;
    let rr_z: Vec<f64> = rr.col("REDSHIFTS", "Z")?;
    let rr_zwarn: Vec<i64> = rr.col("REDSHIFTS", "ZWARN")?;
    let rr_dchi2: Vec<f64> = rr.col("REDSHIFTS", "DELTACHI2")?;
    let (rr_spectype, w_spectype) = rr.str_col("REDSHIFTS", "SPECTYPE")?;
    let (rr_subtype, w_subtype) = rr.str_col("REDSHIFTS", "SUBTYPE")?;
    let n = rr_tid.len();

    let fm_tid: Vec<i64> = co.col("FIBERMAP", "TARGETID")?;
    if fm_tid.len() != n {
        return Err(IoError::input(
            &coadd_path,
            format!(
                "FIBERMAP has {} rows but {} has {} REDSHIFTS rows",
                fm_tid.len(),
                redrock.display(),
                n
            ),
        ));
    }
    if let Some(i) = (0..n).find(|&i| fm_tid[i] != rr_tid[i]) {
        return Err(IoError::input(
            &coadd_path,
            format!(
                "FIBERMAP TARGETID {} in row {i} does not match REDSHIFTS TARGETID {} of {}",
                fm_tid[i],
                rr_tid[i],
                redrock.display()
            ),
        ));
    }
    let objtype = if co.has_column("FIBERMAP", "OBJTYPE") {
        co.str_col("FIBERMAP", "OBJTYPE")?.0
    } else {
        return Err(IoError::input(
            &coadd_path,
            "HDU FIBERMAP has no column OBJTYPE",
        ));
    };

    let redrock_str = redrock.to_string_lossy();
    let qn_path = PathBuf::from(redrock_str.replace(&opts.redrock_prefix, &opts.qnfile_prefix));
    let mgii_path = PathBuf::from(redrock_str.replace(&opts.redrock_prefix, "qso_mgii-"));
    let use_qn = opts.use_quasarnet
        && opts.input_redshifts.is_none()
        && qn_path.is_file()
        && mgii_path.is_file();
    let zmin_now = if use_qn { f64::NEG_INFINITY } else { opts.zmin };
    let mut rows: Vec<usize>;
    let mut zsel: Option<Vec<f64>> = None;
    match &opts.targetids {
        None => {
            let mut seen = HashSet::with_capacity(n);
            let dups: Vec<i64> = fm_tid
                .iter()
                .filter(|t| !seen.insert(**t))
                .copied()
                .collect();
            if !dups.is_empty() {
                return Err(IoError::input(
                    &coadd_path,
                    format!("{} duplicate TARGETIDs in FIBERMAP: {:?}", dups.len(), dups),
                ));
            }
            rows = (0..n)
                .filter(|&i| {
                    rr_z[i] > zmin_now
                        && rr_z[i] < opts.zmax
                        && objtype[i] == "TGT"
                        && rr_zwarn[i] <= opts.zwarnmax
                        && rr_zwarn[i] & ZWARN_NODATA == 0
                })
                .collect();
        }
        Some(tids) => {
            let mut seen = HashSet::new();
            if let Some(d) = tids.iter().find(|t| !seen.insert(**t)) {
                return Err(IoError::input(
                    redrock,
                    format!("TARGETID {d} is requested more than once"),
                ));
            }
            let index: HashMap<i64, usize> =
                rr_tid.iter().enumerate().map(|(i, t)| (*t, i)).collect();
            let mut r = Vec::with_capacity(tids.len());
            for t in tids {
                match index.get(t) {
                    Some(&i) => r.push(i),
                    None => {
                        return Err(IoError::input(
                            redrock,
                            format!("requested TARGETID {t} is not in this file"),
                        ))
                    }
                }
            }
            if let Some(zin) = &opts.input_redshifts {
                if zin.len() != tids.len() {
                    return Err(IoError::input(
                        redrock,
                        format!("{} input redshifts for {} TARGETIDs", zin.len(), tids.len()),
                    ));
                }
                zsel = Some(zin.clone());
            }
            rows = r;
        }
    }
    // --firsttarget / --ntargets, applied after selection.
    let first = opts.firsttarget.min(rows.len());
    let last = match opts.ntargets {
        Some(k) => (first + k).min(rows.len()),
        None => rows.len(),
    };
    if opts.ntargets.map(|k| k > rows.len()).unwrap_or(false) {
        tracing::warn!(file = %redrock.display(), "--ntargets exceeds the number of selected targets; reading all of them");
    }
    let (zsel, rows_sel) = match zsel {
        Some(z) => (Some(z[first..last].to_vec()), rows[first..last].to_vec()),
        None => (None, rows[first..last].to_vec()),
    };
    rows = rows_sel;
    if rows.is_empty() {
        tracing::info!(file = %redrock.display(), "no targets selected; skipping file");
        return Ok(None);
    }

    let mut z = zsel.unwrap_or_else(|| take(&rr_z, &rows));
    let mut zwarn = take(&rr_zwarn, &rows);
    let z_rr = z.clone();
    let zwarn_rr = zwarn.clone();
    if use_qn {
        let tmap: Vec<(String, Vec<i64>)> = {
            let names: Vec<String> = co.column_names("FIBERMAP")?;
            let mut v = Vec::new();
            for c in TARGETING_ALL
                .iter()
                .filter(|c| names.iter().any(|n| n == *c))
            {
                let col: Vec<i64> = co.col("FIBERMAP", c)?;
                v.push((c.to_string(), take(&col, &rows)));
            }
            v
        };
        let spectype_sel = take(&rr_spectype, &rows);
        super::quasarnet::update_qso_redshifts(
            &qn_path,
            &mgii_path,
            &rows,
            &take(&rr_tid, &rows),
            &tmap,
            &spectype_sel,
            &specprod_from_header(&mut co),
            &mut z,
            &mut zwarn,
        )?;
        let keep: Vec<bool> = z.iter().map(|&zi| zi > opts.zmin).collect();
        if !keep.iter().any(|&k| k) {
            tracing::info!(file = %redrock.display(), "no targets above zmin after the QuasarNet update; skipping file");
            return Ok(None);
        }
        retain_mask(&mut z, &keep);
        retain_mask(&mut zwarn, &keep);
        retain_mask(&mut rows, &keep);
    }
    let (z_rr, zwarn_rr) = if use_qn {
        // Z_RR/ZWARN_RR keep the Redrock values of the surviving rows.
        (take(&rr_z, &rows), take(&rr_zwarn, &rows))
    } else {
        (z_rr, zwarn_rr)
    };
    let nsel = rows.len();

    // TSNR2
    let mut tsnr2: [Vec<f32>; 5] = Default::default();
    for (k, name) in [
        "TSNR2_BGS",
        "TSNR2_LRG",
        "TSNR2_ELG",
        "TSNR2_QSO",
        "TSNR2_LYA",
    ]
    .iter()
    .enumerate()
    {
        let v: Vec<f32> = rr.col("TSNR2", name)?;
        if v.len() != n {
            return Err(IoError::input(
                redrock,
                format!("TSNR2 has {} rows, REDSHIFTS {n}", v.len()),
            ));
        }
        tsnr2[k] = take(&v, &rows);
    }

    // FIBERMAP columns.
    let target_ra: Vec<f64> = co.col("FIBERMAP", "TARGET_RA")?;
    let target_dec: Vec<f64> = co.col("FIBERMAP", "TARGET_DEC")?;
    let fiberstatus: Vec<i32> = co.col("FIBERMAP", "COADD_FIBERSTATUS")?;
    let (photsys, w_photsys) = if co.has_column("FIBERMAP", "PHOTSYS") {
        co.str_col("FIBERMAP", "PHOTSYS")?
    } else {
        (vec![String::new(); n], 1)
    };
    let release: Vec<i32> = col_or_default(&mut co, "FIBERMAP", "RELEASE", n, 0i32)?;
    let brickname: Vec<String> = if co.has_column("FIBERMAP", "BRICKNAME") {
        co.str_col("FIBERMAP", "BRICKNAME")?.0
    } else {
        vec![String::new(); n]
    };
    let brickid: Vec<i64> = col_or_default(&mut co, "FIBERMAP", "BRICKID", n, 0i64)?;
    let brick_objid: Vec<i64> = col_or_default(&mut co, "FIBERMAP", "BRICK_OBJID", n, 0i64)?;
    let tcols: &[&str] = if header.survey == "main" || header.survey == "special" {
        &TARGETING_DEFAULT
    } else {
        &TARGETING_ALL
    };
    let mut targeting = Vec::new();
    for c in tcols {
        if co.has_column("FIBERMAP", c) {
            let v: Vec<i64> = co.col("FIBERMAP", c)?;
            targeting.push((c.to_string(), take(&v, &rows)));
        }
    }
    let mut fibermap_flux = Vec::new();
    for c in co.column_names("FIBERMAP")? {
        if c.starts_with("FLUX_") || c.starts_with("FIBERFLUX_") || c.starts_with("FIBERTOTFLUX_") {
            let v: Vec<f32> = co.col("FIBERMAP", &c)?;
            fibermap_flux.push((c, take(&v, &rows)));
        }
    }

    // EXP_FIBERMAP: FIBER (tile coadds) or TILEID_LIST (pixel coadds).
    let exp_tid: Vec<i64> = co.col("EXP_FIBERMAP", "TARGETID")?;
    let exp_tile: Vec<i32> = co.col("EXP_FIBERMAP", "TILEID")?;
    let sel_tid = take(&fm_tid, &rows);
    let mut fiber = None;
    let mut tileid_list = None;
    if header.is_pixel() {
        let mut tiles: HashMap<i64, Vec<i32>> = HashMap::new();
        for (t, tile) in exp_tid.iter().zip(&exp_tile) {
            tiles.entry(*t).or_default().push(*tile);
        }
        let mut list = Vec::with_capacity(nsel);
        for t in &sel_tid {
            let mut v = tiles.get(t).cloned().unwrap_or_default();
            if v.is_empty() {
                return Err(IoError::input(
                    &coadd_path,
                    format!("TARGETID {t} has no row in EXP_FIBERMAP"),
                ));
            }
            v.sort_unstable();
            v.dedup();
            list.push(
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        tileid_list = Some(list);
    } else {
        let exp_fiber: Vec<i32> = co.col("EXP_FIBERMAP", "FIBER")?;
        let mut first: HashMap<i64, i32> = HashMap::new();
        for (t, f) in exp_tid.iter().zip(&exp_fiber) {
            first.entry(*t).or_insert(*f);
        }
        let mut v = Vec::with_capacity(nsel);
        for t in &sel_tid {
            match first.get(t) {
                Some(f) => v.push(*f),
                None => {
                    return Err(IoError::input(
                        &coadd_path,
                        format!("TARGETID {t} has no row in EXP_FIBERMAP"),
                    ))
                }
            }
        }
        fiber = Some(v);
    }

    Ok(Some(FileTargets {
        redrock_path: redrock.to_path_buf(),
        coadd_path,
        header,
        targetid: sel_tid,
        z_rr,
        z,
        zwarn,
        zwarn_rr,
        deltachi2: take(&rr_dchi2, &rows),
        spectype: StrColumn {
            values: take(&rr_spectype, &rows),
            width: w_spectype,
        },
        subtype: StrColumn {
            values: take(&rr_subtype, &rows),
            width: w_subtype,
        },
        tsnr2,
        target_ra: take(&target_ra, &rows),
        target_dec: take(&target_dec, &rows),
        coadd_fiberstatus: take(&fiberstatus, &rows),
        photsys: StrColumn {
            values: take(&photsys, &rows),
            width: w_photsys,
        },
        release: take(&release, &rows),
        brickname: take(&brickname, &rows),
        brickid: take(&brickid, &rows),
        brick_objid: take(&brick_objid, &rows),
        fibermap_flux,
        targeting,
        fiber,
        tileid_list,
        rows,
        nrows_file: n,
    }))
}
