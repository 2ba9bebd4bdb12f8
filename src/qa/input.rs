//! What a QA figure is drawn from: the fastspec/fastphot output file (METADATA, SPECPHOT,
//! FASTSPEC, MODELS), the observed spectrum re-read from the coadd, and the full-resolution
//! best-fit SED rebuilt from COEFF/TAUV with the templates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use fsf_components::templates::Templates;
use fsf_systems::kernels::continuum::MASSNORM;
use fsf_systems::kernels::cosmology::Cosmology;
use fsf_systems::kernels::derived::sed::{build_sed, SedInputs};
use fsf_systems::kernels::dust::zfactors;
use fsf_systems::kernels::filters::{load_filter, FilterCurve};
use fsf_systems::kernels::igm::Inoue14;
use fsf_systems::kernels::mwdust::Fitzpatrick99;
use fsf_systems::kernels::prepare::camera::{prepare_camera, CameraOutcome};

use crate::compare::{read_num_table, NumTable};
use crate::io::desi::{coadd_path_for, SelectOptions};
use crate::io::fits::FitsReader;
use crate::io::photometry::PhotometryConfig;
use crate::io::spectra::read_spectra_checked;

/// Speed of light, km/s.
pub const C_KMS: f64 = 299_792.458;
/// Speed of light, Å/s.
const C_ANG_S: f64 = 2.997_924_58e18;

/// One fastspec/fastphot output file, read whole.
#[derive(Debug, Clone)]
pub struct FitFile {
    /// The file.
    pub path: PathBuf,
    /// Photometry-only output (no FASTSPEC/MODELS HDUs).
    pub fastphot: bool,
    /// PRIMARY `COADDTYP` (healpix, cumulative, ...).
    pub coadd_type: String,
    /// PRIMARY `SPECPROD`.
    pub specprod: String,
    /// PRIMARY `INPUTZ`: redshifts were given on the command line.
    pub inputz: bool,
    /// METADATA + SPECPHOT + FASTSPEC numeric columns merged on TARGETID.
    pub table: NumTable,
    /// METADATA string columns (SURVEY, PROGRAM, PHOTSYS), row-aligned with `table`.
    pub strings: HashMap<String, Vec<String>>,
    /// MODELS image: `[nobj][3][npix]` (continuum, smooth continuum, line model).
    pub models: Option<Models>,
}

/// The MODELS HDU: per-target best-fit spectral models on one linear wavelength grid.
#[derive(Debug, Clone)]
pub struct Models {
    /// Wavelength of pixel 0, Å.
    pub crval1: f64,
    /// Pixel size, Å.
    pub cdelt1: f64,
    /// Pixels per model.
    pub npix: usize,
    /// Values `[nobj][3][npix]`, 1e-17 erg s⁻¹ cm⁻² Å⁻¹.
    pub data: Vec<f64>,
}

impl Models {
    /// Model `k` (0 continuum, 1 smooth continuum, 2 emission lines) of row `row`.
    pub fn model(&self, row: usize, k: usize) -> &[f64] {
        let o = (row * 3 + k) * self.npix;
        &self.data[o..o + self.npix]
    }

    /// Linear interpolation of model `k` of `row` at `wave` (0 outside the grid).
    pub fn interp(&self, row: usize, k: usize, wave: f64) -> f64 {
        let m = self.model(row, k);
        let x = (wave - self.crval1) / self.cdelt1;
        if x.is_nan() || x < 0.0 || x > (self.npix - 1) as f64 {
            return 0.0;
        }
        let i = (x.floor() as usize).min(self.npix.saturating_sub(2));
        let t = x - i as f64;
        m[i] * (1.0 - t) + m[(i + 1).min(self.npix - 1)] * t
    }
}

impl FitFile {
    /// Read an output file of `fastspec` or `fastphot` (FastSpecFit's data model).
    ///
    /// # Errors
    /// Missing file, HDUs or TARGETID; a MODELS image whose shape disagrees with the tables.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let table = read_num_table(path, None)?;
        let mut f = FitsReader::open(path)?;
        let fastphot = !f.has_hdu("FASTSPEC");
        let coadd_type = f.key_str("PRIMARY", "COADDTYP").unwrap_or_default();
        let specprod = f.key_str("PRIMARY", "SPECPROD").unwrap_or_default();
        let inputz = f
            .key_str("PRIMARY", "INPUTZ")
            .map(|s| s.eq_ignore_ascii_case("T") || s.eq_ignore_ascii_case("true"))
            .or_else(|| f.key_i64("PRIMARY", "INPUTZ").map(|v| v != 0))
            .unwrap_or(false);
        let mut strings = HashMap::new();
        for col in ["SURVEY", "PROGRAM", "PHOTSYS"] {
            if f.has_column("METADATA", col) {
                let (v, _) = f.str_col("METADATA", col)?;
                strings.insert(col.to_string(), v);
            }
        }
        let models = if f.has_hdu("MODELS") {
            let (data, shape) = f.image_f64("MODELS")?;
            let n = table.targetid.len();
            if shape.len() != 3 || shape[0] != n || shape[1] != 3 {
                bail!(
                    "{}: MODELS has shape {shape:?}, expected [{n}, 3, npix]",
                    path.display()
                );
            }
            Some(Models {
                crval1: f.key_f64("MODELS", "CRVAL1").unwrap_or(3600.0),
                cdelt1: f.key_f64("MODELS", "CDELT1").unwrap_or(0.8),
                npix: shape[2],
                data,
            })
        } else {
            None
        };
        Ok(FitFile {
            path: path.to_path_buf(),
            fastphot,
            coadd_type,
            specprod,
            inputz,
            table,
            strings,
            models,
        })
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.table.targetid.len()
    }

    /// Whether the file has no target.
    pub fn is_empty(&self) -> bool {
        self.table.targetid.is_empty()
    }

    /// Scalar column `name` of `row` (first element of a vector column); NaN when absent.
    pub fn num(&self, row: usize, name: &str) -> f64 {
        self.vec(row, name)
            .and_then(|v| v.first().copied())
            .unwrap_or(f64::NAN)
    }

    /// Whether numeric column `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.table
            .columns
            .iter()
            .any(|c| c.0.eq_ignore_ascii_case(name))
    }

    /// Vector column `name` of `row`.
    pub fn vec(&self, row: usize, name: &str) -> Option<&[f64]> {
        let (_, v, rep) = self
            .table
            .columns
            .iter()
            .find(|c| c.0.eq_ignore_ascii_case(name))?;
        v.get(row * rep..(row + 1) * rep)
    }

    /// String column `name` of `row` ('' when absent).
    pub fn str(&self, row: usize, name: &str) -> &str {
        self.strings
            .get(name)
            .and_then(|v| v.get(row))
            .map(|s| s.as_str())
            .unwrap_or("")
    }

    /// TARGETID of `row`.
    pub fn targetid(&self, row: usize) -> i64 {
        self.table.targetid[row]
    }

    /// Integer-valued column as text ('' when absent).
    pub fn int_str(&self, row: usize, name: &str) -> String {
        let v = self.num(row, name);
        if v.is_finite() {
            format!("{}", v as i64)
        } else {
            String::new()
        }
    }

    /// FastSpecFit's QA file name (`get_qa_filename`): `{prefix}-{survey}-{program}-{healpix}-
    /// {targetid}.png` for healpix/custom coadds, `{prefix}-{tileid}-cumulative-{targetid}.png`,
    /// `{prefix}-{tileid}-{night}-{targetid}.png` (pernight),
    /// `{prefix}-{tileid}-{night}-{expid}-{targetid}.png` (perexp); prefix `fastspec` or `fastphot`.
    pub fn png_name(&self, row: usize) -> String {
        let prefix = if self.fastphot {
            "fastphot"
        } else {
            "fastspec"
        };
        let tid = self.targetid(row);
        let (s, p) = (self.str(row, "SURVEY"), self.str(row, "PROGRAM"));
        match self.coadd_type.as_str() {
            "uniqpix" => format!(
                "{prefix}-{s}-{p}-{}-{tid}.png",
                self.int_str(row, "UNIQPIX")
            ),
            "cumulative" => format!(
                "{prefix}-{}-cumulative-{tid}.png",
                self.int_str(row, "TILEID")
            ),
            "pernight" => format!(
                "{prefix}-{}-{}-{tid}.png",
                self.int_str(row, "TILEID"),
                self.int_str(row, "NIGHT")
            ),
            "perexp" => format!(
                "{prefix}-{}-{}-{}-{tid}.png",
                self.int_str(row, "TILEID"),
                self.int_str(row, "NIGHT"),
                self.int_str(row, "EXPID")
            ),
            _ => format!(
                "{prefix}-{s}-{p}-{}-{tid}.png",
                self.int_str(row, "HEALPIX")
            ),
        }
    }

    /// The identification lines of the figure (FastSpecFit's `_target_label`).
    pub fn target_label(&self, row: usize) -> Vec<String> {
        let tid = format!("TargetID: {}", self.targetid(row));
        match self.coadd_type.as_str() {
            "cumulative" | "pernight" | "perexp" => vec![
                format!(
                    "Tile/Night/Fiber: {}/{}/{}",
                    self.int_str(row, "TILEID"),
                    self.int_str(row, "NIGHT"),
                    self.int_str(row, "FIBER")
                ),
                tid,
            ],
            "uniqpix" => vec![
                format!(
                    "Survey/Program/Uniqpix: {}/{}/{}",
                    self.str(row, "SURVEY"),
                    self.str(row, "PROGRAM"),
                    self.int_str(row, "UNIQPIX")
                ),
                tid,
            ],
            _ => vec![
                format!(
                    "Survey/Program/Healpix: {}/{}/{}",
                    self.str(row, "SURVEY"),
                    self.str(row, "PROGRAM"),
                    self.int_str(row, "HEALPIX")
                ),
                tid,
            ],
        }
    }
}

/// One camera of the observed spectrum, prepared as for the fit (edge and mask pixels
/// zeroed, Milky Way dereddened).
#[derive(Debug, Clone)]
pub struct ObservedCamera {
    /// Camera name (B, R, Z).
    pub name: String,
    /// Wavelengths, Å.
    pub wave: Vec<f64>,
    /// Dereddened flux, 1e-17 erg s⁻¹ cm⁻² Å⁻¹.
    pub flux: Vec<f64>,
    /// Inverse variance (0 on masked pixels).
    pub ivar: Vec<f64>,
}

/// Where the Redrock/coadd inputs are.
#[derive(Debug, Clone, Default)]
pub struct SpectraSource {
    /// Redrock files given on the command line (searched first).
    pub redrockfiles: Vec<PathBuf>,
    /// `--redux_dir` (production layout).
    pub redux_dir: Option<PathBuf>,
    /// `--specprod` override of the output file's SPECPROD.
    pub specprod: Option<String>,
    /// Redrock/coadd file-name prefixes.
    pub redrock_prefix: String,
    /// Coadd file-name prefix.
    pub specfile_prefix: String,
}

impl SpectraSource {
    fn select_options(&self) -> SelectOptions {
        SelectOptions {
            redrock_prefix: self.redrock_prefix.clone(),
            specfile_prefix: self.specfile_prefix.clone(),
            ..SelectOptions::default()
        }
    }

    /// The production-layout Redrock file of `row` (FastSpecFit's `fastqa` search), if any.
    fn production_redrock(&self, ff: &FitFile, row: usize) -> Option<PathBuf> {
        let redux = self.redux_dir.as_ref()?;
        let specprod = self.specprod.clone().unwrap_or_else(|| ff.specprod.clone());
        let base = redux.join(specprod);
        let p = &self.redrock_prefix;
        match ff.coadd_type.as_str() {
            "healpix" => {
                let hp = ff.num(row, "HEALPIX");
                if !hp.is_finite() {
                    return None;
                }
                let hp = hp as i64;
                let (s, pr) = (ff.str(row, "SURVEY"), ff.str(row, "PROGRAM"));
                Some(
                    base.join("healpix")
                        .join(s)
                        .join(pr)
                        .join((hp / 100).to_string())
                        .join(hp.to_string())
                        .join(format!("{p}{s}-{pr}-{hp}.fits")),
                )
            }
            "cumulative" => {
                let (tile, night, fiber) = (
                    ff.num(row, "TILEID"),
                    ff.num(row, "NIGHT"),
                    ff.num(row, "FIBER"),
                );
                if !(tile.is_finite() && night.is_finite() && fiber.is_finite()) {
                    return None;
                }
                let (tile, night, petal) = (tile as i64, night as i64, fiber as i64 / 500);
                Some(
                    base.join("tiles")
                        .join("cumulative")
                        .join(tile.to_string())
                        .join(night.to_string())
                        .join(format!("{p}{petal}-{tile}-thru{night}.fits")),
                )
            }
            _ => None,
        }
    }

    /// Find and prepare the observed spectrum of `row` of `ff`: the coadd of a given Redrock
    /// file whose FIBERMAP holds the TARGETID, else the production layout under
    /// `--redux_dir`. `Ok(None)` when no input holds the target.
    ///
    /// # Errors
    /// Unreadable coadd files.
    pub fn spectrum(
        &self,
        ff: &FitFile,
        row: usize,
    ) -> anyhow::Result<Option<Vec<ObservedCamera>>> {
        let tid = ff.targetid(row);
        let opts = self.select_options();
        let mut candidates: Vec<PathBuf> = self.redrockfiles.clone();
        if let Some(p) = self.production_redrock(ff, row) {
            candidates.push(p);
        }
        for rr in candidates {
            let Ok(coadd) = coadd_path_for(&rr, &opts) else {
                continue;
            };
            if !coadd.is_file() {
                continue;
            }
            let mut f = FitsReader::open(&coadd)?;
            let tids: Vec<i64> = f.col("FIBERMAP", "TARGETID")?;
            let Some(r) = tids.iter().position(|&t| t == tid) else {
                continue;
            };
            let (sp, _bad) = read_spectra_checked(&coadd, &[r], tids.len())?;
            let ebv = ff.num(row, "EBV");
            let ebv = if ebv.is_finite() { ebv } else { 0.0 };
            let curve = Fitzpatrick99::new(3.1);
            let mut cams = Vec::new();
            for cam in &sp.cameras {
                let n = cam.npix;
                let out = prepare_camera(
                    &cam.wave_ang,
                    &cam.flux[..n],
                    &cam.ivar[..n],
                    &cam.mask[..n],
                    ebv,
                    0.0,
                    &curve,
                )
                .with_context(|| format!("{}: camera {}", coadd.display(), cam.name))?;
                if let CameraOutcome::Kept(pc) = out {
                    cams.push(ObservedCamera {
                        name: cam.name.clone(),
                        wave: cam.wave_ang.clone(),
                        flux: pc.flux,
                        ivar: pc.ivar,
                    });
                }
            }
            return Ok(Some(cams));
        }
        Ok(None)
    }
}

/// One band of the broadband photometry.
#[derive(Debug, Clone)]
pub struct PhotBand {
    /// Band name (e.g. `g`, `W1`, `I427`).
    pub band: String,
    /// Effective wavelength of the filter, Å.
    pub lambda_eff: f64,
    /// Observed flux corrected for Milky Way extinction, nanomaggies.
    pub flux: f64,
    /// Its inverse variance (0 = not measured).
    pub ivar: f64,
    /// Best-fit model photometry (FLUX_SYNTH_PHOTMODEL_*), nanomaggies (NaN if absent).
    pub model: f64,
    /// Whether the band enters the fit.
    pub fitted: bool,
    /// Minimum uncertainty, mag (added in quadrature).
    pub min_unc: f64,
}

impl PhotBand {
    /// AB magnitude with (bright, faint) errors, or a 2σ upper limit `(mag, None)`; `None`
    /// when the band is not measured. The minimum uncertainty enters in quadrature, as in
    /// FastSpecFit's fit.
    pub fn abmag(&self) -> Option<(f64, Option<(f64, f64)>)> {
        if self.ivar.is_nan() || self.ivar <= 0.0 || !self.flux.is_finite() {
            return None;
        }
        let sig0 = 1.0 / self.ivar.sqrt();
        let floor = self.min_unc * self.flux.abs() * 0.4 * std::f64::consts::LN_10;
        let sig = (sig0 * sig0 + floor * floor).sqrt();
        if self.flux > sig {
            let m = nmgy_to_ab(self.flux);
            let bright = m - nmgy_to_ab(self.flux + sig);
            let faint = if self.flux - sig > 0.0 {
                nmgy_to_ab(self.flux - sig) - m
            } else {
                2.0
            };
            Some((m, Some((bright, faint))))
        } else {
            Some((nmgy_to_ab(2.0 * sig), None))
        }
    }
}

/// AB magnitude of a flux in nanomaggies.
pub fn nmgy_to_ab(f: f64) -> f64 {
    22.5 - 2.5 * f.log10()
}

/// AB magnitude of f_λ in 1e-17 erg s⁻¹ cm⁻² Å⁻¹ at `wave` Å (NaN if f ≤ 0).
pub fn flam_to_ab(flam: f64, wave: f64) -> f64 {
    if flam > 0.0 {
        let fnu = flam * 1e-17 * wave * wave / C_ANG_S;
        -2.5 * fnu.log10() - 48.6
    } else {
        f64::NAN
    }
}

/// Observed and model photometry of `row`.
///
/// # Errors
/// No filters configured for the target's PHOTSYS, or an unknown filter.
pub fn photometry(
    ff: &FitFile,
    row: usize,
    cfg: &PhotometryConfig,
) -> anyhow::Result<(Vec<PhotBand>, Vec<FilterCurve>)> {
    let photsys = ff.str(row, "PHOTSYS");
    let names = cfg
        .filters_for(photsys)
        .or_else(|| cfg.filters.values().next().map(|v| v.as_slice()))
        .with_context(|| format!("no filters for PHOTSYS '{photsys}'"))?;
    let mut bands = Vec::new();
    let mut curves = Vec::new();
    for (i, b) in cfg.bands.iter().enumerate() {
        let curve = load_filter(&names[i]).map_err(|e| anyhow::anyhow!("{e}"))?;
        let ub = b.to_uppercase();
        let mw = ff.num(row, &format!("MW_TRANSMISSION_{ub}"));
        let mw = if mw.is_finite() && mw > 0.0 { mw } else { 1.0 };
        let flux = ff.num(row, &format!("FLUX_{ub}")) / mw;
        let ivar = ff.num(row, &format!("FLUX_IVAR_{ub}")) * mw * mw;
        bands.push(PhotBand {
            band: b.clone(),
            lambda_eff: curve.lambda_eff,
            flux,
            ivar: if ivar.is_finite() { ivar } else { 0.0 },
            model: ff.num(row, &format!("FLUX_SYNTH_PHOTMODEL_{ub}")),
            fitted: cfg.bands_to_fit.get(i).copied().unwrap_or(true),
            min_unc: cfg.min_uncertainty.get(i).copied().unwrap_or(0.0),
        });
        curves.push(curve);
    }
    Ok((bands, curves))
}

/// Run-level resources for rebuilding full-resolution SEDs.
pub struct SedBuilder {
    /// Templates.
    pub templates: Templates,
    igm: Inoue14,
    cosmo: Cosmology,
}

/// A rebuilt best-fit SED on the observed-frame template grid.
#[derive(Debug, Clone)]
pub struct Sed {
    /// Observed wavelengths λ(1+z), Å.
    pub wave: Vec<f64>,
    /// f_λ, 1e-17 erg s⁻¹ cm⁻² Å⁻¹.
    pub flam: Vec<f64>,
}

impl SedBuilder {
    /// Wrap the templates with the IGM model and cosmology.
    ///
    /// # Errors
    /// The IGM tables fail to load.
    pub fn new(templates: Templates, cosmo: Cosmology) -> anyhow::Result<Self> {
        Ok(SedBuilder {
            templates,
            igm: Inoue14::new().map_err(|e| anyhow::anyhow!("{e}"))?,
            cosmo,
        })
    }

    /// The best-fit SED of `row` (COEFF, TAUV at Z; templates at the nominal velocity
    /// dispersion, dust emission on): what FastSpecFit's QA plots in grey. `None` if COEFF is
    /// absent, all zero, or has a different length than the template set.
    ///
    /// # Errors
    /// Distance or IGM failures.
    pub fn sed(&self, ff: &FitFile, row: usize) -> anyhow::Result<Option<Sed>> {
        let Some(coeff) = ff.vec(row, "COEFF") else {
            return Ok(None);
        };
        let tpl = &self.templates;
        if coeff.len() != tpl.ntemplate || coeff.iter().all(|&c| c == 0.0) {
            return Ok(None);
        }
        let z = ff.num(row, "Z");
        let tauv = ff.num(row, "TAUV");
        if z.is_nan() || z <= 0.0 || !tauv.is_finite() {
            return Ok(None);
        }
        let dlum = self
            .cosmo
            .luminosity_distance(z)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let zwave: Vec<f64> = tpl.wave_ang.iter().map(|w| w * (1.0 + z)).collect();
        let mut zf = vec![0.0; zwave.len()];
        zfactors(&self.igm, z, dlum, 1e17, MASSNORM, &zwave, &mut zf)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let inp = SedInputs {
            wave: &tpl.wave_ang,
            flux: &tpl.flux_nomvdisp,
            klambda: &tpl.dust_klambda,
            dustflux: &tpl.dustflux,
            zfactors: &zf,
        };
        let (mut atten, mut out) = (Vec::new(), Vec::new());
        build_sed(&inp, coeff, tauv, true, &mut atten, &mut out)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Some(Sed {
            wave: zwave,
            flam: out,
        }))
    }
}
