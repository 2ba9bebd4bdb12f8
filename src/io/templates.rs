//! Template file reader and template-path resolution (SPEC §3.1, §3.2).
//!
//! Reads FastSpecFit's template data model `ftemplates-{imf}-{version}.fits`:
//! FLUX (primary; NumPy shape `[nwave, nsed]`), LINEFLUX (same shape), DUSTFLUX (`[nwave]`,
//! mandatory), WAVE (`[nwave]`, rest vacuum Å, grid keywords in its header) and METADATA
//! (one row per template: `age`, `zzsun`, `mstar`, `sfr`, optional `dt`; header `IMF`).
//! The optional AGNFLUX/AGNWAVE/FEFLUX/FEWAVE and LINEFLUXES/LINEWAVES HDUs are tolerated
//! and not read (fastspec and fastphot do not use them).
//!
//! At read time, as FastSpecFit:
//! * fluxes are transposed to `[ntemplate][nwave]` and every array is cut after the last
//!   wavelength ≤ 4e5 Å (right bisection); `flux_nolines = FLUX − LINEFLUX`;
//! * grid parameters: WAVE header with `SIGC3K` → PIXKMS, (PIXWAVLO, PIXWAVHI), SIGC3K
//!   from the header; else major version < 3 → 25 km/s, (2750, 9100) Å, σ_C3K =
//!   c/(3000·√(8 ln 2)); else the class defaults c/6000 km/s, (3500, 9800) Å, same σ_C3K;
//! * `pixkms_bounds` = left bisection of the wavelength bounds in the kept grid;
//! * k(λ) = (λ/5500)^−0.7; vdisp_nominal_kernel = √max(0, vdisp_nominal² − σ_C3K²);
//! * the FFT pre-caches of `flux` and `flux_nolines` and both convolved with the nominal
//!   kernel (direct method, `fsf_systems::kernels::vdisp`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use fitsio::hdu::HduInfo;
use fsf_components::templates::{ConvPre, Templates};
use fsf_systems::kernels::vdisp::{
    convolve_direct_rows, pre_fft_len, pre_max_radius, precompute, VdispGrid, VdispWorkspace,
};

use super::fits::FitsReader;
use super::IoError;

/// Speed of light, km/s.
const C_LIGHT_KMS: f64 = 299_792.458;

/// Template version used when none is requested (and assumed when VERSION is missing).
pub const DEFAULT_TEMPLATE_VERSION: &str = "2.2.0";

/// Initial mass function used to build the default template file name.
pub const DEFAULT_IMF: &str = "chabrier";

/// Reported σ★ when the velocity dispersion is not measured, km/s.
pub const VDISP_NOMINAL_KMS: f64 = 150.0;

/// Default bounds on the convolution-kernel σ, km/s.
pub const VDISP_BOUNDS_KMS: (f64, f64) = (50.0, 500.0);

/// Longest rest wavelength kept in memory, Å.
pub const MAX_TEMPLATE_WAVE_ANG: f64 = 4e5;

/// Resolution λ/FWHM of the C3K library (FastSpecFit `R_C3K`).
const R_C3K: f64 = 3000.0;

/// Options of the template set that come from the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemplateOptions {
    /// `--vdisp-nominal`, km/s.
    pub vdisp_nominal_kms: f64,
    /// `--vdisp-bounds`, km/s; must satisfy lo ≤ hi.
    pub vdisp_bounds_kms: (f64, f64),
}

impl Default for TemplateOptions {
    fn default() -> Self {
        TemplateOptions {
            vdisp_nominal_kms: VDISP_NOMINAL_KMS,
            vdisp_bounds_kms: VDISP_BOUNDS_KMS,
        }
    }
}

/// The BC03 template file bundled with this repository,
/// `<crate root>/tests/data/templates/ftemplates-bc03.fits`.
///
/// The path is fixed at compile time from `CARGO_MANIFEST_DIR`, so this fallback works
/// for binaries run from (or built in) a checkout; an installed binary whose source tree
/// has moved needs `--templates` or `FTEMPLATES_DIR`.
pub fn bundled_template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/templates/ftemplates-bc03.fits")
}

/// The template file to read.
///
/// 1. `templates` (`--templates`) if given;
/// 2. else, when `FTEMPLATES_DIR` is set, `$FTEMPLATES_DIR/{version}/ftemplates-{imf}-{version}.fits`
///    (environment variables inside `FTEMPLATES_DIR` are expanded, as FastSpecFit does);
/// 3. else the bundled BC03 file ([`bundled_template_path`]).
///
/// # Errors
/// The chosen file does not exist (the message says which rule chose it).
pub fn resolve_template_path(
    templates: Option<&Path>,
    version: &str,
    imf: &str,
) -> Result<PathBuf, IoError> {
    resolve_with(
        templates,
        version,
        imf,
        std::env::var_os("FTEMPLATES_DIR"),
        &|k| std::env::var(k).ok(),
    )
}

fn resolve_with(
    templates: Option<&Path>,
    version: &str,
    imf: &str,
    ftemplates_dir: Option<OsString>,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, IoError> {
    let (path, how) = if let Some(p) = templates {
        (p.to_path_buf(), "given with --templates")
    } else if let Some(dir) = ftemplates_dir {
        let dir = match dir.to_str() {
            Some(s) => PathBuf::from(expand_vars(s, getenv)),
            None => PathBuf::from(dir),
        };
        let file = dir
            .join(version)
            .join(format!("ftemplates-{imf}-{version}.fits"));
        (
            file,
            "built from $FTEMPLATES_DIR; set --templates or fix FTEMPLATES_DIR",
        )
    } else {
        (
            bundled_template_path(),
            "the bundled default; pass --templates or set FTEMPLATES_DIR",
        )
    };
    if !path.is_file() {
        return Err(IoError::input(
            &path,
            format!("template file not found ({how})"),
        ));
    }
    Ok(path)
}

/// Expand `$NAME` and `${NAME}`; unknown variables are left as written (`os.path.expandvars`).
fn expand_vars(s: &str, getenv: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, used) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(j) => (&braced[..j], j + 2),
                None => ("", 0),
            }
        } else {
            let j = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..j], j)
        };
        match (!name.is_empty()).then(|| getenv(name)).flatten() {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[i..i + 1 + used]),
        }
        rest = &rest[i + 1 + used..];
    }
    out.push_str(rest);
    out
}

/// Read the template file `path` with the default options ([`TemplateOptions::default`]).
///
/// # Errors
/// As [`read_templates_with`].
pub fn read_templates(path: &Path) -> Result<Templates, IoError> {
    read_templates_with(path, &TemplateOptions::default())
}

/// Grid parameters (PIXKMS, (PIXWAVLO, PIXWAVHI), SIGMA_C3K) from the WAVE header.
fn grid_parameters(r: &mut FitsReader, version: &str) -> Result<(f64, (f64, f64), f64), IoError> {
    let sigma_c3k_default = C_LIGHT_KMS / (R_C3K * (8.0 * 2f64.ln()).sqrt());
    if let Some(sigc3k) = r.key_f64("WAVE", "SIGC3K") {
        let mut key = |k: &str| {
            r.key_f64("WAVE", k).ok_or_else(|| {
                IoError::input(
                    r.path(),
                    format!("HDU WAVE has SIGC3K but no numeric {k} keyword"),
                )
            })
        };
        let pixkms = key("PIXKMS")?;
        let bounds = (key("PIXWAVLO")?, key("PIXWAVHI")?);
        return Ok((pixkms, bounds, sigc3k));
    }
    let major: i64 = version
        .split('.')
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .map_err(|_| {
            IoError::input(
                r.path(),
                format!("cannot parse the major version of VERSION '{version}'"),
            )
        })?;
    if major < 3 {
        Ok((25.0, (2750.0, 9100.0), sigma_c3k_default))
    } else {
        Ok((
            C_LIGHT_KMS / (2.0 * R_C3K),
            (3500.0, 9800.0),
            sigma_c3k_default,
        ))
    }
}

/// Read an `[nwave, nsed]` image HDU and return it transposed and trimmed to `[nsed][nkeep]`.
fn read_flux(
    r: &mut FitsReader,
    hdu: &str,
    nwave: usize,
    nsed: usize,
    nkeep: usize,
) -> Result<Vec<f64>, IoError> {
    let (data, shape) = r.image_f64(hdu)?;
    if shape != [nwave, nsed] {
        return Err(IoError::input(
            r.path(),
            format!("HDU {hdu} has shape {shape:?}, expected [{nwave}, {nsed}] (wavelengths × templates)"),
        ));
    }
    let mut out = vec![0.0; nsed * nkeep];
    for (t, row) in out.chunks_exact_mut(nkeep).enumerate() {
        for (i, v) in row.iter_mut().enumerate() {
            *v = data[i * nsed + t];
        }
    }
    Ok(out)
}

fn primary_is_2d_image(r: &mut FitsReader) -> bool {
    r.hdu("PRIMARY")
        .is_ok_and(|h| matches!(&h.info, HduInfo::ImageInfo { shape, .. } if shape.len() == 2))
}

/// A 1-D image HDU of length `n`.
fn read_vector(r: &mut FitsReader, hdu: &str, n: Option<usize>) -> Result<Vec<f64>, IoError> {
    let (data, shape) = r.image_f64(hdu)?;
    if shape.len() != 1 || n.is_some_and(|n| n != data.len()) {
        return Err(IoError::input(
            r.path(),
            match n {
                Some(n) => {
                    format!("HDU {hdu} has shape {shape:?}, expected [{n}] (one per wavelength)")
                }
                None => format!("HDU {hdu} has shape {shape:?}, expected a 1-D array"),
            },
        ));
    }
    Ok(data)
}

/// Build the FFT pre-cache of `flux` (`[ntemplate][nwave]`).
fn build_conv_pre(
    path: &Path,
    flux: &[f64],
    nwave: usize,
    grid: &VdispGrid,
) -> Result<ConvPre, IoError> {
    let kerr = |e| IoError::input(path, format!("cannot pre-compute the FFT cache: {e}"));
    let ntemplate = flux.len() / nwave;
    let max_radius_pix = pre_max_radius(grid.pixkms);
    let fft_len = pre_fft_len(grid.hi - grid.lo, max_radius_pix);
    let nfreq = fft_len / 2 + 1;
    let mut pre = ConvPre {
        ntemplate,
        fft_len,
        nfreq,
        max_radius_pix,
        flux_outer: vec![0.0; ntemplate * (nwave - (grid.hi - grid.lo))],
        ft_re: vec![0.0; ntemplate * nfreq],
        ft_im: vec![0.0; ntemplate * nfreq],
    };
    let mut ws = VdispWorkspace::new(fft_len, max_radius_pix);
    precompute(
        flux,
        nwave,
        grid,
        max_radius_pix,
        &mut ws,
        &mut pre.flux_outer,
        &mut pre.ft_re,
        &mut pre.ft_im,
    )
    .map_err(kerr)?;
    Ok(pre)
}

/// Read the template file `path` (SPEC §3.1) and derive everything the fits need.
///
/// # Errors
/// The file is missing or not FITS; a mandatory HDU (FLUX, LINEFLUX, DUSTFLUX, WAVE,
/// METADATA), column (`age`, `zzsun`, `mstar`, `sfr`) or keyword (METADATA `IMF`; PIXKMS,
/// PIXWAVLO, PIXWAVHI when SIGC3K is present) is missing; shapes disagree; wavelengths are
/// not finite and increasing; the grid parameters are unusable; or `opts.vdisp_bounds_kms`
/// is reversed. Every message names the file and, where relevant, the HDU.
pub fn read_templates_with(path: &Path, opts: &TemplateOptions) -> Result<Templates, IoError> {
    let (vlo, vhi) = opts.vdisp_bounds_kms;
    if vlo.is_nan() || vhi.is_nan() || vlo > vhi {
        return Err(IoError::input(
            path,
            format!("vdisp bounds must be (lo, hi) with lo <= hi; got ({vlo}, {vhi})"),
        ));
    }
    let mut r = FitsReader::open(path)?;
    // FLUX is the primary HDU; accept a primary 2-D image without EXTNAME = FLUX too
    // (writers such as the `fitsio` crate put EXTNAME = '_PRIMARY' there).
    let flux_hdu = if r.has_hdu("FLUX") || !primary_is_2d_image(&mut r) {
        "FLUX"
    } else {
        "PRIMARY"
    };
    // mandatory HDUs first, so the error names the first one missing
    for hdu in [flux_hdu, "LINEFLUX", "DUSTFLUX", "WAVE", "METADATA"] {
        if hdu != "PRIMARY" && !r.has_hdu(hdu) {
            return Err(IoError::input(
                path,
                format!("template file is missing mandatory HDU {hdu}"),
            ));
        }
    }

    let wave_raw = read_vector(&mut r, "WAVE", None)?;
    let nwave_raw = wave_raw.len();
    if nwave_raw == 0
        || wave_raw.iter().any(|w| !w.is_finite())
        || wave_raw.windows(2).any(|w| w[1] <= w[0])
    {
        return Err(IoError::input(
            path,
            "HDU WAVE must hold finite, strictly increasing wavelengths",
        ));
    }
    let nwave = wave_raw.partition_point(|&w| w <= MAX_TEMPLATE_WAVE_ANG);
    if nwave == 0 {
        return Err(IoError::input(
            path,
            "HDU WAVE has no wavelength below 4e5 Å",
        ));
    }
    let wave_ang = wave_raw[..nwave].to_vec();

    let version = match r.key_str("PRIMARY", "VERSION") {
        Some(v) => v,
        None => {
            tracing::warn!(file = %path.display(), "template file has no VERSION keyword; assuming {DEFAULT_TEMPLATE_VERSION}");
            DEFAULT_TEMPLATE_VERSION.to_string()
        }
    };
    let (pixkms, pixkms_wave_bounds_ang, sigma_c3k_kms) = grid_parameters(&mut r, &version)?;
    if !(pixkms.is_finite() && pixkms > 0.0 && sigma_c3k_kms.is_finite()) {
        return Err(IoError::input(
            path,
            format!("HDU WAVE: unusable PIXKMS {pixkms} or SIGC3K {sigma_c3k_kms}"),
        ));
    }

    let ntemplate = r.num_rows("METADATA")?;
    let imf = r
        .key_str("METADATA", "IMF")
        .ok_or_else(|| IoError::input(path, "HDU METADATA has no IMF keyword"))?;
    let mut column = |name: &str| -> Result<Vec<f64>, IoError> { r.col::<f64>("METADATA", name) };
    let age_yr = column("age")?;
    let zzsun = column("zzsun")?;
    let mstar = column("mstar")?;
    let sfr = column("sfr")?;
    let dt_yr = if r.has_column("METADATA", "dt") {
        Some(r.col::<f64>("METADATA", "dt")?)
    } else {
        tracing::warn!(file = %path.display(), "template file lacks a dt column; SFR will be averaged over ~30 Myr instead of 100 Myr");
        None
    };
    if ntemplate == 0 {
        return Err(IoError::input(
            path,
            "HDU METADATA has no rows (no templates)",
        ));
    }

    let flux = read_flux(&mut r, flux_hdu, nwave_raw, ntemplate, nwave)?;
    let lineflux = read_flux(&mut r, "LINEFLUX", nwave_raw, ntemplate, nwave)?;
    let flux_nolines: Vec<f64> = flux.iter().zip(&lineflux).map(|(f, l)| f - l).collect();
    drop(lineflux);
    let mut dustflux = read_vector(&mut r, "DUSTFLUX", Some(nwave_raw))?;
    dustflux.truncate(nwave);
    let dust_klambda: Vec<f64> = wave_ang.iter().map(|w| (w / 5500.0).powf(-0.7)).collect();

    let lo = wave_ang.partition_point(|&w| w < pixkms_wave_bounds_ang.0);
    let hi = wave_ang.partition_point(|&w| w < pixkms_wave_bounds_ang.1);
    if lo > hi {
        return Err(IoError::input(
            path,
            format!("HDU WAVE: PIXWAVLO/PIXWAVHI {pixkms_wave_bounds_ang:?} are reversed"),
        ));
    }
    let grid = VdispGrid { lo, hi, pixkms };
    let vdisp_nominal_kms = opts.vdisp_nominal_kms;
    let vdisp_nominal_kernel_kms = (vdisp_nominal_kms.powi(2) - sigma_c3k_kms.powi(2))
        .max(0.0)
        .sqrt();

    let conv_pre = build_conv_pre(path, &flux, nwave, &grid)?;
    let conv_pre_nolines = build_conv_pre(path, &flux_nolines, nwave, &grid)?;
    let kerr = |e| {
        IoError::input(
            path,
            format!("cannot convolve to the nominal dispersion: {e}"),
        )
    };
    let mut ws = VdispWorkspace::new(0, conv_pre.max_radius_pix);
    let mut flux_nomvdisp = vec![0.0; flux.len()];
    convolve_direct_rows(
        &flux,
        nwave,
        &grid,
        vdisp_nominal_kernel_kms,
        &mut ws,
        &mut flux_nomvdisp,
    )
    .map_err(kerr)?;
    let mut flux_nolines_nomvdisp = vec![0.0; flux.len()];
    convolve_direct_rows(
        &flux_nolines,
        nwave,
        &grid,
        vdisp_nominal_kernel_kms,
        &mut ws,
        &mut flux_nolines_nomvdisp,
    )
    .map_err(kerr)?;

    Ok(Templates {
        file: path.display().to_string(),
        version,
        imf,
        ntemplate,
        nwave,
        wave_ang,
        flux,
        flux_nolines,
        dustflux,
        dust_klambda,
        age_yr,
        zzsun,
        mstar,
        sfr,
        dt_yr,
        pixkms,
        pixkms_wave_bounds_ang,
        pixkms_bounds: (lo, hi),
        sigma_c3k_kms,
        vdisp_nominal_kms,
        vdisp_nominal_kernel_kms,
        vdisp_bounds_kms: opts.vdisp_bounds_kms,
        flux_nomvdisp,
        flux_nolines_nomvdisp,
        conv_pre,
        conv_pre_nolines,
    })
}

#[cfg(test)]
mod tests;
