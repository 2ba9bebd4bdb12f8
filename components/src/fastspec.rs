//! The spectroscopic half of a fastspec fit: the FASTSPEC column schema (SPEC §6.5), the
//! per-target FASTSPEC values, the fastspec-only SPECPHOT scalars and the MODELS spectra
//! (SPEC §6.6).
//!
//! The FASTSPEC table has ~900 columns; a target's values live in one flat `Vec<f64>`
//! ([`SpectralFit::values`]) indexed by the run-level [`FastspecSchema`] resource, so the
//! systems that fill them (line mask, continuum, line measurements) write by index and the
//! writer casts each column to its FITS type once per file.

use std::collections::HashMap;

use bevy_ecs::prelude::{Component, Resource};

/// FITS type of a FASTSPEC column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `E` (float32).
    F32,
    /// `J` (int32).
    I32,
    /// `L` (logical).
    Bool,
}

/// One FASTSPEC column after the identification columns.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    /// Column name.
    pub name: String,
    /// FITS type.
    pub kind: ColumnKind,
    /// Unit string as FastSpecFit writes it (astropy's FITS spelling), if any.
    pub unit: Option<&'static str>,
    /// Index of the emission line this column belongs to (per-line columns only).
    pub line: Option<usize>,
}

/// Per-line column suffixes in FastSpecFit's order (SPEC §5.7).
pub const LINE_SUFFIXES: [&str; 18] = [
    "MODELAMP",
    "AMP",
    "AMP_IVAR",
    "FLUX",
    "FLUX_IVAR",
    "BOXFLUX",
    "BOXFLUX_IVAR",
    "VSHIFT",
    "VSHIFT_IVAR",
    "SIGMA",
    "SIGMA_IVAR",
    "CONT",
    "CONT_IVAR",
    "EW",
    "EW_IVAR",
    "FLUX_LIMIT",
    "CHI2",
    "NPIX",
];

/// Doublet-ratio columns (name prefixes) in FastSpecFit's order.
pub const DOUBLET_RATIOS: [&str; 6] = ["MGII", "OII", "OIII", "NII", "SII", "OIIRED"];

/// Lines with moment columns, in FastSpecFit's order.
pub const MOMENT_LINES: [&str; 4] = ["CIV_1549", "MGII_2800", "HBETA", "OIII_5007"];

/// FITS binary tables allow at most 999 columns; past that FastSpecFit moves the per-line
/// columns of non-strong lines into a MORELINES HDU.
pub const MAX_FASTSPEC_COLUMNS: usize = 999;

const U_KMS: &str = "km s-1";
const U_FLAM: &str = "10**-17 erg Angstrom-1 s-1 cm-2";
const U_FLAM_IVAR: &str = "10**34 cm4 Angstrom2 s2 erg-2";
const U_FLUX: &str = "10**-17 erg s-1 cm-2";
const U_FLUX_IVAR: &str = "10**34 cm4 s2 erg-2";
const U_KMS_IVAR: &str = "s2 km-2";

fn line_unit(suffix: &str) -> Option<&'static str> {
    Some(match suffix {
        "MODELAMP" | "AMP" | "CONT" => U_FLAM,
        "AMP_IVAR" | "CONT_IVAR" => U_FLAM_IVAR,
        "FLUX" | "BOXFLUX" => U_FLUX,
        "FLUX_IVAR" | "BOXFLUX_IVAR" => U_FLUX_IVAR,
        "VSHIFT" | "SIGMA" => U_KMS,
        "VSHIFT_IVAR" | "SIGMA_IVAR" => U_KMS_IVAR,
        "EW" => "Angstrom",
        "EW_IVAR" => "Angstrom-2",
        "FLUX_LIMIT" => "erg s-1 cm-2",
        _ => return None,
    })
}

/// The FASTSPEC columns after the identification columns, for one run (SPEC §6.5).
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct FastspecSchema {
    /// Columns in output order.
    pub columns: Vec<ColumnSpec>,
    /// Upper-case line names in line-table order.
    pub lines: Vec<String>,
    /// Whether each line is "strong" (stays in FASTSPEC when columns spill to MORELINES).
    pub strong: Vec<bool>,
    index: HashMap<String, usize>,
    /// Index of the first per-line column (`{LINE0}_MODELAMP`).
    pub first_line_column: usize,
}

impl FastspecSchema {
    /// The schema for the files' `cameras` (e.g. b, r, z), the photometric `synth_bands`
    /// (APERCORR_*), and the line table's names and strong flags (table order).
    pub fn new(cameras: &[String], synth_bands: &[String], lines: &[(String, bool)]) -> Self {
        let mut columns: Vec<ColumnSpec> = Vec::new();
        fn add(
            columns: &mut Vec<ColumnSpec>,
            name: String,
            kind: ColumnKind,
            unit: Option<&'static str>,
        ) {
            columns.push(ColumnSpec {
                name,
                kind,
                unit,
                line: None,
            });
        }
        macro_rules! push {
            ($n:expr, $k:expr, $u:expr $(,)?) => {
                add(&mut columns, $n, $k, $u)
            };
        }
        for c in cameras {
            push!(format!("SNR_{}", c.to_uppercase()), ColumnKind::F32, None);
        }
        for c in cameras {
            push!(
                format!("SMOOTHCORR_{}", c.to_uppercase()),
                ColumnKind::F32,
                None,
            );
        }
        push!("APERCORR".into(), ColumnKind::F32, None);
        for b in synth_bands {
            push!(
                format!("APERCORR_{}", b.to_uppercase()),
                ColumnKind::F32,
                None,
            );
        }
        for k in ["SIGMA", "VSHIFT"] {
            for c in ["UV", "NARROW", "BALMER"] {
                push!(format!("INIT_{k}_{c}"), ColumnKind::F32, Some(U_KMS));
            }
        }
        push!("INIT_BALMER_BROAD".into(), ColumnKind::Bool, None);
        push!("DELTA_LINECHI2".into(), ColumnKind::F32, None);
        push!("DELTA_LINENDOF".into(), ColumnKind::I32, None);
        push!("DELTA_KINECHI2".into(), ColumnKind::F32, None);
        push!("DELTA_KINENDOF".into(), ColumnKind::I32, None);
        for d in DOUBLET_RATIOS {
            push!(format!("{d}_DOUBLET_RATIO"), ColumnKind::F32, None);
            push!(format!("{d}_DOUBLET_RATIO_IVAR"), ColumnKind::F32, None);
        }
        let first_line_column = columns.len();
        for (j, (name, _)) in lines.iter().enumerate() {
            let up = name.to_uppercase();
            for s in LINE_SUFFIXES {
                columns.push(ColumnSpec {
                    name: format!("{up}_{s}"),
                    kind: if s == "NPIX" {
                        ColumnKind::I32
                    } else {
                        ColumnKind::F32
                    },
                    unit: line_unit(s),
                    line: Some(j),
                });
            }
        }
        for m in MOMENT_LINES {
            for (n, unit, ivar_unit) in [
                (1, "Angstrom", "Angstrom-2"),
                (2, "Angstrom2", "Angstrom-4"),
                (3, "Angstrom3", "Angstrom-6"),
            ] {
                push!(format!("{m}_MOMENT{n}"), ColumnKind::F32, Some(unit));
                push!(
                    format!("{m}_MOMENT{n}_IVAR"),
                    ColumnKind::F32,
                    Some(ivar_unit),
                );
            }
        }
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        Self {
            columns,
            lines: lines.iter().map(|(n, _)| n.to_uppercase()).collect(),
            strong: lines.iter().map(|(_, s)| *s).collect(),
            index,
            first_line_column,
        }
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether the schema has no columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Index of column `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Index of line `line`'s column with suffix number `suffix` (into [`LINE_SUFFIXES`]).
    pub fn line_column(&self, line: usize, suffix: usize) -> usize {
        self.first_line_column + line * LINE_SUFFIXES.len() + suffix
    }
}

/// The spectroscopic results of a fastspec fit of one target.
///
/// Written by the fastspec systems (line mask, continuum, line fit, measurements); read by
/// the FASTSPEC, SPECPHOT and MODELS writers. Defaults (0) follow FastSpecFit's "not
/// measured" convention.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct SpectralFit {
    /// Whether the spectral fit ran to completion.
    pub fitted: bool,
    /// FASTSPEC values, one per [`FastspecSchema`] column (empty = all zero).
    pub values: Vec<f64>,
    /// RCHI2 (full-spectrum reduced χ², SPEC §5.8).
    pub rchi2: f64,
    /// RCHI2_LINE (reduced χ² of the preferred line fit).
    pub rchi2_line: f64,
    /// DN4000 (from the line-subtracted data).
    pub dn4000: f64,
    /// DN4000_OBS (from the observed data).
    pub dn4000_obs: f64,
    /// DN4000_IVAR.
    pub dn4000_ivar: f64,
    /// FLUX_SYNTH_* per synth band: photometry synthesized from the observed coadd,
    /// nanomaggies.
    pub flux_synth_nmgy: Vec<f64>,
    /// FLUX_SYNTH_SPECMODEL_* per synth band, nanomaggies.
    pub flux_synth_specmodel_nmgy: Vec<f64>,
    /// First wavelength of the MODELS grid, Å (CRVAL1).
    pub models_wave0: f64,
    /// Step of the MODELS grid, Å (CDELT1).
    pub models_dwave: f64,
    /// MODELS rows CONTINUUM, SMOOTHCONTINUUM, EMLINEMODEL on the output grid (empty when
    /// not fitted; the writer then writes zeros).
    pub models: [Vec<f32>; 3],
}

impl SpectralFit {
    /// Set column `i` (growing `values` to `n` columns on first use).
    pub fn set(&mut self, n: usize, i: usize, v: f64) {
        if self.values.len() < n {
            self.values.resize(n, 0.0);
        }
        self.values[i] = v;
    }

    /// Value of column `i` (0 if never set).
    pub fn get(&self, i: usize) -> f64 {
        self.values.get(i).copied().unwrap_or(0.0)
    }
}
