//! The emission-line table (`emlines.ecsv`, astropy ECSV) and the kinematic
//! constraint file (`emline-constraints.yaml`), read as FastSpecFit 3.6.1
//! reads them (SPEC.md §5.1).
//!
//! * The table is sorted (stably) by rest wavelength after reading.
//! * The constraint file is validated in FastSpecFit's order: every global
//!   and profile kinematic group needs a `final_pass` block with
//!   `free_vshift` and `free_sigma`; every profile a `final_pass` block with
//!   `enabled`, `warm_start`, `adopt_if`, `inherit_in_mc`; then each profile
//!   must place exactly the table's set of lines ("missing" / "references")
//!   and the moment groups must name existing lines.
//! * Deviation: group `bounds`/`initial` blocks are required at load time
//!   (FastSpecFit only reads them when a line's bounds are first asked for,
//!   which every fit does).
//!
//! Bundled defaults (`--emlinesfile` / `--constraintsfile` absent) are
//! embedded from `tests/data/config`. Every error names the file.

use std::path::{Path, PathBuf};

use fsf_systems::kernels::emlines::table::{Constraints, EmLine, LineTable};

use super::IoError;

/// FastSpecFit's default line table.
pub const DEFAULT_EMLINES_ECSV: &str = include_str!("../../tests/data/config/emlines.ecsv");
/// FastSpecFit's HII-region line table.
pub const HII_EMLINES_ECSV: &str = include_str!("../../tests/data/config/emlines-hii.ecsv");
/// FastSpecFit's default constraint file.
pub const DEFAULT_CONSTRAINTS_YAML: &str =
    include_str!("../../tests/data/config/emline-constraints.yaml");
/// FastSpecFit's HII-region constraint file.
pub const HII_CONSTRAINTS_YAML: &str =
    include_str!("../../tests/data/config/emline-constraints-hii.yaml");

/// The line table and constraints of a run, with the files they came from.
#[derive(Debug, Clone)]
pub struct EmlineConfig {
    /// The sorted line table.
    pub table: LineTable,
    /// The validated constraints.
    pub constraints: Constraints,
    /// Line-table file (`None`: bundled default).
    pub emlines_file: Option<PathBuf>,
    /// Constraint file (`None`: bundled default).
    pub constraints_file: Option<PathBuf>,
}

impl EmlineConfig {
    /// Load `--emlinesfile` and `--constraintsfile` (bundled defaults when `None`).
    ///
    /// # Errors
    /// [`IoError::Input`] naming the offending file.
    pub fn load(
        emlinesfile: Option<&Path>,
        constraintsfile: Option<&Path>,
    ) -> Result<Self, IoError> {
        let table = load_line_table(emlinesfile)?;
        let constraints = load_constraints(constraintsfile, &table)?;
        Ok(Self {
            table,
            constraints,
            emlines_file: emlinesfile.map(Path::to_path_buf),
            constraints_file: constraintsfile.map(Path::to_path_buf),
        })
    }
}

fn read_text(path: &Path, what: &str) -> Result<String, IoError> {
    if !path.is_file() {
        return Err(IoError::input(
            path,
            format!("{what} file {} does not exist.", path.display()),
        ));
    }
    std::fs::read_to_string(path)
        .map_err(|e| IoError::input(path, format!("cannot read {what} file: {e}")))
}

/// Read a line table (bundled default when `path` is `None`).
///
/// # Errors
/// [`IoError::Input`] if the file is missing or malformed.
pub fn load_line_table(path: Option<&Path>) -> Result<LineTable, IoError> {
    match path {
        Some(p) => parse_line_table(&read_text(p, "Emission lines parameter")?, p),
        None => parse_line_table(DEFAULT_EMLINES_ECSV, Path::new("<bundled emlines.ecsv>")),
    }
}

/// Read a constraint file (bundled default when `path` is `None`) and check
/// it against `table`.
///
/// # Errors
/// [`IoError::Input`] if the file is missing, malformed or inconsistent.
pub fn load_constraints(path: Option<&Path>, table: &LineTable) -> Result<Constraints, IoError> {
    match path {
        Some(p) => parse_constraints(&read_text(p, "Emission-line constraint")?, p, Some(table)),
        None => parse_constraints(
            DEFAULT_CONSTRAINTS_YAML,
            Path::new("<bundled emline-constraints.yaml>"),
            Some(table),
        ),
    }
}

/// Split an ECSV data line on whitespace, honouring double quotes ("" = ").
fn split_ecsv(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        let mut tok = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        tok.push('"');
                    }
                    Some('"') => break,
                    Some(ch) => tok.push(ch),
                    None => return Err("unterminated quoted field".into()),
                }
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                tok.push(ch);
                chars.next();
            }
        }
        out.push(tok);
    }
    Ok(out)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "True" | "true" | "1" => Some(true),
        "False" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// Parse ECSV text of a line table; `origin` names it in errors.
///
/// # Errors
/// [`IoError::Input`] for a missing header or column, a short row or an
/// unparsable value.
pub fn parse_line_table(text: &str, origin: &Path) -> Result<LineTable, IoError> {
    let bad = |m: String| {
        IoError::input(
            origin,
            format!("Problem reading emission lines parameter file: {m}"),
        )
    };
    if !text.starts_with("# %ECSV") {
        return Err(bad("not an ECSV file (no '# %ECSV' header)".into()));
    }
    let mut rows = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty());
    let (_, header) = rows
        .next()
        .ok_or_else(|| bad("no column-name line".into()))?;
    let cols = split_ecsv(header).map_err(bad)?;
    let col = |name: &str| cols.iter().position(|c| c == name);
    let need = |name: &str| col(name).ok_or_else(|| bad(format!("missing column '{name}'")));
    let (ci_name, ci_wave, ci_patch) = (need("name")?, need("restwave")?, need("patch")?);
    let (ci_bal, ci_he, ci_br, ci_st) = (
        need("isbalmer")?,
        need("ishelium")?,
        need("isbroad")?,
        need("isstrong")?,
    );
    let (ci_nice, ci_plot) = (col("nicename"), col("plotgroup"));
    let mut lines = Vec::new();
    for (lineno, row) in rows {
        let f = split_ecsv(row).map_err(|m| bad(format!("line {}: {m}", lineno + 1)))?;
        if f.len() != cols.len() {
            return Err(bad(format!(
                "line {}: {} fields for {} columns",
                lineno + 1,
                f.len(),
                cols.len()
            )));
        }
        let b = |i: usize| {
            parse_bool(&f[i]).ok_or_else(|| {
                bad(format!(
                    "line {}: bad boolean '{}' in {}",
                    lineno + 1,
                    f[i],
                    cols[i]
                ))
            })
        };
        let restwave: f64 = f[ci_wave].parse().map_err(|_| {
            bad(format!(
                "line {}: bad restwave '{}'",
                lineno + 1,
                f[ci_wave]
            ))
        })?;
        lines.push(EmLine {
            name: f[ci_name].clone(),
            restwave,
            patch: f[ci_patch].clone(),
            isbalmer: b(ci_bal)?,
            ishelium: b(ci_he)?,
            isbroad: b(ci_br)?,
            isstrong: b(ci_st)?,
            nicename: ci_nice.map(|i| f[i].clone()).unwrap_or_default(),
            plotgroup: ci_plot.map(|i| f[i].clone()).unwrap_or_default(),
        });
    }
    Ok(LineTable::new(lines))
}

mod yaml;
pub use yaml::parse_constraints;

#[cfg(test)]
mod tests;
