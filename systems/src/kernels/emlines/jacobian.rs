//! Analytic sparse Jacobian of the weighted line-fit residuals (SPEC.md
//! §5.3): J = diag(w) · W_c · J_ideal · J_S per camera, each column of
//! diag(w)·W_c·J_ideal stored as one contiguous pixel range.
//!
//! With x = ℓ − ln λ*, G = exp(−x²/(2σ_eff²)):
//! ∂/∂A = A_eff G/A; ∂/∂v = A_eff G x/σ_eff²/(c(1+z+v/c)) (deliberately
//! ignoring the v-dependence of σ_eff and A_eff through σ_G/λ*, as
//! FastSpecFit does); ∂/∂σ_v = (A/σ_eff) G/c (1 − σ²(1 − x²/σ_eff²)/σ_eff²).
//! Columns of fixed parameters are empty; a line with A = 0 has all three
//! columns empty; a line with σ = 0 has an empty A column.

use super::super::KernelError;
use super::mapping::ParamsMapping;
use super::optimize::GaussCache;
use super::profile::{line_geom, EmlineSpectrum, C_LIGHT, MAX_SDEV, SIGMA_G};
use crate::kernels::nnls::householder::dot;
use crate::kernels::simd::dispatch;
use faer::traits::pulp::{Arch, Simd, WithSimd};

/// FastSpecFit's `max_buffer_width`: a safe bound on the pixels any line
/// covers, + 2·padding + 4.
pub fn max_buffer_width(logwave: &[f64], sigmas: &[f64], padding: usize, sigma_g: f64) -> usize {
    if logwave.len() < 2 {
        return 2 * padding + 4 + logwave.len();
    }
    buffer_width_with(min_step(logwave), logwave, sigmas, padding, sigma_g)
}

/// Smallest step of a grid (∞ for fewer than two points).
pub(crate) fn min_step(logwave: &[f64]) -> f64 {
    logwave
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::INFINITY, f64::min)
}

/// [`max_buffer_width`] with the grid's smallest step `dmin` precomputed
/// (`logwave` of at least two points).
fn buffer_width_with(
    dmin: f64,
    logwave: &[f64],
    sigmas: &[f64],
    padding: usize,
    sigma_g: f64,
) -> usize {
    let smax = sigmas.iter().copied().fold(f64::NEG_INFINITY, f64::max) / C_LIGHT;
    let sg = sigma_g / logwave[0].exp();
    let seff = (smax * smax + sg * sg).sqrt();
    let w = 2.0 * MAX_SDEV * seff / dmin;
    let w = if w.is_finite() && w >= 0.0 {
        w as usize
    } else {
        0
    };
    w + 2 * padding + 4
}

/// Column-sparse diag(w)·W·J_ideal of one camera: column k covers local
/// pixels [start, end) with values `vals[k * width ..]`.
#[derive(Debug, Clone, Default)]
struct CameraJac {
    ends: Vec<(usize, usize)>,
    width: usize,
    vals: Vec<f64>,
    /// Union of the non-empty column ranges (local, sorted, disjoint).
    support: Vec<(usize, usize)>,
    /// Lines whose three columns share one non-empty range.
    triples: Vec<usize>,
    /// The other non-empty columns.
    singles: Vec<usize>,
    /// Pixel segments of the support on which the set of non-empty columns
    /// is constant: (first, end, act0, act1) with the columns
    /// `act[act0..act1]` (ascending k) covering all of [first, end).
    segs: Vec<(usize, usize, usize, usize)>,
    /// Per active column: (k, start of its range).
    act: Vec<(usize, usize)>,
    /// Scratch: breakpoints of the column ranges.
    cuts: Vec<usize>,
    /// Scratch: the non-empty columns (k, start, end), ascending k.
    cols: Vec<(usize, usize, usize)>,
    /// The triples' columns interleaved per pixel for `rmatvec`: line
    /// `triples[i]` at `tvals[toff[i] + 4t ..]` = (∂A, ∂v, ∂σ, 0) at its
    /// local pixel t.
    tvals: Vec<f64>,
    toff: Vec<usize>,
}

impl CameraJac {
    /// Build `tvals` / `toff` from the triples' columns (triples sorted by
    /// length, longest first, so that lines summed together have similar
    /// lengths; each line's sums do not depend on the order).
    fn build_interleaved(&mut self) {
        let nl = self.ends.len() / 3;
        let w = self.width;
        let ends = &self.ends;
        self.triples
            .sort_by_key(|&j| std::cmp::Reverse(ends[j].1 - ends[j].0));
        self.toff.clear();
        self.tvals.clear();
        for &j in &self.triples {
            let n = self.ends[j].1 - self.ends[j].0;
            self.toff.push(self.tvals.len());
            let (ca, cv, cs) = (
                &self.vals[j * w..j * w + n],
                &self.vals[(nl + j) * w..(nl + j) * w + n],
                &self.vals[(2 * nl + j) * w..(2 * nl + j) * w + n],
            );
            for ((&a, &v), &g) in ca.iter().zip(cv).zip(cs) {
                self.tvals.extend_from_slice(&[a, v, g, 0.0]);
            }
        }
    }
}

/// [`EmlineJacobian::rmatvec`]'s triple sums, compiled per instruction set:
/// vfull[k] = Σ_t col_k[t]·u[t] for the three columns of every triple line,
/// each a sequential sum from −0 (as `Iterator::sum`), the three columns of
/// a line as the lanes of one vector, four lines at a time (measured: eight
/// at a time is slower).
struct TripleSums<'a> {
    cj: &'a CameraJac,
    uc: &'a [f64],
    vfull: &'a mut [f64],
}

impl WithSimd for TripleSums<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let TripleSums { cj, uc, vfull } = self;
        let nl = cj.ends.len() / 3;
        let line = |i: usize| {
            let j = cj.triples[i];
            let (s, e) = cj.ends[j];
            let off = cj.toff[i];
            (j, &cj.tvals[off..off + 4 * (e - s)], &uc[s..e])
        };
        let store = |vfull: &mut [f64], j: usize, acc: &[f64; 4]| {
            vfull[j] = acc[0];
            vfull[nl + j] = acc[1];
            vfull[2 * nl + j] = acc[2];
        };
        let nt = cj.triples.len();
        let mut i = 0;
        while i < nt {
            match nt - i {
                1 => group::<1>(std::array::from_fn(|l| line(i + l)), |j, a| {
                    store(vfull, j, a)
                }),
                2 => group::<2>(std::array::from_fn(|l| line(i + l)), |j, a| {
                    store(vfull, j, a)
                }),
                3 => group::<3>(std::array::from_fn(|l| line(i + l)), |j, a| {
                    store(vfull, j, a)
                }),
                _ => group::<4>(std::array::from_fn(|l| line(i + l)), |j, a| {
                    store(vfull, j, a)
                }),
            }
            i += 4;
        }
    }
}

/// The sums of `N` triple lines (j, interleaved columns, u over the line's
/// range) together up to the shortest length, then each alone; every lane
/// a sequential sum from −0.
#[inline(always)]
fn group<const N: usize>(
    lines: [(usize, &[f64], &[f64]); N],
    mut store: impl FnMut(usize, &[f64; 4]),
) {
    let m = lines.iter().map(|l| l.2.len()).min().unwrap_or(0);
    let mut acc = [[-0.0f64; 4]; N];
    let tv: [&[f64]; N] = std::array::from_fn(|l| &lines[l].1[..4 * m]);
    let uu: [&[f64]; N] = std::array::from_fn(|l| &lines[l].2[..m]);
    for t in 0..m {
        for l in 0..N {
            let x = uu[l][t];
            let c = &tv[l][4 * t..4 * t + 4];
            for q in 0..4 {
                acc[l][q] += c[q] * x;
            }
        }
    }
    for l in 0..N {
        let (j, tvl, ul) = lines[l];
        for (c, &x) in tvl[4 * m..].chunks_exact(4).zip(&ul[m..]) {
            for q in 0..4 {
                acc[l][q] += c[q] * x;
            }
        }
        store(j, &acc[l]);
    }
}

impl CameraJac {
    /// Build `segs` / `act` from `ends` (after the convolution).
    fn build_segments(&mut self) {
        self.cuts.clear();
        self.cols.clear();
        for (k, &(s, e)) in self.ends.iter().enumerate().filter(|r| r.1 .0 < r.1 .1) {
            self.cuts.push(s);
            self.cuts.push(e);
            self.cols.push((k, s, e));
        }
        self.cuts.sort_unstable();
        self.cuts.dedup();
        self.segs.clear();
        self.act.clear();
        for w in self.cuts.windows(2) {
            let (p, q) = (w[0], w[1]);
            let a0 = self.act.len();
            for &(k, s, e) in &self.cols {
                if s <= p && q <= e {
                    self.act.push((k, s));
                }
            }
            if self.act.len() > a0 {
                self.segs.push((p, q, a0, self.act.len()));
            }
        }
    }
}

/// [`EmlineJacobian::matvec_support`]'s loops (run under [`dispatch`]).
#[inline(always)]
fn matvec_support_body(spec: &EmlineSpectrum, cams: &[CameraJac], f: &[f64], out: &mut [f64]) {
    for (cam, cj) in spec.cameras.iter().zip(cams) {
        let o = &mut out[cam.start..cam.start + cam.npix()];
        for &(p, q, a0, a1) in &cj.segs {
            segment_matvec(&mut o[p..q], p, &cj.act[a0..a1], &cj.vals, cj.width, f);
        }
    }
}

/// [`segment_matvec`]'s rows from `*t` on in blocks of `B` (each row's sum in the same
/// order), advancing `*t` past the last whole block.
#[inline(always)]
fn segment_rows<const B: usize>(
    o: &mut [f64],
    t: &mut usize,
    p: usize,
    act: &[(usize, usize)],
    vals: &[f64],
    width: usize,
    f: &[f64],
) {
    while *t + B <= o.len() {
        let mut acc = [0.0f64; B];
        for &(k, s) in act {
            let fk = f[k];
            let base = k * width + p + *t - s;
            let c = &vals[base..base + B];
            for q in 0..B {
                acc[q] += c[q] * fk;
            }
        }
        o[*t..*t + B].copy_from_slice(&acc);
        *t += B;
    }
}

/// o[t] = Σ_k vals[k·width + t − s_k]·f[k] over the segment's active
/// columns in ascending k, summed from +0 in that order (the same additions
/// as accumulating the columns one after another into a zeroed `o`).
#[inline(always)]
fn segment_matvec(
    o: &mut [f64],
    p: usize,
    act: &[(usize, usize)],
    vals: &[f64],
    width: usize,
    f: &[f64],
) {
    let n = o.len();
    let mut t = 0;
    // blocks of 32 rows (eight independent vector chains), then 16, then 4
    segment_rows::<32>(o, &mut t, p, act, vals, width, f);
    segment_rows::<16>(o, &mut t, p, act, vals, width, f);
    segment_rows::<4>(o, &mut t, p, act, vals, width, f);
    while t < n {
        let mut acc = 0.0f64;
        for &(k, s) in act {
            acc += vals[k * width + p + t - s] * f[k];
        }
        o[t] = acc;
        t += 1;
    }
}

/// Sorted union of the non-empty ranges in `ranges` (which is reordered),
/// appended to `out` shifted by `offset`.
pub(crate) fn merge_ranges(
    ranges: &mut [(usize, usize)],
    offset: usize,
    out: &mut Vec<(usize, usize)>,
) {
    ranges.sort_unstable();
    let mut cur: Option<(usize, usize)> = None;
    for &(a, b) in ranges.iter().filter(|r| r.0 < r.1) {
        cur = match cur {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some(c) => {
                out.push((c.0 + offset, c.1 + offset));
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some(c) = cur {
        out.push((c.0 + offset, c.1 + offset));
    }
}

/// A dense column over hstacked pixels [start, start + len) that joins the
/// line columns in [`EmlineJacobian::gram`] (e.g. a continuum-patch
/// pedestal): values `vals[off .. off + len]` of the slice passed along,
/// free parameter `col` (factor 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtraColumn {
    /// First hstacked pixel.
    pub start: usize,
    /// Number of pixels.
    pub len: usize,
    /// Offset of the values.
    pub off: usize,
    /// Free-parameter index.
    pub col: usize,
}

/// One non-empty column in the Gram sweep: hstacked range, where its values
/// live, and its (free index, factor) entries `elts[e0..e1]`.
#[derive(Debug, Clone, Copy)]
struct GramCol {
    start: usize,
    end: usize,
    /// `usize::MAX`: an extra column (values in the extra slice at `off`);
    /// else the camera index (values at `off` in its `vals`).
    cam: usize,
    off: usize,
    e0: usize,
    e1: usize,
}

/// The sparse Jacobian of the line-fit residuals w.r.t. the free parameters;
/// reusable across evaluations (buffers grow only).
#[derive(Debug, Clone, Default)]
pub struct EmlineJacobian {
    cams: Vec<CameraJac>,
    buf: Vec<f64>,
    vfull: Vec<f64>,
    nrows: usize,
    nfree: usize,
    rscratch: Vec<(usize, usize)>,
    /// Gram scratch: per full parameter the range of its J_S entries.
    elt_start: Vec<usize>,
    elts: Vec<(usize, f64)>,
    gcols: Vec<GramCol>,
}

impl EmlineJacobian {
    /// (rows, free columns).
    pub fn shape(&self) -> (usize, usize) {
        (self.nrows, self.nfree)
    }

    /// Evaluate at the full parameters `params` (= mapping of `free`), with
    /// per-pixel weights `weights` (hstacked).
    ///
    /// # Errors
    /// [`KernelError::Shape`] on inconsistent lengths.
    pub fn evaluate(
        &mut self,
        spec: &EmlineSpectrum,
        mapping: &mut ParamsMapping,
        free: &[f64],
        params: &[f64],
        weights: &[f64],
    ) -> Result<(), KernelError> {
        self.evaluate_cached(spec, mapping, free, params, weights, None)
    }

    /// [`evaluate`](Self::evaluate), taking the profiles' Gaussians from
    /// `gauss` when it holds them for `params` (bit-identical).
    pub(crate) fn evaluate_cached(
        &mut self,
        spec: &EmlineSpectrum,
        mapping: &mut ParamsMapping,
        free: &[f64],
        params: &[f64],
        weights: &[f64],
        gauss: Option<&GaussCache>,
    ) -> Result<(), KernelError> {
        let gauss = gauss.filter(|g| g.holds(params));
        let nl = spec.restwave.len();
        if params.len() != 3 * nl
            || weights.len() != spec.npix
            || mapping.nparams() != 3 * nl
            || free.len() != mapping.nfree()
        {
            return Err(KernelError::Shape(format!(
                "emline jacobian: {nl} lines, {} params, {} weights for {} pixels, {} free of {}",
                params.len(),
                weights.len(),
                spec.npix,
                free.len(),
                mapping.nfree()
            )));
        }
        mapping.update_jacobian(free);
        self.nrows = spec.npix;
        self.nfree = mapping.nfree();
        self.vfull.resize(3 * nl, 0.0);
        self.cams
            .resize_with(spec.cameras.len(), CameraJac::default);
        let (amps, vs, sigs) = (&params[..nl], &params[nl..2 * nl], &params[2 * nl..]);
        for (ci, (cam, cj)) in spec.cameras.iter().zip(self.cams.iter_mut()).enumerate() {
            let lw = &cam.logwave;
            let nd = cam.w.ndiag;
            let width = if lw.len() < 2 {
                max_buffer_width(lw, sigs, nd, SIGMA_G)
            } else {
                buffer_width_with(cam.min_dlog, lw, sigs, nd, SIGMA_G)
            }
            .max(nd + 4);
            cj.width = width;
            cj.ends.clear();
            cj.ends.resize(3 * nl, (0, 0));
            if cj.vals.len() < 3 * nl * width {
                cj.vals.resize(3 * nl * width, 0.0);
            }
            for j in 0..nl {
                let amp = amps[j];
                if amp == 0.0 {
                    continue;
                }
                let Some(g) = line_geom(spec.restwave[j], vs[j], sigs[j], lw, spec.z, SIGMA_G)
                else {
                    continue;
                };
                let len = g.hi - g.lo;
                if len + 2 * (nd / 2) > width {
                    return Err(KernelError::Shape(
                        "emline jacobian: column wider than its buffer".into(),
                    ));
                }
                let amp_eff = amp * g.sigma / g.sigma_eff;
                let aos = amp / g.sigma_eff;
                let inv2 = 0.5 / (g.sigma_eff * g.sigma_eff);
                let inv = 1.0 / (g.sigma_eff * g.sigma_eff);
                let s2 = g.sigma * g.sigma;
                let (a0, v0, s0) = (j * width, (nl + j) * width, (2 * nl + j) * width);
                let cl = C_LIGHT * g.line_shift;
                let lws = &lw[g.lo..g.hi];
                let (head, rest) = cj.vals.split_at_mut(v0);
                let (vmid, stail) = rest.split_at_mut(s0 - v0);
                let (ca, cv, cs) = (&mut head[a0..a0 + len], &mut vmid[..len], &mut stail[..len]);
                // the Gaussians first (libm calls or the residuals' cache),
                // then a vectorisable pass
                match gauss.and_then(|gc| gc.get(ci, j)) {
                    Some(cached) if cached.len() == len => ca.copy_from_slice(cached),
                    _ => {
                        for (c, &l) in ca.iter_mut().zip(lws) {
                            let x = l - g.log_center;
                            *c = (-x * x * inv2).exp();
                        }
                    }
                }
                for k in 0..len {
                    let x = lws[k] - g.log_center;
                    let gauss = ca[k];
                    let gv = amp_eff * gauss;
                    ca[k] = gv / amp;
                    cv[k] = gv * x * inv / cl;
                    cs[k] = aos * gauss / C_LIGHT * (1.0 - s2 * (1.0 - x * x * inv) * inv);
                }
                cj.ends[j] = (g.lo, g.hi);
                cj.ends[nl + j] = (g.lo, g.hi);
                cj.ends[2 * nl + j] = (g.lo, g.hi);
                if sigs[j] == 0.0 {
                    cj.ends[j] = (0, 0);
                }
            }
            for (k, e) in cj.ends.iter_mut().enumerate() {
                if mapping.is_fixed(k) {
                    *e = (0, 0);
                }
            }
            let (w, buf) = (&weights[cam.start..cam.start + cam.npix()], &mut self.buf);
            dispatch(
                #[inline(always)]
                || mul_wmj(w, &cam.rowdata, &cam.w.data, nd, cj, buf),
            );
            self.rscratch.clear();
            self.rscratch.extend_from_slice(&cj.ends);
            cj.support.clear();
            merge_ranges(&mut self.rscratch, 0, &mut cj.support);
            cj.build_segments();
            cj.triples.clear();
            cj.singles.clear();
            for j in 0..nl {
                let (ka, kv, ks) = (j, nl + j, 2 * nl + j);
                let r = cj.ends[ka];
                if r.0 < r.1 && cj.ends[kv] == r && cj.ends[ks] == r {
                    cj.triples.push(j);
                } else {
                    cj.singles.extend(
                        [ka, kv, ks]
                            .into_iter()
                            .filter(|&k| cj.ends[k].0 < cj.ends[k].1),
                    );
                }
            }
            cj.build_interleaved();
        }
        Ok(())
    }

    /// out = J · v (v: free parameters, out: hstacked pixels).
    pub fn matvec(
        &mut self,
        spec: &EmlineSpectrum,
        mapping: &ParamsMapping,
        v: &[f64],
        out: &mut [f64],
    ) {
        mapping.jac_matvec(v, &mut self.vfull);
        for (cam, cj) in spec.cameras.iter().zip(&self.cams) {
            let o = &mut out[cam.start..cam.start + cam.npix()];
            o.iter_mut().for_each(|x| *x = 0.0);
            for (k, &(s, e)) in cj.ends.iter().enumerate() {
                let f = self.vfull[k];
                let col = &cj.vals[k * cj.width..k * cj.width + (e - s)];
                for (x, &c) in o[s..e].iter_mut().zip(col) {
                    *x += c * f;
                }
            }
        }
    }

    /// Rows (hstacked, sorted disjoint ranges) outside which J is zero,
    /// appended to `out`.
    pub fn support(&self, spec: &EmlineSpectrum, out: &mut Vec<(usize, usize)>) {
        for (cam, cj) in spec.cameras.iter().zip(&self.cams) {
            out.extend(
                cj.support
                    .iter()
                    .map(|&(a, b)| (a + cam.start, b + cam.start)),
            );
        }
    }

    /// out = J · v on the rows of [`support`](Self::support) only (the other
    /// rows of `out` are left untouched); bit-identical to
    /// [`matvec`](Self::matvec) there: per pixel segment with a constant set
    /// of columns, each row sums its columns' terms in ascending column
    /// order from +0, as the column-by-column accumulation does (runtime
    /// SIMD dispatch; no fused multiply–add).
    pub fn matvec_support(
        &mut self,
        spec: &EmlineSpectrum,
        mapping: &ParamsMapping,
        v: &[f64],
        out: &mut [f64],
    ) {
        mapping.jac_matvec(v, &mut self.vfull);
        let (cams, f) = (&self.cams, &self.vfull);
        dispatch(
            #[inline(always)]
            || matvec_support_body(spec, cams, f, out),
        );
    }

    /// out = Jᵀ · u (u: hstacked pixels, out: free parameters).
    pub fn rmatvec(
        &mut self,
        spec: &EmlineSpectrum,
        mapping: &ParamsMapping,
        u: &[f64],
        out: &mut [f64],
    ) {
        out.iter_mut().for_each(|x| *x = 0.0);
        for (cam, cj) in spec.cameras.iter().zip(&self.cams) {
            let uc = &u[cam.start..cam.start + cam.npix()];
            let w = cj.width;
            // empty columns: the empty sum (−0.0) as `Iterator::sum`
            self.vfull.fill(-0.0);
            // lines whose three columns share their range: one vector per line
            Arch::new().dispatch(TripleSums {
                cj,
                uc,
                vfull: &mut self.vfull,
            });
            for &k in &cj.singles {
                let (s, e) = cj.ends[k];
                let col = &cj.vals[k * w..k * w + (e - s)];
                self.vfull[k] = col.iter().zip(&uc[s..e]).map(|(a, b)| a * b).sum();
            }
            mapping.jac_add_rmatvec(&self.vfull, out);
        }
    }
}

impl EmlineJacobian {
    /// JᵀJ over the free parameters of the last [`evaluate`](Self::evaluate)
    /// plus the `extra` columns, into `out` (`ntot`×`ntot`, column-major,
    /// overwritten; `ntot` ≥ free parameters and every extra `col` < `ntot`):
    /// the products of every pair of overlapping stored columns, mapped
    /// through J_S — O(Σ overlaps), not O(rows · ntot²).
    pub fn gram(
        &mut self,
        spec: &EmlineSpectrum,
        mapping: &ParamsMapping,
        extra: &[ExtraColumn],
        extra_vals: &[f64],
        ntot: usize,
        out: &mut [f64],
    ) {
        out[..ntot * ntot].fill(0.0);
        let np = mapping.nparams();
        // per full parameter: its (free column, factor) entries (CSR)
        self.elt_start.clear();
        self.elt_start.resize(np + 2, 0);
        for ((dst, _), _) in mapping.jac_entries() {
            self.elt_start[dst + 2] += 1;
        }
        for k in 2..np + 2 {
            self.elt_start[k] += self.elt_start[k - 1];
        }
        self.elts.clear();
        self.elts.resize(self.elt_start[np + 1], (0, 0.0));
        for ((dst, src), f) in mapping.jac_entries() {
            let slot = &mut self.elt_start[dst + 1];
            self.elts[*slot] = (src, f);
            *slot += 1;
        }
        // now elt_start[k]..elt_start[k + 1] spans parameter k's entries
        let nx = self.elts.len();
        self.elts.extend(extra.iter().map(|e| (e.col, 1.0)));
        self.gcols.clear();
        for (c, (cam, cj)) in spec.cameras.iter().zip(&self.cams).enumerate() {
            for (k, &(s, e)) in cj.ends.iter().enumerate() {
                if s == e || self.elt_start[k] == self.elt_start[k + 1] {
                    continue;
                }
                self.gcols.push(GramCol {
                    start: cam.start + s,
                    end: cam.start + e,
                    cam: c,
                    off: k * cj.width,
                    e0: self.elt_start[k],
                    e1: self.elt_start[k + 1],
                });
            }
        }
        for (i, e) in extra.iter().enumerate().filter(|(_, e)| e.len > 0) {
            self.gcols.push(GramCol {
                start: e.start,
                end: e.start + e.len,
                cam: usize::MAX,
                off: e.off,
                e0: nx + i,
                e1: nx + i + 1,
            });
        }
        self.gcols.sort_unstable_by_key(|c| c.start);
        let cams = &self.cams;
        let vals = |c: &GramCol, lo: usize, hi: usize| -> &[f64] {
            let base = if c.cam == usize::MAX {
                extra_vals
            } else {
                &cams[c.cam].vals[..]
            };
            &base[c.off + lo - c.start..c.off + hi - c.start]
        };
        for a in 0..self.gcols.len() {
            let ca = self.gcols[a];
            for (b, cb) in self.gcols[a..].iter().enumerate() {
                if cb.start >= ca.end {
                    break;
                }
                let (lo, hi) = (cb.start.max(ca.start), cb.end.min(ca.end));
                if lo >= hi {
                    continue;
                }
                let v = dot(vals(&ca, lo, hi), vals(cb, lo, hi));
                for &(pa, fa) in &self.elts[ca.e0..ca.e1] {
                    for &(pb, fb) in &self.elts[cb.e0..cb.e1] {
                        let t = fa * fb * v;
                        out[pb * ntot + pa] += t;
                        if b != 0 {
                            out[pa * ntot + pb] += t;
                        }
                    }
                }
            }
        }
    }
}

/// In place: column k of J (local range [s, e)) ← diag(w)·W·column, range
/// widened by ±ndiag/2 and clipped to the camera (FastSpecFit's `mulWMJ`).
/// The three columns of a line (k = j, nl + j, 2nl + j), which normally share
/// their range, are convolved together (three independent sums per row, each
/// in the original order: bit-identical to one column at a time).
///
/// Interior rows (whole band inside the column) are summed diagonal by
/// diagonal over all rows at once (vectorisable; each row's sum still runs
/// over the band in the original order), from W's DIA `data`
/// (`data[d·n + j]` = row data `[i·nd + nd − 1 − d]` with j = i − h + nd − 1 − d).
#[inline(always)]
fn mul_wmj(
    w: &[f64],
    rowdata: &[f64],
    data: &[f64],
    nd: usize,
    cj: &mut CameraJac,
    buf: &mut Vec<f64>,
) {
    let nbins = w.len();
    let h = nd / 2;
    let width = cj.width;
    if buf.len() < 3 * width {
        buf.resize(3 * width, 0.0);
    }
    let nl = cj.ends.len() / 3;
    for j in 0..nl {
        let (ka, kv, ks) = (j, nl + j, 2 * nl + j);
        let r = cj.ends[ka];
        if r.0 < r.1 && cj.ends[kv] == r && cj.ends[ks] == r {
            let (s, e) = r;
            let imin = s.saturating_sub(h);
            let imax = (e + h).min(nbins);
            let (ba, rest) = buf.split_at_mut(width);
            let (bv, bs) = rest.split_at_mut(width);
            {
                let ca = &cj.vals[ka * width..ka * width + (e - s)];
                let cv = &cj.vals[kv * width..kv * width + (e - s)];
                let cs = &cj.vals[ks * width..ks * width + (e - s)];
                // interior rows [ilo, ihi): the full band lies in [s, e)
                let (ilo, ihi) = (s + h, e.saturating_sub(h));
                let interior = ilo < ihi;
                if interior {
                    let cnt = ihi - ilo;
                    let (oa, ov, os) = (
                        &mut ba[ilo - imin..ihi - imin],
                        &mut bv[ilo - imin..ihi - imin],
                        &mut bs[ilo - imin..ihi - imin],
                    );
                    oa.fill(0.0);
                    ov.fill(0.0);
                    os.fill(0.0);
                    for idx in 0..nd {
                        let j0 = ilo - h + idx;
                        let dd =
                            &data[(nd - 1 - idx) * nbins + j0..(nd - 1 - idx) * nbins + j0 + cnt];
                        let off = j0 - s;
                        let (xa, xv, xs) = (
                            &ca[off..off + cnt],
                            &cv[off..off + cnt],
                            &cs[off..off + cnt],
                        );
                        for t in 0..cnt {
                            let q = dd[t];
                            oa[t] += q * xa[t];
                            ov[t] += q * xv[t];
                            os[t] += q * xs[t];
                        }
                    }
                    let wi = &w[ilo..ihi];
                    for t in 0..cnt {
                        oa[t] *= wi[t];
                        ov[t] *= wi[t];
                        os[t] *= wi[t];
                    }
                }
                let edge = |i: usize| !interior || i < ilo || i >= ihi;
                for i in (imin..imax).filter(|&i| edge(i)) {
                    let kmin = i.saturating_sub(h).max(s);
                    let kmax = (i + h).min(e - 1);
                    let rd = &rowdata[i * nd + kmin + h - i..i * nd + kmax + h - i + 1];
                    let (xa, xv, xs) = (
                        &ca[kmin - s..=kmax - s],
                        &cv[kmin - s..=kmax - s],
                        &cs[kmin - s..=kmax - s],
                    );
                    let (mut aa, mut av, mut as_) = (0.0f64, 0.0f64, 0.0f64);
                    for t in 0..rd.len() {
                        let q = rd[t];
                        aa += q * xa[t];
                        av += q * xv[t];
                        as_ += q * xs[t];
                    }
                    let wi = w[i];
                    ba[i - imin] = aa * wi;
                    bv[i - imin] = av * wi;
                    bs[i - imin] = as_ * wi;
                }
            }
            let n = imax - imin;
            cj.vals[ka * width..ka * width + n].copy_from_slice(&ba[..n]);
            cj.vals[kv * width..kv * width + n].copy_from_slice(&bv[..n]);
            cj.vals[ks * width..ks * width + n].copy_from_slice(&bs[..n]);
            cj.ends[ka] = (imin, imax);
            cj.ends[kv] = (imin, imax);
            cj.ends[ks] = (imin, imax);
        } else {
            for k in [ka, kv, ks] {
                mul_wmj_column(w, rowdata, nd, cj, k, buf);
            }
        }
    }
}

/// [`mul_wmj`] for one column.
#[inline(always)]
fn mul_wmj_column(
    w: &[f64],
    rowdata: &[f64],
    nd: usize,
    cj: &mut CameraJac,
    k: usize,
    buf: &mut [f64],
) {
    let nbins = w.len();
    let h = nd / 2;
    let (s, e) = cj.ends[k];
    if s == e {
        return;
    }
    let col = &mut cj.vals[k * cj.width..(k + 1) * cj.width];
    let imin = s.saturating_sub(h);
    let imax = (e + h).min(nbins);
    for i in imin..imax {
        let kmin = (i.saturating_sub(h)).max(s);
        let kmax = (i + h).min(e - 1);
        let mut acc = 0.0;
        for kk in kmin..=kmax {
            acc += rowdata[i * nd + kk + h - i] * col[kk - s];
        }
        buf[i - imin] = acc * w[i];
    }
    col[..imax - imin].copy_from_slice(&buf[..imax - imin]);
    cj.ends[k] = (imin, imax);
}
