//! The production driver (FastSpecFit's `mpi-fastspecfit`): many Redrock files, one output
//! per input in the DESI VAC layout, files load-balanced across MPI ranks by target count,
//! existing outputs skipped (the restart mechanism), an honest exit status and a summary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cli::ProductionArgs;
use crate::comm::{weighted_partition, Comm};
use crate::io::desi::{read_targets, SelectOptions};
use crate::io::IoError;
use crate::run::{prefetch, write_output, Engine, Mode, RunContext, RunSummary};

/// One input file of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFile {
    /// The Redrock file.
    pub redrock: PathBuf,
    /// Where its output goes.
    pub outfile: PathBuf,
    /// Targets FastSpecFit's planner would fit (Z > 0.001, OBJTYPE TGT, no NODATA).
    pub ntargets: i64,
}

/// What the driver did.
#[derive(Debug, Default, Clone)]
pub struct ProductionReport {
    /// Files fitted by all ranks.
    pub files_done: i64,
    /// Files skipped because their output exists.
    pub files_skipped: i64,
    /// Files that failed.
    pub files_failed: i64,
    /// Targets fitted.
    pub targets: i64,
    /// Targets flagged.
    pub flagged: i64,
    /// Wall time, seconds (rank 0).
    pub seconds: f64,
    /// Threads per rank × ranks.
    pub cores: usize,
    /// `--plan` listing (rank 0), empty otherwise.
    pub plan_text: String,
}

fn is_redrock(name: &str, prefix: &str) -> bool {
    name.starts_with(prefix) && (name.ends_with(".fits") || name.ends_with(".fits.gz"))
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Find Redrock files in a DESI spectroscopic production tree `{redux}/{specprod}`.
///
/// healpix: `healpix/{survey}/{program}/{pix//100}/{pix}/redrock-*.fits`; tile coadds:
/// `tiles/{cumulative|pernight|perexp}/{tile}/{night}/redrock-*.fits` (cumulative: the most
/// recent night only). Filters: surveys, programs, healpix list, tiles, nights.
pub fn discover(root: &Path, a: &ProductionArgs) -> Vec<PathBuf> {
    let prefix = &a.fit.redrockfile_prefix;
    let keep = |list: &Option<Vec<String>>, v: &str| {
        list.as_ref()
            .map(|l| l.iter().any(|x| x == v))
            .unwrap_or(true)
    };
    let mut out = Vec::new();
    if a.coadd_type == "healpix" {
        for sdir in list_dir(&root.join("healpix")) {
            let survey = sdir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !keep(&a.survey, &survey) {
                continue;
            }
            for pdir in list_dir(&sdir) {
                let program = pdir
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !keep(&a.program, &program) {
                    continue;
                }
                for group in list_dir(&pdir) {
                    for pix in list_dir(&group) {
                        let p = pix
                            .file_name()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        if !keep(&a.healpix, &p) {
                            continue;
                        }
                        out.extend(list_dir(&pix).into_iter().filter(|f| {
                            f.file_name()
                                .map(|n| is_redrock(&n.to_string_lossy(), prefix))
                                .unwrap_or(false)
                        }));
                    }
                }
            }
        }
    } else {
        for tdir in list_dir(&root.join("tiles").join(&a.coadd_type)) {
            let tile = tdir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !keep(&a.tile, &tile) {
                continue;
            }
            let mut nights = list_dir(&tdir);
            if a.coadd_type == "cumulative" {
                nights = nights.into_iter().last().into_iter().collect();
            }
            for ndir in nights {
                let night = ndir
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if a.coadd_type == "pernight" && !keep(&a.night, &night) {
                    continue;
                }
                out.extend(list_dir(&ndir).into_iter().filter(|f| {
                    f.file_name()
                        .map(|n| is_redrock(&n.to_string_lossy(), prefix))
                        .unwrap_or(false)
                }));
            }
        }
    }
    out
}

/// The output file for `redrock`: mirrored under `{outdir}/{specprod}/...` when the file lies
/// in the production tree `root`, else `{outdir}/<name>`; prefix `fastspec-`/`fastphot-`.
pub fn output_path(
    redrock: &Path,
    root: Option<&Path>,
    outdir: &Path,
    specprod: &str,
    mode: Mode,
    prefix: &str,
) -> PathBuf {
    let name = redrock
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let newprefix = match mode {
        Mode::Fastspec => "fastspec-",
        Mode::Fastphot => "fastphot-",
    };
    let mut outname = name.replacen(prefix, newprefix, 1);
    if let Some(stripped) = outname.strip_suffix(".gz") {
        outname = stripped.to_string();
    }
    let reldir = root
        .and_then(|r| redrock.parent().and_then(|p| p.strip_prefix(r).ok()))
        .map(|r| Path::new(specprod).join(r));
    match reldir {
        Some(rel) => outdir.join(rel).join(outname),
        None => outdir.join(outname),
    }
}

/// Count the targets of `redrock` as FastSpecFit's planner does (no QuasarNet adjustment).
fn count_targets(redrock: &Path, prefix: &str, specprefix: &str) -> Result<i64, IoError> {
    let opts = SelectOptions {
        redrock_prefix: prefix.to_string(),
        specfile_prefix: specprefix.to_string(),
        use_quasarnet: false,
        ..SelectOptions::default()
    };
    Ok(read_targets(redrock, &opts)?
        .map(|t| t.len() as i64)
        .unwrap_or(0))
}

/// Run the production driver on this rank.
///
/// # Errors
/// Only configuration errors; per-file failures are counted in the report.
pub fn run_production(a: &ProductionArgs, comm: &Comm) -> anyhow::Result<ProductionReport> {
    let t0 = Instant::now();
    let mode = if a.fastphot {
        Mode::Fastphot
    } else {
        Mode::Fastspec
    };
    let specprod = a.fit.specprod.clone().unwrap_or_else(|| "loa".to_string());
    let root = a.fit.redux_dir.as_ref().map(|r| r.join(&specprod));
    let inputs: Vec<PathBuf> = if !a.fit.redrockfiles.is_empty() {
        a.fit.redrockfiles.clone()
    } else {
        let Some(root) = &root else {
            anyhow::bail!("give Redrock files, or --redux_dir (or $DESI_SPECTRO_REDUX) and --specprod to search a production");
        };
        discover(root, a)
    };
    std::fs::create_dir_all(&a.outdir).map_err(|e| {
        IoError::output(
            &a.outdir,
            format!("cannot create the output directory: {e}"),
        )
    })?;

    // Plan: outputs, skips, and target counts (counting spread over ranks, then summed).
    let n = inputs.len();
    let outs: Vec<PathBuf> = inputs
        .iter()
        .map(|f| {
            output_path(
                f,
                root.as_deref(),
                &a.outdir,
                &specprod,
                mode,
                &a.fit.redrockfile_prefix,
            )
        })
        .collect();
    let todo: Vec<bool> = outs.iter().map(|o| a.overwrite || !o.exists()).collect();
    let mut counts = vec![0i64; n];
    let mut count_fail = vec![0i64; n];
    for i in (0..n).filter(|i| i % comm.size() == comm.rank() && todo[*i]) {
        match count_targets(
            &inputs[i],
            &a.fit.redrockfile_prefix,
            &a.fit.specfile_prefix,
        ) {
            Ok(c) => counts[i] = c,
            Err(e) => {
                tracing::error!("{e}");
                count_fail[i] = 1;
            }
        }
    }
    comm.sum(&mut counts);
    comm.sum(&mut count_fail);
    let planned: Vec<PlannedFile> = (0..n)
        .filter(|&i| todo[i] && (counts[i] > 0 || count_fail[i] > 0))
        .map(|i| PlannedFile {
            redrock: inputs[i].clone(),
            outfile: outs[i].clone(),
            ntargets: counts[i],
        })
        .collect();
    let mut report = ProductionReport {
        files_skipped: todo.iter().filter(|t| !**t).count() as i64,
        cores: comm.size() * a.fit.mp.max(1),
        ..Default::default()
    };
    if a.plan {
        if comm.rank() == 0 {
            let mut s = String::new();
            for p in &planned {
                s.push_str(&format!(
                    "{}\t{}\t{}\n",
                    p.ntargets,
                    p.redrock.display(),
                    p.outfile.display()
                ));
            }
            s.push_str(&format!(
                "# {} files ({} targets) to do, {} done already\n",
                planned.len(),
                planned.iter().map(|p| p.ntargets).sum::<i64>(),
                report.files_skipped
            ));
            report.plan_text = s;
        }
        return Ok(report);
    }

    let owner = weighted_partition(
        &planned.iter().map(|p| p.ntargets).collect::<Vec<_>>(),
        comm.size(),
    );
    let mine: Vec<&PlannedFile> = planned
        .iter()
        .zip(&owner)
        .filter(|(_, r)| **r == comm.rank())
        .map(|(p, _)| p)
        .collect();
    tracing::info!(
        rank = comm.rank(),
        files = mine.len(),
        targets = mine.iter().map(|p| p.ntargets).sum::<i64>(),
        "assigned"
    );

    let mut local = [0i64; 5]; // done, failed, targets, flagged, unused
    if !mine.is_empty() {
        let mut fit = a.fit.clone();
        fit.redrockfiles = vec![];
        let ctx = RunContext::new(&fit, mode)?;
        let mut engine = Engine::new(&ctx)?;
        let files: Vec<PathBuf> = mine.iter().map(|p| p.redrock.clone()).collect();
        let rx = prefetch(files, ctx.clone());
        let mut it = mine.iter();
        for (k, (path, loaded)) in rx.into_iter().enumerate() {
            let Some(p) = it.next() else { break };
            let result = (|| -> Result<Option<RunSummary>, IoError> {
                let Some(loaded) = loaded? else {
                    return Ok(None);
                };
                let mut summary = RunSummary::default();
                // Each file is its own FastSpecFit run: seeds start afresh.
                engine.seed_offset = 0;
                let meta = engine.fit_file(loaded, &mut summary);
                if let Some(dir) = p.outfile.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| IoError::output(dir, e.to_string()))?;
                }
                write_output(&p.outfile, &[meta], &ctx, engine.schema())?;
                // Test aid for the crash-safety test: a pause after each written file so a
                // SIGKILL can land mid-run. Unset in production.
                if let Some(ms) = std::env::var("FASTSPECFIT_TEST_PAUSE_MS")
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                }
                Ok(Some(summary))
            })();
            match result {
                Ok(Some(s)) => {
                    local[0] += 1;
                    local[2] += s.targets as i64;
                    local[3] += s.flagged as i64;
                    tracing::info!(file = %path.display(), progress = format!("{}/{}", k + 1, mine.len()), targets = s.targets, "wrote {}", p.outfile.display());
                }
                Ok(None) => tracing::info!(file = %path.display(), "no targets selected"),
                Err(e) => {
                    local[1] += 1;
                    tracing::error!("{e}");
                }
            }
        }
        // A loader that stopped early (an error) leaves files without a result.
        let left = it.count() as i64;
        if left > 0 {
            local[1] += left;
            tracing::error!(files = left, "files not processed after a loader error");
        }
    }
    comm.sum(&mut local);
    report.files_done = local[0];
    report.files_failed = local[1];
    report.targets = local[2];
    report.flagged = local[3];
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}
