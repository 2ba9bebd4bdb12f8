//! Stellar velocity dispersion of fastspec (SPEC §4.5).
//!
//! * [`can_compute_vdisp`]: rest-frame coverage test (min < 3800 Å and max > 4900 Å) and the
//!   fit window [s, e) = left-bisection of 3800 and 6000 Å in the **unsorted** hstacked
//!   rest wavelengths (FastSpecFit's `searchsorted` on a non-monotonic array: reproduced by
//!   the same binary search).
//! * [`scan_minimum`]: the 6-point χ² scan decision (`find_minima(...)[0]`, Δχ² ≥ 25, not on
//!   an end point).
//! * [`VdispProblem`]: the TRF residuals of the σ fit, x = (τ_V, σ, c_1..c_nT), spectral
//!   rows only with √ivar·fitmask, templates without lines, no dust emission. Convolution by
//!   σ uses the FFT pre-cache of the line-free templates (direct convolution above 500 km/s).
//!   FastSpecFit convolves the coefficient-weighted sum; here every template is convolved
//!   and the columns P_t = √ivar·L(conv_σ(F_t)·A(τ)·Z) are cached for the last two (σ, τ)
//!   pairs, so the finite-difference probes of the coefficients (which leave σ and τ
//!   unchanged) cost nT·rows multiply–adds. Mathematically identical; rounding differs.
//! * [`vdisp_from_mstar`]: the σ–M★ fallback, log σ★ = 2.30 + 0.25(log M★ − 11), kernel
//!   √max(0, σ★² − σ_C3K²) clipped to the bounds.
//!
//! Deviation: the residual vector holds only the pixels with weight > 0 (FastSpecFit passes
//! every pixel, zero outside the fit window and on masked pixels). Zero residuals change
//! neither the cost, the gradient, the Jacobian column norms (`x_scale='jac'`) nor the
//! steps; only the exact solver's rank test s_min > ε·m·s_max uses m, which then differs by
//! the factor npix/nactive (relevant only for Jacobians with condition numbers ≳ 1e12).
//!
//! [QUIRK] not reproduced: FastSpecFit's aperture-correction model after the σ fit is the
//! *last model the optimiser evaluated* (the final finite-difference probe x̂ + h·e_last);
//! this port rebuilds the model at x̂ (a relative difference of ~1e-8).

#![allow(
    clippy::needless_range_loop,
    reason = "index loops over several same-length vectors in the numeric kernels"
)]
use super::specmodel::{attenuation_into, SpecOperator};
use crate::kernels::trf::Problem;
use crate::kernels::vdisp::{
    convolve_direct, convolve_from_pre, PreCache, VdispGrid, VdispWorkspace,
};
use crate::kernels::KernelError;

/// Rest-frame coverage needed for a σ fit, Å.
pub const VDISP_MIN_RESTRANGE: (f64, f64) = (3800.0, 4900.0);
/// Rest-frame σ-fit window, Å.
pub const VDISP_FIT_RESTRANGE: (f64, f64) = (3800.0, 6000.0);
/// Minimum peak-to-peak Δχ² of a successful scan.
pub const DELTACHI2_MIN: f64 = 25.0;
/// σ–M★ relation (a, b): log σ★ = a + b (log M★ − 11).
pub const VDISP_SIGMA_RELATION: (f64, f64) = (2.30, 0.25);
/// Number of points of the χ² scan grid.
pub const VDISP_NGRID: usize = 6;

/// `can_compute_vdisp`: whether σ can be fitted and the fit window `[s, e)` (0, 0 if not).
pub fn can_compute_vdisp(z: f64, specwave: &[f64]) -> (bool, (usize, usize)) {
    let zf = 1.0 + z;
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &w in specwave {
        let r = w / zf;
        lo = lo.min(r);
        hi = hi.max(r);
    }
    let ok = lo < VDISP_MIN_RESTRANGE.0 && hi > VDISP_MIN_RESTRANGE.1;
    if !ok {
        return (false, (0, 0));
    }
    (
        true,
        (
            searchsorted_left(specwave, zf, VDISP_FIT_RESTRANGE.0),
            searchsorted_left(specwave, zf, VDISP_FIT_RESTRANGE.1),
        ),
    )
}

/// NumPy's `searchsorted(a/zf, v, 'left')` binary search (on any, even unsorted, array).
fn searchsorted_left(wave: &[f64], zf: f64, v: f64) -> usize {
    let (mut lo, mut hi) = (0usize, wave.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if wave[mid] / zf < v {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The χ² scan decision: `Some(i_min)` if the scan succeeded (Δχ² ≥ 25 and the smallest
/// local minimum is not an end point), else `None`.
pub fn scan_minimum(chi2: &[f64]) -> Option<usize> {
    let n = chi2.len();
    if n == 0 {
        return None;
    }
    // local minima including the ends, smallest value first, ties to the lower index
    let mut best: Option<usize> = None;
    for i in 0..n {
        let left = i == 0 || chi2[i] <= chi2[i - 1];
        let right = i == n - 1 || chi2[i] <= chi2[i + 1];
        if left && right && best.is_none_or(|b| chi2[i] < chi2[b]) {
            best = Some(i);
        }
    }
    let imin = best?;
    let (mut mn, mut mx) = (f64::INFINITY, f64::NEG_INFINITY);
    for &c in chi2 {
        mn = mn.min(c);
        mx = mx.max(c);
    }
    (mx - mn >= DELTACHI2_MIN && imin != 0 && imin != n - 1).then_some(imin)
}

/// σ–M★ fallback: `Some((kernel σ, log M★))` from the coefficients of the nominal fit
/// (masses `mstar` of the same templates), or `None` if M★ is not available.
pub fn vdisp_from_mstar(
    coeff: &[f64],
    mstar: &[f64],
    massnorm: f64,
    sigma_c3k: f64,
    bounds: (f64, f64),
) -> Option<(f64, f64)> {
    let masstot: f64 = coeff.iter().zip(mstar).map(|(c, m)| c * m).sum();
    let ctot: f64 = coeff.iter().sum();
    if !(masstot > 0.0 && ctot > 0.0) {
        return None;
    }
    let logm = (massnorm * masstot).log10();
    let (a, b) = VDISP_SIGMA_RELATION;
    let vstars = 10f64.powf(a + b * (logm - 11.0));
    let k = (vstars * vstars - sigma_c3k * sigma_c3k).max(0.0).sqrt();
    Some((k.clamp(bounds.0, bounds.1), logm))
}

/// One cached (σ, τ) evaluation of the design columns.
#[derive(Debug, Clone, Default)]
struct PSlot {
    key: Option<(f64, f64)>,
    /// P_t on the active rows, `[nt][nact]`.
    p: Vec<f64>,
}

/// One cached σ convolution of the templates (full rows `[nt][nwave]`).
#[derive(Debug, Clone, Default)]
struct ConvSlot {
    sigma: Option<f64>,
    flux: Vec<f64>,
}

/// Inputs of the σ fit that stay fixed across its Monte Carlo refits.
pub struct VdispModel<'a> {
    /// Spectral operator of the target.
    pub op: &'a SpecOperator,
    /// FFT pre-cache of the kept line-free templates.
    pub pre: PreCache<'a>,
    /// Line-free kept templates (un-convolved), `[nt][nwave]` (direct convolution above
    /// 500 km/s).
    pub flux_nolines: &'a [f64],
    /// Convolution grid of the templates.
    pub grid: VdispGrid,
    /// k(λ) of the rest grid.
    pub klambda: &'a [f64],
    /// zfactors Z.
    pub zfactors: &'a [f64],
    /// √ivar·fitmask per hstacked pixel.
    pub istd: &'a [f64],
}

/// The TRF residual function of the σ fit (see the module docs); implements
/// [`Problem`]. Set `specflux` before each fit.
pub struct VdispProblem<'a> {
    m: VdispModel<'a>,
    nt: usize,
    nwave: usize,
    act: Vec<usize>,
    /// −√ivar·specflux on the active rows.
    nb: Vec<f64>,
    conv: [ConvSlot; 2],
    slots: [PSlot; 2],
    atten: Vec<f64>,
    yz: Vec<f64>,
    ycomb: Vec<f64>,
    /// Template range `[wlo, whi)` the active rows read.
    wlo: usize,
    whi: usize,
    /// (σ, τ) of the last few residual calls (finite-difference probe detection).
    history: [Option<(f64, f64)>; 4],
    vws: VdispWorkspace,
    unit: Vec<f64>,
    /// First error met inside `residuals` (reported after the fit).
    pub error: Option<KernelError>,
    /// Diagnostics: design-column fills and template convolutions so far.
    pub n_pfill: usize,
    /// See `n_pfill`.
    pub n_conv: usize,
}

impl<'a> VdispProblem<'a> {
    /// Set up the problem for `model`.
    ///
    /// # Errors
    /// Inconsistent lengths.
    pub fn new(m: VdispModel<'a>) -> Result<Self, KernelError> {
        let nwave = m.klambda.len();
        let nt = m.pre.ntemplate;
        if m.zfactors.len() != nwave
            || m.flux_nolines.len() != nt * nwave
            || m.istd.len() != m.op.npix
        {
            return Err(KernelError::Shape("vdisp problem: lengths".into()));
        }
        let act: Vec<usize> = (0..m.op.npix).filter(|&i| m.istd[i] != 0.0).collect();
        let rows = &m.op.rows;
        let wlo = act.iter().map(|&i| rows.start[i]).min().unwrap_or(0);
        let whi = act
            .iter()
            .map(|&i| rows.start[i] + rows.off[i + 1] - rows.off[i])
            .max()
            .unwrap_or(0);
        let vws = VdispWorkspace::new(m.pre.fft_len, m.pre.max_radius);
        Ok(VdispProblem {
            nt,
            nwave,
            nb: vec![0.0; act.len()],
            act,
            conv: Default::default(),
            slots: Default::default(),
            atten: vec![0.0; nwave],
            yz: vec![0.0; nwave],
            ycomb: vec![0.0; nwave],
            wlo,
            whi,
            history: [None; 4],
            vws,
            unit: vec![0.0; nt],
            error: None,
            n_pfill: 0,
            n_conv: 0,
            m,
        })
    }

    /// Use the spectrum `specflux` (hstacked) as the data.
    ///
    /// # Errors
    /// Wrong length or non-finite weighted data.
    pub fn set_data(&mut self, specflux: &[f64]) -> Result<(), KernelError> {
        if specflux.len() != self.m.op.npix {
            return Err(KernelError::Shape("vdisp problem: spectrum length".into()));
        }
        self.history = [None; 4];
        for (o, &i) in self.nb.iter_mut().zip(&self.act) {
            *o = -self.m.istd[i] * specflux[i];
            if !o.is_finite() {
                return Err(KernelError::NonFinite(
                    "non-finite values in the spectroscopic fit vector".into(),
                ));
            }
        }
        Ok(())
    }

    /// Number of templates.
    pub fn ntemplate(&self) -> usize {
        self.nt
    }

    /// Convolve every template by σ into a conv slot; returns the slot index.
    fn conv_slot(&mut self, sigma: f64) -> Result<usize, KernelError> {
        if let Some(k) = (0..2).find(|&k| self.conv[k].sigma == Some(sigma)) {
            return Ok(k);
        }
        // replace the slot not holding the most recent σ (slot 0 is the most recent)
        self.conv.swap(0, 1);
        let nw = self.nwave;
        let nt = self.nt;
        let slot = &mut self.conv[0];
        slot.flux.resize(nt * nw, 0.0);
        slot.sigma = None;
        for t in 0..nt {
            let out = &mut slot.flux[t * nw..(t + 1) * nw];
            if sigma > crate::kernels::vdisp::MAX_PRE_VDISP_KMS {
                convolve_direct(
                    &self.m.flux_nolines[t * nw..(t + 1) * nw],
                    &self.m.grid,
                    sigma,
                    &mut self.vws,
                    out,
                )?;
            } else {
                self.unit.fill(0.0);
                self.unit[t] = 1.0;
                convolve_from_pre(
                    &self.m.pre,
                    &self.m.grid,
                    &self.unit,
                    sigma,
                    &mut self.vws,
                    out,
                )?;
            }
        }
        slot.sigma = Some(sigma);
        self.n_conv += 1;
        Ok(0)
    }

    /// Columns P at (σ, τ) into a P slot; returns its index.
    fn p_slot(&mut self, sigma: f64, tauv: f64) -> Result<usize, KernelError> {
        if let Some(k) = (0..2).find(|&k| self.slots[k].key == Some((sigma, tauv))) {
            return Ok(k);
        }
        let ci = self.conv_slot(sigma)?;
        self.slots.swap(0, 1);
        let op = self.m.op;
        let (jlo, jhi) = (self.wlo, self.whi);
        attenuation_into(tauv, &self.m.klambda[jlo..jhi], &mut self.atten[jlo..jhi]);
        for j in jlo..jhi {
            self.atten[j] *= self.m.zfactors[j];
        }
        let na = self.act.len();
        let nw = self.nwave;
        let slot = &mut self.slots[0];
        slot.p.resize(self.nt * na, 0.0);
        for t in 0..self.nt {
            let f = &self.conv[ci].flux[t * nw..(t + 1) * nw];
            for j in jlo..jhi {
                self.yz[j] = f[j] * self.atten[j];
            }
            let col = &mut slot.p[t * na..(t + 1) * na];
            for (o, &i) in col.iter_mut().zip(&self.act) {
                *o = self.m.istd[i] * op.row_dot(i, &self.yz);
            }
        }
        slot.key = Some((sigma, tauv));
        self.n_pfill += 1;
        Ok(0)
    }

    /// The model Σ c_t conv_σ(F_t)·A(τ)·Z on the full template grid (no dust emission).
    ///
    /// # Errors
    /// Convolution errors.
    pub fn full_model(&mut self, x: &[f64], out: &mut [f64]) -> Result<(), KernelError> {
        let ci = self.conv_slot(x[1])?;
        let nw = self.nwave;
        out.iter_mut().for_each(|v| *v = 0.0);
        for t in 0..self.nt {
            let c = x[2 + t];
            for (o, f) in out
                .iter_mut()
                .zip(&self.conv[ci].flux[t * nw..(t + 1) * nw])
            {
                *o += c * f;
            }
        }
        for (j, o) in out.iter_mut().enumerate() {
            *o *= (-x[0] * self.m.klambda[j]).exp() * self.m.zfactors[j];
        }
        Ok(())
    }
}

impl VdispProblem<'_> {
    /// Residuals through the cached columns of slot `k`.
    fn residuals_from_slot(&self, k: usize, x: &[f64], f: &mut [f64]) {
        let na = self.act.len();
        let p = &self.slots[k].p;
        for (a, o) in f.iter_mut().enumerate().take(na) {
            let mut v = self.nb[a];
            for t in 0..self.nt {
                v += x[2 + t] * p[t * na + a];
            }
            *o = v;
        }
    }

    /// Residuals of one parameter vector without per-template columns: the coefficient-
    /// weighted sum is convolved once (as FastSpecFit does), attenuated, and mapped by L.
    fn residuals_single(&mut self, x: &[f64], f: &mut [f64]) -> Result<(), KernelError> {
        let (tauv, sigma) = (x[0], x[1]);
        let nw = self.nwave;
        let coeff = &x[2..];
        if let Some(ci) = (0..2).find(|&k| self.conv[k].sigma == Some(sigma)) {
            let fl = &self.conv[ci].flux;
            for j in self.wlo..self.whi {
                self.ycomb[j] = (0..self.nt).map(|t| coeff[t] * fl[t * nw + j]).sum();
            }
        } else if sigma > crate::kernels::vdisp::MAX_PRE_VDISP_KMS {
            self.yz.iter_mut().for_each(|v| *v = 0.0);
            for (t, &c) in coeff.iter().enumerate() {
                for (o, v) in self
                    .yz
                    .iter_mut()
                    .zip(&self.m.flux_nolines[t * nw..(t + 1) * nw])
                {
                    *o += c * v;
                }
            }
            convolve_direct(
                &self.yz,
                &self.m.grid,
                sigma,
                &mut self.vws,
                &mut self.ycomb,
            )?;
        } else {
            convolve_from_pre(
                &self.m.pre,
                &self.m.grid,
                coeff,
                sigma,
                &mut self.vws,
                &mut self.ycomb,
            )?;
            self.n_conv += 1;
        }
        let (lo, hi) = (self.wlo, self.whi);
        attenuation_into(tauv, &self.m.klambda[lo..hi], &mut self.atten[lo..hi]);
        for j in lo..hi {
            self.yz[j] = self.ycomb[j] * self.atten[j] * self.m.zfactors[j];
        }
        let op = self.m.op;
        for (a, &i) in self.act.iter().enumerate() {
            f[a] = self.m.istd[i] * op.row_dot(i, &self.yz) + self.nb[a];
        }
        Ok(())
    }
}

impl Problem for VdispProblem<'_> {
    fn n_residuals(&self) -> usize {
        self.act.len()
    }

    fn residuals(&mut self, x: &[f64], f: &mut [f64]) {
        let key = (x[1], x[0]);
        // A (σ, τ) seen among the last calls is the base point of a finite-difference
        // Jacobian whose coefficient probes follow: cache per-template columns for it.
        let repeat = self.history.contains(&Some(key));
        self.history.rotate_right(1);
        self.history[0] = Some(key);
        let r = if let Some(k) = (0..2).find(|&k| self.slots[k].key == Some(key)) {
            self.residuals_from_slot(k, x, f);
            Ok(())
        } else if repeat {
            self.p_slot(key.0, key.1)
                .map(|k| self.residuals_from_slot(k, x, f))
        } else {
            self.residuals_single(x, f)
        };
        if let Err(e) = r {
            f.iter_mut().for_each(|v| *v = f64::NAN);
            self.error.get_or_insert(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_decision() {
        // FastSpecFit 80613: Δχ² = 3.2 < 25 → failure
        let c = [3107.63, 3105.67, 3105.69, 3106.51, 3107.67, 3108.89];
        assert_eq!(scan_minimum(&c), None);
        assert_eq!(
            scan_minimum(&[100.0, 80.0, 60.0, 70.0, 90.0, 120.0]),
            Some(2)
        );
        // minimum on an end point → failure
        assert_eq!(scan_minimum(&[50.0, 80.0, 90.0, 95.0, 99.0, 120.0]), None);
        // smallest of several local minima; ties → lower index
        assert_eq!(
            scan_minimum(&[200.0, 100.0, 150.0, 100.0, 160.0, 300.0]),
            Some(1)
        );
    }

    #[test]
    fn coverage_and_window() {
        // two overlapping "cameras": the window search runs on the unsorted array
        let mut w: Vec<f64> = (0..100).map(|i| 3600.0 + 20.0 * i as f64).collect();
        w.extend((0..100).map(|i| 5400.0 + 20.0 * i as f64));
        let (ok, (s, e)) = can_compute_vdisp(0.0, &w);
        assert!(ok);
        assert_eq!(s, 10); // 3800 Å
                           // left bisection of 6000 Å in the unsorted array (NumPy's searchsorted)
        let (mut lo, mut hi) = (0usize, w.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if w[mid] < 6000.0 {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        assert_eq!(e, lo);
        assert!(!can_compute_vdisp(1.0, &w).0);
    }

    #[test]
    fn mstar_relation() {
        // Σc·mstar = 1 → log M★ = 10 → σ★ = 10^(2.30 − 0.25) ≈ 112.2 km/s
        let (k, logm) =
            vdisp_from_mstar(&[0.5, 0.5], &[1.0, 1.0], 1e10, 90.0, (50.0, 500.0)).unwrap();
        assert!((logm - 10.0).abs() < 1e-12);
        let vs = 10f64.powf(2.05);
        assert!((k - (vs * vs - 8100.0).sqrt()).abs() < 1e-9);
        assert!(vdisp_from_mstar(&[0.0, 0.0], &[1.0, 1.0], 1e10, 90.0, (50.0, 500.0)).is_none());
        // clipped to the bounds
        let (k, _) = vdisp_from_mstar(&[1e-6], &[1.0], 1e10, 90.0, (50.0, 500.0)).unwrap();
        assert_eq!(k, 50.0);
    }
}
