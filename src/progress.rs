//! A progress bar over the targets of a run, drawn on stderr when it is a terminal.
//!
//! One bar per process: the drivers add each file's targets to its length when the file
//! is read ([`add_targets`]) and advance it as batches of targets finish ([`advance`]).
//! Log lines go through [`LogWriter`], which hides the bar while a line is written, so
//! logs and bar never interleave. Off a terminal (CI, batch jobs, redirected stderr)
//! nothing is drawn and the per-batch `info` logs remain the progress record.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static BAR: OnceLock<ProgressBar> = OnceLock::new();

fn bar() -> &'static ProgressBar {
    BAR.get_or_init(|| {
        let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        pb.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} targets ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb
    })
}

/// Draw the bar on stderr if `enabled` and stderr is a terminal.
pub fn enable(enabled: bool) {
    if enabled && std::io::stderr().is_terminal() {
        let pb = bar();
        pb.set_draw_target(ProgressDrawTarget::stderr());
        pb.enable_steady_tick(Duration::from_millis(500));
    }
}

/// Whether the bar is drawn.
pub fn is_drawn() -> bool {
    BAR.get().is_some_and(|b| !b.is_hidden())
}

/// `n` more targets to fit.
pub fn add_targets(n: usize) {
    bar().inc_length(n as u64);
}

/// `n` targets fitted.
pub fn advance(n: usize) {
    bar().inc(n as u64);
}

/// Remove the bar at the end of a run.
pub fn finish() {
    if let Some(b) = BAR.get() {
        b.finish_and_clear();
    }
}

/// A `tracing` writer for stderr that hides the bar while a log line is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BAR.get() {
            Some(b) if !b.is_hidden() => b.suspend(|| std::io::stderr().write_all(buf))?,
            _ => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_targets_and_writes_logs_without_a_terminal() {
        // the bar is hidden off a terminal (as under the test harness) but still counts
        let b = bar();
        let (l0, p0) = (b.length().unwrap_or(0), b.position());
        add_targets(5);
        add_targets(3);
        advance(2);
        assert!(!is_drawn());
        assert!(b.length().unwrap_or(0) >= l0 + 8);
        assert!(b.position() >= p0 + 2);
        let mut w = LogWriter;
        assert_eq!(w.write(b"").unwrap(), 0);
    }
}
