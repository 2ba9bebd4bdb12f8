//! SPECPHOT HDU assembly (SPEC §6.4). (Placeholder: owned by the derived-quantities work.)

use crate::io::fits::OutColumn;
use crate::metadata::FileMeta;
use crate::run::RunContext;

/// The SPECPHOT columns for `files`, or `None` while no continuum fit ran.
pub fn specphot_columns(_files: &[FileMeta], _ctx: &RunContext) -> Option<Vec<OutColumn>> {
    None
}
