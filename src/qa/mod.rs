//! `qa`: QA figures and a static HTML report, with no Python (FastSpecFit's `fastqa` and its
//! web pages, re-done in Rust).
//!
//! For every target of one or more fastspec/fastphot output files this writes one PNG named
//! as FastSpecFit names them (`fastspec-{survey}-{program}-{healpix}-{targetid}.png`,
//! `fastspec-{tileid}-cumulative-{targetid}.png`, ...; see [`input::FitFile::png_name`]),
//! a thumbnail of it under `thumbs/`, and one `index.html` that links them, with summary
//! distributions and, given `--profile`, the per-system time profile of the run.
//!
//! What is drawn comes from the output file plus the inputs:
//! * METADATA/SPECPHOT/FASTSPEC columns (fitted values, the photometry and its Milky Way
//!   transmission, model photometry `FLUX_SYNTH_PHOTMODEL_*`);
//! * MODELS (continuum, smooth correction and line model on the coadded wavelength grid),
//!   interpolated onto each camera's pixels;
//! * the observed spectrum, re-read from the coadd of the target (found from the Redrock files
//!   given with `--redrockfiles`, else the production layout under `--redux_dir`) and prepared
//!   as for the fit (edge/mask pixels dropped, Milky Way dereddened with the file's EBV);
//! * the full-resolution best-fit SED, rebuilt from COEFF and TAUV with the templates
//!   ([`input::SedBuilder::sed`]: nominal-σ templates, dust emission, IGM, distance), as
//!   FastSpecFit's QA does.
//!
//! Departures from FastSpecFit's figure (documented, deliberate):
//! * no Legacy Survey image cut-out (that needs the network); the space holds the fit summary;
//! * a residual panel (data − model) is added under the spectrum;
//! * zoom panels show the summed line model per camera, not each line's profile separately,
//!   and at most 18 groups (the highest-S/N ones when more are in range);
//! * the zoom-panel wavelengths are in Å (FastSpecFit: μm);
//! * `--mapdir`/`--fphotodir` are not needed: EBV, the fluxes and their Milky Way
//!   transmissions are in METADATA. `--fphotofile` still selects the band set (it must be the
//!   one of the fit).

pub mod figure;
pub mod input;
pub mod report;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use crate::io::emlines::load_line_table;
use crate::io::photometry::PhotometryConfig;
use crate::io::templates::{read_templates, resolve_template_path};

use figure::{render, TargetQa};
use input::{photometry, FitFile, SedBuilder, SpectraSource};
use report::{
    downsample, parse_profile, render_html, svg_histogram, svg_profile, write_png, ReportData,
    ReportRow,
};

/// Flags of `qa` (FastSpecFit's `fastqa` names where they exist).
#[derive(Args, Debug, Clone)]
pub struct QaArgs {
    /// fastspec/fastphot output file(s).
    #[arg(required = true)]
    pub fastfitfiles: Vec<PathBuf>,
    /// Output directory for the PNGs, thumbnails and the report.
    #[arg(short = 'o', long, default_value = ".")]
    pub outdir: PathBuf,
    /// Redrock file(s) of the fitted targets (comma- or space-separated); their coadds give the
    /// observed spectra.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub redrockfiles: Vec<PathBuf>,
    /// Spectroscopic reductions directory (production layout search when no --redrockfiles).
    #[arg(long = "redux_dir", env = "DESI_SPECTRO_REDUX")]
    pub redux_dir: Option<PathBuf>,
    /// On-disk production name under --redux_dir (default: SPECPROD of the output file).
    #[arg(long)]
    pub specprod: Option<String>,
    /// Photometry YAML used by the fit (default: the bundled legacysurvey-dr9.yaml).
    #[arg(long)]
    pub fphotofile: Option<PathBuf>,
    /// Template file (default as for `fastspec`).
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Template version.
    #[arg(long, default_value = "2.2.0")]
    pub templateversion: String,
    /// Initial mass function of the templates.
    #[arg(long, default_value = "chabrier")]
    pub imf: String,
    /// Emission-line table (default: the bundled emlines.ecsv).
    #[arg(long)]
    pub emlinesfile: Option<PathBuf>,
    /// Cosmology of the fit: the DESI fiducial table by default, or `flatLCDM`.
    #[arg(long)]
    pub cosmology: Option<String>,
    /// Ωm for `--cosmology flatLCDM`.
    #[arg(long = "omega-m", default_value_t = 0.3)]
    pub omega_m: f64,
    /// Comma-separated TARGETIDs to draw.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub targetids: Option<Vec<i64>>,
    /// Draw at most this many targets per file.
    #[arg(short = 'n', long)]
    pub ntargets: Option<usize>,
    /// Index of the first target to draw, per file.
    #[arg(long, default_value_t = 0)]
    pub firsttarget: usize,
    /// Redraw figures that exist.
    #[arg(long)]
    pub overwrite: bool,
    /// A per-system profile of the run to chart in the report: the table printed by
    /// `--profile` (a log containing it is fine) or a TSV `name<TAB>seconds[<TAB>calls]`.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Name of the HTML report inside --outdir.
    #[arg(long, default_value = "index.html")]
    pub report: String,
    /// Redrock file-name prefix.
    #[arg(long = "redrockfile-prefix", default_value = "redrock-")]
    pub redrockfile_prefix: String,
    /// Coadd file-name prefix.
    #[arg(long = "specfile-prefix", default_value = "coadd-")]
    pub specfile_prefix: String,
}

/// What `qa` wrote.
#[derive(Debug, Clone, Default)]
pub struct QaSummary {
    /// Figures (written or already present), in report order.
    pub pngs: Vec<PathBuf>,
    /// Figures drawn by this call.
    pub drawn: usize,
    /// Targets whose observed spectrum was not found (fastspec figures without data).
    pub missing_spectra: Vec<i64>,
    /// The HTML report.
    pub report: PathBuf,
}

/// Rows of `ff` selected by the flags, in file order (or `--targetids` order).
fn select_rows(ff: &FitFile, args: &QaArgs) -> Vec<usize> {
    let mut rows: Vec<usize> = match &args.targetids {
        Some(ids) => ids
            .iter()
            .filter_map(|t| ff.table.targetid.iter().position(|x| x == t))
            .collect(),
        None => (0..ff.len()).collect(),
    };
    rows = rows.into_iter().skip(args.firsttarget).collect();
    if let Some(n) = args.ntargets {
        rows.truncate(n);
    }
    rows
}

/// Columns of the report's table: (header, column, decimals).
const TABLE_COLS: [(&str, &str, usize); 10] = [
    ("Z", "Z", 5),
    ("RCHI2", "RCHI2", 2),
    ("RCHI2_PHOT", "RCHI2_PHOT", 2),
    ("VDISP", "VDISP", 0),
    ("TAUV", "TAUV", 2),
    ("AGE [Gyr]", "AGE", 2),
    ("log M*", "LOGMSTAR", 2),
    ("SFR", "SFR", 2),
    ("Dn4000", "DN4000_MODEL", 3),
    ("Halpha flux", "HALPHA_FLUX", 2),
];

/// Draw the figures and write the report.
///
/// # Errors
/// Unreadable inputs, configuration that does not match the output file (e.g. a photometry
/// YAML whose bands are not in METADATA), or write failures.
pub fn run_qa(args: &QaArgs) -> anyhow::Result<QaSummary> {
    std::fs::create_dir_all(args.outdir.join("thumbs"))
        .with_context(|| format!("cannot create {}", args.outdir.display()))?;
    let files: Vec<FitFile> = args
        .fastfitfiles
        .iter()
        .map(|p| FitFile::read(p))
        .collect::<anyhow::Result<_>>()?;
    let phot_cfg = PhotometryConfig::load(args.fphotofile.as_deref())?;
    for ff in &files {
        if let Some(b) = phot_cfg
            .bands
            .iter()
            .find(|b| !ff.has(&format!("FLUX_{}", b.to_uppercase())))
        {
            bail!(
                "{}: no METADATA column FLUX_{} — give the --fphotofile used by the fit",
                ff.path.display(),
                b.to_uppercase()
            );
        }
    }
    let lines = load_line_table(args.emlinesfile.as_deref())?;
    let tpath = resolve_template_path(args.templates.as_deref(), &args.templateversion, &args.imf)?;
    let cosmo = crate::resources::cosmology_for(args.cosmology.as_deref(), args.omega_m)?;
    let mut sed_builder: Option<SedBuilder> = None;
    let source = SpectraSource {
        redrockfiles: args.redrockfiles.clone(),
        redux_dir: args.redux_dir.clone(),
        specprod: args.specprod.clone(),
        redrock_prefix: args.redrockfile_prefix.clone(),
        specfile_prefix: args.specfile_prefix.clone(),
    };

    let mut summary = QaSummary::default();
    let mut rows_out = Vec::new();
    let mut hist_rchi2 = Vec::new();
    let mut hist_rchi2_phot = Vec::new();
    let mut hist_vdisp = Vec::new();
    let mut hist_snr = Vec::new();
    let mut hist_mstar = Vec::new();
    for ff in &files {
        for row in select_rows(ff, args) {
            let name = ff.png_name(row);
            let png = args.outdir.join(&name);
            let thumb_rel = format!("thumbs/{name}");
            let thumb = args.outdir.join(&thumb_rel);
            if args.overwrite || !png.is_file() || !thumb.is_file() {
                if sed_builder.is_none() {
                    let tpl = read_templates(&tpath)?;
                    sed_builder = Some(SedBuilder::new(tpl, cosmo.clone())?);
                }
                let sb = sed_builder.as_ref().expect("set above");
                let spectrum = if ff.fastphot {
                    None
                } else {
                    let s = source.spectrum(ff, row)?;
                    if s.is_none() {
                        tracing::warn!(
                            targetid = ff.targetid(row),
                            "observed spectrum not found (give --redrockfiles or --redux_dir)"
                        );
                        summary.missing_spectra.push(ff.targetid(row));
                    }
                    s
                };
                let (phot, _) = photometry(ff, row, &phot_cfg)?;
                let t = TargetQa {
                    ff,
                    row,
                    spectrum,
                    phot,
                    sed: sb.sed(ff, row)?,
                    lines: &lines,
                };
                let (rgb, w, h) = render(&t)?;
                write_png(&png, &rgb, w, h)?;
                let (trgb, tw, th) = downsample(&rgb, w, h, 4);
                write_png(&thumb, &trgb, tw, th)?;
                summary.drawn += 1;
                tracing::info!(file = %png.display(), "wrote");
            }
            summary.pngs.push(png);

            // Report row and distributions.
            let mut cells = vec![("TARGETID".to_string(), ff.targetid(row).to_string())];
            for (hdr, col, prec) in TABLE_COLS {
                if files.iter().any(|f| f.has(col)) {
                    let v = ff.num(row, col);
                    cells.push((
                        hdr.to_string(),
                        if v.is_finite() {
                            format!("{v:.prec$}")
                        } else {
                            String::new()
                        },
                    ));
                }
            }
            rows_out.push(ReportRow {
                png: name.clone(),
                thumb: thumb_rel,
                source: ff
                    .path
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                cells,
            });
            hist_rchi2.push(ff.num(row, "RCHI2"));
            hist_rchi2_phot.push(ff.num(row, "RCHI2_PHOT"));
            hist_vdisp.push(ff.num(row, "VDISP"));
            hist_mstar.push(ff.num(row, "LOGMSTAR"));
            for l in &lines.lines {
                let u = l.name.to_uppercase();
                let fi = ff.num(row, &format!("{u}_FLUX_IVAR"));
                if fi > 0.0 {
                    hist_snr.push(ff.num(row, &format!("{u}_FLUX")) * fi.sqrt());
                }
            }
        }
    }

    let any_spec = files.iter().any(|f| !f.fastphot);
    let mut histograms = Vec::new();
    if any_spec {
        histograms.push((
            "RCHI2".into(),
            svg_histogram("RCHI2 (spectrum+photometry)", &hist_rchi2, 15, false),
        ));
    }
    histograms.push((
        "RCHI2_PHOT".into(),
        svg_histogram("RCHI2_PHOT", &hist_rchi2_phot, 15, false),
    ));
    histograms.push((
        "VDISP".into(),
        svg_histogram("VDISP [km/s]", &hist_vdisp, 15, false),
    ));
    if any_spec {
        histograms.push((
            "SNR".into(),
            svg_histogram("line S/N (FLUX·√FLUX_IVAR > 0)", &hist_snr, 15, true),
        ));
    }
    histograms.push((
        "LOGMSTAR".into(),
        svg_histogram("log10 M*/Msun", &hist_mstar, 15, false),
    ));

    let profile_svg = match &args.profile {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read profile {}", p.display()))?;
            let (rows, wall) =
                parse_profile(&text).with_context(|| format!("profile {}", p.display()))?;
            Some(svg_profile(&rows, wall))
        }
        None => None,
    };
    let mut inputs: Vec<String> = files
        .iter()
        .map(|f| {
            format!(
                "{} ({}, coadd type {}, specprod {}, {} targets)",
                f.path.display(),
                if f.fastphot { "fastphot" } else { "fastspec" },
                f.coadd_type,
                f.specprod,
                f.len()
            )
        })
        .collect();
    inputs.push(format!("templates: {}", tpath.display()));
    if let Some(p) = &args.profile {
        inputs.push(format!("profile: {}", p.display()));
    }
    let data = ReportData {
        title: format!("FastSpecFit QA: {} targets", rows_out.len()),
        inputs,
        rows: rows_out,
        histograms,
        profile_svg,
    };
    let report = args.outdir.join(&args.report);
    std::fs::write(&report, render_html(&data))
        .with_context(|| format!("cannot write {}", report.display()))?;
    summary.report = report;
    Ok(summary)
}

/// The report path `run_qa` writes for `args` (for messages).
pub fn report_path(args: &QaArgs) -> PathBuf {
    Path::new(&args.outdir).join(&args.report)
}
