use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use fastspecfit::cli::{Cli, Command};
use fastspecfit::profile::ProfileLayer;
use fastspecfit::run::{run_fit, Mode};
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (args, mode) = match &cli.command {
        Command::Fastspec(a) => (a, Mode::Fastspec),
        Command::Fastphot(a) => (a, Mode::Fastphot),
    };
    let level = if args.verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let profile = ProfileLayer::new();
    let registry = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_filter(filter));
    if args.profile {
        registry.with(profile.clone()).init();
    } else {
        registry.init();
    }
    let threads = args.mp.max(1);
    bevy_tasks::ComputeTaskPool::get_or_init(|| bevy_tasks::TaskPoolBuilder::new().num_threads(threads).build());
    let t0 = Instant::now();
    match run_fit(args, mode) {
        Ok(summary) => {
            if args.profile {
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
