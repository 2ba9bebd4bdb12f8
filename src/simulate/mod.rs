//! `simulate`: DESI-format Redrock + coadd files (healpix data model), external DR9-like
//! photometry and a truth table, from the BC03 templates.
//!
//! Each target is drawn from its own random stream (seed, index), so a given `--seed`
//! always gives the same files and the first targets of a larger set equal a smaller one.
//! Outputs in `-o DIR`:
//! * `redrock-{survey}-{program}-{pix}.fits` (REDSHIFTS, FIBERMAP, EXP_FIBERMAP, TSNR2);
//! * `coadd-{survey}-{program}-{pix}.fits` (FIBERMAP, EXP_FIBERMAP, B/R/Z WAVELENGTH, FLUX,
//!   IVAR, RESOLUTION, MASK on DESI's grids);
//! * `phot.fits[PHOTINFO]` + `phot.yaml` (g, r, z, W1, W2 through BASS/MzLS/WISE), for
//!   `--fphotodir DIR/phot.fits[PHOTINFO] --fphotofile DIR/phot.yaml`;
//! * `truth.fits[TRUTH]`: redshift, class, template COEFF, TAUV, VDISP, line σ and the
//!   integrated flux of every line of the emission-line table, true photometry.

mod model;
mod rng;
mod spectro;
pub mod vdisp_fixture;
mod write;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use fsf_systems::kernels::cosmology::Cosmology;
use fsf_systems::kernels::filters::load_filter;
use fsf_systems::kernels::igm::Inoue14;

use crate::io::fits::{write_fits_atomic, ColData, OutColumn, OutHdu};
pub use model::{CameraSim, Kind, Truth};
pub use spectro::{apply_resolution, desi_cameras, gaussian_resolution, CameraGrid};

/// Flags of `simulate`.
#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Output directory (created if missing).
    #[arg(short = 'o', long)]
    pub outdir: PathBuf,
    /// Number of targets.
    #[arg(short = 'n', long, default_value_t = 200)]
    pub ntargets: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Noise-free spectra and photometry (flux equals the model; ivar still DESI-like).
    #[arg(long)]
    pub noiseless: bool,
    /// No emission lines.
    #[arg(long = "no-lines")]
    pub no_lines: bool,
    /// Template file (default: the bundled BC03 file).
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Directory of the SFD maps used for the Milky Way extinction (default: the bundled
    /// cut-outs, which the simulated positions lie inside).
    #[arg(long)]
    pub mapdir: Option<PathBuf>,
    /// SURVEY of the set.
    #[arg(long, default_value = "main")]
    pub survey: String,
    /// PROGRAM of the set.
    #[arg(long, default_value = "dark")]
    pub program: String,
}

/// Centre of the simulated field (inside the bundled north SFD cut-out) and its
/// HEALPix pixel (nside 64, nested).
const FIELD: (f64, f64, i64) = (105.49, 56.67, 7108);
/// First TARGETID.
const TARGETID0: i64 = 39_633_000_000_000_001;

/// Paths of the files written by [`run_simulate`].
#[derive(Debug, Clone)]
pub struct SimulatedSet {
    /// Redrock file.
    pub redrock: PathBuf,
    /// Coadd file.
    pub coadd: PathBuf,
    /// Photometry catalogue (HDU PHOTINFO).
    pub phot: PathBuf,
    /// Photometry YAML.
    pub phot_yaml: PathBuf,
    /// Truth table (HDU TRUTH).
    pub truth: PathBuf,
}

/// Run `simulate`.
///
/// # Errors
/// Unreadable templates or SFD maps, a kernel failure, or an unwritable output.
pub fn run_simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    simulate(args).map(|_| ())
}

/// Run `simulate` and return the paths written.
///
/// # Errors
/// As [`run_simulate`].
pub fn simulate(args: &SimulateArgs) -> anyhow::Result<SimulatedSet> {
    anyhow::ensure!(args.ntargets > 0, "simulate: -n must be at least 1");
    std::fs::create_dir_all(&args.outdir)
        .with_context(|| format!("{}: cannot create", args.outdir.display()))?;
    let tpath = match &args.templates {
        Some(p) => p.clone(),
        None => crate::io::templates::bundled_template_path(),
    };
    let templates = crate::io::templates::read_templates(&tpath)?;
    let lines = crate::io::emlines::load_line_table(None)?;
    let mapdir = args
        .mapdir
        .clone()
        .unwrap_or_else(|| crate::run::bundled_data_dir().join("desi"));
    let sfd = crate::io::sfd::load_sfd(&mapdir)?;
    let filters = write::BANDS
        .iter()
        .map(|b| load_filter(b.1))
        .collect::<Result<Vec<_>, _>>()?;
    let depth: Vec<f64> = write::BANDS.iter().map(|b| b.2).collect();
    let cameras = desi_cameras();
    let cosmo = Cosmology::desi_fiducial()?;
    let igm = Inoue14::new()?;
    let ctx = model::SimContext {
        templates: &templates,
        lines: &lines,
        cameras: &cameras,
        filters: &filters,
        depth_nmgy: &depth,
        cosmo: &cosmo,
        igm: &igm,
        noiseless: args.noiseless,
        no_lines: args.no_lines,
    };
    let mut truth = Vec::with_capacity(args.ntargets);
    let mut spec = Vec::with_capacity(args.ntargets);
    for i in 0..args.ntargets {
        let mut r = rng::Rng::new(args.seed, i as u64);
        let dec = FIELD.1 + r.range(-0.15, 0.15);
        let ra = FIELD.0 + r.range(-0.15, 0.15) / dec.to_radians().cos();
        let ebv = fsf_systems::kernels::sfd::ebv(ra, dec, &sfd.ngp, &sfd.sgp)
            .with_context(|| format!("SFD E(B-V) at ({ra}, {dec}) from {}", mapdir.display()))?;
        let (t, s) = model::simulate_target(&ctx, &mut r, TARGETID0 + i as i64, (ra, dec, ebv))
            .with_context(|| format!("simulating target {i}"))?;
        truth.push(t);
        spec.push(s);
    }
    let id = write::SetId {
        survey: args.survey.clone(),
        program: args.program.clone(),
        healpix: FIELD.2,
    };
    let stem = format!("{}-{}-{}", id.survey, id.program, id.healpix);
    let set = SimulatedSet {
        redrock: args.outdir.join(format!("redrock-{stem}.fits")),
        coadd: args.outdir.join(format!("coadd-{stem}.fits")),
        phot: args.outdir.join("phot.fits"),
        phot_yaml: args.outdir.join("phot.yaml"),
        truth: args.outdir.join("truth.fits"),
    };
    write::write_coadd(&set.coadd, &id, &truth, &cameras, &spec)?;
    write::write_redrock(&set.redrock, &id, &truth)?;
    write::write_photometry(&set.phot, &set.phot_yaml, &truth)?;
    write_truth(
        &set.truth,
        &truth,
        &lines
            .lines
            .iter()
            .map(|l| l.name.to_uppercase())
            .collect::<Vec<_>>(),
        templates.ntemplate,
    )?;
    Ok(set)
}

fn write_truth(
    path: &std::path::Path,
    truth: &[Truth],
    line_names: &[String],
    ntemplate: usize,
) -> anyhow::Result<()> {
    let f64c = |f: &dyn Fn(&Truth) -> f64| ColData::F64(truth.iter().map(f).collect());
    let mut columns = vec![
        OutColumn::new(
            "TARGETID",
            ColData::I64(truth.iter().map(|t| t.targetid).collect()),
        ),
        OutColumn::new("Z", f64c(&|t| t.z)),
        OutColumn::new(
            "CLASS",
            ColData::Str(
                truth.iter().map(|t| t.kind.name().to_string()).collect(),
                11,
            ),
        ),
        OutColumn::new("RA", f64c(&|t| t.ra)),
        OutColumn::new("DEC", f64c(&|t| t.dec)),
        OutColumn::new("EBV", f64c(&|t| t.ebv)),
        OutColumn::new(
            "COEFF",
            ColData::F32Vec(
                truth
                    .iter()
                    .flat_map(|t| t.coeff.iter().map(|c| *c as f32))
                    .collect(),
                ntemplate,
            ),
        ),
        OutColumn::new("TAUV", f64c(&|t| t.tauv)),
        OutColumn::new("VDISP", f64c(&|t| t.vdisp)),
        OutColumn::new("NARROW_SIGMA", f64c(&|t| t.narrow_sigma)),
        OutColumn::new("BROAD_SIGMA", f64c(&|t| t.broad_sigma)),
    ];
    for (k, name) in line_names.iter().enumerate() {
        columns.push(OutColumn::new(
            format!("{name}_FLUX"),
            f64c(&|t| t.line_flux[k]),
        ));
    }
    for (b, (band, _, _)) in write::BANDS.iter().enumerate() {
        columns.push(OutColumn::new(
            format!("FLUX_{band}"),
            f64c(&|t| t.phot_true[b]),
        ));
    }
    write_fits_atomic(
        path,
        &[],
        &[OutHdu::Table {
            extname: "TRUTH".into(),
            columns,
            cards: vec![],
        }],
    )
    .context("writing the truth table")?;
    Ok(())
}
