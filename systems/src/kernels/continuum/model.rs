//! Per-target photometric forward model of the continuum (SPEC §3.3–§3.5, §4.2, §4.3
//! steps 1–2), split into what does not depend on τ_V (computed once per target) and
//! the cheap per-τ_V design-matrix fill used inside Brent.
//!
//! For kept template t (flux F_t on the rest grid, already convolved to the nominal
//! σ), attenuation A = exp(−τ_V k), zfactors Z and energy-balance dust emission
//! d_t = ∫F_t − Σ F_t·A·w_trapz (DUSTFLUX D), the observed model is
//! φ_t = F_t·A·Z + d_t·D·Z on λ(1+z). Band b synthesises it through the trapezoid-weighted
//! response r̃_b on [lo_b, hi_b) and converts to f_λ at λ_eff (factor p_b =
//! idenom_b·10^(−19.44)·c·1e13/λ_eff²), so
//!
//! ```text
//! M[b, t](τ) = Σ_j G[b, t, j]·A[lo_b + j] + d_t(τ)·H[b],
//! G[b, t, j] = F_t·Z·r̃_b·p_b,   H[b] = Σ_j D·Z·r̃_b·p_b.
//! ```
//!
//! G, H and ∫F_t are pre-computed; a fill costs nwave exponentials plus nT·nwave and
//! nT·Σ_b(hi_b − lo_b) multiply–adds, without allocation.

use crate::kernels::dust;
use crate::kernels::filters::FilterCurve;
use crate::kernels::igm::Inoue14;
use crate::kernels::synthphot::{photflam_factor, FilterPre};
use crate::kernels::KernelError;

/// FLUXNORM (1e17): models and data in 1e-17 erg s⁻¹ cm⁻² Å⁻¹.
pub const FLUXNORM: f64 = 1e17;
/// MASSNORM (1e10 M☉): template coefficients in units of 10¹⁰ M☉ formed.
pub const MASSNORM: f64 = 1e10;

/// Rest-frame template arrays a fit reads (flat `[ntemplate][nwave]`).
#[derive(Debug, Clone, Copy)]
pub struct TemplateArrays<'a> {
    /// Rest wavelengths, Å.
    pub wave: &'a [f64],
    /// k(λ) = (λ/5500)^−0.7.
    pub klambda: &'a [f64],
    /// Dust-emission spectrum.
    pub dustflux: &'a [f64],
    /// Fitted template fluxes (e.g. `flux_nomvdisp`).
    pub flux: &'a [f64],
    /// Line-free template fluxes (e.g. `flux_nolines_nomvdisp`).
    pub flux_nolines: &'a [f64],
}

impl TemplateArrays<'_> {
    /// Number of wavelengths.
    pub fn nwave(&self) -> usize {
        self.wave.len()
    }
    fn row<'b>(&self, arr: &'b [f64], t: usize) -> &'b [f64] {
        let n = self.nwave();
        &arr[t * n..(t + 1) * n]
    }
}

/// The τ_V-independent part of one target's photometric model.
#[derive(Debug, Clone)]
pub struct PhotModel {
    /// Template indices fitted (agekeep).
    pub rows: Vec<usize>,
    /// Observed-frame template grid λ(1+z), Å.
    pub zwave: Vec<f64>,
    /// zfactors Z on `zwave` (IGM × distance × 1e27/(1+z)).
    pub zfactors: Vec<f64>,
    /// Trapezoid weights on the rest grid.
    pub trapz_w: Vec<f64>,
    /// ∫F_t dλ (rest) per kept template.
    pub integ: Vec<f64>,
    /// [lo, hi) of each band on the grid.
    pub ranges: Vec<(usize, usize)>,
    /// Start of band b's block `[nT][hi−lo]` in `g`.
    pub offsets: Vec<usize>,
    /// G[b, t, j] (see the module docs).
    pub g: Vec<f64>,
    /// H[b].
    pub h: Vec<f64>,
    /// f_λ per maggie at each band's λ_eff (for reference).
    pub lambda_eff: Vec<f64>,
}

impl PhotModel {
    /// Pre-compute the model of the templates `rows` at redshift `z` with luminosity
    /// distance `dlum_mpc` through `filters`.
    ///
    /// # Errors
    /// A filter not covered by λ(1+z), a non-positive distance, or bad shapes.
    pub fn new(
        tpl: &TemplateArrays<'_>,
        rows: &[usize],
        z: f64,
        dlum_mpc: f64,
        igm: &Inoue14,
        filters: &[FilterCurve],
    ) -> Result<Self, KernelError> {
        Self::with_fluxnorm(tpl, rows, z, dlum_mpc, igm, filters, FLUXNORM)
    }

    /// [`PhotModel::new`] with the data's flux normalisation (1 for stacks, SPEC §3.4).
    ///
    /// # Errors
    /// As [`PhotModel::new`].
    pub fn with_fluxnorm(
        tpl: &TemplateArrays<'_>,
        rows: &[usize],
        z: f64,
        dlum_mpc: f64,
        igm: &Inoue14,
        filters: &[FilterCurve],
        fluxnorm: f64,
    ) -> Result<Self, KernelError> {
        let nw = tpl.nwave();
        let ntot = tpl.flux.len() / nw.max(1);
        if nw == 0
            || tpl.flux.len() != ntot * nw
            || tpl.flux_nolines.len() != tpl.flux.len()
            || tpl.klambda.len() != nw
            || tpl.dustflux.len() != nw
        {
            return Err(KernelError::Shape("template arrays".into()));
        }
        if rows.iter().any(|&r| r >= ntot) {
            return Err(KernelError::Shape("template row out of range".into()));
        }
        let zwave: Vec<f64> = tpl.wave.iter().map(|w| w * (1.0 + z)).collect();
        let mut zf = vec![0.0; nw];
        dust::zfactors(igm, z, dlum_mpc, fluxnorm, MASSNORM, &zwave, &mut zf)?;
        let mut tw = vec![0.0; nw];
        dust::trapz_weights(tpl.wave, &mut tw)?;
        let integ = rows
            .iter()
            .map(|&t| {
                tpl.row(tpl.flux, t)
                    .iter()
                    .zip(&tw)
                    .map(|(f, w)| f * w)
                    .sum()
            })
            .collect();
        let nt = rows.len();
        let (mut ranges, mut offsets, mut g, mut h, mut leff) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut rtw = Vec::new();
        for f in filters {
            let pre = FilterPre::new(f, &zwave)?;
            pre.trapz_weights(&zwave, &mut rtw);
            let p = pre.idenom * photflam_factor(f.lambda_eff);
            ranges.push((pre.lo, pre.hi));
            offsets.push(g.len());
            for &t in rows {
                let ft = &tpl.row(tpl.flux, t)[pre.lo..pre.hi];
                g.extend(
                    ft.iter()
                        .zip(&zf[pre.lo..pre.hi])
                        .zip(&rtw)
                        .map(|((fv, zv), r)| fv * zv * r * p),
                );
            }
            h.push(
                tpl.dustflux[pre.lo..pre.hi]
                    .iter()
                    .zip(&zf[pre.lo..pre.hi])
                    .zip(&rtw)
                    .map(|((d, zv), r)| d * zv * r * p)
                    .sum(),
            );
            leff.push(f.lambda_eff);
        }
        debug_assert_eq!(
            g.len(),
            ranges.iter().map(|(l, h)| (h - l) * nt).sum::<usize>()
        );
        Ok(PhotModel {
            rows: rows.to_vec(),
            zwave,
            zfactors: zf,
            trapz_w: tw,
            integ,
            ranges,
            offsets,
            g,
            h,
            lambda_eff: leff,
        })
    }

    /// Number of fitted templates.
    pub fn ntemplate(&self) -> usize {
        self.rows.len()
    }

    /// Number of bands.
    pub fn nband(&self) -> usize {
        self.ranges.len()
    }

    /// Fill the model-photometry matrix at τ_V, column-major `m[t·nband + b]` (f_λ per unit
    /// coefficient, 1e-17 units), using `atten` (nwave) and `d` (nT) as scratch; dust
    /// emission on. Returns nothing; `d` holds the d_t afterwards.
    pub fn fill(
        &self,
        tpl: &TemplateArrays<'_>,
        tauv: f64,
        atten: &mut [f64],
        d: &mut [f64],
        m: &mut [f64],
    ) {
        let (nb, nt) = (self.nband(), self.ntemplate());
        // τ_V is finite here (Brent's iterates); the shapes were checked at construction.
        let _ = dust::attenuation(tauv, tpl.klambda, atten);
        for (i, &t) in self.rows.iter().enumerate() {
            let ft = tpl.row(tpl.flux, t);
            let s: f64 = ft
                .iter()
                .zip(atten.iter())
                .zip(&self.trapz_w)
                .map(|((f, a), w)| f * (a * w))
                .sum();
            d[i] = self.integ[i] - s;
        }
        for b in 0..nb {
            let (lo, hi) = self.ranges[b];
            let len = hi - lo;
            let a = &atten[lo..hi];
            for i in 0..nt {
                let gi = &self.g[self.offsets[b] + i * len..self.offsets[b] + (i + 1) * len];
                let s: f64 = gi.iter().zip(a).map(|(x, y)| x * y).sum();
                m[i * nb + b] = s + d[i] * self.h[b];
            }
        }
    }

    /// The best-fit observed SED Σ c_t φ_t on `zwave` (dust emission on), into `out`.
    pub fn sed(&self, tpl: &TemplateArrays<'_>, coeff: &[f64], tauv: f64, out: &mut [f64]) {
        self.combine(tpl, tpl.flux, coeff, out);
        let mut a = vec![0.0; out.len()];
        let _ = dust::attenuation(tauv, tpl.klambda, &mut a);
        // shapes were validated at construction
        let _ = dust::attenuate(out, &a, &self.zfactors, tpl.wave, tpl.dustflux);
    }

    /// The line-free observed SED (Σ c_t F^nl_t)·A·Z (no dust emission), into `out`.
    pub fn sed_nolines(&self, tpl: &TemplateArrays<'_>, coeff: &[f64], tauv: f64, out: &mut [f64]) {
        self.combine(tpl, tpl.flux_nolines, coeff, out);
        let mut a = vec![0.0; out.len()];
        let _ = dust::attenuation(tauv, tpl.klambda, &mut a);
        let _ = dust::attenuate_nodust(out, &a, &self.zfactors);
    }

    /// [`Self::sed_nolines`] on the grid pixels `range` only (the rest of `out` is left
    /// untouched): the same sums in the same order, so equal values on `range`.
    pub fn sed_nolines_range(
        &self,
        tpl: &TemplateArrays<'_>,
        coeff: &[f64],
        tauv: f64,
        range: std::ops::Range<usize>,
        out: &mut [f64],
    ) {
        let o = &mut out[range.clone()];
        o.fill(0.0);
        for (i, &t) in self.rows.iter().enumerate() {
            let c = coeff[i];
            for (v, f) in o
                .iter_mut()
                .zip(&tpl.row(tpl.flux_nolines, t)[range.clone()])
            {
                *v += c * f;
            }
        }
        let m = -tauv;
        for ((v, &k), &z) in o
            .iter_mut()
            .zip(&tpl.klambda[range.clone()])
            .zip(&self.zfactors[range])
        {
            *v *= crate::kernels::fastexp::exp(m * k) * z;
        }
    }

    fn combine(&self, tpl: &TemplateArrays<'_>, arr: &[f64], coeff: &[f64], out: &mut [f64]) {
        out.fill(0.0);
        for (i, &t) in self.rows.iter().enumerate() {
            let c = coeff[i];
            for (o, f) in out.iter_mut().zip(tpl.row(arr, t)) {
                *o += c * f;
            }
        }
    }
}
