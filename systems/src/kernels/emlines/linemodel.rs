//! The two line models (`narrow_broad`, `narrow_only`) for a redshift and
//! wavelength coverage — FastSpecFit's `build_linemodels` (SPEC.md §5.2).

use super::params::{ParamTable, ParamType};
use super::table::{Constraints, KinGroup};

/// Which parameters are free, fixed or tied in one line model.
#[derive(Debug, Clone, PartialEq)]
pub struct LineModel {
    /// Free parameters (neither fixed nor tied).
    pub free: Vec<bool>,
    /// Fixed parameters (always evaluate to 0).
    pub fixed: Vec<bool>,
    /// Source parameter of each tied parameter, −1 if not tied.
    pub tiedtoparam: Vec<i32>,
    /// Tie factor (0 for untied parameters).
    pub tiedfactor: Vec<f64>,
    /// Kinematic group name (`global.<g>` / `<profile>.<g>`) on v and σ of
    /// anchors and members, empty otherwise.
    pub group_name: Vec<String>,
}

impl LineModel {
    /// Number of free parameters.
    pub fn nfree(&self) -> usize {
        self.free.iter().filter(|&&f| f).count()
    }
}

/// Name of the profile with broad Balmer lines.
pub const PROFILE_BROAD: &str = "narrow_broad";
/// Name of the narrow-only profile.
pub const PROFILE_NOBROAD: &str = "narrow_only";

struct Tying {
    tiedtoparam: Vec<i32>,
    tiedfactor: Vec<f64>,
    group_name: Vec<String>,
}

fn tie_kinematics(pt: &ParamTable, groups: &[KinGroup], prefix: &str, t: &mut Tying) {
    for g in groups {
        let Some(&anchor) = pt.line_map.get(&g.anchor) else {
            continue;
        };
        let gname = format!("{prefix}{}", g.name);
        let (sv, ss) = (
            pt.param_index(anchor, ParamType::Vshift),
            pt.param_index(anchor, ParamType::Sigma),
        );
        t.group_name[sv] = gname.clone();
        t.group_name[ss] = gname.clone();
        for m in &g.members {
            let Some(&line) = pt.line_map.get(m) else {
                continue;
            };
            for (p, src) in [
                (pt.param_index(line, ParamType::Vshift), sv),
                (pt.param_index(line, ParamType::Sigma), ss),
            ] {
                t.group_name[p] = gname.clone();
                t.tiedfactor[p] = 1.0;
                t.tiedtoparam[p] = src as i32;
            }
        }
    }
}

fn build_tying(pt: &ParamTable, c: &Constraints, profile: &str) -> Tying {
    let np = pt.nparams();
    let mut t = Tying {
        tiedtoparam: vec![-1; np],
        tiedfactor: vec![0.0; np],
        group_name: vec![String::new(); np],
    };
    tie_kinematics(pt, &c.global_kinematic_groups, "global.", &mut t);
    if let Some(p) = c.profile(profile) {
        tie_kinematics(pt, &p.kinematic_groups, &format!("{profile}."), &mut t);
    }
    for f in &c.amplitude_fixed {
        if let (Some(&l), Some(&r)) = (pt.line_map.get(&f.line), pt.line_map.get(&f.ref_line)) {
            let (pl, pr) = (
                pt.param_index(l, ParamType::Amplitude),
                pt.param_index(r, ParamType::Amplitude),
            );
            t.tiedfactor[pl] = f.factor;
            t.tiedtoparam[pl] = pr as i32;
        }
    }
    t
}

#[allow(clippy::needless_range_loop)] // parallel arrays indexed by parameter
fn create_model(
    pt: &ParamTable,
    in_range: &[bool],
    mut t: Tying,
    force_fixed: &[usize],
) -> LineModel {
    let np = pt.nparams();
    let mut isfixed = vec![false; np];
    let src = |p: usize| -> Option<usize> { usize::try_from(t.tiedtoparam[p]).ok() };
    if !force_fixed.is_empty() {
        for &p in force_fixed {
            isfixed[p] = true;
        }
        let snapshot = isfixed.clone();
        for (p, f) in isfixed.iter_mut().enumerate() {
            if let Some(s) = src(p) {
                *f = snapshot[s];
            }
        }
    }
    let oor: Vec<bool> = (0..np).map(|p| !in_range[pt.param_line(p)]).collect();
    let mut n_tied = vec![0usize; np];
    for p in 0..np {
        if let Some(s) = src(p) {
            n_tied[s] += 1;
        }
    }
    for p in 0..np {
        if oor[p] && n_tied[p] == 0 {
            isfixed[p] = true;
        }
    }
    let mut n_tied_fixed = vec![0usize; np];
    for p in 0..np {
        if let Some(s) = src(p) {
            if isfixed[p] {
                n_tied_fixed[s] += 1;
            }
        }
    }
    for p in 0..np {
        if oor[p] && n_tied[p] == n_tied_fixed[p] {
            isfixed[p] = true;
        }
    }
    // amplitude parameter index == line index
    for (&tgt, &s) in pt.doublet_idx.iter().zip(&pt.doublet_src) {
        isfixed[tgt] = isfixed[s];
    }
    for p in 0..np {
        if isfixed[p] {
            t.tiedtoparam[p] = -1;
        }
        if t.tiedtoparam[p] == -1 {
            t.tiedfactor[p] = 0.0;
        }
    }
    let free = (0..np)
        .map(|p| !isfixed[p] && t.tiedtoparam[p] == -1)
        .collect();
    LineModel {
        free,
        fixed: isfixed,
        tiedtoparam: t.tiedtoparam,
        tiedfactor: t.tiedfactor,
        group_name: t.group_name,
    }
}

/// Build (broad, nobroad) line models: `narrow_broad` and `narrow_only`
/// profiles, for lines flagged by `in_range` (see
/// [`ParamTable::lines_in_range`]).
///
/// # Errors
/// A message if `in_range` has the wrong length or a profile is missing
/// (FastSpecFit raises KeyError).
pub fn build_linemodels(
    pt: &ParamTable,
    c: &Constraints,
    in_range: &[bool],
) -> Result<(LineModel, LineModel), String> {
    if in_range.len() != pt.nlines() {
        return Err(format!(
            "build_linemodels: {} in-range flags for {} lines",
            in_range.len(),
            pt.nlines()
        ));
    }
    for name in [PROFILE_BROAD, PROFILE_NOBROAD] {
        if c.profile(name).is_none() {
            return Err(format!("constraint file has no '{name}' profile"));
        }
    }
    let broad = create_model(pt, in_range, build_tying(pt, c, PROFILE_BROAD), &[]);
    let mut force = Vec::new();
    if let Some(p) = c.profile(PROFILE_NOBROAD) {
        for name in &p.fixed_lines {
            if let Some(&l) = pt.line_map.get(name) {
                force.extend(
                    [ParamType::Amplitude, ParamType::Vshift, ParamType::Sigma]
                        .map(|k| pt.param_index(l, k)),
                );
            }
        }
    }
    let nobroad = create_model(pt, in_range, build_tying(pt, c, PROFILE_NOBROAD), &force);
    Ok((broad, nobroad))
}
