//! Free ↔ full parameter mapping with ties and doublet ratios, and its
//! sparse Jacobian J_S (FastSpecFit's `ParamsMapping`, SPEC.md §5.2–§5.3).
//!
//! full[j] = factor[j] · free[source[j]] (fixed: 0); a doublet target whose
//! ratio and reference amplitude are both free gets factor = free value of
//! the reference amplitude, so full[j] = ratio × ref amplitude. A tied
//! parameter whose source is not free evaluates to 0.

/// The mapping from free to full line parameters.
#[derive(Debug, Clone)]
pub struct ParamsMapping {
    nparams: usize,
    nfree: usize,
    /// Free index feeding each full parameter, −1 if fixed.
    sources: Vec<i32>,
    /// Static factor per full parameter (1 free, tie factor, 0 fixed).
    factors: Vec<f64>,
    /// (doublet target j, free index of its reference amplitude).
    doublet_patches: Vec<(usize, usize)>,
    /// Sparse J_S entries (full row, free column), live params then doublet extras.
    jac_elts: Vec<(usize, usize)>,
    /// Static factors of `jac_elts`.
    jac_factors: Vec<f64>,
    /// (entry of `jac_elts` to patch, free index whose value is its factor).
    jac_patches: Vec<(usize, usize)>,
}

impl ParamsMapping {
    /// Build the mapping from a model's free flags, ties, and the doublet
    /// (target, source) amplitude indices.
    pub fn new(
        is_free: &[bool],
        tiedtoparam: &[i32],
        tiedfactor: &[f64],
        doublet_targets: &[usize],
        doublet_sources: &[usize],
    ) -> Self {
        let np = is_free.len();
        let mut pfree = vec![-1i32; np];
        let mut nfree = 0usize;
        for (p, &f) in pfree.iter_mut().zip(is_free) {
            if f {
                *p = nfree as i32;
                nfree += 1;
            }
        }
        let mut sources = vec![-1i32; np];
        let mut factors = vec![0.0; np];
        for j in 0..np {
            if is_free[j] {
                sources[j] = pfree[j];
                factors[j] = 1.0;
            }
        }
        for j in 0..np {
            if let Ok(s) = usize::try_from(tiedtoparam[j]) {
                if s < np && is_free[s] {
                    sources[j] = pfree[s];
                    factors[j] = tiedfactor[j];
                }
            }
        }
        let doublet_patches: Vec<(usize, usize)> = doublet_targets
            .iter()
            .zip(doublet_sources)
            .filter(|(&j, &s)| j < np && s < np && is_free[j] && is_free[s])
            .map(|(&j, &s)| (j, pfree[s] as usize))
            .collect();

        let live: Vec<usize> = (0..np).filter(|&j| sources[j] != -1).collect();
        let mut live_offset = vec![0usize; np];
        for (k, &j) in live.iter().enumerate() {
            live_offset[j] = k;
        }
        let mut jac_elts: Vec<(usize, usize)> =
            live.iter().map(|&j| (j, sources[j] as usize)).collect();
        let mut jac_factors: Vec<f64> = live.iter().map(|&j| factors[j]).collect();
        let mut jac_patches = Vec::with_capacity(2 * doublet_patches.len());
        for &(j, p_src) in &doublet_patches {
            let p_j = sources[j] as usize;
            jac_patches.push((live_offset[j], p_src));
            jac_patches.push((jac_elts.len(), p_j));
            jac_elts.push((j, p_src));
            jac_factors.push(0.0);
        }
        Self {
            nparams: np,
            nfree,
            sources,
            factors,
            doublet_patches,
            jac_elts,
            jac_factors,
            jac_patches,
        }
    }

    /// Number of full parameters.
    pub fn nparams(&self) -> usize {
        self.nparams
    }

    /// Number of free parameters.
    pub fn nfree(&self) -> usize {
        self.nfree
    }

    /// True for parameters that are neither free nor tied to a free one.
    pub fn is_fixed(&self, j: usize) -> bool {
        self.sources[j] == -1
    }

    /// Fixed-parameter mask (FastSpecFit's `fixedMask`).
    pub fn fixed_mask(&self) -> Vec<bool> {
        self.sources.iter().map(|&s| s == -1).collect()
    }

    /// Expand `free` into `full`; with `patch_doublets` false the doublet
    /// targets keep their ratio values.
    ///
    /// # Panics
    /// Never on data; slice lengths are the caller's contract (debug-asserted).
    pub fn free_to_full(&self, free: &[f64], full: &mut [f64], patch_doublets: bool) {
        debug_assert_eq!(free.len(), self.nfree);
        debug_assert_eq!(full.len(), self.nparams);
        for (j, (&s, &f)) in self.sources.iter().zip(&self.factors).enumerate() {
            full[j] = match usize::try_from(s) {
                Ok(s) => f * free[s],
                Err(_) => f,
            };
        }
        if patch_doublets {
            for &(j, ps) in &self.doublet_patches {
                full[j] *= free[ps];
            }
        }
    }

    /// Refresh the doublet-dependent factors of J_S at `free`.
    pub fn update_jacobian(&mut self, free: &[f64]) {
        for &(e, p) in &self.jac_patches {
            self.jac_factors[e] = free[p];
        }
    }

    /// w = J_S · v (v free-sized, w full-sized); call
    /// [`update_jacobian`](Self::update_jacobian) first.
    pub fn jac_matvec(&self, v: &[f64], w: &mut [f64]) {
        w.iter_mut().for_each(|x| *x = 0.0);
        for (&(dst, src), &f) in self.jac_elts.iter().zip(&self.jac_factors) {
            w[dst] += f * v[src];
        }
    }

    /// w += J_Sᵀ · v (v full-sized, w free-sized).
    pub fn jac_add_rmatvec(&self, v: &[f64], w: &mut [f64]) {
        for (&(dst, src), &f) in self.jac_elts.iter().zip(&self.jac_factors) {
            w[src] += f * v[dst];
        }
    }

    /// The sparse J_S entries ((full row, free column), factor).
    pub fn jac_entries(&self) -> impl Iterator<Item = ((usize, usize), f64)> + '_ {
        self.jac_elts
            .iter()
            .copied()
            .zip(self.jac_factors.iter().copied())
    }
}
