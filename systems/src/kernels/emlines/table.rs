//! The emission-line table and the kinematic-constraint set, as plain data
//! (SPEC.md §5.1).
//!
//! The application layer (`src/io/emlines.rs`) parses FastSpecFit's
//! `emlines.ecsv` and `emline-constraints.yaml` into these structs; the
//! kernels only ever see validated data. Ordering matters and is preserved:
//! lines are sorted (stably) by rest wavelength, profiles and groups keep
//! their file order (it decides [`Constraints::line_bounds`] look-ups).

use std::collections::{BTreeSet, HashMap};

/// One emission line of the table (one row of `emlines.ecsv`).
#[derive(Debug, Clone, PartialEq)]
pub struct EmLine {
    /// Line name, e.g. `oiii_5007`.
    pub name: String,
    /// Vacuum rest wavelength [Å].
    pub restwave: f64,
    /// Line-masker patch letter.
    pub patch: String,
    /// Balmer (or Balmer-like helium) line.
    pub isbalmer: bool,
    /// Helium line.
    pub ishelium: bool,
    /// Broad line.
    pub isbroad: bool,
    /// Strong line (used by the `stronglines` subset).
    pub isstrong: bool,
    /// Display name (QA only).
    pub nicename: String,
    /// Plot group (QA only).
    pub plotgroup: String,
}

/// The line table, sorted by rest wavelength (stable sort, file order kept
/// for equal wavelengths).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineTable {
    /// Lines in ascending rest wavelength.
    pub lines: Vec<EmLine>,
}

impl LineTable {
    /// Build a table from rows in file order; sorts them stably by `restwave`.
    pub fn new(mut lines: Vec<EmLine>) -> Self {
        lines.sort_by(|a, b| a.restwave.total_cmp(&b.restwave));
        Self { lines }
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// True when the table has no line.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Index of the line called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.lines.iter().position(|l| l.name == name)
    }

    /// The strong-line subset (FastSpecFit's `stronglines=True`), order kept.
    pub fn strong_only(&self) -> Self {
        Self {
            lines: self.lines.iter().filter(|l| l.isstrong).cloned().collect(),
        }
    }
}

/// A fixed amplitude ratio: amplitude(`line`) = `factor` × amplitude(`ref_line`).
#[derive(Debug, Clone, PartialEq)]
pub struct FixedRatio {
    /// Tied line.
    pub line: String,
    /// Reference line.
    pub ref_line: String,
    /// Multiplicative factor.
    pub factor: f64,
    /// Output column receiving 1/factor (may be empty).
    pub param_name: String,
}

/// A free doublet ratio: the amplitude slot of `line` holds
/// amplitude(`line`)/amplitude(`ref_line`).
#[derive(Debug, Clone, PartialEq)]
pub struct DoubletRatio {
    /// Target line (its amplitude slot holds the ratio).
    pub line: String,
    /// Reference line.
    pub ref_line: String,
    /// Parameter name of the ratio (e.g. `oii_doublet_ratio`).
    pub param_name: String,
    /// Lower bound of the ratio.
    pub min: f64,
    /// Upper bound of the ratio.
    pub max: f64,
    /// Initial value of the ratio.
    pub initial: f64,
}

/// Kinematic bounds and initial values of a group (km/s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KinBounds {
    /// Lower σ bound.
    pub sigma_min: f64,
    /// Upper σ bound.
    pub sigma_max: f64,
    /// |v| bound (only `vshift.max` is read; bounds are symmetric).
    pub vshift_max: f64,
    /// Initial σ (not used by the fitter).
    pub sigma_init: f64,
    /// Initial v (not used by the fitter).
    pub vshift_init: f64,
}

/// Final-pass settings of one kinematic group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupFinalPass {
    /// Free the members' v-shifts individually in the final pass.
    pub free_vshift: bool,
    /// Free the members' σ individually in the final pass.
    pub free_sigma: bool,
    /// Largest allowed excursion of v from the group value.
    pub delta_vshift_max: Option<f64>,
    /// Largest allowed excursion of σ from the group value.
    pub delta_sigma_max: Option<f64>,
    /// (members ∪ anchor) ∩ lines of any amplitude constraint.
    pub locked_members: BTreeSet<String>,
}

/// A kinematic group: members' v and σ tied (factor 1) to the anchor's.
#[derive(Debug, Clone, PartialEq)]
pub struct KinGroup {
    /// Group name.
    pub name: String,
    /// Anchor line (free kinematics).
    pub anchor: String,
    /// Member lines (kinematics tied to the anchor).
    pub members: Vec<String>,
    /// Bounds and initial values.
    pub bounds: KinBounds,
    /// Final-pass settings.
    pub final_pass: GroupFinalPass,
}

impl KinGroup {
    /// True if `name` is the anchor or a member.
    pub fn contains(&self, name: &str) -> bool {
        self.anchor == name || self.members.iter().any(|m| m == name)
    }
}

/// Profile-level final-pass strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileFinalPass {
    /// Run the relaxed final pass.
    pub enabled: bool,
    /// Start it from the primary best fit.
    pub warm_start: bool,
    /// Adoption rule (`always` or `chi2_improves`; not validated).
    pub adopt_if: String,
    /// Monte Carlo realisations mirror the decision.
    pub inherit_in_mc: bool,
}

/// A named constraint profile (`narrow_only`, `narrow_broad`).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Profile name.
    pub name: String,
    /// Kinematic groups, file order.
    pub kinematic_groups: Vec<KinGroup>,
    /// Lines with their own kinematics in this profile.
    pub free_lines: Vec<String>,
    /// Lines whose three parameters are forced to 0 (narrow_only only).
    pub fixed_lines: Vec<String>,
    /// Final-pass strategy.
    pub final_pass: ProfileFinalPass,
}

/// The parsed, validated kinematic-constraint file.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraints {
    /// Fixed amplitude ratios.
    pub amplitude_fixed: Vec<FixedRatio>,
    /// Free doublet ratios.
    pub doublet_ratios: Vec<DoubletRatio>,
    /// Global default bounds (σ min/max, v max) and initial values.
    pub global_default: KinBounds,
    /// Global free lines (default bounds).
    pub global_free_lines: Vec<String>,
    /// Global kinematic groups (shared by all profiles).
    pub global_kinematic_groups: Vec<KinGroup>,
    /// Profiles in file order.
    pub profiles: Vec<Profile>,
    /// Non-parametric moment groups (label, lines), file order.
    pub moments: Vec<(String, Vec<String>)>,
}

/// Per-line kinematic bounds returned by [`Constraints::line_bounds`].
pub type LineBounds = KinBounds;

impl Constraints {
    /// The profile called `name`.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// Final-pass settings keyed `global.<group>` or `<profile>.<group>`,
    /// global groups first, then profiles in file order.
    pub fn group_final_pass(&self) -> Vec<(String, &GroupFinalPass)> {
        let mut out: Vec<(String, &GroupFinalPass)> = self
            .global_kinematic_groups
            .iter()
            .map(|g| (format!("global.{}", g.name), &g.final_pass))
            .collect();
        for p in &self.profiles {
            for g in &p.kinematic_groups {
                out.push((format!("{}.{}", p.name, g.name), &g.final_pass));
            }
        }
        out
    }

    /// Bounds of `line` (σ_min, σ_max, v_max, σ_init, v_init): global groups →
    /// global free lines (default bounds) → every profile's groups in file
    /// order → all zeros if only some profile's `fixed_lines` names it.
    /// `None` if the line is found nowhere.
    pub fn line_bounds(&self, line: &str) -> Option<LineBounds> {
        if let Some(g) = self
            .global_kinematic_groups
            .iter()
            .find(|g| g.contains(line))
        {
            return Some(g.bounds);
        }
        if self.global_free_lines.iter().any(|l| l == line) {
            return Some(self.global_default);
        }
        for p in &self.profiles {
            if let Some(g) = p.kinematic_groups.iter().find(|g| g.contains(line)) {
                return Some(g.bounds);
            }
        }
        if self
            .profiles
            .iter()
            .any(|p| p.fixed_lines.iter().any(|l| l == line))
        {
            return Some(KinBounds {
                sigma_min: 0.0,
                sigma_max: 0.0,
                vshift_max: 0.0,
                sigma_init: 0.0,
                vshift_init: 0.0,
            });
        }
        None
    }

    /// FastSpecFit's start-up consistency check against the line table: per
    /// profile, the *set* of placed lines must equal the table's names
    /// ("missing" / "references" messages); moment groups must name existing
    /// lines. A line placed twice is not detected (as in FastSpecFit).
    ///
    /// # Errors
    /// A message in FastSpecFit's words.
    pub fn check_consistency(&self, table: &LineTable) -> Result<(), String> {
        let names: BTreeSet<&str> = table.lines.iter().map(|l| l.name.as_str()).collect();
        for p in &self.profiles {
            let mut placed: BTreeSet<&str> =
                self.global_free_lines.iter().map(String::as_str).collect();
            for g in self
                .global_kinematic_groups
                .iter()
                .chain(&p.kinematic_groups)
            {
                placed.insert(&g.anchor);
                placed.extend(g.members.iter().map(String::as_str));
            }
            placed.extend(p.free_lines.iter().map(String::as_str));
            placed.extend(p.fixed_lines.iter().map(String::as_str));
            let missing: Vec<&str> = names.difference(&placed).copied().collect();
            let extra: Vec<&str> = placed.difference(&names).copied().collect();
            if !missing.is_empty() {
                return Err(format!(
                    "Constraint profile '{}' is missing lines from emlines.ecsv: {missing:?}",
                    p.name
                ));
            }
            if !extra.is_empty() {
                return Err(format!(
                    "Constraint profile '{}' references lines not in emlines.ecsv: {extra:?}",
                    p.name
                ));
            }
        }
        for (label, lines) in &self.moments {
            let unknown: BTreeSet<&str> = lines
                .iter()
                .map(String::as_str)
                .filter(|l| !names.contains(l))
                .collect();
            if !unknown.is_empty() {
                return Err(format!(
                    "Moment group '{label}' references lines not in emlines.ecsv: {unknown:?}"
                ));
            }
        }
        Ok(())
    }

    /// Names of every line appearing (as line or ref) in an amplitude
    /// constraint — the set `locked_members` is intersected with.
    pub fn doublet_lines(&self) -> BTreeSet<String> {
        self.amplitude_fixed
            .iter()
            .flat_map(|f| [f.line.clone(), f.ref_line.clone()])
            .chain(
                self.doublet_ratios
                    .iter()
                    .flat_map(|d| [d.line.clone(), d.ref_line.clone()]),
            )
            .collect()
    }
}

/// Name → index map of a line table.
pub fn line_map(table: &LineTable) -> HashMap<String, usize> {
    table
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.clone(), i))
        .collect()
}
