//! Monte Carlo SEDs four realisations at a time (the `*_IVAR` Monte Carlo of SPEC §4.9).
//!
//! Every realisation r of a target rebuilds its SED from its own coefficients c_r and τ_V,r
//! on the same template grid (see [`super::sed`]); the quantities then read from it are
//! sequential sums (the L_abs trapezoid over the whole grid, one trapezoid per absmag
//! filter). [`McBatch`] computes [`LANES`] realisations side by side, one SIMD lane per
//! realisation: each lane performs exactly the operations of the one-realisation kernels
//! ([`super::sed::build_sed`] with dust emission, [`super::sed::build_sed_nodust_ranges`],
//! [`super::kcorr::synth_absmag`]) in the same order, so the values are bit-identical, but
//! the template sums read each template pixel once for four realisations and the sequential
//! sums advance four at a time. The dust-emission SED itself is only evaluated where the
//! absmag filters read it, and the line-free SED only on the requested windows.
//!
//! Identities used (exact in IEEE round-to-nearest arithmetic): a sum that starts at +0.0
//! can never become −0.0, and adding ±0 to it leaves it unchanged, so the template sum
//! "from 0, skipping zero coefficients" of the one-realisation kernels equals the lane sum
//! that adds c·F = ±0 for a zero coefficient when every template value is finite (checked
//! once per target, [`McBatch::new`]; otherwise a zero coefficient's term is masked to
//! −0.0); templates whose coefficient is zero in every lane are skipped altogether.
//!
//! The batch changes only the evaluation order across realisations, never the operations of
//! one realisation: the `*_IVAR` outputs are bit-identical to the one-by-one loop.

use std::ops::Range;

use super::kcorr::{KcorrPre, FLUXNORM};
use super::sed::SedInputs;
use crate::kernels::fastexp;
use crate::kernels::KernelError;

/// Realisations computed together.
pub const LANES: usize = 4;
/// One value per realisation of a batch.
pub type Lanes = [f64; LANES];

/// Reusable buffers of one batch of [`LANES`] realisations.
#[derive(Debug, Clone, Default)]
pub struct McBatch {
    /// A = exp(−τ_V,r k), lane by lane (`nw` values per lane).
    atten: Vec<f64>,
    /// M·A per pixel (lanes), M = Σ_t c_t F_t the template sum with lines.
    ma: Vec<f64>,
    /// L_abs per lane.
    labs: Lanes,
    /// Coefficients per template (lanes).
    coef: Vec<Lanes>,
    /// The templates with a non-zero coefficient in some lane (those of `coef`, `nz`).
    tix: Vec<usize>,
    /// Whether each coefficient is non-zero (1.0) or zero (0.0), per template (lanes).
    nz: Vec<[bool; LANES]>,
    /// Trapezoid results of [`McBatch::synth_absmag`] per filter.
    res: Vec<Lanes>,
    /// The scaled SED S·(1+z)/FLUXNORM (lanes) on the absmag filters' pixels.
    sf: Vec<f64>,
    /// Whether every template value is finite (then a zero coefficient's term c·F = ±0
    /// leaves the sum unchanged and needs no masking, see the module docs).
    finite: bool,
}

fn shape_err(inp: &SedInputs<'_>, ncoef: usize) -> KernelError {
    KernelError::Shape(format!(
        "build_sed: {} template values for {} coefficients x {} wavelengths",
        inp.flux.len(),
        ncoef,
        inp.wave.len()
    ))
}

impl McBatch {
    /// Buffers for the SEDs of one target whose templates (with and without lines) are
    /// `fluxes`: notes whether they are all finite (module docs).
    pub fn new(fluxes: &[&[f64]]) -> Self {
        McBatch {
            finite: fluxes.iter().all(|f| crate::kernels::simd::all_finite(f)),
            ..Default::default()
        }
    }

    /// Load the coefficients of the lanes (`coeffs[r]`, one per template).
    fn load_coeffs(
        &mut self,
        inp: &SedInputs<'_>,
        coeffs: &[&[f64]; LANES],
    ) -> Result<(), KernelError> {
        let nw = inp.wave.len();
        let nt = coeffs[0].len();
        for c in coeffs {
            if nw == 0 || c.len() != nt || inp.flux.len() != c.len() * nw {
                return Err(shape_err(inp, c.len()));
            }
        }
        self.coef.clear();
        self.nz.clear();
        // a template whose coefficient is zero in every lane adds nothing to any lane
        self.tix.clear();
        for t in 0..nt {
            let nz: [bool; LANES] = std::array::from_fn(|r| coeffs[r][t] != 0.0);
            if nz.iter().any(|&b| b) {
                self.tix.push(t);
                self.coef.push(std::array::from_fn(|r| coeffs[r][t]));
                self.nz.push(nz);
            }
        }
        Ok(())
    }

    /// The dust-emission SEDs with lines of the [`LANES`] realisations `(coeffs[r],
    /// tauv[r])` ([`super::sed::build_sed`] with `dust_emission`, same values): computes
    /// A, M·A and L_abs on the whole grid, from which [`McBatch::synth_absmag`] evaluates
    /// the SED (M·A + L_abs·DUSTFLUX)·Z where the absmag filters read it.
    ///
    /// # Errors
    /// As [`super::sed::build_sed`].
    pub fn build_with_lines(
        &mut self,
        inp: &SedInputs<'_>,
        coeffs: &[&[f64]; LANES],
        tauv: Lanes,
    ) -> Result<(), KernelError> {
        let nw = inp.wave.len();
        self.load_coeffs(inp, coeffs)?;
        if inp.klambda.len() != nw || inp.zfactors.len() != nw || inp.dustflux.len() != nw {
            return Err(KernelError::Shape(format!(
                "attenuate: slice lengths differ {:?}",
                [
                    nw,
                    inp.klambda.len(),
                    inp.zfactors.len(),
                    inp.dustflux.len()
                ]
            )));
        }
        if let Some(t) = tauv.iter().find(|t| !t.is_finite()) {
            return Err(KernelError::NonFinite(format!("attenuation: tauv = {t}")));
        }
        let McBatch {
            atten,
            ma,
            labs,
            tix,
            coef,
            nz,
            finite,
            ..
        } = self;
        let finite = *finite;
        atten.resize(nw * LANES, 0.0);
        ma.resize(nw * LANES, 0.0);
        // A = exp(−τ_V k) of each lane, as `dust::attenuation` computes it
        for (r, row) in atten.chunks_exact_mut(nw).enumerate() {
            fastexp::exp_scaled_into(-tauv[r], inp.klambda, row);
        }
        let atten = &*atten;
        *labs = crate::kernels::simd::dispatch(
            #[inline(always)]
            || {
                if finite {
                    with_lines_impl::<false>(inp, tix, coef, nz, atten, ma)
                } else {
                    with_lines_impl::<true>(inp, tix, coef, nz, atten, ma)
                }
            },
        );
        Ok(())
    }

    /// [`super::kcorr::synth_absmag`] of every lane's SED (after
    /// [`McBatch::build_with_lines`] on the same `inp`), `out[j][r]` for absmag filter j.
    ///
    /// # Errors
    /// Shape mismatches.
    pub fn synth_absmag(
        &mut self,
        inp: &SedInputs<'_>,
        pre: &KcorrPre,
        z: f64,
        dmod: f64,
        out: &mut Vec<Lanes>,
    ) -> Result<(), KernelError> {
        let nabs = pre.out.len();
        out.clear();
        out.resize(nabs, [0.0; LANES]);
        if z <= 0.0 {
            return Ok(());
        }
        let nw = pre.rest_wave.len();
        if self.ma.len() != nw * LANES
            || inp.wave.len() != nw
            || pre
                .out
                .iter()
                .any(|p| p.hi > nw || p.lo >= p.hi || p.resp.len() != p.hi - p.lo)
        {
            return Err(KernelError::Shape(format!(
                "synth_absmag: {nw}-pixel grid, or a filter beyond it"
            )));
        }
        let zp1 = 1.0 + z;
        let McBatch {
            ma, labs, res, sf, ..
        } = self;
        sf.resize(nw * LANES, 0.0);
        res.clear();
        crate::kernels::simd::dispatch(
            #[inline(always)]
            || {
                // the SED where the filters read it, scaled as `synth_absmag` does (once per
                // pixel of the union of their ranges)
                let mut spans: [(usize, usize); 8] = [(0, 0); 8];
                let nsp = union_ranges(pre.out.iter().map(|p| (p.lo, p.hi)), &mut spans);
                for &(lo, hi) in &spans[..nsp] {
                    let df = &inp.dustflux[lo..hi];
                    let zf = &inp.zfactors[lo..hi];
                    let mas = &ma[lo * LANES..hi * LANES];
                    let sfs = &mut sf[lo * LANES..hi * LANES];
                    for (((o, m), &d), &z) in sfs
                        .chunks_exact_mut(LANES)
                        .zip(mas.chunks_exact(LANES))
                        .zip(df)
                        .zip(zf)
                    {
                        for r in 0..LANES {
                            o[r] = (m[r] + labs[r] * d) * z * zp1 / FLUXNORM;
                        }
                    }
                }
                for p in &pre.out {
                    let (lo, hi) = (p.lo, p.hi);
                    let sfs = &sf[lo * LANES..hi * LANES];
                    res.push(trapz_lanes(&pre.rest_wave[lo..hi], &p.resp, sfs));
                }
            },
        );
        for (o, (p, r)) in out.iter_mut().zip(pre.out.iter().zip(res.iter())) {
            for l in 0..LANES {
                let m = 0.5 * r[l] * p.idenom;
                o[l] = -2.5 * m.log10() - dmod;
            }
        }
        Ok(())
    }

    /// [`super::sed::build_sed_nodust_ranges`] of every lane (coefficients `coeffs[r]` on the
    /// line-free templates of `inp`, the attenuation of the last
    /// [`McBatch::build_with_lines`]) into `outs[r]`: the same values on `ranges`; elsewhere
    /// zero when `outs[r]` did not hold `nw` values, otherwise left as they were.
    ///
    /// # Errors
    /// As [`super::sed::build_sed_nodust_ranges`].
    pub fn nodust_ranges(
        &mut self,
        inp: &SedInputs<'_>,
        coeffs: &[&[f64]; LANES],
        ranges: &[Range<usize>],
        outs: &mut [Vec<f64>; LANES],
    ) -> Result<(), KernelError> {
        let nw = inp.wave.len();
        self.load_coeffs(inp, coeffs)?;
        if self.atten.len() != nw * LANES
            || inp.zfactors.len() != nw
            || ranges.iter().any(|r| r.end > nw)
        {
            return Err(shape_err(inp, coeffs[0].len()));
        }
        for o in outs.iter_mut() {
            if o.len() != nw {
                o.clear();
                o.resize(nw, 0.0);
            }
        }
        let McBatch {
            atten,
            tix,
            coef,
            nz,
            finite,
            ..
        } = self;
        let finite = *finite;
        crate::kernels::simd::dispatch(
            #[inline(always)]
            || {
                let [o0, o1, o2, o3] = outs;
                for rg in ranges {
                    for i in rg.clone() {
                        let m = if finite {
                            template_sum_at::<false>(inp.flux, nw, i, tix, coef, nz)
                        } else {
                            template_sum_at::<true>(inp.flux, nw, i, tix, coef, nz)
                        };
                        let z = inp.zfactors[i];
                        let v: Lanes = std::array::from_fn(|r| m[r] * (atten[r * nw + i] * z));
                        o0[i] = v[0];
                        o1[i] = v[1];
                        o2[i] = v[2];
                        o3[i] = v[3];
                    }
                }
            },
        );
        Ok(())
    }
}

/// Σ_t c_t F_t(i) per lane, from +0.0 in template order, skipping zero coefficients:
/// with `MASK` a zero coefficient adds −0.0; without (all templates finite) it adds
/// c·F = ±0, which leaves a sum that started at +0.0 unchanged (module docs).
#[inline(always)]
fn template_sum_at<const MASK: bool>(
    flux: &[f64],
    nw: usize,
    i: usize,
    tix: &[usize],
    coef: &[Lanes],
    nz: &[[bool; LANES]],
) -> Lanes {
    let mut m = [0.0f64; LANES];
    for ((&t, c), k) in tix.iter().zip(coef).zip(nz) {
        let f = flux[t * nw + i];
        for r in 0..LANES {
            let v = c[r] * f;
            m[r] += if MASK && !k[r] { -0.0 } else { v };
        }
    }
    m
}

/// Pixels per block of [`with_lines_impl`].
const BLOCK: usize = 128;

/// The body of [`McBatch::build_with_lines`] (`atten` = A of lane r at `r·nw + i`, already
/// computed); returns L_abs per lane.
#[inline(always)]
fn with_lines_impl<const MASK: bool>(
    inp: &SedInputs<'_>,
    tix: &[usize],
    coef: &[Lanes],
    nz: &[[bool; LANES]],
    atten: &[f64],
    ma: &mut [f64],
) -> Lanes {
    let nw = inp.wave.len();
    let w = inp.wave;
    let rows: [&[f64]; LANES] = std::array::from_fn(|r| &atten[r * nw..(r + 1) * nw]);
    let mut mb = [[0.0f64; LANES]; BLOCK];
    let mut prev = [0.0f64; LANES];
    let mut labs = [0.0f64; LANES];
    let mut b0 = 0;
    while b0 < nw {
        let b1 = (b0 + BLOCK).min(nw);
        let mb = &mut mb[..b1 - b0];
        // M = Σ_t c_t F_t on the block, template by template
        mb.fill([0.0; LANES]);
        for ((&t, c), k) in tix.iter().zip(coef).zip(nz) {
            for (m, &f) in mb.iter_mut().zip(&inp.flux[t * nw + b0..t * nw + b1]) {
                for r in 0..LANES {
                    let v = c[r] * f;
                    m[r] += if MASK && !k[r] { -0.0 } else { v };
                }
            }
        }
        // M·A and the trapezoid of d = M − M·A (`dust::attenuate`)
        for (j, m) in mb.iter().enumerate() {
            let i = b0 + j;
            let a: Lanes = std::array::from_fn(|r| rows[r][i]);
            let mai = &mut ma[i * LANES..(i + 1) * LANES];
            if i == 0 {
                for r in 0..LANES {
                    let v = m[r] * a[r];
                    prev[r] = m[r] - v;
                    mai[r] = v;
                }
                continue;
            }
            let h = w[i] - w[i - 1];
            for r in 0..LANES {
                let v = m[r] * a[r];
                let d = m[r] - v;
                mai[r] = v;
                labs[r] += h * (d + prev[r]);
                prev[r] = d;
            }
        }
        b0 = b1;
    }
    std::array::from_fn(|r| labs[r] * 0.5)
}

/// The union of the index ranges `rs` as sorted disjoint ranges in `out` (at most
/// `out.len()`; with more, the hull of all); returns how many.
fn union_ranges(rs: impl Iterator<Item = (usize, usize)>, out: &mut [(usize, usize)]) -> usize {
    let mut v: Vec<(usize, usize)> = rs.filter(|r| r.0 < r.1).collect();
    v.sort_unstable();
    let mut n = 0;
    for (lo, hi) in v {
        if n > 0 && lo <= out[n - 1].1 {
            out[n - 1].1 = out[n - 1].1.max(hi);
        } else if n < out.len() {
            out[n] = (lo, hi);
            n += 1;
        } else {
            out[n - 1].1 = out[n - 1].1.max(hi);
        }
    }
    n
}

/// The sequential trapezoid Σ_k (w_k − w_{k−1})·(r_k f_k + r_{k−1} f_{k−1}) of every lane of
/// `f` (`LANES` values per pixel), as `synthphot::FilterPre::maggies_with` sums it (before
/// the ½ and the normalisation).
#[inline(always)]
fn trapz_lanes(w: &[f64], resp: &[f64], f: &[f64]) -> Lanes {
    let mut acc = [0.0f64; LANES];
    let n = w.len().min(resp.len()).min(f.len() / LANES);
    if n == 0 {
        return acc;
    }
    let mut prev: Lanes = std::array::from_fn(|r| resp[0] * f[r]);
    for ((ww, &rk), fk) in w[..n]
        .windows(2)
        .zip(&resp[1..n])
        .zip(f[LANES..n * LANES].chunks_exact(LANES))
    {
        let dw = ww[1] - ww[0];
        for r in 0..LANES {
            let cur = rk * fk[r];
            acc[r] += dw * (cur + prev[r]);
            prev[r] = cur;
        }
    }
    acc
}
