//! Per-target identity, redshift, position and status components.

use bevy_ecs::prelude::Component;

/// A target of the current file: its row in the file-level SoA columns and its TARGETID.
///
/// Written at spawn by the loader; read by every system and by the writers, which order
/// outputs by `row` (so results never depend on thread scheduling).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Row in the file's selected-target arrays (output row order).
    pub row: usize,
    /// DESI TARGETID.
    pub targetid: i64,
}

/// The redshift a target is fitted at (Redrock Z or `--input-redshifts`; ≤ 0 becomes 1e-8).
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct Redshift {
    /// Redshift.
    pub z: f64,
}

/// Sky position used for the Milky Way dust lookup (catalogue RA/DEC, SPEC §1.5).
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct SkyPosition {
    /// Right ascension, degrees (ICRS).
    pub ra_deg: f64,
    /// Declination, degrees (ICRS).
    pub dec_deg: f64,
}

/// Milky Way E(B−V) given by the input instead of the SFD98 lookup: 0 for stacks (FastSpecFit's
/// `stackfit` applies no dust correction), the optional `EBV` of a generic spectrum.
///
/// Written at spawn by the loader for stack and generic inputs only; when present,
/// `correct_mw_dust` uses it and does not look the position up.
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct InputEbv(pub f64);

/// Per-target fit status: a failed step flags the target instead of stopping the file.
///
/// Written by any system that cannot process a target; its outputs are then left at the
/// "not measured" convention (value 0, ivar 0) and the reason is logged with the TARGETID.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct FitStatus {
    /// Bit flags (see the `FLAG_*` constants).
    pub flags: u32,
    /// Human-readable reasons, one per failure.
    pub reasons: Vec<String>,
}

impl FitStatus {
    /// The Milky Way dust lookup failed (e.g. position outside the SFD map).
    pub const FLAG_MW_DUST: u32 = 1 << 0;
    /// The photometry is unusable (e.g. negative inverse variance).
    pub const FLAG_PHOTOMETRY: u32 = 1 << 1;
    /// The spectrum is unusable.
    pub const FLAG_SPECTRUM: u32 = 1 << 2;

    /// Record a failure.
    pub fn flag(&mut self, bit: u32, reason: impl Into<String>) {
        self.flags |= bit;
        self.reasons.push(reason.into());
    }

    /// Whether no step failed.
    pub fn ok(&self) -> bool {
        self.flags == 0
    }
}
