//! The spectroscopic forward model of the continuum and the joint spectro-photometric
//! VARPRO solver of fastspec (SPEC §3.3–§3.5, §4.3, §4.4).
//!
//! # The operator L = R·rebin
//! Per camera, trapezoidal rebinning of the observed-frame template grid λ(1+z) onto the
//! camera pixels ([`crate::kernels::rebin::trapz_rebin`], including its right-bisection
//! [QUIRK] on the first bin) followed by the raw resolution matrix R is one linear map
//! from the template grid to the camera pixels. [`SpecOperator`] stores it once per target
//! as banded rows (row i: a contiguous run of template pixels and their weights, ≈ 12–15
//! entries for DESI), so that the model of any template-grid spectrum y is L·y, any row
//! window can be evaluated alone (the σ fit only needs the 3800–6000 Å rest window) and the
//! template-grid range the spectrum depends on is known. The weights are the rebin's
//! trapezoid coefficients multiplied through R: equal to rebin-then-R up to rounding.
//!
//! # What is cached per template set (and why)
//! For template t (already vdisp-convolved, rest frame), attenuation A = exp(−τk), zfactors Z
//! and dust emission D (energy balance, d_t(τ) = ∫F_t − Σ_j F_tj A_j w_j):
//!
//! ```text
//! Ψ_s[i, t](τ) = istd_i · ( Σ_j L_ij (F_tj Z_j) A_j(τ) + d_t(τ) · (L·(D Z))_i )
//! ```
//!
//! Dust attenuation multiplies in the rest frame *before* the (linear) rebinning, so nothing
//! τ-dependent can be moved through L; what is cached ([`SpecBasis`]) is every τ-independent
//! factor: F_t·Z on the template range L reads, F_t·w (trapezoid weights, for d_t), ∫F_t and
//! the dust-emission column L·(D Z). A design fill then costs the exponentials on the range
//! (the full grid only with dust emission), nT·range multiplies and nT·nnz(L) multiply–adds.
//! Only rows with weight > 0 enter the design ("active rows": line-masked and ivar = 0
//! pixels and pixels outside the σ-fit window are zero rows in FastSpecFit, which changes
//! neither the NNLS solution nor χ²), and photometric rows only for bands with ivar > 0.
//!
//! The photometric rows reuse [`PhotModel`]'s pre-computed G/H arrays (built from the same
//! template set), evaluated with this module's attenuation and d_t.
//!
//! # Joint VARPRO (SPEC §4.3)
//! [`varpro_joint`]: bounded Brent over τ_V ∈ [0, 2] (xatol 1e-4) with NNLS of
//! [Ψ_s; Ψ_p] against [specflux·istd; objflam·objflamistd] at each trial τ (spectral rows
//! first); NNLS failure → χ² = +∞ inside Brent and zero coefficients in the final solve.
//! All scratch lives in a [`JointWorkspace`] (no allocation per evaluation).

#![allow(
    clippy::needless_range_loop,
    reason = "index loops over several same-length vectors in the numeric kernels"
)]
use super::model::PhotModel;
use super::varpro::{TAUV_BOUNDS, TAUV_XATOL};
use crate::kernels::brent::{minimize_bounded, BoundedOptions};
use crate::kernels::nnls::householder::dot;
use crate::kernels::nnls::{nnls, MatRef, NnlsOptions, NnlsWorkspace};
use crate::kernels::rebin::centers2edges;
use crate::kernels::KernelError;

/// One kept camera of a target, as the continuum fit reads it.
#[derive(Debug, Clone, Copy)]
pub struct CameraData<'a> {
    /// Observed wavelengths, Å (increasing).
    pub wave: &'a [f64],
    /// Dereddened flux, 1e-17 erg s⁻¹ cm⁻² Å⁻¹.
    pub flux: &'a [f64],
    /// Dereddened, floored inverse variance (no line mask).
    pub ivar: &'a [f64],
    /// Emission-line mask (true = affected by a line).
    pub linemask: &'a [bool],
    /// Number of diagonals of the raw resolution matrix.
    pub res_ndiag: usize,
    /// Raw resolution matrix R, DIA `[ndiag][npix]`.
    pub res: &'a [f64],
}

/// L = R·rebin of one camera as banded rows over the template grid.
#[derive(Debug, Clone, Default)]
pub(super) struct BandRows {
    /// First template pixel of each row.
    pub(super) start: Vec<usize>,
    /// Row r's weights are `w[off[r]..off[r + 1]]`.
    pub(super) off: Vec<usize>,
    pub(super) w: Vec<f64>,
}

/// The rebin+resolution operator of all kept cameras of one target (see the module docs).
#[derive(Debug, Clone)]
pub struct SpecOperator {
    pub(super) rows: BandRows,
    /// `[start, end)` of each camera in the hstacked pixel array.
    pub camerapix: Vec<(usize, usize)>,
    /// Total number of pixels.
    pub npix: usize,
    /// Template-grid range `[jlo, jhi)` any row reads.
    pub jlo: usize,
    /// See `jlo`.
    pub jhi: usize,
}

/// y-value of the trapezoid rebin as a combination of (at most) two nodes.
#[derive(Clone, Copy)]
struct Lin {
    j: usize,
    a: f64,
    b: f64,
}

/// Rebin weights of `x` onto the bins `edges`, as FastSpecFit's `trapz_rebin` evaluates them
/// (right-bisection start [QUIRK]); row i → (first node, weights) appended to `rows`.
fn rebin_rows(x: &[f64], edges: &[f64], rows: &mut BandRows) -> Result<(), KernelError> {
    let n = x.len();
    let nb = edges.len() - 1;
    if !(edges[0] >= x[0] && x[n - 1] >= edges[nb]) {
        return Err(KernelError::Domain(format!(
            "trapz_rebin: edges [{}, {}] must lie within x range [{}, {}]",
            edges[0],
            edges[nb],
            x[0],
            x[n - 1]
        )));
    }
    let mut j = x.partition_point(|&v| v <= edges[0]);
    if j + 1 >= n {
        return Err(KernelError::Domain(
            "trapz_rebin: first edge leaves no node segment above it".into(),
        ));
    }
    let at = |e: f64, j: usize| {
        let s = (e - x[j]) / (x[j + 1] - x[j]);
        Lin {
            j,
            a: 1.0 - s,
            b: s,
        }
    };
    let mut xlo = edges[0];
    let mut ylo = at(xlo, j);
    let mut acc: Vec<(usize, f64)> = Vec::with_capacity(16);
    for i in 0..nb {
        let ehi = edges[i + 1];
        acc.clear();
        let add = |l: Lin, f: f64, acc: &mut Vec<(usize, f64)>| {
            acc.push((l.j, f * l.a));
            acc.push((l.j + 1, f * l.b));
        };
        while j + 2 < n && x[j + 1] < ehi {
            let yhi = Lin {
                j: j + 1,
                a: 1.0,
                b: 0.0,
            };
            let f = x[j + 1] - xlo;
            add(yhi, f, &mut acc);
            add(ylo, f, &mut acc);
            xlo = x[j + 1];
            ylo = yhi;
            j += 1;
        }
        let yhi = at(ehi, j);
        let f = ehi - xlo;
        add(yhi, f, &mut acc);
        add(ylo, f, &mut acc);
        xlo = ehi;
        ylo = yhi;
        let scale = 0.5 * (1.0 / (ehi - edges[i]));
        let j0 = acc.iter().map(|p| p.0).min().unwrap_or(0);
        let j1 = acc.iter().map(|p| p.0).max().unwrap_or(0) + 1;
        let base = rows.w.len();
        rows.w.resize(base + (j1 - j0), 0.0);
        for &(k, v) in &acc {
            rows.w[base + k - j0] += v * scale;
        }
        rows.start.push(j0);
        rows.off.push(rows.w.len());
    }
    Ok(())
}

impl SpecOperator {
    /// Build L for the observed template grid `zwave` and the cameras (wavelengths and raw
    /// resolution matrices).
    ///
    /// # Errors
    /// [`KernelError::Shape`] for inconsistent lengths or an even/zero `res_ndiag`;
    /// [`KernelError::Domain`] if a camera is not covered by `zwave`.
    pub fn new(zwave: &[f64], cameras: &[CameraData<'_>]) -> Result<Self, KernelError> {
        if zwave.len() < 2 {
            return Err(KernelError::Shape("template grid too short".into()));
        }
        let mut rows = BandRows {
            start: vec![],
            off: vec![0],
            w: vec![],
        };
        let mut camerapix = Vec::with_capacity(cameras.len());
        let mut npix = 0;
        let mut edges = Vec::new();
        for cam in cameras {
            let n = cam.wave.len();
            let nd = cam.res_ndiag;
            if n < 2 || nd % 2 == 0 || cam.res.len() != nd * n {
                return Err(KernelError::Shape(format!(
                    "camera with {n} pixels and a {nd}-diagonal resolution of {} values",
                    cam.res.len()
                )));
            }
            edges.resize(n + 1, 0.0);
            centers2edges(cam.wave, &mut edges)?;
            let mut rb = BandRows {
                start: vec![],
                off: vec![0],
                w: vec![],
            };
            rebin_rows(zwave, &edges, &mut rb)?;
            // L row i = Σ_k R[i, k] · rebin row k, R[i, k] = D[w2 + i − k, k].
            let w2 = nd / 2;
            for i in 0..n {
                let k0 = i.saturating_sub(w2);
                let k1 = (i + w2 + 1).min(n);
                let j0 = (k0..k1).map(|k| rb.start[k]).min().unwrap_or(0);
                let j1 = (k0..k1)
                    .map(|k| rb.start[k] + rb.off[k + 1] - rb.off[k])
                    .max()
                    .unwrap_or(0);
                let base = rows.w.len();
                rows.w.resize(base + (j1 - j0), 0.0);
                for k in k0..k1 {
                    let r = cam.res[(w2 + i - k) * n + k];
                    if r == 0.0 {
                        continue;
                    }
                    let s = rb.start[k] - j0;
                    for (q, &v) in rb.w[rb.off[k]..rb.off[k + 1]].iter().enumerate() {
                        rows.w[base + s + q] += r * v;
                    }
                }
                rows.start.push(j0);
                rows.off.push(rows.w.len());
            }
            camerapix.push((npix, npix + n));
            npix += n;
        }
        let jlo = rows.start.iter().copied().min().unwrap_or(0);
        let jhi = (0..npix)
            .map(|r| rows.start[r] + rows.off[r + 1] - rows.off[r])
            .max()
            .unwrap_or(0);
        Ok(SpecOperator {
            rows,
            camerapix,
            npix,
            jlo,
            jhi,
        })
    }

    /// Number of stored weights of L.
    pub fn nnz(&self) -> usize {
        self.rows.w.len()
    }

    /// (L·y)_i for a template-grid spectrum `y` (full grid), row `i` of the hstacked array.
    #[inline]
    pub fn row_dot(&self, i: usize, y: &[f64]) -> f64 {
        let s = self.rows.start[i];
        let w = &self.rows.w[self.rows.off[i]..self.rows.off[i + 1]];
        w.iter().zip(&y[s..s + w.len()]).map(|(a, b)| a * b).sum()
    }

    /// The operator of the hstacked pixels `pix` only (rows renumbered from 0, cameras
    /// clipped to `pix`, `[jlo, jhi)` the range those rows read): each row's weights and
    /// template pixels are unchanged, so a fit restricted to `pix` gives the same values.
    ///
    /// # Errors
    /// [`KernelError::Shape`] if `pix` is empty or beyond the pixels.
    pub fn rows_subset(&self, pix: std::ops::Range<usize>) -> Result<SpecOperator, KernelError> {
        if pix.start >= pix.end || pix.end > self.npix {
            return Err(KernelError::Shape(format!(
                "operator rows {pix:?} of {} pixels",
                self.npix
            )));
        }
        let r = &self.rows;
        let (o0, o1) = (r.off[pix.start], r.off[pix.end]);
        let rows = BandRows {
            start: r.start[pix.clone()].to_vec(),
            off: r.off[pix.start..=pix.end].iter().map(|o| o - o0).collect(),
            w: r.w[o0..o1].to_vec(),
        };
        let mut jlo = usize::MAX;
        let mut jhi = 0;
        for (k, &st) in rows.start.iter().enumerate() {
            jlo = jlo.min(st);
            jhi = jhi.max(st + rows.off[k + 1] - rows.off[k]);
        }
        let camerapix = self
            .camerapix
            .iter()
            .filter_map(|&(a, b)| {
                let (a, b) = (a.max(pix.start), b.min(pix.end));
                (a < b).then(|| (a - pix.start, b - pix.start))
            })
            .collect();
        Ok(SpecOperator {
            rows,
            camerapix,
            npix: pix.end - pix.start,
            jlo,
            jhi: jhi.max(jlo),
        })
    }

    /// Template-grid range `[jlo, jhi)` the operator reads.
    pub fn range(&self) -> (usize, usize) {
        (self.jlo, self.jhi)
    }

    /// out = L·y for a full-grid `y` (`out.len() == npix`): FastSpecFit's
    /// `continuum_to_spectroscopy`.
    ///
    /// # Errors
    /// [`KernelError::Shape`] if `y` does not reach `jhi` or `out` is not `npix` long.
    pub fn apply(&self, y: &[f64], out: &mut [f64]) -> Result<(), KernelError> {
        if y.len() < self.jhi || out.len() != self.npix {
            return Err(KernelError::Shape(format!(
                "spectral operator: {} template values (need {}), {} outputs (need {})",
                y.len(),
                self.jhi,
                out.len(),
                self.npix
            )));
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.row_dot(i, y);
        }
        Ok(())
    }
}

/// The τ-independent part of the spectral design for one template set (see module docs).
#[derive(Debug, Clone)]
pub struct SpecBasis {
    pub(super) nt: usize,
    /// F_t·Z on `[jlo, jhi)`, interleaved `[jhi − jlo][nt]` (one row read gives all
    /// templates).
    pub(super) fz: Vec<f64>,
    /// F_t·w (trapezoid weights), full grid `[nt][nwave]` (dust emission only).
    fw: Vec<f64>,
    /// ∫F_t dλ.
    integ: Vec<f64>,
    /// (L·(D Z))_i, `[npix]` (dust emission only).
    pub(super) ldz: Vec<f64>,
    pub(super) dust_emission: bool,
}

impl SpecBasis {
    /// Cache template set `flux` (`[nt][nwave]`, rest frame, already convolved) for `op`.
    /// `trapz_w` are the trapezoid weights of the rest grid, `zfactors` Z, `dustflux` D.
    ///
    /// # Errors
    /// [`KernelError::Shape`] on inconsistent lengths.
    pub fn new(
        op: &SpecOperator,
        flux: &[f64],
        nwave: usize,
        zfactors: &[f64],
        trapz_w: &[f64],
        dustflux: &[f64],
        dust_emission: bool,
    ) -> Result<Self, KernelError> {
        if nwave == 0
            || !flux.len().is_multiple_of(nwave)
            || zfactors.len() != nwave
            || trapz_w.len() != nwave
            || dustflux.len() != nwave
            || op.jhi > nwave
        {
            return Err(KernelError::Shape("spectral basis: template arrays".into()));
        }
        let nt = flux.len() / nwave;
        let (jlo, jhi) = (op.jlo, op.jhi);
        let nr = jhi - jlo;
        let mut fz = vec![0.0; nt * nr];
        for t in 0..nt {
            let f = &flux[t * nwave..(t + 1) * nwave];
            for k in 0..nr {
                fz[k * nt + t] = f[jlo + k] * zfactors[jlo + k];
            }
        }
        let mut integ = vec![0.0; nt];
        let mut fw = Vec::new();
        let mut ldz = Vec::new();
        if dust_emission {
            fw = vec![0.0; nt * nwave];
            for t in 0..nt {
                let f = &flux[t * nwave..(t + 1) * nwave];
                let mut s = 0.0;
                for j in 0..nwave {
                    let v = f[j] * trapz_w[j];
                    fw[t * nwave + j] = v;
                    s += v;
                }
                integ[t] = s;
            }
            let dz: Vec<f64> = dustflux.iter().zip(zfactors).map(|(d, z)| d * z).collect();
            ldz = vec![0.0; op.npix];
            op.apply(&dz, &mut ldz)?;
        }
        Ok(SpecBasis {
            nt,
            fz,
            fw,
            integ,
            ldz,
            dust_emission,
        })
    }

    /// Number of templates.
    pub fn ntemplate(&self) -> usize {
        self.nt
    }
}

/// Scratch of [`varpro_joint`] and the design fills (one per thread).
#[derive(Debug, Clone, Default)]
pub struct JointWorkspace {
    pub(super) atten: Vec<f64>,
    pub(super) d: Vec<f64>,
    fza: Vec<f64>,
    pub(super) psi: Vec<f64>,
    pub(super) b: Vec<f64>,
    c: Vec<f64>,
    pub(super) act: Vec<usize>,
    pub(super) wact: Vec<f64>,
    pub(super) bands: Vec<usize>,
    nnls: NnlsWorkspace,
}

/// The data of one joint fit.
#[derive(Debug, Clone, Copy)]
pub struct JointData<'a> {
    /// Spectral model (operator + basis), or `None` for a photometry-only fit.
    pub spec: Option<(&'a SpecOperator, &'a SpecBasis)>,
    /// Spectrum (hstacked) and its per-pixel weights (√ivar, possibly × fitmask or
    /// /apercorr).
    pub specflux: &'a [f64],
    /// See `specflux`.
    pub specistd: &'a [f64],
    /// Photometric model of the same template set (dust emission on), or `None`.
    pub phot: Option<&'a PhotModel>,
    /// Photometry (1e-17 units) and √ivar.
    pub objflam: &'a [f64],
    /// See `objflam`.
    pub objflamistd: &'a [f64],
    /// Klambda of the rest grid (full).
    pub klambda: &'a [f64],
}

/// Result of [`varpro_joint`].
#[derive(Debug, Clone, PartialEq)]
pub struct JointFit {
    /// Best τ_V.
    pub tauv: f64,
    /// Coefficients (zeros if the final NNLS failed).
    pub coeff: Vec<f64>,
    /// χ² of the spectral rows.
    pub chi2_spec: f64,
    /// χ² of the photometric rows.
    pub chi2_phot: f64,
    /// Brent evaluations.
    pub nfev: usize,
}

impl JointData<'_> {
    pub(super) fn nt(&self) -> usize {
        match (self.spec, self.phot) {
            (Some((_, b)), _) => b.nt,
            (None, Some(p)) => p.ntemplate(),
            _ => 0,
        }
    }
    fn dust_emission(&self) -> bool {
        self.spec.is_some_and(|(_, b)| b.dust_emission)
    }
}

/// Set up the active rows and the data vector b (spectral rows first); returns the
/// number of spectral rows.
pub(super) fn setup(data: &JointData<'_>, ws: &mut JointWorkspace) -> Result<usize, KernelError> {
    ws.act.clear();
    ws.wact.clear();
    ws.bands.clear();
    ws.b.clear();
    if let Some((op, _)) = data.spec {
        if data.specflux.len() != op.npix || data.specistd.len() != op.npix {
            return Err(KernelError::Shape(format!(
                "joint fit: {} pixels, {} fluxes, {} weights",
                op.npix,
                data.specflux.len(),
                data.specistd.len()
            )));
        }
        for i in 0..op.npix {
            let v = data.specflux[i] * data.specistd[i];
            if !v.is_finite() {
                return Err(KernelError::NonFinite(
                    "non-finite values in the spectroscopic fit vector".into(),
                ));
            }
            if data.specistd[i] != 0.0 {
                ws.act.push(i);
                ws.wact.push(data.specistd[i]);
                ws.b.push(v);
            }
        }
    }
    let ns = ws.act.len();
    if let Some(p) = data.phot {
        let nb = p.nband();
        if data.objflam.len() != nb || data.objflamistd.len() != nb {
            return Err(KernelError::Shape("joint fit: photometry lengths".into()));
        }
        for b in 0..nb {
            let v = data.objflam[b] * data.objflamistd[b];
            if !v.is_finite() {
                return Err(KernelError::NonFinite(
                    "non-finite values in the photometric fit vector".into(),
                ));
            }
            if data.objflamistd[b] != 0.0 {
                ws.bands.push(b);
                ws.b.push(v);
            }
        }
    }
    Ok(ns)
}

/// Fill the design Ψ (column-major, `m = act + bands` rows) at τ into `ws.psi`.
pub(super) fn fill(data: &JointData<'_>, tauv: f64, ws: &mut JointWorkspace) {
    let nt = data.nt();
    let ns = ws.act.len();
    let m = ns + ws.bands.len();
    let dust = data.dust_emission();
    let nw = data.klambda.len();
    // attenuation: full grid when d_t or photometric rows are needed, else the range only
    let (a0, a1) = match data.spec {
        Some((op, _)) if !dust => (op.jlo, op.jhi),
        _ => (0, nw),
    };
    ws.atten.resize(nw, 0.0);
    attenuation_into(tauv, &data.klambda[a0..a1], &mut ws.atten[a0..a1]);
    ws.d.clear();
    ws.d.resize(nt, 0.0);
    if dust {
        // d_t = ∫F_t − Σ F_t A w (the same for the spectral and photometric rows)
        if let Some((_, basis)) = data.spec {
            for t in 0..nt {
                let fw = &basis.fw[t * nw..(t + 1) * nw];
                let s = dot(fw, &ws.atten);
                ws.d[t] = basis.integ[t] - s;
            }
        }
    }
    ws.psi.resize(m * nt, 0.0);
    if let Some((op, basis)) = data.spec {
        let nr = op.jhi - op.jlo;
        ws.fza.resize(nt * nr, 0.0);
        let a = &ws.atten[op.jlo..op.jhi];
        for ((o, f), av) in ws
            .fza
            .chunks_exact_mut(nt)
            .zip(basis.fz.chunks_exact(nt))
            .zip(a)
        {
            for (x, y) in o.iter_mut().zip(f) {
                *x = y * av;
            }
        }
        let rows = SpecRows {
            op,
            act: &ws.act,
            wact: &ws.wact,
            fza: &ws.fza,
            ldz: basis.dust_emission.then_some(&basis.ldz[..]),
            d: &ws.d,
            m,
        };
        macro_rules! dispatch {
            ($($n:literal)*) => {
                match nt {
                    $($n => rows.fill::<$n>(&mut ws.psi),)*
                    _ => rows.fill_dyn(nt, &mut ws.psi),
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    }
    if let Some(p) = data.phot {
        for (r, &b) in ws.bands.iter().enumerate() {
            let (lo, hi) = p.ranges[b];
            let len = hi - lo;
            let a = &ws.atten[lo..hi];
            let istd = data.objflamistd[b];
            for t in 0..nt {
                let g = &p.g[p.offsets[b] + t * len..p.offsets[b] + (t + 1) * len];
                let s: f64 = g.iter().zip(a).map(|(x, y)| x * y).sum();
                ws.psi[t * m + ns + r] = (s + ws.d[t] * p.h[b]) * istd;
            }
        }
    }
}

impl JointWorkspace {
    /// Coefficients of the last [`solve`].
    pub(super) fn c_slice(&self) -> &[f64] {
        &self.c
    }
}

/// The spectral rows of a design fill: Ψ[r, t] = w_r·(Σ_q L_rq·(F Z A)_{q,t} + d_t·ldz_r).
struct SpecRows<'a> {
    op: &'a SpecOperator,
    act: &'a [usize],
    wact: &'a [f64],
    /// F·Z·A on the operator's range, interleaved `[range][nt]`.
    fza: &'a [f64],
    ldz: Option<&'a [f64]>,
    d: &'a [f64],
    /// Rows of Ψ (column stride).
    m: usize,
}

impl SpecRows<'_> {
    /// The fill for a compile-time template count (the per-row accumulator lives in
    /// registers; the same sums in the same order as [`Self::fill_dyn`]).
    #[inline(never)]
    fn fill<const N: usize>(&self, psi: &mut [f64]) {
        let (op, m) = (self.op, self.m);
        for (r, (&i, &w)) in self.act.iter().zip(self.wact).enumerate() {
            let mut acc = [0.0f64; N];
            let s = op.rows.start[i] - op.jlo;
            let wr = &op.rows.w[op.rows.off[i]..op.rows.off[i + 1]];
            let y = &self.fza[s * N..(s + wr.len()) * N];
            for (&wq, yq) in wr.iter().zip(y.chunks_exact(N)) {
                for t in 0..N {
                    acc[t] += wq * yq[t];
                }
            }
            if let Some(ldz) = self.ldz {
                let e = ldz[i];
                for t in 0..N {
                    psi[t * m + r] = w * (acc[t] + self.d[t] * e);
                }
            } else {
                for t in 0..N {
                    psi[t * m + r] = w * acc[t];
                }
            }
        }
    }

    fn fill_dyn(&self, nt: usize, psi: &mut [f64]) {
        let (op, m) = (self.op, self.m);
        let mut acc = vec![0.0f64; nt];
        for (r, (&i, &w)) in self.act.iter().zip(self.wact).enumerate() {
            acc.fill(0.0);
            let s = op.rows.start[i] - op.jlo;
            let wr = &op.rows.w[op.rows.off[i]..op.rows.off[i + 1]];
            let y = &self.fza[s * nt..(s + wr.len()) * nt];
            for (&wq, yq) in wr.iter().zip(y.chunks_exact(nt)) {
                for (a, v) in acc.iter_mut().zip(yq) {
                    *a += wq * v;
                }
            }
            for t in 0..nt {
                let v = match self.ldz {
                    Some(ldz) => acc[t] + self.d[t] * ldz[i],
                    None => acc[t],
                };
                psi[t * m + r] = w * v;
            }
        }
    }
}

/// NNLS at the current fill; χ² or +∞ on failure; coefficients in `ws.c`.
pub(super) fn solve(nt: usize, ws: &mut JointWorkspace) -> f64 {
    let m = ws.b.len();
    ws.c.resize(nt, 0.0);
    let a = MatRef::from_column_major_slice(&ws.psi[..m * nt], m, nt);
    match nnls(a, &ws.b, &mut ws.c, &NnlsOptions::default(), &mut ws.nnls) {
        Ok(_) => residual_chi2(nt, ws),
        Err(_) => f64::INFINITY,
    }
}

/// ‖Ψ·c − b‖² for the coefficients in `ws.c`.
fn residual_chi2(nt: usize, ws: &JointWorkspace) -> f64 {
    let m = ws.b.len();
    let mut chi2 = 0.0;
    for r in 0..m {
        let mut v = -ws.b[r];
        for t in 0..nt {
            v += ws.psi[t * m + r] * ws.c[t];
        }
        chi2 += v * v;
    }
    chi2
}

/// [`solve`] on the normal equations: Lawson–Hanson on ΨᵀΨ and Ψᵀb (one pass over the
/// columns instead of the QR of Ψ), falling back to [`solve`] on a singular passive block.
/// χ² from the residuals as in [`solve`]; the coefficients differ from scipy's NNLS at the
/// ~1e-10 level (the condition number squared).
fn solve_gram(nt: usize, ws: &mut JointWorkspace) -> f64 {
    let m = ws.b.len();
    let mut g = vec![0.0; nt * nt];
    let mut h = vec![0.0; nt];
    for t in 0..nt {
        let pt = &ws.psi[t * m..(t + 1) * m];
        h[t] = dot(pt, &ws.b);
        for u in 0..=t {
            let v = dot(pt, &ws.psi[u * m..(u + 1) * m]);
            g[t * nt + u] = v;
            g[u * nt + t] = v;
        }
    }
    ws.c.resize(nt, 0.0);
    if !super::jointcheb::nnls_gram(&g, &h, nt, &mut ws.c) {
        return solve(nt, ws);
    }
    residual_chi2(nt, ws)
}

/// The χ² of the σ★ scan (SPEC §4.5): [`varpro_joint`]'s Brent over τ_V on a spectral-only
/// design, with the NNLS on the normal equations ([`solve_gram`]). The scan's χ² values only
/// decide whether the σ★ fit runs (Δχ² ≥ 25 around an interior minimum), so their ~1e-10
/// relative difference from the QR-based NNLS cannot change an outcome short of an exact
/// tie; its Brent path may differ from [`varpro_joint`]'s at that level.
///
/// # Errors
/// As [`varpro_joint`].
pub fn scan_chi2(data: &JointData<'_>, ws: &mut JointWorkspace) -> Result<f64, KernelError> {
    let nt = data.nt();
    if nt == 0 || data.spec.is_none() || data.phot.is_some() {
        return Err(KernelError::Shape(
            "σ scan: spectral-only design with templates expected".into(),
        ));
    }
    setup(data, ws)?;
    let opts = BoundedOptions {
        xatol: TAUV_XATOL,
        maxiter: 500,
    };
    let res = minimize_bounded(
        |t| {
            fill(data, t, ws);
            solve_gram(nt, ws)
        },
        TAUV_BOUNDS.0,
        TAUV_BOUNDS.1,
        &opts,
    )?;
    fill(data, res.x, ws);
    Ok(solve_gram(nt, ws))
}

/// The joint VARPRO fit (SPEC §4.3): spectral rows (if `data.spec`) and photometric rows (if
/// `data.phot`), dust emission as the basis was built (photometric rows always include it).
///
/// # Errors
/// Shape mismatches, non-finite data, no templates.
pub fn varpro_joint(
    data: &JointData<'_>,
    ws: &mut JointWorkspace,
) -> Result<JointFit, KernelError> {
    let nt = data.nt();
    if nt == 0 {
        return Err(KernelError::Shape("joint fit: no templates".into()));
    }
    if let (Some((_, b)), Some(p)) = (data.spec, data.phot) {
        if p.ntemplate() != b.nt || !b.dust_emission {
            return Err(KernelError::Shape(
                "joint fit: photometric and spectral template sets differ".into(),
            ));
        }
    }
    if data.spec.is_none() {
        return Err(KernelError::Shape(
            "joint fit: use varpro_phot for photometry-only fits".into(),
        ));
    }
    let ns = setup(data, ws)?;
    let opts = BoundedOptions {
        xatol: TAUV_XATOL,
        maxiter: 500,
    };
    let res = minimize_bounded(
        |t| {
            fill(data, t, ws);
            solve(nt, ws)
        },
        TAUV_BOUNDS.0,
        TAUV_BOUNDS.1,
        &opts,
    )?;
    let tauv = res.x;
    fill(data, tauv, ws);
    let chi2 = solve(nt, ws);
    if !chi2.is_finite() {
        ws.c.fill(0.0);
    }
    let m = ws.b.len();
    let (mut cs, mut cp) = (0.0, 0.0);
    for r in 0..m {
        let mut v = -ws.b[r];
        for t in 0..nt {
            v += ws.psi[t * m + r] * ws.c[t];
        }
        if r < ns {
            cs += v * v;
        } else {
            cp += v * v;
        }
    }
    Ok(JointFit {
        tauv,
        coeff: ws.c[..nt].to_vec(),
        chi2_spec: cs,
        chi2_phot: cp,
        nfev: res.nfev,
    })
}

/// out_j = exp(−τ·k_j), the dust attenuation on a slice of the grid (one place for every
/// fill), with the vectorisable [`crate::kernels::fastexp::exp`] (≤ 2 ulp from libm).
pub fn attenuation_into(tauv: f64, k: &[f64], out: &mut [f64]) {
    crate::kernels::fastexp::exp_scaled_into(-tauv, k, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::rebin::trapz_rebin;
    use crate::kernels::resolution::dia_matvec_scalar;

    /// L·y equals trapz_rebin followed by the DIA product (both tested against FastSpecFit),
    /// for two cameras with other samplings than the template grid.
    #[test]
    fn operator_matches_rebin_then_resolution() {
        let zwave: Vec<f64> = (0..3000)
            .map(|j| 3000.0 * (1.0 + 1.3e-4f64).powi(j))
            .collect();
        let y: Vec<f64> = zwave
            .iter()
            .map(|w| (w / 97.0).sin() + 2.0 + w * 1e-4)
            .collect();
        let cams: Vec<(Vec<f64>, usize)> = vec![
            ((0..700).map(|i| 3100.0 + 0.8 * i as f64).collect(), 11),
            ((0..400).map(|i| 3500.0 + 2.3 * i as f64).collect(), 5),
        ];
        let res: Vec<Vec<f64>> = cams
            .iter()
            .map(|(w, nd)| {
                (0..nd * w.len())
                    .map(|k| 0.05 + 0.1 * ((k % 7) as f64) / 7.0)
                    .collect()
            })
            .collect();
        let flux: Vec<Vec<f64>> = cams.iter().map(|(w, _)| vec![0.0; w.len()]).collect();
        let mask: Vec<Vec<bool>> = cams.iter().map(|(w, _)| vec![false; w.len()]).collect();
        let cd: Vec<CameraData<'_>> = (0..2)
            .map(|k| CameraData {
                wave: &cams[k].0,
                flux: &flux[k],
                ivar: &flux[k],
                linemask: &mask[k],
                res_ndiag: cams[k].1,
                res: &res[k],
            })
            .collect();
        let op = SpecOperator::new(&zwave, &cd).unwrap();
        let mut out = vec![0.0; op.npix];
        op.apply(&y, &mut out).unwrap();
        for (k, (w, nd)) in cams.iter().enumerate() {
            let n = w.len();
            let mut edges = vec![0.0; n + 1];
            centers2edges(w, &mut edges).unwrap();
            let mut rb = vec![0.0; n];
            trapz_rebin(&zwave, &y, &edges, &mut rb).unwrap();
            let mut want = vec![0.0; n];
            dia_matvec_scalar(&res[k], *nd, &rb, &mut want).unwrap();
            let (a, _) = op.camerapix[k];
            for i in 0..n {
                assert!(
                    (out[a + i] - want[i]).abs() <= 1e-13 * want[i].abs(),
                    "camera {k} pixel {i}: {} vs {}",
                    out[a + i],
                    want[i]
                );
            }
        }
        // the operator of a pixel range (across the camera boundary): the same rows
        for pix in [650..900, 0..700, 1099..1100] {
            let sub = op.rows_subset(pix.clone()).unwrap();
            assert_eq!(sub.npix, pix.len());
            let (jlo, jhi) = sub.range();
            assert!(op.jlo <= jlo && jhi <= op.jhi && jlo < jhi);
            let mut part = vec![0.0; sub.npix];
            sub.apply(&y, &mut part).unwrap();
            assert_eq!(part, out[pix.clone()], "rows {pix:?}");
            // only [jlo, jhi) is read
            let mut yw = vec![f64::NAN; y.len()];
            yw[jlo..jhi].copy_from_slice(&y[jlo..jhi]);
            sub.apply(&yw, &mut part).unwrap();
            assert_eq!(part, out[pix.clone()]);
            let ncam: usize = sub.camerapix.iter().map(|(a, b)| b - a).sum();
            assert_eq!(ncam, pix.len());
        }
        assert!(op.rows_subset(5..5).is_err());
        assert!(op.rows_subset(0..op.npix + 1).is_err());
        // a camera outside the template grid is an error, not a panic
        let far: Vec<f64> = (0..10).map(|i| 9000.0 + i as f64).collect();
        let cd2 = [CameraData {
            wave: &far,
            flux: &far,
            ivar: &far,
            linemask: &[false; 10],
            res_ndiag: 1,
            res: &far,
        }];
        assert!(SpecOperator::new(&zwave, &cd2).is_err());
    }
}
