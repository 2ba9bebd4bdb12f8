//! `compare A.fits B.fits`: per-column agreement between two fastspec/fastphot
//! catalogues (or a catalogue and a simulation truth table), matched on TARGETID.
//!
//! For every numeric column present in both tables (vector columns element by element,
//! named `COL[k]`) the report gives: the number of matched rows with finite values, the
//! median ratio A/B, the robust (1.4826·MAD) scatter of (A−B)/σ with
//! σ = √(1/ivar_A + 1/ivar_B) from the `COL_IVAR` columns when either table has them,
//! and the fraction of rows with |A−B| ≤ atol + rtol·|B| (or, with `--stol K`,
//! |A−B| ≤ K·σ_B, σ_B = 1/√ivar_B — "within 2% or 0.1σ"). `--min-snr S` keeps, for a
//! column with `_IVAR`, only the rows where both tables measure it at |value|·√ivar ≥ S
//! (e.g. emission lines with S/N > 3); columns without ivar are unaffected. With
//! `--truth`, A and B are each also compared with the truth table.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use crate::io::fits::FitsReader;

/// Flags of `compare`.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// First catalogue.
    pub a: PathBuf,
    /// Second catalogue.
    pub b: PathBuf,
    /// Truth table (e.g. `truth.fits` of `simulate`) to compare both catalogues with.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// HDU of both catalogues (default: METADATA, SPECPHOT, FASTSPEC and TRUTH merged on
    /// TARGETID, whichever exist; else HDU 1).
    #[arg(long)]
    pub hdu: Option<String>,
    /// HDU of the first catalogue (overrides --hdu).
    #[arg(long = "hdu-a")]
    pub hdu_a: Option<String>,
    /// HDU of the second catalogue (overrides --hdu).
    #[arg(long = "hdu-b")]
    pub hdu_b: Option<String>,
    /// Only these columns (comma list; default every common numeric column).
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Relative tolerance of the "within tolerance" fraction.
    #[arg(long, default_value_t = 1e-3)]
    pub rtol: f64,
    /// Absolute tolerance of the "within tolerance" fraction.
    #[arg(long, default_value_t = 0.0)]
    pub atol: f64,
    /// Also within tolerance: |A−B| ≤ stol·σ_B, σ_B from B's `COL_IVAR` (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub stol: f64,
    /// Only rows measured at S/N ≥ this in both tables (columns with `COL_IVAR`).
    #[arg(long)]
    pub min_snr: Option<f64>,
}

/// The "within tolerance" test of [`compare_tables_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Tolerance in units of B's error (0: off).
    pub stol: f64,
    /// Minimum S/N of a row in both tables (columns with ivar only).
    pub min_snr: Option<f64>,
}

impl Tolerance {
    fn of(args: &CompareArgs) -> Self {
        Tolerance {
            rtol: args.rtol,
            atol: args.atol,
            stol: args.stol,
            min_snr: args.min_snr,
        }
    }
}

/// One table read for comparison: TARGETIDs and every numeric column as f64.
#[derive(Debug, Clone)]
pub struct NumTable {
    /// File it came from.
    pub path: PathBuf,
    /// HDU it came from.
    pub hdu: String,
    /// TARGETID of each row.
    pub targetid: Vec<i64>,
    /// (name, values row-major, values per row), in file order.
    pub columns: Vec<(String, Vec<f64>, usize)>,
}

impl NumTable {
    fn get(&self, name: &str) -> Option<&(String, Vec<f64>, usize)> {
        self.columns.iter().find(|c| c.0.eq_ignore_ascii_case(name))
    }
}

/// HDUs merged (in this order) when no HDU is named.
const DEFAULT_HDUS: [&str; 4] = ["METADATA", "SPECPHOT", "FASTSPEC", "TRUTH"];

fn read_one(f: &mut FitsReader, path: &Path, hdu: &str) -> anyhow::Result<NumTable> {
    let nrows = f.num_rows(hdu)?;
    let names = f.column_names(hdu)?;
    if !names.iter().any(|n| n.eq_ignore_ascii_case("TARGETID")) {
        bail!(
            "{}: HDU {hdu} has no TARGETID column to match on",
            path.display()
        );
    }
    let targetid: Vec<i64> = f.col(hdu, "TARGETID")?;
    let mut seen = HashMap::new();
    for t in &targetid {
        if seen.insert(*t, ()).is_some() {
            bail!("{}: HDU {hdu} has duplicate TARGETID {t}", path.display());
        }
    }
    let mut columns = Vec::new();
    for name in names.iter().filter(|n| !n.eq_ignore_ascii_case("TARGETID")) {
        // String and other non-numeric columns fail the conversion and are skipped.
        if let Ok(v) = f.col::<f64>(hdu, name) {
            if nrows > 0 && v.len() % nrows == 0 && !v.is_empty() {
                let rep = v.len() / nrows;
                columns.push((name.clone(), v, rep));
            }
        }
    }
    Ok(NumTable {
        path: path.to_path_buf(),
        hdu: hdu.to_string(),
        targetid,
        columns,
    })
}

/// Read TARGETID and the numeric columns of table `hdu` of `path`; without `hdu`, the
/// METADATA, SPECPHOT, FASTSPEC and TRUTH HDUs present are merged on TARGETID (the first
/// occurrence of a column name wins), or HDU 1 when none of them exists.
///
/// # Errors
/// Missing file or HDU, no TARGETID column, or duplicate TARGETIDs (all naming the file).
pub fn read_num_table(path: &Path, hdu: Option<&str>) -> anyhow::Result<NumTable> {
    let mut f = FitsReader::open(path)?;
    if let Some(h) = hdu {
        return read_one(&mut f, path, h);
    }
    let present: Vec<&str> = DEFAULT_HDUS
        .iter()
        .copied()
        .filter(|h| f.has_hdu(h))
        .collect();
    let Some((first, rest)) = present.split_first() else {
        return read_one(&mut f, path, "1");
    };
    let mut base = read_one(&mut f, path, first)?;
    for h in rest {
        let other = read_one(&mut f, path, h)?;
        let row: HashMap<i64, usize> = other
            .targetid
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, i))
            .collect();
        for (name, v, rep) in other.columns {
            if base.get(&name).is_some() {
                continue;
            }
            let mut out = Vec::with_capacity(base.targetid.len() * rep);
            for t in &base.targetid {
                match row.get(t) {
                    Some(&i) => out.extend_from_slice(&v[i * rep..(i + 1) * rep]),
                    None => out.extend(std::iter::repeat_n(f64::NAN, rep)),
                }
            }
            base.columns.push((name, out, rep));
        }
        base.hdu = format!("{}+{h}", base.hdu);
    }
    Ok(base)
}

/// Agreement statistics of one column (or one element of a vector column).
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnStats {
    /// Column name (`COL[k]` for vector elements).
    pub name: String,
    /// Matched rows with finite values in both tables.
    pub n: usize,
    /// Median of A/B over rows with B ≠ 0 (NaN if none).
    pub median_ratio: f64,
    /// 1.4826·MAD of (A−B)/σ, when an ivar column exists (else `None`).
    pub scatter_sigma: Option<f64>,
    /// Fraction of rows with |A−B| ≤ atol + rtol·|B|.
    pub frac_within: f64,
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn robust_scatter(v: &mut [f64]) -> f64 {
    let m = median(v);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    1.4826 * median(&mut dev)
}

/// Compare every common numeric column of `a` and `b` (restricted to `only` if given)
/// with the tolerance |A−B| ≤ atol + rtol·|B|.
pub fn compare_tables(
    a: &NumTable,
    b: &NumTable,
    only: Option<&[String]>,
    rtol: f64,
    atol: f64,
) -> (usize, Vec<ColumnStats>) {
    compare_tables_with(
        a,
        b,
        only,
        &Tolerance {
            rtol,
            atol,
            stol: 0.0,
            min_snr: None,
        },
    )
}

/// [`compare_tables`] with the full [`Tolerance`] (σ tolerance, S/N selection).
pub fn compare_tables_with(
    a: &NumTable,
    b: &NumTable,
    only: Option<&[String]>,
    tol: &Tolerance,
) -> (usize, Vec<ColumnStats>) {
    let (rtol, atol) = (tol.rtol, tol.atol);
    let brow: HashMap<i64, usize> = b
        .targetid
        .iter()
        .enumerate()
        .map(|(i, t)| (*t, i))
        .collect();
    let pairs: Vec<(usize, usize)> = a
        .targetid
        .iter()
        .enumerate()
        .filter_map(|(i, t)| brow.get(t).map(|j| (i, *j)))
        .collect();
    let mut out = Vec::new();
    for (name, va, ra) in &a.columns {
        if name.ends_with("_IVAR") && only.is_none() && b.get(name).is_none() {
            continue;
        }
        if let Some(o) = only {
            if !o.iter().any(|c| c.eq_ignore_ascii_case(name)) {
                continue;
            }
        }
        let Some((_, vb, rb)) = b.get(name) else {
            continue;
        };
        let iva = a.get(&format!("{name}_IVAR"));
        let ivb = b.get(&format!("{name}_IVAR"));
        let nel = (*ra).min(*rb);
        for k in 0..nel {
            let (mut ratios, mut pulls, mut within, mut n) =
                (Vec::new(), Vec::new(), 0usize, 0usize);
            for &(i, j) in &pairs {
                let (x, y) = (va[i * ra + k], vb[j * rb + k]);
                if !(x.is_finite() && y.is_finite()) {
                    continue;
                }
                let var = |iv: Option<&(String, Vec<f64>, usize)>, row: usize, rep: usize| {
                    iv.filter(|c| c.2 == rep)
                        .and_then(|c| c.1.get(row * rep + k).copied())
                        .map(|v| if v > 0.0 { 1.0 / v } else { 0.0 })
                };
                let (sa, sb) = (var(iva, i, *ra), var(ivb, j, *rb));
                if let Some(smin) = tol.min_snr {
                    // S/N = |value|/σ (0 where the ivar is 0); rows of a column with ivar only
                    let snr = |v: f64, s2: Option<f64>| {
                        s2.map(|s2| if s2 > 0.0 { v.abs() / s2.sqrt() } else { 0.0 })
                    };
                    match (snr(x, sa), snr(y, sb)) {
                        (None, None) => {}
                        (p, q) => {
                            if p.unwrap_or(f64::INFINITY) < smin
                                || q.unwrap_or(f64::INFINITY) < smin
                            {
                                continue;
                            }
                        }
                    }
                }
                n += 1;
                if y != 0.0 {
                    ratios.push(x / y);
                }
                let stol_ok = tol.stol > 0.0
                    && sb.is_some_and(|s2| s2 > 0.0 && (x - y).abs() <= tol.stol * s2.sqrt());
                if (x - y).abs() <= atol + rtol * y.abs() || stol_ok {
                    within += 1;
                }
                if sa.is_some() || sb.is_some() {
                    let s2 = sa.unwrap_or(0.0) + sb.unwrap_or(0.0);
                    if s2 > 0.0 {
                        pulls.push((x - y) / s2.sqrt());
                    }
                }
            }
            let label = if nel > 1 || *ra > 1 {
                format!("{name}[{k}]")
            } else {
                name.clone()
            };
            out.push(ColumnStats {
                name: label,
                n,
                median_ratio: median(&mut ratios),
                scatter_sigma: (!pulls.is_empty()).then(|| robust_scatter(&mut pulls)),
                frac_within: if n > 0 {
                    within as f64 / n as f64
                } else {
                    f64::NAN
                },
            });
        }
    }
    (pairs.len(), out)
}

fn section(report: &mut String, a: &NumTable, b: &NumTable, args: &CompareArgs) {
    let (nmatch, stats) = compare_tables_with(a, b, args.columns.as_deref(), &Tolerance::of(args));
    let _ = writeln!(
        report,
        "A = {}[{}] ({} rows)\nB = {}[{}] ({} rows)\nmatched on TARGETID: {nmatch}; tolerance |A-B| <= {} + {}*|B|",
        a.path.display(),
        a.hdu,
        a.targetid.len(),
        b.path.display(),
        b.hdu,
        b.targetid.len(),
        args.atol,
        args.rtol
    );
    if args.stol > 0.0 {
        let _ = writeln!(report, "  or |A-B| <= {} sigma_B", args.stol);
    }
    if let Some(smin) = args.min_snr {
        let _ = writeln!(
            report,
            "  columns with _IVAR: only rows with S/N >= {smin} in both tables"
        );
    }
    let _ = writeln!(
        report,
        "{:<32} {:>6} {:>14} {:>12} {:>10}",
        "column", "N", "median(A/B)", "scatter/sig", "frac_tol"
    );
    for s in &stats {
        let sc = s
            .scatter_sigma
            .map_or("-".to_string(), |v| format!("{v:.4}"));
        let _ = writeln!(
            report,
            "{:<32} {:>6} {:>14.6} {:>12} {:>10.4}",
            s.name, s.n, s.median_ratio, sc, s.frac_within
        );
    }
    if let Some(cols) = &args.columns {
        for c in cols {
            if !stats
                .iter()
                .any(|s| s.name == *c || s.name.starts_with(&format!("{c}[")))
            {
                let _ = writeln!(report, "{c:<32} not a numeric column of both tables");
            }
        }
    }
    report.push('\n');
}

/// Run `compare`, returning the report text.
///
/// # Errors
/// A file or HDU cannot be read (the message names the file), or no TARGETID matches.
pub fn run_compare(args: &CompareArgs) -> anyhow::Result<String> {
    let ha = args.hdu_a.as_deref().or(args.hdu.as_deref());
    let hb = args.hdu_b.as_deref().or(args.hdu.as_deref());
    let a = read_num_table(&args.a, ha)
        .with_context(|| format!("compare: reading {}", args.a.display()))?;
    let b = read_num_table(&args.b, hb)
        .with_context(|| format!("compare: reading {}", args.b.display()))?;
    let mut report = String::new();
    section(&mut report, &a, &b, args);
    if compare_tables(&a, &b, Some(&[]), args.rtol, args.atol).0 == 0 {
        bail!(
            "compare: no TARGETID of {} is in {}",
            args.a.display(),
            args.b.display()
        );
    }
    if let Some(tp) = &args.truth {
        let t = read_num_table(tp, None)
            .with_context(|| format!("compare: reading {}", tp.display()))?;
        section(&mut report, &a, &t, args);
        section(&mut report, &b, &t, args);
    }
    Ok(report)
}
