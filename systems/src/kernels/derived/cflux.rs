//! Continuum luminosities and fluxes (SPEC §4.12, FastSpecFit `ContinuumTools.continuum_fluxes`).
//!
//! For a rest wavelength λ_c, the line-free model (observed-frame f_λ in 1e-17 units, on the
//! *rest* template grid) is 2σ-clipped within λ_c ± 100 Å (or, "ignoring the core", within
//! the two side ranges (λ_c−100, λ_c−50] and [λ_c+50, λ_c+100), clipped separately) and fit
//! with a straight line in λ − λ_c; the intercept is the continuum f_c.

use crate::kernels::stats::sigmaclip;

/// Speed of light, km/s.
const C_LIGHT_KMS: f64 = 299_792.458;
/// Solar luminosity, erg/s.
const LSUN: f64 = 3.846e33;
/// Megaparsec, cm.
const MPC_CM: f64 = 3.085_677_58e24;
/// Flux normalisation.
const FLUXNORM: f64 = 1e17;
/// Inner and outer half-widths, Å.
const WIDTH1: f64 = 50.0;
const WIDTH2: f64 = 100.0;

/// Luminosity outputs in FastSpecFit's internal order, with their reference wavelengths.
pub const LUMS: [(&str, f64); 6] = [
    ("LOGL_1450", 1450.0),
    ("LOGLNU_1500", 1500.0),
    ("LOGL_1700", 1700.0),
    ("LOGLNU_2800", 2800.0),
    ("LOGL_3000", 3000.0),
    ("LOGL_5100", 5100.0),
];

/// Continuum-flux outputs with their reference wavelengths and whether the core is ignored.
pub const CFLUXES: [(&str, f64, bool); 5] = [
    ("FLYA_1215_CONT", 1215.67, true),
    ("FOII_3727_CONT", 3728.48, false),
    ("FHBETA_CONT", 4862.71, true),
    ("FOIII_5007_CONT", 5008.24, false),
    ("FHALPHA_CONT", 6564.6, true),
];

/// `searchsorted(a, v, side='left')`.
fn ss_left(a: &[f64], v: f64) -> usize {
    a.partition_point(|&x| x < v)
}

/// `searchsorted(a, v, side='right')`.
fn ss_right(a: &[f64], v: f64) -> usize {
    a.partition_point(|&x| x <= v)
}

/// The grid pixels [`continuum_fluxes`] reads on `rest_wave` (one range per reference
/// wavelength, λ_c ± 100 Å): a model computed only there gives the same results.
pub fn read_windows(rest_wave: &[f64]) -> Vec<std::ops::Range<usize>> {
    LUMS.iter()
        .map(|(_, c)| *c)
        .chain(CFLUXES.iter().map(|(_, c, _)| *c))
        .map(|c| ss_right(rest_wave, c - WIDTH2)..ss_left(rest_wave, c + WIDTH2))
        .filter(|r| r.start < r.end)
        .collect()
}

/// Reusable buffers of [`continuum_fluxes_with`] / [`continuum_at_with`].
#[derive(Debug, Clone, Default)]
pub struct ContinuumScratch {
    keep: Vec<bool>,
    xs: Vec<f64>,
    ys: Vec<f64>,
    /// Per window of [`continuum_fluxes_with`], its points' range in `xs`, `ys`.
    spans: Vec<(usize, usize)>,
    /// Per window, the fitted intercept.
    icpt: Vec<f64>,
}

/// Append the 2σ-clipped points of `y[lo..hi]` (with x − cwave) to `xs`, `ys`.
#[allow(clippy::too_many_arguments)]
fn clipped(
    wave: &[f64],
    y: &[f64],
    lo: usize,
    hi: usize,
    cwave: f64,
    keep: &mut Vec<bool>,
    xs: &mut Vec<f64>,
    ys: &mut Vec<f64>,
) {
    if hi <= lo {
        return;
    }
    let seg = &y[lo..hi];
    keep.clear();
    keep.resize(seg.len(), false);
    if sigmaclip(seg, 2.0, 2.0, keep).is_err() {
        return;
    }
    for (k, &kp) in keep.iter().enumerate() {
        if kp {
            xs.push(wave[lo + k] - cwave);
            ys.push(seg[k]);
        }
    }
}

/// Least-squares straight line y = a + b x; returns the intercept a (NaN if degenerate,
/// as `np.polyfit` would give a meaningless or failing fit).
fn line_intercept(x: &[f64], y: &[f64]) -> f64 {
    debug_assert_eq!(x.len(), y.len());
    let n = x.len() as f64;
    if x.len() < 2 {
        return f64::NAN;
    }
    // both sums in one pass, each sequential from −0.0 as `Iterator::sum` does
    let (mut sx, mut sy) = (-0.0f64, -0.0f64);
    for (xi, yi) in x.iter().zip(y) {
        sx += xi;
        sy += yi;
    }
    let mx = sx / n;
    let my = sy / n;
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (xi, yi) in x.iter().zip(y) {
        sxx += (xi - mx) * (xi - mx);
        sxy += (xi - mx) * (yi - my);
    }
    if sxx == 0.0 {
        return f64::NAN;
    }
    my - (sxy / sxx) * mx
}

/// Continuum f_c at `cwave` (1e-17 units).
pub fn continuum_at(wave: &[f64], cont: &[f64], cwave: f64, ignore_core: bool) -> f64 {
    continuum_at_with(
        wave,
        cont,
        cwave,
        ignore_core,
        &mut ContinuumScratch::default(),
    )
}

/// [`continuum_at`] with reusable buffers.
pub fn continuum_at_with(
    wave: &[f64],
    cont: &[f64],
    cwave: f64,
    ignore_core: bool,
    s: &mut ContinuumScratch,
) -> f64 {
    let n = wave.len().min(cont.len());
    let wave = &wave[..n];
    let ContinuumScratch { keep, xs, ys, .. } = s;
    xs.clear();
    ys.clear();
    window_points(wave, cont, cwave, ignore_core, keep, xs, ys);
    line_intercept(xs, ys)
}

/// Append the clipped points of the window about `cwave` to `xs`, `ys` (as
/// [`continuum_at_with`] fits them).
#[allow(clippy::too_many_arguments)]
fn window_points(
    wave: &[f64],
    cont: &[f64],
    cwave: f64,
    ignore_core: bool,
    keep: &mut Vec<bool>,
    xs: &mut Vec<f64>,
    ys: &mut Vec<f64>,
) {
    let lo = ss_right(wave, cwave - WIDTH1);
    let hi = ss_left(wave, cwave + WIDTH1);
    let lo2 = ss_right(wave, cwave - WIDTH2);
    let hi2 = ss_left(wave, cwave + WIDTH2);
    if ignore_core {
        clipped(wave, cont, lo2, lo, cwave, keep, xs, ys);
        clipped(wave, cont, hi, hi2, cwave, keep, xs, ys);
    } else {
        clipped(wave, cont, lo2, hi2, cwave, keep, xs, ys);
    }
}

/// [`line_intercept`] of every window `(start, end)` of `xs`, `ys` into `out`: the same
/// sums in the same order per window, with up to four windows summed together step by
/// step (windows sorted by length) so that four independent sums progress at once.
fn line_intercepts(xs: &[f64], ys: &[f64], spans: &[(usize, usize)], out: &mut Vec<f64>) {
    out.clear();
    out.resize(spans.len(), f64::NAN);
    let mut order = [0usize; 16];
    if spans.len() > order.len() {
        for (o, &(a, b)) in out.iter_mut().zip(spans) {
            *o = line_intercept(&xs[a..b], &ys[a..b]);
        }
        return;
    }
    let order = &mut order[..spans.len()];
    for (k, o) in order.iter_mut().enumerate() {
        *o = k;
    }
    order.sort_by_key(|&k| spans[k].1 - spans[k].0);
    for g in order.chunks(4) {
        match g.len() {
            4 => intercepts_together::<4>(xs, ys, spans, g, out),
            3 => intercepts_together::<3>(xs, ys, spans, g, out),
            2 => intercepts_together::<2>(xs, ys, spans, g, out),
            _ => {
                let (a, b) = spans[g[0]];
                out[g[0]] = line_intercept(&xs[a..b], &ys[a..b]);
            }
        }
    }
}

/// [`line_intercept`] of the `M` windows `spans[g[j]]`, summed together.
fn intercepts_together<const M: usize>(
    xs: &[f64],
    ys: &[f64],
    spans: &[(usize, usize)],
    g: &[usize],
    out: &mut [f64],
) {
    let x: [&[f64]; M] = std::array::from_fn(|j| &xs[spans[g[j]].0..spans[g[j]].1]);
    let y: [&[f64]; M] = std::array::from_fn(|j| &ys[spans[g[j]].0..spans[g[j]].1]);
    let len: [usize; M] = std::array::from_fn(|j| x[j].len());
    let common = len.iter().copied().min().unwrap_or(0);
    let (mut sx, mut sy) = ([-0.0f64; M], [-0.0f64; M]);
    for i in 0..common {
        for j in 0..M {
            sx[j] += x[j][i];
            sy[j] += y[j][i];
        }
    }
    for j in 0..M {
        for i in common..len[j] {
            sx[j] += x[j][i];
            sy[j] += y[j][i];
        }
    }
    let mx: [f64; M] = std::array::from_fn(|j| sx[j] / len[j] as f64);
    let my: [f64; M] = std::array::from_fn(|j| sy[j] / len[j] as f64);
    let (mut sxx, mut sxy) = ([0.0f64; M], [0.0f64; M]);
    for i in 0..common {
        for j in 0..M {
            let (xi, yi) = (x[j][i], y[j][i]);
            sxx[j] += (xi - mx[j]) * (xi - mx[j]);
            sxy[j] += (xi - mx[j]) * (yi - my[j]);
        }
    }
    for j in 0..M {
        for i in common..len[j] {
            let (xi, yi) = (x[j][i], y[j][i]);
            sxx[j] += (xi - mx[j]) * (xi - mx[j]);
            sxy[j] += (xi - mx[j]) * (yi - my[j]);
        }
    }
    for j in 0..M {
        out[g[j]] = if len[j] < 2 || sxx[j] == 0.0 {
            f64::NAN
        } else {
            my[j] - (sxy[j] / sxx[j]) * mx[j]
        };
    }
}

/// `(lums, cfluxes)` in the orders of [`LUMS`] and [`CFLUXES`]: log₁₀ luminosities (0 when
/// the argument is not positive) and observed-frame continuum fluxes.
///
/// `rest_wave` is the rest template grid, `cont` the line-free SED on it (observed f_λ,
/// 1e-17 units), `dlum_mpc` the luminosity distance. z ≤ 0 gives all zeros.
pub fn continuum_fluxes(
    rest_wave: &[f64],
    cont: &[f64],
    z: f64,
    dlum_mpc: f64,
) -> ([f64; 6], [f64; 5]) {
    continuum_fluxes_with(
        rest_wave,
        cont,
        z,
        dlum_mpc,
        &mut ContinuumScratch::default(),
    )
}

/// [`continuum_fluxes`] with reusable buffers.
pub fn continuum_fluxes_with(
    rest_wave: &[f64],
    cont: &[f64],
    z: f64,
    dlum_mpc: f64,
    s: &mut ContinuumScratch,
) -> ([f64; 6], [f64; 5]) {
    let mut lums = [0.0; 6];
    let mut cfl = [0.0; 5];
    if z <= 0.0 {
        return (lums, cfl);
    }
    let d = MPC_CM * dlum_mpc;
    let dfactor = (1.0 + z) * 4.0 * std::f64::consts::PI * d * d / FLUXNORM;
    // every window's clipped points, then all the line fits together
    let n = rest_wave.len().min(cont.len());
    let wave = &rest_wave[..n];
    let ContinuumScratch {
        keep,
        xs,
        ys,
        spans,
        icpt,
    } = s;
    xs.clear();
    ys.clear();
    spans.clear();
    let windows = LUMS
        .iter()
        .map(|(_, c)| (*c, false))
        .chain(CFLUXES.iter().map(|(_, c, ic)| (*c, *ic)));
    for (cwave, ignore_core) in windows {
        let a = xs.len();
        window_points(wave, cont, cwave, ignore_core, keep, xs, ys);
        spans.push((a, xs.len()));
    }
    line_intercepts(xs, ys, spans, icpt);
    finish(icpt, dfactor, &mut lums, &mut cfl);
    (lums, cfl)
}

/// LOGL*/LOGLNU* and F*_CONT from the window intercepts (in the order of [`LUMS`] then
/// [`CFLUXES`]).
fn finish(icpt: &[f64], dfactor: f64, lums: &mut [f64; 6], cfl: &mut [f64; 5]) {
    for (k, (name, cwave)) in LUMS.iter().enumerate() {
        let mut c = icpt[k] * dfactor;
        if name.starts_with("LOGL_") {
            c *= cwave / LSUN / 1e10;
        } else {
            c *= cwave * cwave / (C_LIGHT_KMS * 1e13) / 1e28;
        }
        if c > 0.0 {
            lums[k] = c.log10();
        }
    }
    for (k, c) in cfl.iter_mut().enumerate() {
        *c = icpt[LUMS.len() + k];
    }
}

/// Realisations of [`continuum_fluxes_lanes`].
pub const CF_LANES: usize = 4;

/// Reusable buffers of [`continuum_fluxes_lanes`].
#[derive(Debug, Clone, Default)]
pub struct LaneScratch {
    /// Per lane, the kept flags of the current window's two segments.
    keep: [[Vec<bool>; 2]; CF_LANES],
    /// Per window, its segments (one, or two when the core is ignored).
    segs: Vec<[(usize, usize); 2]>,
    /// The grid and its length `segs` was computed for.
    key: (usize, usize),
}

/// [`continuum_fluxes_with`] of [`CF_LANES`] line-free SEDs `conts[r]` on the same grid:
/// the same values per SED. The sequential sums that do not depend on the clipping (the
/// first mean and variance of each segment) and the straight-line sums (kept points only: a
/// rejected point adds −0.0, which changes no sum) run across the SEDs side by side; the
/// data-dependent rejection passes run per SED as [`sigmaclip`] does them.
pub fn continuum_fluxes_lanes(
    rest_wave: &[f64],
    conts: [&[f64]; CF_LANES],
    z: f64,
    dlum_mpc: f64,
    s: &mut LaneScratch,
) -> [([f64; 6], [f64; 5]); CF_LANES] {
    crate::kernels::simd::dispatch(
        #[inline(always)]
        || lanes_impl(rest_wave, conts, z, dlum_mpc, s),
    )
}

/// The body of [`continuum_fluxes_lanes`] (compiled under the SIMD dispatch).
#[inline(always)]
fn lanes_impl(
    rest_wave: &[f64],
    conts: [&[f64]; CF_LANES],
    z: f64,
    dlum_mpc: f64,
    s: &mut LaneScratch,
) -> [([f64; 6], [f64; 5]); CF_LANES] {
    let mut out = [([0.0; 6], [0.0; 5]); CF_LANES];
    if z <= 0.0 {
        return out;
    }
    let d = MPC_CM * dlum_mpc;
    let dfactor = (1.0 + z) * 4.0 * std::f64::consts::PI * d * d / FLUXNORM;
    let n = conts
        .iter()
        .map(|c| c.len())
        .fold(rest_wave.len(), usize::min);
    let wave = &rest_wave[..n];
    let key = (wave.as_ptr() as usize, n);
    if s.key != key || s.segs.is_empty() {
        s.segs.clear();
        let windows = LUMS
            .iter()
            .map(|(_, c)| (*c, false))
            .chain(CFLUXES.iter().map(|(_, c, ic)| (*c, *ic)));
        for (cwave, ignore_core) in windows {
            let lo = ss_right(wave, cwave - WIDTH1);
            let hi = ss_left(wave, cwave + WIDTH1);
            let lo2 = ss_right(wave, cwave - WIDTH2);
            let hi2 = ss_left(wave, cwave + WIDTH2);
            s.segs.push(if ignore_core {
                [(lo2, lo), (hi, hi2)]
            } else {
                [(lo2, hi2), (0, 0)]
            });
        }
        s.key = key;
    }
    let cwaves: [f64; 11] = std::array::from_fn(|k| {
        if k < LUMS.len() {
            LUMS[k].1
        } else {
            CFLUXES[k - LUMS.len()].1
        }
    });
    let mut icpt = [[f64::NAN; 11]; CF_LANES];
    let LaneScratch { keep, segs, .. } = s;
    for (w, (seg2, &cwave)) in segs.iter().zip(&cwaves).enumerate() {
        let (mut sx, mut sy) = ([-0.0f64; CF_LANES], [-0.0f64; CF_LANES]);
        let mut cnt = [0usize; CF_LANES];
        // first pass: clip each segment, then sum its kept points
        for (si, &(lo, hi)) in seg2.iter().enumerate() {
            if hi <= lo {
                continue;
            }
            clip_lanes(conts, lo, hi, si, keep);
            for (k, i) in (lo..hi).enumerate() {
                let x = wave[i] - cwave;
                for r in 0..CF_LANES {
                    let kp = keep[r][si][k];
                    sx[r] += if kp { x } else { -0.0 };
                    sy[r] += if kp { conts[r][i] } else { -0.0 };
                    cnt[r] += kp as usize;
                }
            }
        }
        let mx: [f64; CF_LANES] = std::array::from_fn(|r| sx[r] / cnt[r] as f64);
        let my: [f64; CF_LANES] = std::array::from_fn(|r| sy[r] / cnt[r] as f64);
        let (mut sxx, mut sxy) = ([0.0f64; CF_LANES], [0.0f64; CF_LANES]);
        for (si, &(lo, hi)) in seg2.iter().enumerate() {
            if hi <= lo {
                continue;
            }
            for (k, i) in (lo..hi).enumerate() {
                let x = wave[i] - cwave;
                for r in 0..CF_LANES {
                    let kp = keep[r][si][k];
                    let dx = x - mx[r];
                    let (a, b) = (dx * dx, dx * (conts[r][i] - my[r]));
                    sxx[r] += if kp { a } else { -0.0 };
                    sxy[r] += if kp { b } else { -0.0 };
                }
            }
        }
        for r in 0..CF_LANES {
            icpt[r][w] = if cnt[r] < 2 || sxx[r] == 0.0 {
                f64::NAN
            } else {
                my[r] - (sxy[r] / sxx[r]) * mx[r]
            };
        }
    }
    for (o, ic) in out.iter_mut().zip(&icpt) {
        finish(ic, dfactor, &mut o.0, &mut o.1);
    }
    out
}

/// The 2σ clip of `conts[r][lo..hi]` of every lane into `keep[r][si]`: [`sigmaclip`] with
/// `low = high = 2`, its first (unclipped) sums taken for the lanes side by side.
#[inline(always)]
fn clip_lanes(
    conts: [&[f64]; CF_LANES],
    lo: usize,
    hi: usize,
    si: usize,
    keep: &mut [[Vec<bool>; 2]; CF_LANES],
) {
    let segs: [&[f64]; CF_LANES] = std::array::from_fn(|r| &conts[r][lo..hi]);
    let len = hi - lo;
    let (mut s, mut s2) = ([0.0f64; CF_LANES], [0.0f64; CF_LANES]);
    for i in 0..len {
        for r in 0..CF_LANES {
            let v = segs[r][i];
            s[r] += v;
            s2[r] += v * v;
        }
    }
    for r in 0..CF_LANES {
        let k = &mut keep[r][si];
        k.clear();
        k.resize(len, true);
        clip_from_sums(segs[r], 2.0, 2.0, k, s[r], s2[r]);
    }
}

/// The rejection passes of [`sigmaclip`] (same operations in the same order) from the sums
/// `s`, `s2` of all values of `c`; `keep` starts all true.
#[inline(always)]
fn clip_from_sums(c: &[f64], low: f64, high: f64, keep: &mut [bool], mut s: f64, mut s2: f64) {
    let mut n = c.len();
    loop {
        let nf = n as f64;
        let mean = s / nf;
        let std = (s2 / nf - mean * mean).max(0.0).sqrt();
        let clo = mean - std * low;
        let chi = mean + std * high;
        if std == 0.0 {
            break;
        }
        // rejections in index order; blocks of 8 are first tested branch-free and skipped
        // when nothing in them is rejected
        let mut rejected = false;
        let mut pass = |kb: &mut [bool], cb: &[f64]| {
            let any = kb
                .iter()
                .zip(cb)
                .fold(false, |a, (&k, &v)| a | (k & ((v < clo) | (v > chi))));
            if any {
                rejected = true;
                for (k, &v) in kb.iter_mut().zip(cb) {
                    if *k && (v < clo || v > chi) {
                        *k = false;
                        n -= 1;
                        s -= v;
                        s2 -= v * v;
                    }
                }
            }
        };
        let mut kc = keep.chunks_exact_mut(8);
        let mut cc = c.chunks_exact(8);
        for (kb, cb) in (&mut kc).zip(&mut cc) {
            pass(kb, cb);
        }
        pass(kc.into_remainder(), cc.remainder());
        if !rejected {
            break;
        }
    }
}
