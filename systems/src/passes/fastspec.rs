//! Systems of the spectroscopic half of fastspec (SPEC §2.5, §4.4–§4.9, §5): run-level line
//! setup, and the bookkeeping that copies per-target preparation results into FASTSPEC.

use bevy_ecs::prelude::*;
use fsf_components::{FastspecSchema, FitOptions, PreparedSpectrum, Program, SpectralFit};

use super::FitSystems;
use crate::kernels::emlines::table::{Constraints, LineTable};

/// The run's emission-line table and kinematic constraints (fastspec only).
#[derive(Resource, Debug, Clone)]
pub struct EmlineSetup {
    /// The line table (sorted by rest wavelength).
    pub table: LineTable,
    /// The kinematic constraints.
    pub constraints: Constraints,
}

/// Register this module's systems in the schedule.
pub fn register(schedule: &mut Schedule) {
    schedule.add_systems(record_snr.in_set(FitSystems::Finalize));
}

/// System: SNR_{B,R,Z} of every prepared target into its FASTSPEC values.
pub fn record_snr(
    opts: Res<FitOptions>,
    schema: Option<Res<FastspecSchema>>,
    mut q: Query<(&PreparedSpectrum, &mut SpectralFit)>,
) {
    if opts.program != Program::Fastspec {
        return;
    }
    let Some(schema) = schema else { return };
    let _span = tracing::info_span!("record_snr").entered();
    let n = schema.len();
    let idx: Vec<Option<usize>> = ["SNR_B", "SNR_R", "SNR_Z"]
        .iter()
        .map(|c| schema.index(c))
        .collect();
    q.par_iter_mut().for_each(|(prep, mut sf)| {
        if prep.cameras.is_empty() {
            return;
        }
        for (k, i) in idx.iter().enumerate() {
            if let (Some(i), Some(&v)) = (i, prep.snr.get(k)) {
                sf.set(n, *i, f64::from(v));
            }
        }
    });
}
