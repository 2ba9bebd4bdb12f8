//! Broadband photometry: the photometry YAML, Legacy Surveys Tractor catalogues and
//! external catalogues (SPEC §1.5), plus the documented fibermap fallback.
//!
//! The result is a [`GatheredPhotometry`] in SoA form (one `Vec` per column, rows in the
//! file's target order) that the METADATA writer and the photometry passes read.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::desi::FileTargets;
use super::fits::FitsReader;
use super::IoError;

/// The bundled Legacy Surveys DR9 photometry configuration (FastSpecFit's default).
pub const DEFAULT_PHOTOMETRY_YAML: &str =
    include_str!("../../tests/data/config/legacysurvey-dr9.yaml");

/// Photometry configuration: FastSpecFit's photometry YAML, field for field.
#[derive(Debug, Clone, Deserialize)]
pub struct PhotometryConfig {
    /// Presence selects the Legacy Surveys Tractor reader ('dr9', 'dr10', ...).
    pub legacysurveydr: Option<String>,
    /// Identifier column (TARGETID, or STACKID for stacks).
    pub uniqueid: String,
    /// Flux units; only 'nanomaggies' is supported.
    pub photounits: String,
    /// Band names.
    pub bands: Vec<String>,
    /// Bands synthesized from the spectrum.
    #[serde(default)]
    pub synth_bands: Vec<String>,
    /// Fiber-flux bands (Legacy Surveys only).
    pub fiber_bands: Option<Vec<String>>,
    /// Whether each band enters the fit.
    pub bands_to_fit: Vec<bool>,
    /// Filter names per PHOTSYS.
    pub filters: BTreeMap<String, Vec<String>>,
    /// Synthesis filter names per PHOTSYS.
    #[serde(default)]
    pub synth_filters: BTreeMap<String, Vec<String>>,
    /// Fiber filter names per PHOTSYS.
    pub fiber_filters: Option<BTreeMap<String, Vec<String>>>,
    /// Minimum uncertainty per band (mag).
    pub min_uncertainty: Vec<f64>,
    /// Columns read from the catalogue besides the fluxes (absent in FastSpecFit's
    /// stacked-phot.yaml).
    #[serde(default)]
    pub readcols: Vec<String>,
    /// Catalogue columns written to METADATA in the photometry block.
    pub outcols: Option<Vec<String>>,
    /// Flux columns, one per band.
    pub fluxcols: Vec<String>,
    /// Flux inverse-variance columns, one per band.
    pub fluxivarcols: Vec<String>,
    /// Absolute-magnitude band names.
    #[serde(default)]
    pub absmag_bands: Vec<String>,
    /// Band shifts for the absolute-magnitude filters.
    #[serde(default)]
    pub band_shift: Vec<f64>,
    /// Absolute-magnitude filter names.
    #[serde(default)]
    pub absmag_filters: Vec<String>,
    /// Columns dropped from the metadata before merging an external catalogue.
    pub dropcols: Option<Vec<String>>,
}

impl PhotometryConfig {
    /// Parse a photometry YAML text; `origin` names it in errors.
    ///
    /// # Errors
    /// Malformed YAML or inconsistent list lengths.
    pub fn from_yaml(text: &str, origin: &Path) -> Result<Self, IoError> {
        let cfg: PhotometryConfig = serde_yaml::from_str(text)
            .map_err(|e| IoError::input(origin, format!("bad photometry YAML: {e}")))?;
        let nb = cfg.bands.len();
        let check = |what: &str, n: usize| -> Result<(), IoError> {
            if n != nb {
                return Err(IoError::input(
                    origin,
                    format!("{what} has {n} entries but there are {nb} bands"),
                ));
            }
            Ok(())
        };
        check("bands_to_fit", cfg.bands_to_fit.len())?;
        check("min_uncertainty", cfg.min_uncertainty.len())?;
        check("fluxcols", cfg.fluxcols.len())?;
        check("fluxivarcols", cfg.fluxivarcols.len())?;
        for (k, v) in &cfg.filters {
            if v.len() != nb {
                return Err(IoError::input(
                    origin,
                    format!(
                        "filters for PHOTSYS '{k}' has {} entries, expected {nb}",
                        v.len()
                    ),
                ));
            }
        }
        if cfg.photounits != "nanomaggies" {
            return Err(IoError::input(
                origin,
                format!(
                    "photounits '{}' is not supported (only nanomaggies)",
                    cfg.photounits
                ),
            ));
        }
        if cfg.absmag_bands.len() != cfg.absmag_filters.len()
            || cfg.band_shift.len() != cfg.absmag_filters.len()
        {
            return Err(IoError::input(
                origin,
                "absmag_bands, band_shift and absmag_filters differ in length",
            ));
        }
        Ok(cfg)
    }

    /// Load `path`, or the bundled DR9 configuration when `None`.
    ///
    /// # Errors
    /// Unreadable or malformed file.
    pub fn load(path: Option<&Path>) -> Result<Self, IoError> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| IoError::input(p, format!("cannot read: {e}")))?;
                Self::from_yaml(&text, p)
            }
            None => Self::from_yaml(
                DEFAULT_PHOTOMETRY_YAML,
                Path::new("<bundled legacysurvey-dr9.yaml>"),
            ),
        }
    }

    /// The filter names for `photsys`.
    ///
    /// # Errors
    /// No filters are configured for this PHOTSYS.
    pub fn filters_for(&self, photsys: &str) -> Option<&[String]> {
        self.filters.get(photsys).map(|v| v.as_slice())
    }
}

/// Where broadband photometry comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PhotometrySource {
    /// A Legacy Surveys tree (`{dir}/{north,south}/tractor/...`); `explicit` when given by `--fphotodir`.
    LegacySurvey {
        /// Root directory.
        dir: PathBuf,
        /// Given on the command line (forces positional matching, as FastSpecFit does).
        explicit: bool,
    },
    /// An external catalogue `file.fits[EXT]`.
    External {
        /// The FITS file.
        file: PathBuf,
        /// The extension name, if given.
        ext: Option<String>,
    },
    /// No catalogue: the FIBERMAP FLUX_* columns (documented deviation).
    Fibermap,
}

impl PhotometrySource {
    /// Interpret `--fphotodir` (or `$FPHOTO_DIR`) for a configuration.
    pub fn from_arg(arg: Option<&str>, from_env: bool, cfg: &PhotometryConfig) -> Self {
        let Some(arg) = arg else {
            return PhotometrySource::Fibermap;
        };
        let (base, ext) = match (arg.rfind('['), arg.ends_with(']')) {
            (Some(i), true) => (&arg[..i], Some(arg[i + 1..arg.len() - 1].to_string())),
            _ => (arg, None),
        };
        if cfg.legacysurveydr.is_some() {
            PhotometrySource::LegacySurvey {
                dir: PathBuf::from(base),
                explicit: !from_env,
            }
        } else {
            PhotometrySource::External {
                file: PathBuf::from(base),
                ext,
            }
        }
    }
}

/// Photometry of a file's targets, SoA, rows in target order (before MW dereddening).
#[derive(Debug, Clone, Default)]
pub struct GatheredPhotometry {
    /// RA (deg) from the catalogue, or TARGET_RA where the catalogue has none.
    pub ra: Vec<f64>,
    /// DEC (deg) likewise.
    pub dec: Vec<f64>,
    /// PHOTSYS per target (after repair).
    pub photsys: Vec<String>,
    /// LS_ID (Legacy Surveys and fibermap sources).
    pub ls_id: Option<Vec<i64>>,
    /// Flux per band `[band][target]` (nanomaggies, as in the catalogue).
    pub flux: Vec<Vec<f32>>,
    /// Flux inverse variance per band `[band][target]`.
    pub flux_ivar: Vec<Vec<f32>>,
    /// FIBERFLUX per fiber band `[band][target]`.
    pub fiberflux: Vec<Vec<f32>>,
    /// FIBERTOTFLUX per fiber band `[band][target]`.
    pub fibertotflux: Vec<Vec<f32>>,
    /// Targets kept (external catalogues drop targets without a match).
    pub keep: Vec<bool>,
}

/// The Legacy Surveys brick name covering (ra, dec), as desiutil's 0.25° brick grid names it.
pub fn brickname(ra: f64, dec: f64) -> String {
    let size = 0.25f64;
    let nrow = (180.0 / size) as usize + 1; // centres -90 ... +90
    let ra = ra.rem_euclid(360.0);
    let row = (((dec + 90.0 + size / 2.0) / size) as i64).clamp(0, nrow as i64 - 1) as usize;
    let center_dec = (-90.0 + size * row as f64).min(90.0);
    let ncol = if row == 0 || row == nrow - 1 {
        1
    } else {
        let declo = (center_dec.abs() - size / 2.0).max(0.0);
        let n = 360.0 / size * declo.to_radians().cos();
        ((n / 2.0).ceil() * 2.0) as usize
    };
    let col = ((ra / 360.0 * ncol as f64) as usize).min(ncol - 1);
    let center_ra = if ncol == 1 {
        180.0
    } else {
        360.0 * (col as f64 + 0.5) / ncol as f64
    };
    let pm = if center_dec >= 0.0 { 'p' } else { 'm' };
    let ras = format!("{:07.0}", center_ra * 10000.0);
    let decs = format!("{:06.0}", center_dec.abs() * 10000.0);
    format!("{}{}{}", &ras[..4], pm, &decs[..3])
}

/// Great-circle separation in degrees (haversine; exact to rounding at arcsecond scales).
fn separation_deg(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (r1, d1, r2, d2) = (
        ra1.to_radians(),
        dec1.to_radians(),
        ra2.to_radians(),
        dec2.to_radians(),
    );
    let sd = ((d2 - d1) / 2.0).sin();
    let sr = ((r2 - r1) / 2.0).sin();
    let a = sd * sd + d1.cos() * d2.cos() * sr * sr;
    (2.0 * a.sqrt().min(1.0).asin()).to_degrees()
}

/// PHOTSYS by Legacy Surveys RELEASE (FastSpecFit's repair table).
fn photsys_for_release(release: i32) -> Option<&'static str> {
    Some(match release {
        3000 | 5000 | 7000 | 7999 | 8000 | 9000 | 9002 | 9004 | 9006 | 9008 | 9010 | 9012
        | 10000 | 10099 | 11000 | 11010 => "S",
        4000 | 6000 | 8001 | 9001 | 9003 | 9005 | 9007 | 9009 | 9011 | 9013 | 11001 | 11011 => "N",
        _ => return None,
    })
}

/// Per-brick reads of the columns we need from one Tractor file.
struct TractorRows {
    fcols: HashMap<String, Vec<f32>>,
    objid: Vec<i64>,
    brickid: Vec<i64>,
    release: Vec<i32>,
    primary: Vec<bool>,
    ra: Vec<f64>,
    dec: Vec<f64>,
}

fn read_tractor(path: &Path, fluxcols: &[String]) -> Result<TractorRows, IoError> {
    let mut f = FitsReader::open(path)?;
    // The catalogue is the first extension.
    let name = f.column_names("1")?;
    let has = |c: &str| name.iter().any(|n| n.eq_ignore_ascii_case(c));
    let mut fcols = HashMap::new();
    for c in fluxcols {
        if has(c) {
            fcols.insert(c.clone(), f.col::<f32>("1", c)?);
        } else {
            return Err(IoError::input(
                path,
                format!("Tractor catalogue has no column {c}"),
            ));
        }
    }
    let primary: Vec<bool> = f.col::<bool>("1", "BRICK_PRIMARY")?;
    Ok(TractorRows {
        fcols,
        objid: f.col("1", "OBJID")?,
        brickid: f.col("1", "BRICKID")?,
        release: f.col("1", "RELEASE")?,
        primary,
        ra: f.col("1", "RA")?,
        dec: f.col("1", "DEC")?,
    })
}

/// Columns read from a catalogue for the photometry block: fluxes, ivars and fiber fluxes.
fn flux_columns(cfg: &PhotometryConfig) -> Vec<String> {
    let mut v: Vec<String> = cfg
        .fluxcols
        .iter()
        .chain(&cfg.fluxivarcols)
        .cloned()
        .collect();
    if let Some(fb) = &cfg.fiber_bands {
        for b in fb {
            v.push(format!("FIBERFLUX_{}", b.to_uppercase()));
            v.push(format!("FIBERTOTFLUX_{}", b.to_uppercase()));
        }
    }
    v
}

fn empty(cfg: &PhotometryConfig, n: usize) -> GatheredPhotometry {
    let nb = cfg.bands.len();
    let nf = cfg.fiber_bands.as_ref().map(|v| v.len()).unwrap_or(0);
    GatheredPhotometry {
        ra: vec![0.0; n],
        dec: vec![0.0; n],
        photsys: vec![String::new(); n],
        ls_id: None,
        flux: vec![vec![0.0; n]; nb],
        flux_ivar: vec![vec![0.0; n]; nb],
        fiberflux: vec![vec![0.0; n]; nf],
        fibertotflux: vec![vec![0.0; n]; nf],
        keep: vec![true; n],
    }
}

fn assign_row(
    out: &mut GatheredPhotometry,
    cfg: &PhotometryConfig,
    i: usize,
    get: &dyn Fn(&str) -> f32,
) {
    for (b, c) in cfg.fluxcols.iter().enumerate() {
        out.flux[b][i] = get(c);
    }
    for (b, c) in cfg.fluxivarcols.iter().enumerate() {
        out.flux_ivar[b][i] = get(c);
    }
    if let Some(fb) = &cfg.fiber_bands {
        for (b, band) in fb.iter().enumerate() {
            out.fiberflux[b][i] = get(&format!("FIBERFLUX_{}", band.to_uppercase()));
            out.fibertotflux[b][i] = get(&format!("FIBERTOTFLUX_{}", band.to_uppercase()));
        }
    }
}

/// Resolve-declination boundary between the north and south Legacy Surveys footprints.
const RESOLVE_DEC: f64 = 32.375;

fn gather_tractor(
    t: &FileTargets,
    cfg: &PhotometryConfig,
    dir: &Path,
    explicit: bool,
) -> Result<GatheredPhotometry, IoError> {
    if !dir.is_dir() {
        return Err(IoError::input(
            dir,
            "Legacy Surveys directory not found; set it with --fphotodir or $FPHOTO_DIR",
        ));
    }
    let n = t.len();
    let mut out = empty(cfg, n);
    let mut release = vec![0i32; n];
    let mut brickid = vec![0i64; n];
    let mut objid = vec![0i64; n];
    let fcols = flux_columns(cfg);
    // Group by brick (blank BRICKNAME → computed from TARGET_RA/DEC).
    let mut bricks: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let b = if t.brickname[i].is_empty() {
            brickname(t.target_ra[i], t.target_dec[i])
        } else {
            t.brickname[i].clone()
        };
        bricks.entry(b).or_default().push(i);
    }
    for (brick, idx) in &bricks {
        let sub = brick.get(..3).unwrap_or(brick);
        let file_for = |region: &str| {
            dir.join(region)
                .join("tractor")
                .join(sub)
                .join(format!("tractor-{brick}.fits"))
        };
        // Direct ID matching only when the fibermap identifiers are trusted (not with an explicit --fphotodir).
        let (direct, positional): (Vec<usize>, Vec<usize>) = idx.iter().partition(|&&i| {
            !explicit
                && t.release[i] > 0
                && t.brickid[i] > 0
                && t.brick_objid[i] > 0
                && !t.photsys.values[i].is_empty()
        });
        if !direct.is_empty() {
            let ps = &t.photsys.values[direct[0]];
            let region = match ps.as_str() {
                "N" => "north",
                "S" => "south",
                other => {
                    return Err(IoError::input(
                        &t.coadd_path,
                        format!(
                            "TARGETID {}: unrecognized PHOTSYS '{other}' (expected N or S)",
                            t.targetid[direct[0]]
                        ),
                    ))
                }
            };
            let path = file_for(region);
            if !path.is_file() {
                return Err(IoError::input(&path, "Tractor catalogue not found"));
            }
            let tr = read_tractor(&path, &fcols)?;
            for &i in &direct {
                let Some(k) = tr.objid.iter().position(|&o| o == t.brick_objid[i]) else {
                    return Err(IoError::input(
                        &path,
                        format!(
                            "TARGETID {}: BRICK_OBJID {} not in catalogue",
                            t.targetid[i], t.brick_objid[i]
                        ),
                    ));
                };
                fill_from(&mut out, cfg, &tr, i, k);
                release[i] = tr.release[k];
                brickid[i] = tr.brickid[k];
                objid[i] = tr.objid[k];
            }
        }
        if !positional.is_empty() {
            let (north, south) = (file_for("north"), file_for("south"));
            let path = match (north.is_file(), south.is_file()) {
                (true, false) => north,
                (false, true) => south,
                (true, true) => {
                    let mut d: Vec<f64> = positional.iter().map(|&i| t.target_dec[i]).collect();
                    d.sort_by(|a, b| a.total_cmp(b));
                    let m = d.len();
                    let med = if m % 2 == 1 {
                        d[m / 2]
                    } else {
                        0.5 * (d[m / 2 - 1] + d[m / 2])
                    };
                    if med < RESOLVE_DEC {
                        south
                    } else {
                        north
                    }
                }
                (false, false) => continue,
            };
            let tr = read_tractor(&path, &fcols)?;
            let prim: Vec<usize> = (0..tr.primary.len()).filter(|&k| tr.primary[k]).collect();
            if prim.is_empty() {
                tracing::warn!(brick = %brick, "no primary photometric sources on brick");
            }
            for &i in &positional {
                let best = prim
                    .iter()
                    .map(|&k| {
                        (
                            k,
                            separation_deg(t.target_ra[i], t.target_dec[i], tr.ra[k], tr.dec[k]),
                        )
                    })
                    .min_by(|a, b| a.1.total_cmp(&b.1));
                if let Some((k, sep)) = best {
                    if sep * 3600.0 < 1.0 {
                        fill_from(&mut out, cfg, &tr, i, k);
                        release[i] = tr.release[k];
                        brickid[i] = tr.brickid[k];
                        objid[i] = tr.objid[k];
                    }
                }
            }
        }
    }
    out.ls_id = Some(
        (0..n)
            .map(|i| ((release[i] as i64) << 40) | (brickid[i] << 16) | objid[i])
            .collect(),
    );
    finish_positions_and_photsys(&mut out, t, &release)?;
    Ok(out)
}

fn fill_from(
    out: &mut GatheredPhotometry,
    cfg: &PhotometryConfig,
    tr: &TractorRows,
    i: usize,
    k: usize,
) {
    out.ra[i] = tr.ra[k];
    out.dec[i] = tr.dec[k];
    assign_row(out, cfg, i, &|c: &str| {
        tr.fcols.get(c).map(|v| v[k]).unwrap_or(0.0)
    });
}

/// RA/DEC fallback to TARGET_RA/DEC and the PHOTSYS repair of SPEC §1.5.
fn finish_positions_and_photsys(
    out: &mut GatheredPhotometry,
    t: &FileTargets,
    release: &[i32],
) -> Result<(), IoError> {
    for i in 0..t.len() {
        if out.ra[i] == 0.0 && out.dec[i] == 0.0 && t.target_ra[i] != 0.0 && t.target_dec[i] != 0.0
        {
            out.ra[i] = t.target_ra[i];
            out.dec[i] = t.target_dec[i];
        }
        if out.ra[i] == 0.0 || out.dec[i] == 0.0 {
            return Err(IoError::input(
                &t.coadd_path,
                format!(
                    "TARGETID {}: RA or DEC is zero after photometry matching",
                    t.targetid[i]
                ),
            ));
        }
        let mut ps = t.photsys.values[i].clone();
        if ps != "N" && ps != "S" && release[i] >= 9000 {
            ps = photsys_for_release(release[i])
                .map(str::to_string)
                .ok_or_else(|| {
                    IoError::input(
                        &t.coadd_path,
                        format!(
                            "TARGETID {}: RELEASE {} has no known PHOTSYS",
                            t.targetid[i], release[i]
                        ),
                    )
                })?;
        }
        if ps != "N" && ps != "S" {
            // [QUIRK] FastSpecFit's resolve() can never return 'N' for these rows (it reads the
            // invalid PHOTSYS being repaired), so every such row becomes 'S'. Reproduced.
            ps = "S".into();
        }
        out.photsys[i] = ps;
    }
    Ok(())
}

fn gather_external(
    t: &FileTargets,
    cfg: &PhotometryConfig,
    file: &Path,
    ext: Option<&str>,
) -> Result<GatheredPhotometry, IoError> {
    let mut f = FitsReader::open(file)?;
    let hdu = ext.unwrap_or("1").to_string();
    let ids: Vec<i64> = f.col(&hdu, &cfg.uniqueid)?;
    let index: HashMap<i64, usize> = ids.iter().enumerate().map(|(k, v)| (*v, k)).collect();
    let ra: Vec<f64> = f.col(&hdu, "RA")?;
    let dec: Vec<f64> = f.col(&hdu, "DEC")?;
    let mut cols: HashMap<String, Vec<f32>> = HashMap::new();
    for c in flux_columns(cfg) {
        cols.insert(c.clone(), f.col(&hdu, &c)?);
    }
    let n = t.len();
    let mut out = empty(cfg, n);
    let mut dropped = 0;
    for i in 0..n {
        match index.get(&t.targetid[i]) {
            Some(&k) => {
                out.ra[i] = ra[k];
                out.dec[i] = dec[k];
                assign_row(&mut out, cfg, i, &|c: &str| {
                    cols.get(c).map(|v| v[k]).unwrap_or(0.0)
                });
                out.photsys[i] = t.photsys.values[i].clone();
            }
            None => {
                out.keep[i] = false;
                dropped += 1;
            }
        }
    }
    if dropped > 0 {
        tracing::warn!(file = %file.display(), dropped, "dropping targets without a row in the external photometric catalogue");
    }
    Ok(out)
}

/// Fibermap fallback: FLUX_*/FLUX_IVAR_*/FIBER*FLUX_* straight from the coadd FIBERMAP.
///
/// DEVIATION from FastSpecFit (which requires a Tractor or external catalogue): lets a bare
/// `fastspec redrock.fits -o out.fits` run. Bands absent from the FIBERMAP (e.g. W3, W4) get
/// flux 0 and ivar 0 (not measured). The PRIMARY header records `PHOTSRC = 'FIBERMAP'`.
fn gather_fibermap(t: &FileTargets, cfg: &PhotometryConfig) -> Result<GatheredPhotometry, IoError> {
    let n = t.len();
    let mut out = empty(cfg, n);
    let cols: HashMap<&str, &Vec<f32>> = t
        .fibermap_flux
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    for i in 0..n {
        out.ra[i] = t.target_ra[i];
        out.dec[i] = t.target_dec[i];
        assign_row(&mut out, cfg, i, &|c: &str| {
            cols.get(c).map(|v| v[i]).unwrap_or(0.0)
        });
    }
    out.ls_id = Some(
        (0..n)
            .map(|i| ((t.release[i] as i64) << 40) | (t.brickid[i] << 16) | t.brick_objid[i])
            .collect(),
    );
    finish_positions_and_photsys(&mut out, t, &t.release)?;
    Ok(out)
}

/// Gather the photometry of one file's targets from `source`.
///
/// # Errors
/// Missing directories/files/columns, unknown PHOTSYS, zero positions.
pub fn gather_photometry(
    t: &FileTargets,
    cfg: &PhotometryConfig,
    source: &PhotometrySource,
) -> Result<GatheredPhotometry, IoError> {
    match source {
        PhotometrySource::LegacySurvey { dir, explicit } => gather_tractor(t, cfg, dir, *explicit),
        PhotometrySource::External { file, ext } => gather_external(t, cfg, file, ext.as_deref()),
        PhotometrySource::Fibermap => gather_fibermap(t, cfg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brickname_matches_desiutil() {
        // desiutil.brick.brickname(105.48977452498902, 56.669300058331935) == '1054p567'
        assert_eq!(
            brickname(105.48977452498902, 56.669300058331935),
            "1054p567"
        );
        assert_eq!(brickname(0.1, -89.99), "1800m900");
        assert_eq!(brickname(359.99, 0.1), "3598p000");
    }

    #[test]
    fn separation_is_arcsec_accurate() {
        let s = separation_deg(10.0, 20.0, 10.0, 20.0 + 1.0 / 3600.0) * 3600.0;
        assert!((s - 1.0).abs() < 1e-9);
    }

    #[test]
    fn bundled_config_parses() {
        let c = PhotometryConfig::load(None).unwrap();
        assert_eq!(c.bands.len(), 7);
        assert_eq!(c.filters_for("N").unwrap()[0], "BASS-g");
    }
}
