//! Dn(4000), Balogh et al. (1999) narrow definition (SPEC §4.11, FastSpecFit
//! `Photometry.get_dn4000`).
//!
//! Numerator band 4000–4100 Å, denominator 3850–3950 Å (rest frame), in f_ν. Each band's
//! mean is the ivar-weighted Simpson integral over `[w1, interior pixels, w2]`, where the
//! interior pixels keep their **input order** (a band inside an hstacked camera overlap then
//! has non-monotonic abscissae, integrated as given — [QUIRK]).

use crate::kernels::stats::simpson;

/// Speed of light, km/s.
const C_LIGHT_KMS: f64 = 299_792.458;
/// Pad around the break definition, Å.
const WPAD: f64 = 2.0;

/// Reusable buffers of [`dn4000`].
#[derive(Debug, Default, Clone)]
pub struct Dn4000Scratch {
    w: Vec<f64>,
    f: Vec<f64>,
    iv: Vec<f64>,
    srt: Vec<usize>,
    xs: Vec<f64>,
    fs: Vec<f64>,
    is: Vec<f64>,
    y: Vec<f64>,
    simp: Vec<f64>,
}

/// NumPy `interp` at `x` on increasing `xp` (clamped to the end values).
fn interp_clamped(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let n = xp.len();
    if n == 0 {
        return 0.0;
    }
    if x <= xp[0] {
        return fp[0];
    }
    if x >= xp[n - 1] {
        return fp[n - 1];
    }
    let j = xp.partition_point(|&v| v <= x);
    let (x0, x1) = (xp[j - 1], xp[j]);
    let (f0, f1) = (fp[j - 1], fp[j]);
    if x1 == x0 {
        return f0;
    }
    f0 + (f1 - f0) * (x - x0) / (x1 - x0)
}

/// One band: `(value, variance)`, or `(0, 0)` when not measurable.
fn band(
    rw: &[f64],
    fnu: &[f64],
    ivar: &[f64],
    w1: f64,
    w2: f64,
    s: &mut Dn4000Scratch,
) -> (f64, f64) {
    let mut ni = 0usize;
    s.w.clear();
    s.f.clear();
    s.iv.clear();
    for i in 0..rw.len() {
        if rw[i] > w1 - WPAD && rw[i] < w2 + WPAD {
            ni += 1;
            if ivar[i] > 0.0 {
                s.w.push(rw[i]);
                s.f.push(fnu[i]);
                s.iv.push(ivar[i]);
            }
        }
    }
    if ni == 0 || (s.w.len() as f64) / (ni as f64) < 0.9 || s.w.is_empty() {
        return (0.0, 0.0);
    }
    // λ-sorted copy for the boundary interpolation (stable, as NumPy's argsort on ties
    // only matters for exact duplicates).
    s.srt.clear();
    s.srt.extend(0..s.w.len());
    let w = &s.w;
    s.srt.sort_by(|&a, &b| w[a].total_cmp(&w[b]));
    s.xs.clear();
    s.fs.clear();
    s.is.clear();
    for &k in &s.srt {
        s.xs.push(s.w[k]);
        s.fs.push(s.f[k]);
        s.is.push(s.iv[k]);
    }
    let (f1, f2) = (
        interp_clamped(w1, &s.xs, &s.fs),
        interp_clamped(w2, &s.xs, &s.fs),
    );
    let (i1, i2) = (
        interp_clamped(w1, &s.xs, &s.is),
        interp_clamped(w2, &s.xs, &s.is),
    );
    // [w1, interior pixels in input order, w2]
    s.xs.clear();
    s.fs.clear();
    s.is.clear();
    s.xs.push(w1);
    s.fs.push(f1);
    s.is.push(i1);
    for k in 0..s.w.len() {
        if s.w[k] > w1 && s.w[k] < w2 {
            s.xs.push(s.w[k]);
            s.fs.push(s.f[k]);
            s.is.push(s.iv[k]);
        }
    }
    s.xs.push(w2);
    s.fs.push(f2);
    s.is.push(i2);
    let Ok(sv) = simpson(&s.is, &s.xs, &mut s.simp) else {
        return (0.0, 0.0);
    };
    let var = 1.0 / sv;
    s.y.clear();
    s.y.extend(s.fs.iter().zip(&s.is).map(|(f, i)| f * i));
    let Ok(sf) = simpson(&s.y, &s.xs, &mut s.simp) else {
        return (0.0, 0.0);
    };
    (sf * var, var)
}

/// The index range of an ascending rest-frame grid `wave` that [`dn4000`] (with
/// `redshift = None`) depends on: one pixel at or below 3850 − WPAD Å through one at or
/// above 4100 + WPAD Å. `dn4000` on the slices gives bit-identical results (the same
/// in-band pixels in the same order and the same coverage test); an unsorted grid gives
/// the full range.
pub fn dn4000_rest_window(wave: &[f64]) -> std::ops::Range<usize> {
    if !wave.windows(2).all(|p| p[0] <= p[1]) {
        return 0..wave.len();
    }
    let i0 = wave
        .partition_point(|&w| w <= 3850.0 - WPAD)
        .saturating_sub(1);
    let i1 = (wave.partition_point(|&w| w < 4100.0 + WPAD) + 1).min(wave.len());
    i0..i1.max(i0)
}

/// Dn(4000) and its inverse variance.
///
/// `wave` in Å and `flam` (any f_λ units); `ivar` optional (uniform weights and a zero ivar
/// result without it). With `redshift = Some(z)` the input is observed-frame (λ_r = λ/(1+z));
/// with `None` it is rest-frame. Returns `(0, 0)` whenever FastSpecFit does (too little
/// coverage, a band with < 90% good pixels, a zero band); never fails.
pub fn dn4000(
    wave: &[f64],
    flam: &[f64],
    ivar: Option<&[f64]>,
    redshift: Option<f64>,
    s: &mut Dn4000Scratch,
) -> (f64, f64) {
    let n = wave.len();
    if n == 0 || flam.len() != n || ivar.is_some_and(|v| v.len() != n) {
        return (0.0, 0.0);
    }
    let zf = redshift.map_or(1.0, |z| 1.0 + z);
    let rw: Vec<f64> = wave.iter().map(|w| w / zf).collect();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &w in &rw {
        lo = lo.min(w);
        hi = hi.max(w);
    }
    if lo > 3850.0 - WPAD || hi < 4100.0 + WPAD {
        return (0.0, 0.0);
    }
    let conv: Vec<f64> = rw
        .iter()
        .map(|w| zf * w * w / (C_LIGHT_KMS * 1e5))
        .collect();
    let fnu: Vec<f64> = flam.iter().zip(&conv).map(|(f, c)| f * c).collect();
    let fnu_ivar: Vec<f64> = match ivar {
        Some(iv) => iv.iter().zip(&conv).map(|(i, c)| i / (c * c)).collect(),
        None => vec![1.0; n],
    };
    let (numer, numer_var) = band(&rw, &fnu, &fnu_ivar, 4000.0, 4100.0, s);
    let (denom, denom_var) = band(&rw, &fnu, &fnu_ivar, 3850.0, 3950.0, s);
    if denom == 0.0 || numer == 0.0 || !numer.is_finite() || !denom.is_finite() {
        return (0.0, 0.0);
    }
    // Ratio of the band widths (blue 3850–3950 Å over red 4000–4100 Å), as FastSpecFit writes it.
    let width_ratio = (3950.0 - 3850.0) / (4100.0 - 4000.0);
    let dn = width_ratio * numer / denom;
    let dn_ivar = if ivar.is_some() {
        (1.0 / (dn * dn)) / (denom_var / (denom * denom) + numer_var / (numer * numer))
    } else {
        0.0
    };
    (dn, dn_ivar)
}

/// One band of [`Dn4000Rest`]: the flux-independent parts of `band`.
#[derive(Debug, Clone, Default)]
struct BandGeom {
    /// Pixels inside (w1 − WPAD, w2 + WPAD) (ascending λ, all of unit weight).
    sel: Vec<usize>,
    /// Pixels strictly inside (w1, w2), in input order.
    int: Vec<usize>,
    /// [w1, interior λ, w2].
    xs: Vec<f64>,
    /// Interpolated weights at w1 and w2 (of the unit ivar).
    i1: f64,
    i2: f64,
    /// 1 / Simpson integral of the weights.
    var: f64,
    w1: f64,
    w2: f64,
}

/// [`dn4000`] of many rest-frame model spectra on one grid without ivar
/// (`dn4000(wave, flam, None, None, ..).0`), with everything that does not depend on the flux
/// (the band pixels, the unit-weight integrals) computed once: the same operations on the
/// flux, so bit-identical values.
#[derive(Debug, Clone)]
pub struct Dn4000Rest {
    /// `None`: the grid gives 0; `Some(bands)` (numerator 4000–4100, denominator 3850–3950;
    /// a band of `None` is not measurable, giving 0).
    bands: Option<[Option<BandGeom>; 2]>,
    /// Whether the grid is ascending (else [`Dn4000Rest::eval`] calls [`dn4000`]).
    sorted: bool,
    wave: Vec<f64>,
    conv: Vec<f64>,
    fnu: Vec<f64>,
    fs: Vec<f64>,
    y: Vec<f64>,
    simp: Vec<f64>,
    scratch: Dn4000Scratch,
}

impl Dn4000Rest {
    /// Set up for spectra on the rest-frame grid `wave`.
    pub fn new(wave: &[f64]) -> Self {
        let sorted = wave.windows(2).all(|p| p[0] <= p[1]);
        let mut me = Dn4000Rest {
            bands: None,
            sorted,
            wave: wave.to_vec(),
            conv: wave
                .iter()
                .map(|w| 1.0 * w * w / (C_LIGHT_KMS * 1e5))
                .collect(),
            fnu: Vec::new(),
            fs: Vec::new(),
            y: Vec::new(),
            simp: Vec::new(),
            scratch: Dn4000Scratch::default(),
        };
        if wave.is_empty() || !sorted {
            return me;
        }
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &w in wave {
            lo = lo.min(w);
            hi = hi.max(w);
        }
        if lo > 3850.0 - WPAD || hi < 4100.0 + WPAD {
            return me;
        }
        let geom = |w1: f64, w2: f64, simp: &mut Vec<f64>| -> Option<BandGeom> {
            let sel: Vec<usize> = (0..wave.len())
                .filter(|&i| wave[i] > w1 - WPAD && wave[i] < w2 + WPAD)
                .collect();
            if sel.is_empty() {
                return None;
            }
            let xsel: Vec<f64> = sel.iter().map(|&i| wave[i]).collect();
            let ones = vec![1.0; sel.len()];
            let i1 = interp_clamped(w1, &xsel, &ones);
            let i2 = interp_clamped(w2, &xsel, &ones);
            let int: Vec<usize> = sel
                .iter()
                .copied()
                .filter(|&i| wave[i] > w1 && wave[i] < w2)
                .collect();
            let mut xs = vec![w1];
            xs.extend(int.iter().map(|&i| wave[i]));
            xs.push(w2);
            let mut is = vec![i1];
            is.extend(int.iter().map(|_| 1.0));
            is.push(i2);
            let sv = simpson(&is, &xs, simp).ok()?;
            Some(BandGeom {
                sel,
                int,
                xs,
                i1,
                i2,
                var: 1.0 / sv,
                w1,
                w2,
            })
        };
        let mut simp = Vec::new();
        me.bands = Some([
            geom(4000.0, 4100.0, &mut simp),
            geom(3850.0, 3950.0, &mut simp),
        ]);
        me
    }

    /// Dn(4000) of `flam` on the grid of [`Dn4000Rest::new`] (0 when not measurable).
    pub fn eval(&mut self, flam: &[f64]) -> f64 {
        let n = self.wave.len();
        if !self.sorted || flam.len() != n {
            return dn4000(&self.wave, flam, None, None, &mut self.scratch).0;
        }
        let Some(bands) = &self.bands else {
            return 0.0;
        };
        self.fnu.clear();
        self.fnu
            .extend(flam.iter().zip(&self.conv).map(|(f, c)| f * c));
        let mut val = [0.0f64; 2];
        for (v, b) in val.iter_mut().zip(bands) {
            let Some(b) = b else {
                continue;
            };
            // the band's interpolated end values, then Σ-Simpson of the flux
            self.fs.clear();
            self.fs.extend(b.sel.iter().map(|&i| self.fnu[i]));
            let xsel = b.sel.iter().map(|&i| self.wave[i]);
            self.y.clear();
            self.y.extend(xsel);
            let f1 = interp_clamped(b.w1, &self.y, &self.fs);
            let f2 = interp_clamped(b.w2, &self.y, &self.fs);
            self.y.clear();
            self.y.push(f1 * b.i1);
            self.y.extend(b.int.iter().map(|&i| self.fnu[i] * 1.0));
            self.y.push(f2 * b.i2);
            let Ok(sf) = simpson(&self.y, &b.xs, &mut self.simp) else {
                continue;
            };
            *v = sf * b.var;
        }
        let [numer, denom] = val;
        if denom == 0.0 || numer == 0.0 || !numer.is_finite() || !denom.is_finite() {
            return 0.0;
        }
        let width_ratio = (3950.0 - 3850.0) / (4100.0 - 4000.0);
        width_ratio * numer / denom
    }
}
