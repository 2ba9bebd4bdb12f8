//! The line-fit parameter table (SPEC.md §5.1): three parameters per line —
//! amplitudes `[0, n)`, v-shifts `[n, 2n)`, σ `[2n, 3n)` — with the line
//! classes and the doublet-ratio bookkeeping of FastSpecFit's `EMFitTools`.

use std::collections::HashMap;

use super::table::{line_map, Constraints, LineTable};

/// Kind of a line parameter (FastSpecFit's `ParamType`: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ParamType {
    /// Line amplitude (or doublet ratio for doublet targets).
    Amplitude = 0,
    /// Velocity shift [km/s].
    Vshift = 1,
    /// Line width σ [km/s].
    Sigma = 2,
}

/// The parameter table and line classes for one line table + constraint set.
#[derive(Debug, Clone)]
pub struct ParamTable {
    /// The line table (possibly the strong-line subset).
    pub lines: LineTable,
    /// Rest wavelengths, table order [Å].
    pub restwave: Vec<f64>,
    /// Name → line index.
    pub line_map: HashMap<String, usize>,
    /// Broad UV/QSO lines: isbroad & !isbalmer.
    pub is_broad: Vec<bool>,
    /// Narrow lines: !isbroad.
    pub is_narrow: Vec<bool>,
    /// Broad Balmer and helium lines: isbroad & isbalmer.
    pub is_balmer_broad: Vec<bool>,
    /// Broad Balmer lines without helium.
    pub is_balmer_broad_no_helium: Vec<bool>,
    /// Strong broad Balmer lines without helium (broad-model test).
    pub is_balmer_broad_no_helium_strong: Vec<bool>,
    /// Per line: index of the doublet reference line, or −1.
    pub doublet_src_of_line: Vec<i32>,
    /// Doublet target lines (= their amplitude parameter indices), ascending.
    pub doublet_idx: Vec<usize>,
    /// Reference line of each `doublet_idx` entry.
    pub doublet_src: Vec<usize>,
    /// Parameter names (`<line>_amp` / ratio name, `<line>_vshift`, `<line>_sigma`).
    pub param_names: Vec<String>,
    /// Amplitude parameter index → output column of a fixed ratio.
    pub amp_fixed_col: Vec<(usize, String)>,
}

impl ParamTable {
    /// Build the table (FastSpecFit's `EMFitTools.__init__`); `strong_only`
    /// restricts to the strong lines.
    pub fn new(table: &LineTable, constraints: &Constraints, strong_only: bool) -> Self {
        let lines = if strong_only {
            table.strong_only()
        } else {
            table.clone()
        };
        let n = lines.len();
        let map = line_map(&lines);
        let l = &lines.lines;
        let is_broad = l.iter().map(|x| x.isbroad && !x.isbalmer).collect();
        let is_narrow = l.iter().map(|x| !x.isbroad).collect();
        let bb: Vec<bool> = l.iter().map(|x| x.isbroad && x.isbalmer).collect();
        let bbnh: Vec<bool> = bb.iter().zip(l).map(|(&b, x)| b && !x.ishelium).collect();
        let bbnhs = bbnh.iter().zip(l).map(|(&b, x)| b && x.isstrong).collect();

        let mut doublet_src_of_line = vec![-1i32; n];
        let mut amp_names: Vec<String> = l.iter().map(|x| format!("{}_amp", x.name)).collect();
        for d in &constraints.doublet_ratios {
            if let (Some(&t), Some(&s)) = (map.get(&d.line), map.get(&d.ref_line)) {
                doublet_src_of_line[t] = s as i32;
                amp_names[t] = d.param_name.clone();
            }
        }
        let mut doublet_idx = Vec::new();
        let mut doublet_src = Vec::new();
        for (i, &s) in doublet_src_of_line.iter().enumerate() {
            if s >= 0 {
                doublet_idx.push(i);
                doublet_src.push(s as usize);
            }
        }
        let mut param_names = amp_names;
        param_names.extend(l.iter().map(|x| format!("{}_vshift", x.name)));
        param_names.extend(l.iter().map(|x| format!("{}_sigma", x.name)));
        let amp_fixed_col = constraints
            .amplitude_fixed
            .iter()
            .filter(|f| !f.param_name.is_empty())
            .filter_map(|f| map.get(&f.line).map(|&i| (i, f.param_name.clone())))
            .collect();
        Self {
            restwave: l.iter().map(|x| x.restwave).collect(),
            lines,
            line_map: map,
            is_broad,
            is_narrow,
            is_balmer_broad: bb,
            is_balmer_broad_no_helium: bbnh,
            is_balmer_broad_no_helium_strong: bbnhs,
            doublet_src_of_line,
            doublet_idx,
            doublet_src,
            param_names,
            amp_fixed_col,
        }
    }

    /// Number of lines.
    pub fn nlines(&self) -> usize {
        self.restwave.len()
    }

    /// Number of parameters (3 × lines).
    pub fn nparams(&self) -> usize {
        3 * self.nlines()
    }

    /// Index of parameter `kind` of line `line`.
    pub fn param_index(&self, line: usize, kind: ParamType) -> usize {
        kind as usize * self.nlines() + line
    }

    /// Type of parameter `p`.
    pub fn param_type(&self, p: usize) -> ParamType {
        match p / self.nlines().max(1) {
            0 => ParamType::Amplitude,
            1 => ParamType::Vshift,
            _ => ParamType::Sigma,
        }
    }

    /// Line of parameter `p`.
    pub fn param_line(&self, p: usize) -> usize {
        p % self.nlines().max(1)
    }

    /// FastSpecFit's `compute_inrange_lines`: λ_rest(1+z) strictly inside
    /// (lo + pad, hi − pad).
    pub fn lines_in_range(&self, z: f64, wavelims: (f64, f64), wavepad: f64) -> Vec<bool> {
        self.restwave
            .iter()
            .map(|&w| {
                let zw = w * (1.0 + z);
                zw > wavelims.0 + wavepad && zw < wavelims.1 - wavepad
            })
            .collect()
    }
}

/// Default wavelength pad of the in-range test (5 × 0.8 Å).
pub const IN_RANGE_PAD: f64 = 5.0 * 0.8;
