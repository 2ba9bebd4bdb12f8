//! The run driver: validate the configuration, then for each input file load targets into
//! the ECS world, run the schedule of parallel passes, and write the outputs atomically.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bevy_ecs::prelude::*;
use fsf_components::{
    ContinuumFit, FastspecSchema, FitOptions, FitStatus, MilkyWayDust, ObservedPhotometry,
    PhotometricSetup, PhysicalProperties, PreparedSpectrum, Program, Redshift, SkyPosition,
    SpectraColumns, SpectralFit, Target,
};
use fsf_systems::passes::{self, mw_dust::DustMap};

use crate::cli::FitArgs;
use crate::io::desi::{read_targets, FileTargets, SelectOptions};
use crate::io::fits::{write_fits_atomic, Card, CardValue, OutHdu};
use crate::io::photometry::{
    gather_photometry, GatheredPhotometry, PhotometryConfig, PhotometrySource,
};
use crate::io::spectra::read_spectra_checked;
use crate::io::IoError;
use crate::metadata::{build_metadata, FileMeta};

/// Which program is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Spectra + photometry.
    Fastspec,
    /// Photometry only.
    Fastphot,
}

/// Which input data model a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputKind {
    /// DESI Redrock + coadd files (`fastspec`, `fastphot`, `production`).
    #[default]
    Desi,
    /// FastSpecFit stack files (`stackfit`, [`crate::io::stack`]): no dust correction, no
    /// photometry, no uncertainty floor, FLUXNORM 1, one camera "brz".
    Stack,
    /// Generic single spectra (`fitspec`, [`crate::io::generic`]): one camera "brz",
    /// E(B−V) from the input (default 0), no photometry.
    Generic,
}

/// What a run did, for the closing summary and the exit status.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    /// Input files read.
    pub files: usize,
    /// Targets written.
    pub targets: usize,
    /// Targets flagged by some system.
    pub flagged: usize,
}

/// The directory of bundled defaults (`tests/data` of this source tree).
pub fn bundled_data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
}

fn resolve_mapdir(args: &FitArgs) -> PathBuf {
    if let Some(m) = &args.mapdir {
        return m.clone();
    }
    if let Ok(d) = std::env::var("DUST_DIR") {
        return Path::new(&d).join("maps");
    }
    let d = bundled_data_dir().join("desi");
    tracing::warn!(mapdir = %d.display(), "no --mapdir or $DUST_DIR: using the bundled SFD cut-outs (they cover only the bundled targets)");
    d
}

fn resolve_photometry(args: &FitArgs, cfg: &PhotometryConfig) -> PhotometrySource {
    match &args.fphotodir {
        Some(d) => PhotometrySource::from_arg(Some(d), false, cfg),
        None => match std::env::var("FPHOTO_DIR") {
            Ok(d) => PhotometrySource::from_arg(Some(&d), true, cfg),
            Err(_) => {
                tracing::warn!("no --fphotodir or $FPHOTO_DIR: using the FIBERMAP fluxes (deviation from FastSpecFit, flagged PHOTSRC='FIBERMAP' in the header)");
                PhotometrySource::Fibermap
            }
        },
    }
}

fn setup_from(cfg: &PhotometryConfig) -> PhotometricSetup {
    PhotometricSetup {
        bands: cfg.bands.clone(),
        filters: cfg
            .filters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        fiber_bands: cfg.fiber_bands.clone().unwrap_or_default(),
        fiber_filters: cfg
            .fiber_filters
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    }
}

/// The `FitOptions` resource for this run.
pub fn fit_options(ctx: &RunContext) -> FitOptions {
    let a = &ctx.args;
    // stackfit: FLUXNORM = 1 and no uncertainty floor (FastSpecFit's one_stacked_spectrum)
    let stack = ctx.input == InputKind::Stack;
    FitOptions {
        program: if ctx.mode == Mode::Fastspec {
            Program::Fastspec
        } else {
            Program::Fastphot
        },
        nmonte: a.nmonte,
        seed: a.seed,
        vdisp_nominal_kms: a.vdisp_nominal,
        vdisp_bounds_kms: (a.vdisp_bounds[0], a.vdisp_bounds[1]),
        constrain_age: a.constrain_age,
        ignore_photometry: a.ignore_photometry,
        no_smooth_continuum: a.no_smooth_continuum,
        broadlinefit: !a.no_broadlinefit,
        vdisp_mc_fsf: a.vdisp_mc == crate::cli::VdispMc::Fsf,
        uncertainty_floor: if stack { 0.0 } else { a.uncertainty_floor },
        minsnr_balmer_broad: a.minsnr_balmer_broad,
        input_seeds: if a.targetids.is_some() {
            a.input_seeds.clone()
        } else {
            None
        },
        fluxnorm: if stack { 1.0 } else { 1e17 },
    }
}

/// Check flag combinations and paths before any heavy work.
///
/// # Errors
/// The first problem found, naming the flag or file.
pub fn validate(args: &FitArgs) -> Result<(), IoError> {
    let here = Path::new("command line");
    if args.vdisp_bounds.len() != 2 || args.vdisp_bounds[0] > args.vdisp_bounds[1] {
        return Err(IoError::input(
            here,
            "--vdisp-bounds must be MIN MAX with MIN <= MAX",
        ));
    }
    if let (Some(z), None) = (&args.input_redshifts, &args.targetids) {
        tracing::warn!(n = z.len(), "--input-redshifts ignored without --targetids");
    }
    if let (Some(t), Some(sd)) = (&args.targetids, &args.input_seeds) {
        if t.len() != sd.len() {
            return Err(IoError::input(
                here,
                format!("{} --input-seeds for {} --targetids", sd.len(), t.len()),
            ));
        }
    }
    if let (Some(t), Some(z)) = (&args.targetids, &args.input_redshifts) {
        if t.len() != z.len() {
            return Err(IoError::input(
                here,
                format!("{} --input-redshifts for {} --targetids", z.len(), t.len()),
            ));
        }
    }
    for f in &args.redrockfiles {
        if !f.is_file() {
            return Err(IoError::input(f, "file not found"));
        }
    }
    Ok(())
}

fn primary_cards(
    args: &FitArgs,
    mode: Mode,
    specprod: &str,
    coadd_type: &str,
    source: &PhotometrySource,
) -> Vec<Card> {
    let mut c = Vec::new();
    if !specprod.is_empty() {
        c.push(Card::new(
            "SPECPROD",
            CardValue::Str(specprod.into()),
            "spectroscopic production name",
        ));
    }
    c.push(Card::new(
        "COADDTYP",
        CardValue::Str(coadd_type.into()),
        "spectral coadd type",
    ));
    c.push(Card::new(
        "INPUTZ",
        CardValue::Bool(args.input_redshifts.is_some() && args.targetids.is_some()),
        "input redshifts provided",
    ));
    c.push(Card::new(
        "INPUTS",
        CardValue::Bool(args.input_seeds.is_some() && args.targetids.is_some()),
        "input seeds provided",
    ));
    c.push(Card::new(
        "CONSAGE",
        CardValue::Bool(args.constrain_age),
        "constrain SPS ages",
    ));
    c.push(Card::new(
        "USEQNET",
        CardValue::Bool(!args.ignore_quasarnet),
        "use QuasarNet redshifts",
    ));
    c.push(Card::new(
        "NMONTE",
        CardValue::Int(args.nmonte as i64),
        "number of Monte Carlo realizations",
    ));
    c.push(Card::new(
        "VDISPNOM",
        CardValue::Float(args.vdisp_nominal),
        "nominal velocity dispersion (km/s)",
    ));
    c.push(Card::new(
        "VDISPBND",
        CardValue::Str(format!(
            "{:?},{:?}",
            args.vdisp_bounds[0], args.vdisp_bounds[1]
        )),
        "velocity dispersion bounds (km/s)",
    ));
    c.push(Card::new(
        "VDISPMC",
        CardValue::Str(
            match args.vdisp_mc {
                crate::cli::VdispMc::Converged => "converged",
                crate::cli::VdispMc::Fsf => "fsf",
            }
            .into(),
        ),
        "Monte Carlo vdisp refits (fastspecfit-rs)",
    ));
    c.push(Card::new(
        "SEED",
        CardValue::Int(args.seed),
        "random seed for Monte Carlo reproducibility",
    ));
    if mode == Mode::Fastspec {
        c.push(Card::new(
            "NOSCORR",
            CardValue::Bool(args.no_smooth_continuum),
            "no smooth continuum correction",
        ));
        c.push(Card::new(
            "NOPHOTO",
            CardValue::Bool(args.ignore_photometry),
            "no fitting to photometry",
        ));
        c.push(Card::new(
            "BRDLFIT",
            CardValue::Bool(!args.no_broadlinefit),
            "carry out broad-line fitting",
        ));
        c.push(Card::new(
            "UFLOOR",
            CardValue::Float(args.uncertainty_floor),
            "fractional uncertainty floor",
        ));
        c.push(Card::new(
            "SNRBBALM",
            CardValue::Float(args.minsnr_balmer_broad),
            "minimum broad Balmer S/N",
        ));
    }
    let photsrc = match source {
        PhotometrySource::LegacySurvey { .. } => "TRACTOR",
        PhotometrySource::External { .. } => "EXTERNAL",
        PhotometrySource::Fibermap => "FIBERMAP",
    };
    // stacks and generic spectra have no broadband photometry
    if coadd_type != "stacked" && coadd_type != "generic" {
        c.push(Card::new(
            "PHOTSRC",
            CardValue::Str(photsrc.into()),
            "broadband photometry source",
        ));
    }
    let basename = |p: &Option<PathBuf>, default: &str| {
        p.as_ref()
            .and_then(|p| p.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| default.to_string())
    };
    let env_or = |k: &str| std::env::var(k).unwrap_or_else(|_| "NOT_SET".into());
    let deps: Vec<(String, String)> = vec![
        ("fastspecfit-rs".into(), env!("CARGO_PKG_VERSION").into()),
        ("DESI_SPECTRO_REDUX".into(), env_or("DESI_SPECTRO_REDUX")),
        ("DUST_DIR".into(), env_or("DUST_DIR")),
        ("FTEMPLATES_DIR".into(), env_or("FTEMPLATES_DIR")),
        ("FPHOTO_DIR".into(), env_or("FPHOTO_DIR")),
        (
            "FPHOTO_FILE".into(),
            basename(&args.fphotofile, "legacysurvey-dr9.yaml"),
        ),
        (
            "FTEMPLATES_FILE".into(),
            basename(&args.templates, "ftemplates-bc03.fits"),
        ),
        (
            "EMLINES_FILE".into(),
            basename(&args.emlinesfile, "emlines.ecsv"),
        ),
        (
            "CONSTRAINTS_FILE".into(),
            basename(&args.constraintsfile, "emline-constraints.yaml"),
        ),
    ];
    for (i, (k, v)) in deps.into_iter().enumerate() {
        c.push(Card::new(&format!("DEPNAM{i:02}"), CardValue::Str(k), ""));
        c.push(Card::new(&format!("DEPVER{i:02}"), CardValue::Str(v), ""));
    }
    c
}

/// Everything a run needs besides the input file list, validated once up front.
#[derive(Clone)]
pub struct RunContext {
    /// Program.
    pub mode: Mode,
    /// Selection options.
    pub select: SelectOptions,
    /// Photometry configuration.
    pub phot_cfg: PhotometryConfig,
    /// Photometry source.
    pub source: PhotometrySource,
    /// Emission-line table and kinematic constraints (fastspec only).
    pub emlines: Option<std::sync::Arc<crate::io::emlines::EmlineConfig>>,
    /// PRIMARY header cards that do not depend on the inputs.
    pub args: FitArgs,
    /// Input data model (DESI unless `stackfit`/`fitspec` set it after [`RunContext::new`]).
    pub input: InputKind,
}

impl RunContext {
    /// Validate `args` and resolve every configuration file before any heavy I/O.
    ///
    /// # Errors
    /// Bad flag combinations, unreadable configuration files, unwritable output.
    pub fn new(args: &FitArgs, mode: Mode) -> Result<Self, IoError> {
        validate(args)?;
        let phot_cfg = PhotometryConfig::load(args.fphotofile.as_deref())?;
        let source = resolve_photometry(args, &phot_cfg);
        let select = SelectOptions {
            targetids: args.targetids.clone(),
            input_redshifts: if args.targetids.is_some() {
                args.input_redshifts.clone()
            } else {
                None
            },
            zmin: args.zmin.unwrap_or(1e-3),
            ntargets: args.ntargets,
            firsttarget: args.firsttarget,
            redux_dir: args.redux_dir.clone(),
            specprod: args.specprod.clone(),
            redrock_prefix: args.redrockfile_prefix.clone(),
            specfile_prefix: args.specfile_prefix.clone(),
            qnfile_prefix: args.qnfile_prefix.clone(),
            use_quasarnet: !args.ignore_quasarnet,
            ..SelectOptions::default()
        };
        if select.zmin <= 0.0 {
            tracing::warn!(zmin = select.zmin, "--zmin <= 0");
        }
        let emlines = if mode == Mode::Fastspec {
            // Read and validate the line list and kinematic constraints before any heavy I/O.
            Some(std::sync::Arc::new(crate::io::emlines::EmlineConfig::load(
                args.emlinesfile.as_deref(),
                args.constraintsfile.as_deref(),
            )?))
        } else {
            None
        };
        Ok(RunContext {
            mode,
            select,
            phot_cfg,
            source,
            emlines,
            args: args.clone(),
            input: InputKind::Desi,
        })
    }
}

/// One input file read and ready to fit.
pub struct LoadedFile {
    /// Selected targets.
    pub targets: FileTargets,
    /// Their photometry.
    pub phot: GatheredPhotometry,
    /// Selection indices that are fitted (external catalogues may drop targets).
    pub kept: Vec<usize>,
    /// Spectra of the kept targets (fastspec only).
    pub spectra: Option<SpectraColumns>,
    /// E(B−V) per kept target given by the input (stacks: 0; generic spectra: their EBV),
    /// used instead of the SFD98 lookup; `None` for DESI inputs.
    pub input_ebv: Option<Vec<f64>>,
}

/// Read one Redrock/coadd pair: selection, photometry and (fastspec) spectra.
///
/// Returns `Ok(None)` when the file has no selected target.
///
/// # Errors
/// Any input problem, naming the file.
pub fn load_file(redrock: &Path, ctx: &RunContext) -> Result<Option<LoadedFile>, IoError> {
    let _span = tracing::info_span!("load").entered();
    let Some(targets) = read_targets(redrock, &ctx.select)? else {
        return Ok(None);
    };
    let phot = gather_photometry(&targets, &ctx.phot_cfg, &ctx.source)?;
    let kept: Vec<usize> = (0..targets.len()).filter(|&i| phot.keep[i]).collect();
    let spectra = if ctx.mode == Mode::Fastspec {
        let file_rows: Vec<usize> = kept.iter().map(|&i| targets.rows[i]).collect();
        let (sp, bad) = read_spectra_checked(&targets.coadd_path, &file_rows, targets.nrows_file)?;
        for b in bad {
            tracing::warn!(
                targetid = targets.targetid[kept[b.target]],
                camera = %b.camera,
                npix = b.npix,
                "non-finite or negative-ivar pixels masked (FastSpecFit would stop the file)"
            );
        }
        Some(sp)
    } else {
        None
    };
    Ok(Some(LoadedFile {
        targets,
        phot,
        kept,
        spectra,
        input_ebv: None,
    }))
}

/// Load `files` on a background thread, one ahead of the consumer (I/O overlaps compute).
///
/// Results (including errors) arrive in `files` order; the loader stops when the consumer
/// hangs up.
pub fn prefetch(
    files: Vec<PathBuf>,
    ctx: RunContext,
) -> std::sync::mpsc::Receiver<(PathBuf, Result<Option<LoadedFile>, IoError>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        for f in files {
            let r = load_file(&f, &ctx);
            if tx.send((f, r)).is_err() {
                break;
            }
        }
    });
    rx
}

/// Default targets per batch and thread of [`Engine::fit_file`].
pub const DEFAULT_BATCH_PER_THREAD: usize = 32;

/// The long-lived ECS world and schedule: run-level resources stay, targets come and go.
pub struct Engine {
    world: World,
    schedule: Schedule,
    /// Targets fitted so far whose seeds precede the next file's (single-output runs draw one
    /// seed stream over all files, as FastSpecFit; the production driver resets it per file).
    pub seed_offset: usize,
    /// Targets per pass through the schedule (see [`Engine::fit_file`]).
    pub batch: usize,
}

impl Engine {
    /// Build the world with the run's resources (dust map, photometric setup).
    ///
    /// # Errors
    /// Unreadable SFD maps.
    pub fn new(ctx: &RunContext) -> Result<Self, IoError> {
        let _span = tracing::info_span!("init").entered();
        let mut world = World::new();
        world.insert_resource(setup_from(&ctx.phot_cfg));
        // stacks and generic spectra carry their E(B−V) (InputEbv): no SFD98 map needed
        if ctx.input == InputKind::Desi {
            let sfd = crate::io::sfd::load_sfd(&resolve_mapdir(&ctx.args))?;
            world.insert_resource(DustMap {
                ngp: sfd.ngp,
                sgp: sfd.sgp,
            });
        }
        world.insert_resource(fit_options(ctx));
        world.insert_resource(fsf_components::spectrum::SynthPhotometry {
            bands: ctx.phot_cfg.synth_bands.clone(),
            filters: ctx
                .phot_cfg
                .synth_filters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
        crate::resources::insert_fit_resources(&mut world, ctx)?;
        crate::specphot::insert_derived_resources(&mut world, ctx)?;
        if let Some(em) = &ctx.emlines {
            let cameras: Vec<String> = if ctx.input == InputKind::Desi {
                ["b", "r", "z"].iter().map(|s| s.to_string()).collect()
            } else {
                vec!["brz".to_string()]
            };
            let lines: Vec<(String, bool)> = em
                .table
                .lines
                .iter()
                .map(|l| (l.name.clone(), l.isstrong))
                .collect();
            world.insert_resource(FastspecSchema::new(
                &cameras,
                &ctx.phot_cfg.synth_bands,
                &lines,
            ));
        }
        let mut schedule = Schedule::default();
        passes::add_systems(&mut schedule);
        Ok(Engine {
            world,
            schedule,
            seed_offset: 0,
            batch: ctx
                .args
                .batch_size
                .unwrap_or(DEFAULT_BATCH_PER_THREAD * ctx.args.mp.max(1)),
        })
    }

    /// The FASTSPEC column schema (fastspec only).
    pub fn schema(&self) -> Option<&FastspecSchema> {
        self.world.get_resource::<FastspecSchema>()
    }

    /// Spawn the file's targets, run every pass, collect the results in row order, despawn.
    pub fn fit_file(&mut self, loaded: LoadedFile, summary: &mut RunSummary) -> FileMeta {
        let LoadedFile {
            targets,
            phot,
            kept,
            spectra,
            input_ebv,
        } = loaded;
        if let Some(sp) = spectra {
            self.world.insert_resource(sp);
        }
        self.world
            .insert_resource(fsf_components::SeedOffset(self.seed_offset));
        self.seed_offset += kept.len();
        let nk = kept.len();
        let mut z = Vec::with_capacity(nk);
        let mut dust = vec![MilkyWayDust::default(); nk];
        let mut continuum = vec![ContinuumFit::default(); nk];
        let mut props = vec![PhysicalProperties::default(); nk];
        let mut status = vec![FitStatus::default(); nk];
        let mut spectral = vec![SpectralFit::default(); nk];
        // Targets go through the passes in batches: a target's working set (Monte Carlo
        // spectra, convolved templates, line-fit state) lives only while its batch runs, so
        // memory is bounded by the batch, not by the file. Each target's results depend only
        // on its own data and seed (file row), never on the batch.
        let batch = self.batch.max(1);
        let nbatch = nk.div_ceil(batch);
        crate::progress::add_targets(nk);
        for (b, b0) in (0..nk).step_by(batch).enumerate() {
            let b1 = (b0 + batch).min(nk);
            for &i in &kept[b0..b1] {
                let mut zi = targets.z[i];
                if zi <= 0.0 {
                    tracing::warn!(
                        targetid = targets.targetid[i],
                        z = zi,
                        "redshift <= 0; setting it to 1e-8"
                    );
                    zi = 1e-8;
                }
                z.push(zi);
            }
            for k in spawn_order(&z[b0..b1], b0) {
                let i = kept[k];
                let zi = z[k];
                let mut entity = self.world.spawn((
                    Target {
                        row: k,
                        targetid: targets.targetid[i],
                    },
                    Redshift { z: zi },
                    SkyPosition {
                        ra_deg: phot.ra[i],
                        dec_deg: phot.dec[i],
                    },
                    ObservedPhotometry {
                        photsys: phot.photsys[i].clone(),
                        flux_nmgy: phot.flux.iter().map(|b| b[i]).collect(),
                        ivar_nmgy2: phot.flux_ivar.iter().map(|b| b[i]).collect(),
                        fiberflux_nmgy: phot.fiberflux.iter().map(|b| b[i]).collect(),
                        fibertotflux_nmgy: phot.fibertotflux.iter().map(|b| b[i]).collect(),
                    },
                    MilkyWayDust::default(),
                    FitStatus::default(),
                    (
                        PreparedSpectrum::default(),
                        ContinuumFit::default(),
                        PhysicalProperties::default(),
                        SpectralFit::default(),
                    ),
                    (
                        passes::fastspec::CameraLineMasks::default(),
                        passes::fastspec::SpectralContinuum::default(),
                        passes::fastspec::LineFitState::default(),
                    ),
                ));
                if let Some(ebv) = input_ebv.as_ref().and_then(|e| e.get(k)) {
                    entity.insert(fsf_components::InputEbv(*ebv));
                }
            }
            self.schedule.run(&mut self.world);

            let mut q = self.world.query::<(
                Entity,
                &Target,
                &mut MilkyWayDust,
                &mut FitStatus,
                &mut ContinuumFit,
                &mut PhysicalProperties,
                &mut SpectralFit,
                &PreparedSpectrum,
            )>();
            let mut entities = Vec::with_capacity(b1 - b0);
            // the entities are despawned right below: move their results out
            for (e, t, mut d, mut s, mut c, mut p, mut sf, prep) in q.iter_mut(&mut self.world) {
                if sf.flux_synth_nmgy.is_empty() {
                    sf.flux_synth_nmgy = prep.flux_synth_nmgy.clone();
                }
                if !s.ok() {
                    summary.flagged += 1;
                }
                dust[t.row] = std::mem::take(&mut *d);
                // the outputs read neither the SEDs, the Monte Carlo coefficients nor the
                // convolved templates: keep them out of the file's results
                let mut cf = std::mem::take(&mut *c);
                cf.sedmodel = Vec::new();
                cf.sedmodel_nolines = Vec::new();
                cf.mc_coeff = Vec::new();
                cf.templates_vdisp = None;
                continuum[t.row] = cf;
                props[t.row] = std::mem::take(&mut *p);
                status[t.row] = std::mem::take(&mut *s);
                spectral[t.row] = std::mem::take(&mut *sf);
                entities.push(e);
            }
            for e in entities {
                self.world.despawn(e);
            }
            crate::progress::advance(b1 - b0);
            if nbatch > 1 {
                tracing::info!(
                    targets = format!("{b1}/{nk}"),
                    "fitted batch {}/{nbatch}",
                    b + 1
                );
            }
        }
        self.world.remove_resource::<SpectraColumns>();
        summary.files += 1;
        summary.targets += kept.len();
        FileMeta {
            targets,
            phot,
            rows: kept,
            z,
            dust,
            continuum,
            props,
            status,
            spectral,
        }
    }
}

/// Write one output file (PRIMARY, METADATA) for the fitted `files`, atomically.
///
/// # Errors
/// Output errors, naming the file.
pub fn write_output(
    outfile: &Path,
    files: &[FileMeta],
    ctx: &RunContext,
    schema: Option<&FastspecSchema>,
) -> Result<(), IoError> {
    let _span = tracing::info_span!("write").entered();
    let specprod = files
        .first()
        .map(|f| f.targets.header.specprod.clone())
        .unwrap_or_default();
    let coadd_type = files
        .first()
        .map(|f| f.targets.header.coadd_type.clone())
        .unwrap_or_default();
    let meta = build_metadata(files, &ctx.phot_cfg);
    let cards = primary_cards(&ctx.args, ctx.mode, &specprod, &coadd_type, &ctx.source);
    let mut hdus = vec![OutHdu::Table {
        extname: "METADATA".into(),
        columns: meta,
        cards: vec![],
    }];
    if let Some(columns) = crate::specphot::specphot_columns(files, ctx) {
        hdus.push(OutHdu::Table {
            extname: "SPECPHOT".into(),
            columns,
            cards: vec![],
        });
        if ctx.mode == Mode::Fastspec {
            if let Some(schema) = schema {
                hdus.extend(crate::fastspec::fastspec_hdus(files, ctx, schema));
            }
            hdus.extend(crate::fastspec::models_hdu(files));
        }
    }
    write_fits_atomic(outfile, &cards, &hdus)
}

/// Run `fastspec` or `fastphot` over `args.redrockfiles` into one output file.
///
/// Files are processed in command-line order, the next one read while the current one is
/// fitted. Any file-level input error stops the run before anything is written (no partial
/// output); a per-target failure only flags that target.
///
/// # Errors
/// Configuration, input or output errors, each naming the file concerned.
pub fn run_fit(args: &FitArgs, mode: Mode) -> anyhow::Result<RunSummary> {
    let t0 = Instant::now();
    let Some(outfile) = &args.outfile else {
        return Err(IoError::input(Path::new("command line"), "-o/--outfile is required").into());
    };
    if args.redrockfiles.is_empty() {
        return Err(IoError::input(
            Path::new("command line"),
            "at least one Redrock file is required",
        )
        .into());
    }
    crate::io::fits::check_output_path(outfile)?;
    let ctx = RunContext::new(args, mode)?;
    let mut engine = Engine::new(&ctx)?;
    let mut files: Vec<FileMeta> = Vec::new();
    let mut summary = RunSummary::default();
    let mut specprod: Option<String> = None;
    for (path, loaded) in prefetch(args.redrockfiles.clone(), ctx.clone()) {
        let Some(loaded) = loaded? else { continue };
        let sp = &loaded.targets.header.specprod;
        if let Some(prev) = &specprod {
            if prev != sp {
                return Err(IoError::input(
                    &path,
                    format!("specprod {sp} differs from {prev} of earlier files"),
                )
                .into());
            }
        }
        specprod = Some(sp.clone());
        tracing::info!(file = %path.display(), ntargets = loaded.kept.len(), "read targets");
        files.push(engine.fit_file(loaded, &mut summary));
    }
    if summary.targets == 0 {
        anyhow::bail!(
            "no targets selected in {} input file(s); nothing written",
            args.redrockfiles.len()
        );
    }
    write_output(outfile, &files, &ctx, engine.schema())?;
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

/// Redshift below which a target's rest frame can cover the σ★ fit window (3800–4900 Å
/// on DESI's 3600–9824 Å): only such targets can take the costly σ★ branch.
const SIGMA_CANDIDATE_ZMAX: f64 = 1.0;

/// The order in which a batch's targets (rows `b0 + j` with redshifts `z[j]`) are spawned,
/// and so handed to the parallel passes: the possible σ★-fit targets first (each costs
/// ~5x the others), then the rest, each group in row order. The passes run one task per
/// target in spawn order, so a pass ends on cheap targets instead of leaving the other
/// threads idle behind a late σ★ fit. Results do not depend on the order.
fn spawn_order(z: &[f64], b0: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..z.len()).collect();
    order.sort_by_key(|&j| !(z[j] < SIGMA_CANDIDATE_ZMAX));
    order.into_iter().map(|j| b0 + j).collect()
}

#[cfg(test)]
mod tests {
    use super::spawn_order;

    #[test]
    fn sigma_candidates_spawn_first_in_row_order() {
        let z = [1.5, 0.3, 2.0, 0.9, f64::NAN, 0.999];
        assert_eq!(spawn_order(&z, 10), vec![11, 13, 15, 10, 12, 14]);
        assert!(spawn_order(&[], 0).is_empty());
    }
}
