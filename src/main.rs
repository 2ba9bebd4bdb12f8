use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use fastspecfit::cli::{Cli, Command, FitArgs};
use fastspecfit::comm::Comm;
use fastspecfit::production::run_production;
use fastspecfit::profile::ProfileLayer;
use fastspecfit::run::{run_fit, Mode};
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// Logging, profiling and the thread budget. The returned guard flushes the Chrome trace
/// (if any) when dropped at the end of `main`.
fn init(args: &FitArgs, rank: usize) -> (ProfileLayer, Option<tracing_chrome::FlushGuard>) {
    let level = if args.verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let profile = ProfileLayer::new();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(fastspecfit::progress::LogWriter)
        .with_target(false);
    let (chrome, guard) = match &args.trace {
        Some(path) => {
            let mut p = path.clone();
            if rank > 0 {
                p.set_extension(format!("rank{rank}.json"));
            }
            let (layer, guard) = tracing_chrome::ChromeLayerBuilder::new()
                .file(p)
                .include_args(true)
                .build();
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    let registry = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(chrome)
        .with(args.profile.then(|| profile.clone()));
    registry.init();
    // one bar per terminal: rank 0's (it counts that rank's targets)
    fastspecfit::progress::enable(rank == 0 && !args.no_progress);
    if rank > 0 {
        tracing::debug!(rank, "rank started");
    }
    // One pool: `--mp N` threads in total for the passes; kernels inside a pass are sequential.
    let threads = args.mp.max(1);
    bevy_tasks::ComputeTaskPool::get_or_init(|| {
        bevy_tasks::TaskPoolBuilder::new()
            .num_threads(threads)
            .build()
    });
    // rayon (used by dependencies) gets the same budget; faer runs sequentially inside kernels.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    fsf_systems::use_sequential_kernels();
    (profile, guard)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let t0 = Instant::now();
    match &cli.command {
        Command::Fastspec(a) | Command::Fastphot(a) => {
            let mode = if matches!(cli.command, Command::Fastspec(_)) {
                Mode::Fastspec
            } else {
                Mode::Fastphot
            };
            let (profile, _trace) = init(a, 0);
            let r = run_fit(a, mode);
            fastspecfit::progress::finish();
            match r {
                Ok(summary) => {
                    if a.profile {
                        eprint!("{}", profile.render(t0.elapsed(), summary.targets));
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Stackfit(a) | Command::Fitspec(a) => {
            let (profile, _trace) = init(a, 0);
            let r = if matches!(cli.command, Command::Stackfit(_)) {
                fastspecfit::io::stack::run_stackfit(a)
            } else {
                fastspecfit::io::generic::run_fitspec(a)
            };
            fastspecfit::progress::finish();
            match r {
                Ok(summary) => {
                    if a.profile {
                        eprint!("{}", profile.render(t0.elapsed(), summary.targets));
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Simulate(a) => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_target(false)
                .init();
            match fastspecfit::simulate::run_simulate(a) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Compare(a) => match fastspecfit::compare::run_compare(a) {
            Ok(report) => {
                use std::io::Write;
                // a reader that stops early (`| head`) is not an error
                match std::io::stdout().lock().write_all(report.as_bytes()) {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                        eprintln!("error: writing the report: {e}");
                        ExitCode::FAILURE
                    }
                    _ => ExitCode::SUCCESS,
                }
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Qa(a) => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_target(false)
                .init();
            match fastspecfit::qa::run_qa(a) {
                Ok(s) => {
                    eprintln!(
                        "qa: {} figures ({} drawn); report {}",
                        s.pngs.len(),
                        s.drawn,
                        s.report.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Production(p) => {
            let comm = Comm::init();
            let (profile, _trace) = init(&p.fit, comm.rank());
            let r = run_production(p, &comm);
            fastspecfit::progress::finish();
            match r {
                Ok(r) => {
                    if comm.rank() == 0 {
                        if p.plan {
                            print!("{}", r.plan_text);
                        } else {
                            let rate =
                                r.targets as f64 / r.seconds.max(1e-9) / r.cores.max(1) as f64;
                            eprintln!(
                                "summary: {} files fitted, {} skipped (output exists), {} failed; {} targets ({} flagged); {:.1} s; {:.3} targets/s/core on {} cores",
                                r.files_done, r.files_skipped, r.files_failed, r.targets, r.flagged, r.seconds, rate, r.cores
                            );
                            if p.fit.profile {
                                eprint!("{}", profile.render(t0.elapsed(), r.targets as usize));
                            }
                        }
                    }
                    if r.files_failed > 0 {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
