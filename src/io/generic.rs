//! Generic single-spectrum input (`fitspec`): one spectrum per file, from any instrument,
//! without converting it to the DESI data model (README "Fitting spectra from other
//! instruments").
//!
//! # Layouts
//!
//! **FITS**: a binary table, HDU `SPECTRUM` (else the first extension), one row per pixel:
//!
//! | column | unit | |
//! |---|---|---|
//! | `WAVE` | Å, vacuum | strictly increasing (SDSS alias: `LOGLAM` = log10 Å) |
//! | `FLUX` | 1e-17 erg/s/cm²/Å | |
//! | `IVAR` | (1e-17 erg/s/cm²/Å)⁻² | |
//! | `MASK` (optional) | | nonzero = bad pixel (SDSS alias: `AND_MASK`) |
//! | `RES_SIGMA` (optional) | Å | Gaussian σ of the line-spread function per pixel (SDSS alias: `WDISP`, in 1e-4 dex pixels) |
//!
//! Keywords of that HDU (or of the primary header): `Z` (required unless
//! `--targetids`/`--input-redshifts` give it), `TARGETID` (default: the file's position on
//! the command line, 0-based), `RA`, `DEC` (deg, optional, written to METADATA), `EBV`
//! (Milky Way E(B−V) in mag, default 0 = no dust correction), `RES_SIGMA` (a scalar σ in Å
//! when there is no column). An optional image HDU `RESOLUTION` `[ndiag, npix]` gives the
//! resolution matrix in DESI's DIA storage instead of a σ. SDSS `spec-*.fits` files read
//! as they are: `COADD` table (`LOGLAM`, `FLUX`, `IVAR`, `AND_MASK`, `WDISP`) and Z,
//! PLUG_RA, PLUG_DEC from the `SPECOBJ` table.
//!
//! **Text** (plain whitespace/comma-separated table or astropy ECSV): the first non-comment
//! line names the columns (same names, any case), one row per pixel. Comment lines `#`
//! carry the keywords as `# Z: 0.1`, `# Z = 0.1` or ECSV's `# - {Z: 0.1}`.
//!
//! # Resolution
//!
//! From a Gaussian σ (per pixel or scalar) the reader builds a banded matrix in DESI's DIA
//! storage ([`gaussian_resolution`]): row i holds exp(−½((λ_j − λ_i)/σ_i)²) over
//! |i − j| ≤ w2, normalised to sum 1 (as DESI's rows do, to ≈1e-3); w2 = 5 (DESI's 11
//! diagonals) unless 4σ needs more pixels (at most 50). With neither σ nor matrix, the
//! spectrum gets FastSpecFit's stack convention: one diagonal of ones.
//!
//! # Fitting rules
//!
//! One camera named "brz" (as a stack); MW dereddening with the file's `EBV` (no SFD
//! lookup); the uncertainty floor of `--uncertainty-floor`; FLUXNORM 1e17; no broadband
//! photometry (the stacked-phot.yaml configuration: synthesized g, r, z and SDSS absolute
//! magnitudes; `--ignore-photometry` forced). METADATA = `TARGETID`, `RA`, `DEC`, `Z`,
//! `EBV`; PRIMARY `COADDTYP = 'generic'`. The emission-line model uses FastSpecFit's
//! deconvolved matrix W, which assumes DESI's 0.8 Å pixels and a 0.5 Å Gaussian — the same
//! approximation FastSpecFit would make on such data.

use std::path::{Path, PathBuf};

use fsf_components::{CameraColumns, SpectraColumns};

use super::fits::FitsReader;
use super::stack::{no_photometry, run_simple, simple_targets, SIMPLE_CAMERA};
use super::IoError;
use crate::cli::FitArgs;
use crate::run::{InputKind, LoadedFile, RunContext, RunSummary};

/// DESI's number of resolution diagonals (the default band of a Gaussian matrix).
pub const DEFAULT_NDIAG: usize = 11;
/// Largest half-width of a Gaussian resolution matrix, pixels.
pub const MAX_HALF_WIDTH: usize = 50;
/// SDSS log-wavelength pixel size, dex (for `WDISP`).
const SDSS_DLOGLAM: f64 = 1e-4;

/// How the spectrum's resolution is given.
#[derive(Debug, Clone, PartialEq)]
pub enum GenericResolution {
    /// Nothing: a one-diagonal identity (FastSpecFit's stack convention).
    None,
    /// Gaussian line-spread σ per pixel, Å.
    Sigma(Vec<f64>),
    /// A DIA matrix `[ndiag][npix]` (DESI storage).
    Matrix {
        /// Number of diagonals (odd).
        ndiag: usize,
        /// Diagonals.
        data: Vec<f64>,
    },
}

/// One generic spectrum as read.
#[derive(Debug, Clone, PartialEq)]
pub struct GenericSpectrum {
    /// `TARGETID` keyword, if any.
    pub targetid: Option<i64>,
    /// `Z` keyword, if any.
    pub z: Option<f64>,
    /// `RA`, deg (NaN if absent).
    pub ra: f64,
    /// `DEC`, deg (NaN if absent).
    pub dec: f64,
    /// Milky Way E(B−V), mag (0 if absent).
    pub ebv: f64,
    /// Wavelengths, Å (vacuum), strictly increasing.
    pub wave: Vec<f64>,
    /// Flux, 1e-17 erg/s/cm²/Å.
    pub flux: Vec<f64>,
    /// Inverse variance.
    pub ivar: Vec<f64>,
    /// Mask (nonzero = bad).
    pub mask: Vec<u32>,
    /// Resolution.
    pub resolution: GenericResolution,
}

/// Header keywords a generic spectrum may carry.
#[derive(Debug, Clone, Default)]
struct Keys {
    targetid: Option<i64>,
    z: Option<f64>,
    ra: Option<f64>,
    dec: Option<f64>,
    ebv: Option<f64>,
    res_sigma: Option<f64>,
}

impl Keys {
    fn set(&mut self, key: &str, value: &str) {
        let v = value.trim().trim_matches(|c| c == '\'' || c == '"').trim();
        let f = v.parse::<f64>().ok();
        match key.trim().to_ascii_uppercase().as_str() {
            "TARGETID" => {
                self.targetid = self
                    .targetid
                    .or_else(|| v.parse::<i64>().ok())
                    .or_else(|| f.filter(|x| x.fract() == 0.0).map(|x| x as i64))
            }
            "Z" => self.z = self.z.or(f),
            "RA" => self.ra = self.ra.or(f),
            "DEC" => self.dec = self.dec.or(f),
            "EBV" => self.ebv = self.ebv.or(f),
            "RES_SIGMA" => self.res_sigma = self.res_sigma.or(f),
            _ => {}
        }
    }
}

/// The banded Gaussian resolution matrix (DIA `[ndiag][npix]`, DESI storage) of per-pixel
/// σ (Å) on `wave`; see the module docs.
///
/// # Errors
/// Lengths differ, σ not finite and positive, or `ndiag` even.
pub fn gaussian_resolution(wave: &[f64], sigma: &[f64], ndiag: usize) -> Result<Vec<f64>, String> {
    let n = wave.len();
    if sigma.len() != n {
        return Err(format!("{} sigmas for {n} pixels", sigma.len()));
    }
    if ndiag % 2 == 0 {
        return Err(format!("ndiag {ndiag} is even"));
    }
    if let Some(i) = sigma.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(format!("RES_SIGMA[{i}] = {} is not positive", sigma[i]));
    }
    let w2 = ndiag / 2;
    let mut data = vec![0.0; ndiag * n];
    let mut row = vec![0.0; ndiag];
    for i in 0..n {
        let lo = i.saturating_sub(w2);
        let hi = (i + w2).min(n - 1);
        let mut norm = 0.0;
        for j in lo..=hi {
            let x = (wave[j] - wave[i]) / sigma[i];
            let g = (-0.5 * x * x).exp();
            row[w2 + j - i] = g;
            norm += g;
        }
        for j in lo..=hi {
            // M[i, j] = D[w2 + i − j, j]
            data[(w2 + i - j) * n + j] = row[w2 + j - i] / norm;
        }
    }
    Ok(data)
}

/// The number of diagonals for σ on `wave`: DESI's 11, widened so the band spans ±4σ (at
/// most 2·[`MAX_HALF_WIDTH`] + 1).
pub fn gaussian_ndiag(wave: &[f64], sigma: &[f64]) -> usize {
    let mut w2 = DEFAULT_NDIAG / 2;
    for i in 0..wave.len().min(sigma.len()) {
        let dw = if i + 1 < wave.len() {
            wave[i + 1] - wave[i]
        } else if i > 0 {
            wave[i] - wave[i - 1]
        } else {
            continue;
        };
        if dw > 0.0 && sigma[i].is_finite() {
            let need = (4.0 * sigma[i] / dw).ceil();
            if need > w2 as f64 {
                w2 = (need as usize).min(MAX_HALF_WIDTH);
            }
        }
    }
    2 * w2 + 1
}

fn find_col(names: &[String], want: &str) -> Option<String> {
    names.iter().find(|n| n.eq_ignore_ascii_case(want)).cloned()
}

fn read_fits(path: &Path) -> Result<(Keys, Columns), IoError> {
    let mut f = FitsReader::open(path)?;
    let hdu = if f.has_hdu("SPECTRUM") {
        "SPECTRUM".to_string()
    } else if f.has_hdu("COADD") {
        "COADD".to_string()
    } else {
        "1".to_string()
    };
    let names = f.column_names(&hdu).map_err(|_| {
        IoError::input(
            path,
            "no spectrum table (HDU SPECTRUM, COADD or a binary table in HDU 1)",
        )
    })?;
    let mut keys = Keys::default();
    for h in [hdu.as_str(), "PRIMARY"] {
        for k in ["TARGETID", "Z", "RA", "DEC", "EBV", "RES_SIGMA"] {
            if let Some(v) = f.key_str(h, k) {
                keys.set(k, &v);
            } else if let Some(v) = f.key_f64(h, k) {
                keys.set(k, &v.to_string());
            }
        }
    }
    // SDSS: redshift and plug position in the SPECOBJ table
    if f.has_hdu("SPECOBJ") {
        for (k, c) in [("Z", "Z"), ("RA", "PLUG_RA"), ("DEC", "PLUG_DEC")] {
            if f.has_column("SPECOBJ", c) {
                if let Some(v) = f.col::<f64>("SPECOBJ", c)?.first() {
                    keys.set(k, &v.to_string());
                }
            }
        }
    }
    let mut read = |want: &[&str]| -> Result<Option<(String, Vec<f64>)>, IoError> {
        for w in want {
            if let Some(c) = find_col(&names, w) {
                return Ok(Some((w.to_string(), f.col::<f64>(&hdu, &c)?)));
            }
        }
        Ok(None)
    };
    let wave = match read(&["WAVE", "LOGLAM"])? {
        Some((n, v)) if n == "LOGLAM" => v.iter().map(|l| 10f64.powf(*l)).collect(),
        Some((_, v)) => v,
        None => {
            return Err(IoError::input(
                path,
                format!("HDU {hdu} has no WAVE column"),
            ))
        }
    };
    let flux = read(&["FLUX"])?
        .ok_or_else(|| IoError::input(path, format!("HDU {hdu} has no FLUX column")))?
        .1;
    let ivar = read(&["IVAR"])?
        .ok_or_else(|| IoError::input(path, format!("HDU {hdu} has no IVAR column")))?
        .1;
    let mask = read(&["MASK", "AND_MASK"])?.map(|c| c.1);
    let sigma = match read(&["RES_SIGMA", "WDISP"])? {
        Some((n, v)) if n == "WDISP" => Some(
            v.iter()
                .zip(&wave)
                .map(|(w, l)| w * l * std::f64::consts::LN_10 * SDSS_DLOGLAM)
                .collect(),
        ),
        Some((_, v)) => Some(v),
        None => None,
    };
    let matrix = if f.has_hdu("RESOLUTION") {
        let (data, s) = f.image_f64("RESOLUTION")?;
        if s.len() != 2 || s[1] != wave.len() || s[0] % 2 == 0 {
            return Err(IoError::input(
                path,
                format!(
                    "RESOLUTION has shape {s:?}, expected [ndiag (odd), {}]",
                    wave.len()
                ),
            ));
        }
        Some((s[0], data))
    } else {
        None
    };
    Ok((
        keys,
        Columns {
            wave,
            flux,
            ivar,
            mask,
            sigma,
            matrix,
        },
    ))
}

/// The columns of a spectrum file before validation.
struct Columns {
    wave: Vec<f64>,
    flux: Vec<f64>,
    ivar: Vec<f64>,
    mask: Option<Vec<f64>>,
    sigma: Option<Vec<f64>>,
    matrix: Option<(usize, Vec<f64>)>,
}

fn read_text(path: &Path) -> Result<(Keys, Columns), IoError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| IoError::input(path, format!("cannot read: {e}")))?;
    let mut keys = Keys::default();
    let mut header: Option<Vec<String>> = None;
    let mut cols: Vec<Vec<f64>> = Vec::new();
    let split = |l: &str| -> Vec<String> {
        l.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    for (ln, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(c) = t.strip_prefix('#') {
            let c = c.trim().trim_start_matches("- ").trim();
            let c = c
                .strip_prefix('{')
                .and_then(|c| c.strip_suffix('}'))
                .unwrap_or(c);
            if let Some(p) = c.find([':', '=']) {
                keys.set(&c[..p], &c[p + 1..]);
            }
            continue;
        }
        match &header {
            None => {
                let h = split(t);
                cols = vec![Vec::new(); h.len()];
                header = Some(h);
            }
            Some(h) => {
                let vals = split(t);
                if vals.len() != h.len() {
                    return Err(IoError::input(
                        path,
                        format!(
                            "line {}: {} values for {} columns",
                            ln + 1,
                            vals.len(),
                            h.len()
                        ),
                    ));
                }
                for (c, v) in cols.iter_mut().zip(&vals) {
                    let x = v.parse::<f64>().map_err(|_| {
                        IoError::input(path, format!("line {}: '{v}' is not a number", ln + 1))
                    })?;
                    c.push(x);
                }
            }
        }
    }
    let names = header.ok_or_else(|| IoError::input(path, "no column header line"))?;
    let take = |w: &str| -> Option<Vec<f64>> {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(w))
            .map(|i| cols[i].clone())
    };
    let need = |w: &str| take(w).ok_or_else(|| IoError::input(path, format!("no {w} column")));
    Ok((
        keys,
        Columns {
            wave: need("WAVE")?,
            flux: need("FLUX")?,
            ivar: need("IVAR")?,
            mask: take("MASK"),
            sigma: take("RES_SIGMA"),
            matrix: None,
        },
    ))
}

/// Read a generic spectrum file (FITS if it starts like one, else a text table) and check
/// it (see the module docs for the layouts).
///
/// # Errors
/// Unreadable file, missing columns, unequal lengths, a wavelength grid that is not
/// strictly increasing and finite, too few pixels, a bad σ or matrix.
pub fn read_generic(path: &Path) -> Result<GenericSpectrum, IoError> {
    let mut head = [0u8; 6];
    let is_fits = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map(|n| n == 6 && &head == b"SIMPLE")
        .map_err(|e| IoError::input(path, format!("cannot read: {e}")))?;
    let (keys, c) = if is_fits {
        read_fits(path)?
    } else {
        read_text(path)?
    };
    let n = c.wave.len();
    let bad = |m: String| Err(IoError::input(path, m));
    if c.flux.len() != n || c.ivar.len() != n {
        return bad(format!(
            "{n} wavelengths, {} fluxes, {} ivars",
            c.flux.len(),
            c.ivar.len()
        ));
    }
    if n < 2 * DEFAULT_NDIAG {
        return bad(format!("only {n} pixels"));
    }
    if c.wave.iter().any(|w| !(w.is_finite() && *w > 0.0))
        || c.wave.windows(2).any(|p| p[1] <= p[0])
    {
        return bad("WAVE must be finite, positive and strictly increasing".into());
    }
    let mask: Vec<u32> = match &c.mask {
        Some(m) if m.len() != n => return bad(format!("{} mask values for {n} pixels", m.len())),
        Some(m) => m.iter().map(|&v| u32::from(v != 0.0)).collect(),
        None => vec![0; n],
    };
    let resolution = if let Some((ndiag, data)) = c.matrix {
        if data.iter().any(|v| !v.is_finite()) {
            return bad("RESOLUTION has non-finite entries".into());
        }
        GenericResolution::Matrix { ndiag, data }
    } else if let Some(s) = c.sigma.or_else(|| keys.res_sigma.map(|s| vec![s; n])) {
        if s.len() != n {
            return bad(format!("{} RES_SIGMA values for {n} pixels", s.len()));
        }
        if let Some(i) = s.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            return bad(format!("RES_SIGMA[{i}] = {} is not positive", s[i]));
        }
        GenericResolution::Sigma(s)
    } else {
        GenericResolution::None
    };
    let ebv = keys.ebv.unwrap_or(0.0);
    if !(ebv.is_finite() && ebv >= 0.0) {
        return bad(format!("EBV = {ebv} must be finite and >= 0"));
    }
    Ok(GenericSpectrum {
        targetid: keys.targetid,
        z: keys.z,
        ra: keys.ra.unwrap_or(f64::NAN),
        dec: keys.dec.unwrap_or(f64::NAN),
        ebv,
        wave: c.wave,
        flux: c.flux,
        ivar: c.ivar,
        mask,
        resolution,
    })
}

/// The one-camera [`SpectraColumns`] of a generic spectrum (resolution built from σ if
/// needed; non-finite flux/ivar and negative ivar masked as the DESI reader does).
///
/// # Errors
/// A bad σ (see [`gaussian_resolution`]).
pub fn spectra_columns(s: &GenericSpectrum) -> Result<SpectraColumns, String> {
    let n = s.wave.len();
    let (ndiag, resolution) = match &s.resolution {
        GenericResolution::None => (1, vec![1.0; n]),
        GenericResolution::Matrix { ndiag, data } => (*ndiag, data.clone()),
        GenericResolution::Sigma(sig) => {
            let nd = gaussian_ndiag(&s.wave, sig);
            (nd, gaussian_resolution(&s.wave, sig, nd)?)
        }
    };
    let (mut flux, mut ivar, mut mask) = (s.flux.clone(), s.ivar.clone(), s.mask.clone());
    for i in 0..n {
        if !flux[i].is_finite() || !ivar[i].is_finite() || ivar[i] < 0.0 {
            flux[i] = 0.0;
            ivar[i] = 0.0;
            mask[i] |= super::spectra::MASK_BAD_INPUT;
        }
    }
    Ok(SpectraColumns {
        cameras: vec![CameraColumns {
            name: SIMPLE_CAMERA.into(),
            wave_ang: s.wave.clone(),
            npix: n,
            flux,
            ivar,
            mask,
            ndiag,
            resolution,
        }],
    })
}

/// Read the generic spectrum `path` (the `index`-th file of the run) into the structures
/// the DESI path produces. Selection: with `--targetids` the file is fitted only if its
/// TARGETID is listed (and `--input-redshifts` then gives its Z); `--firsttarget` > 0 or
/// `--ntargets 0` skip it (one spectrum per file).
///
/// # Errors
/// As [`read_generic`]; no redshift.
pub fn load_generic(
    path: &Path,
    index: usize,
    ctx: &RunContext,
) -> Result<Option<LoadedFile>, IoError> {
    let _span = tracing::info_span!("load").entered();
    let s = read_generic(path)?;
    let id = s.targetid.unwrap_or(index as i64);
    let mut z = s.z;
    if let Some(ids) = &ctx.select.targetids {
        let Some(k) = ids.iter().position(|&t| t == id) else {
            return Ok(None);
        };
        if let Some(zs) = &ctx.select.input_redshifts {
            z = zs.get(k).copied().or(z);
        }
    }
    if ctx.select.firsttarget > 0 || ctx.select.ntargets == Some(0) {
        return Ok(None);
    }
    let Some(z) = z else {
        return Err(IoError::input(
            path,
            "no redshift: give a Z keyword, or --targetids with --input-redshifts",
        ));
    };
    let spectra = spectra_columns(&s).map_err(|e| IoError::input(path, e))?;
    let targets = simple_targets(path, InputKind::Generic, vec![0], 1, vec![id], vec![z]);
    let phot = no_photometry(&ctx.phot_cfg, vec![s.ra], vec![s.dec]);
    Ok(Some(LoadedFile {
        targets,
        phot,
        kept: vec![0],
        spectra: Some(spectra),
        input_ebv: Some(vec![s.ebv]),
    }))
}

/// `fitspec`: fit the generic spectra `args.redrockfiles` (command-line order) into
/// `args.outfile`.
///
/// # Errors
/// Configuration, input or output errors, each naming the file concerned.
pub fn run_fitspec(args: &FitArgs) -> anyhow::Result<RunSummary> {
    let files: Vec<PathBuf> = args.redrockfiles.clone();
    run_simple(args, InputKind::Generic, &files, load_generic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_rows_sum_to_one_and_match_the_profile() {
        let wave: Vec<f64> = (0..200).map(|i| 4000.0 + 0.8 * i as f64).collect();
        let sigma = vec![0.9; 200];
        let nd = gaussian_ndiag(&wave, &sigma);
        assert_eq!(nd, 11);
        let d = gaussian_resolution(&wave, &sigma, nd).unwrap();
        let r = fsf_systems::kernels::resolution::Resolution::new(nd, 200, d).unwrap();
        for i in [0usize, 3, 100, 199] {
            let s: f64 = (0..200).map(|j| r.get(i, j)).sum();
            assert!((s - 1.0).abs() < 1e-14, "row {i} sums to {s}");
        }
        // interior row: ratio of neighbours = exp(−½(Δλ/σ)²)
        let ratio = r.get(100, 101) / r.get(100, 100);
        let dw = wave[101] - wave[100];
        assert!((ratio - (-0.5 * (dw / 0.9f64).powi(2)).exp()).abs() < 1e-14);
        assert_eq!(r.get(100, 106), 0.0);
        // wide σ widens the band
        assert_eq!(gaussian_ndiag(&wave, &vec![1.9; 200]), 21); // ceil(4·1.9/0.8) = 10
        assert_eq!(
            gaussian_ndiag(&wave, &vec![100.0; 200]),
            2 * MAX_HALF_WIDTH + 1
        );
        assert!(gaussian_resolution(&wave, &vec![0.0; 200], 11).is_err());
    }

    #[test]
    fn text_keywords_in_all_three_styles() {
        let mut k = Keys::default();
        for (a, b) in [
            ("Z", " 0.25"),
            ("targetid", " 12"),
            ("RA", "'1.5'"),
            ("EBV", "0.03"),
        ] {
            k.set(a, b);
        }
        assert_eq!(k.z, Some(0.25));
        assert_eq!(k.targetid, Some(12));
        assert_eq!(k.ra, Some(1.5));
        assert_eq!(k.ebv, Some(0.03));
        k.set("Z", "0.5"); // the first occurrence wins
        assert_eq!(k.z, Some(0.25));
    }
}
