//! Per-system profiling: a `tracing` layer that sums the busy time of every span by name.
//!
//! Every system runs inside a span named after it, so `--profile` gives a per-system table
//! (calls, total seconds, milliseconds per target, share of wall time) for free.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Accumulated time per span name.
#[derive(Debug, Default, Clone)]
pub struct ProfileTable {
    /// name → (calls, busy time).
    pub entries: HashMap<String, (u64, Duration)>,
}

/// A layer that records span busy time into a shared [`ProfileTable`].
#[derive(Clone, Default)]
pub struct ProfileLayer {
    table: Arc<Mutex<ProfileTable>>,
}

struct Timing {
    entered: Option<Instant>,
    busy: Duration,
}

impl ProfileLayer {
    /// A new, empty profile.
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of the table.
    pub fn snapshot(&self) -> ProfileTable {
        self.table.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Render the table: one row per span name, sorted by total time.
    pub fn render(&self, wall: Duration, ntargets: usize) -> String {
        let t = self.snapshot();
        let mut rows: Vec<_> = t.entries.into_iter().collect();
        rows.sort_by(|a, b| b.1 .1.cmp(&a.1 .1));
        let mut s = format!(
            "{:<28} {:>8} {:>12} {:>14} {:>8}\n",
            "system", "calls", "total [s]", "per target [ms]", "% wall"
        );
        let w = wall.as_secs_f64().max(1e-12);
        for (name, (calls, busy)) in rows {
            let b = busy.as_secs_f64();
            let per = if ntargets > 0 {
                1e3 * b / ntargets as f64
            } else {
                0.0
            };
            s.push_str(&format!(
                "{name:<28} {calls:>8} {b:>12.4} {per:>14.3} {:>8.1}\n",
                100.0 * b / w
            ));
        }
        s.push_str(&format!(
            "{:<28} {:>8} {:>12.4} {:>14} {:>8}\n",
            "wall", "", w, "", "100.0"
        ));
        s
    }
}

impl<S> Layer<S> for ProfileLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Timing {
                entered: None,
                busy: Duration::ZERO,
            });
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(t) = span.extensions_mut().get_mut::<Timing>() {
                t.entered = Some(Instant::now());
            }
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(t) = span.extensions_mut().get_mut::<Timing>() {
                if let Some(e) = t.entered.take() {
                    t.busy += e.elapsed();
                }
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            let busy = span
                .extensions()
                .get::<Timing>()
                .map(|t| t.busy)
                .unwrap_or_default();
            if let Ok(mut table) = self.table.lock() {
                let e = table
                    .entries
                    .entry(span.name().to_string())
                    .or_insert((0, Duration::ZERO));
                e.0 += 1;
                e.1 += busy;
            }
        }
    }
}
