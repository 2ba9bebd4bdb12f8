//! Line and continuum pixels of a set of lines (FastSpecFit's
//! `LineMasker.linepix_and_contpix`, SPEC.md §2.5), with or without
//! continuum patches, and the optional per-line S/N.

use super::super::emlines::C_LIGHT;
use super::super::stats::{quantile, quantiles};
use super::super::KernelError;

/// Lines narrower than this are masked with this σ [km/s].
pub const MIN_LINE_SIGMA: f64 = 50.0;
/// Minimum number of continuum pixels per line or patch.
pub const MIN_CONT_PIX: usize = 11;
/// Growth factors of the continuum window (× nσ·σ).
const FACTORS: [f64; 3] = [2.0, 3.0, 4.0];

/// One line handed to [`linepix_and_contpix`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixLine<'a> {
    /// Line name (`lyalpha` gets the "no continuum blueward of Lyα" rule).
    pub name: &'a str,
    /// Rest wavelength [Å].
    pub restwave: f64,
    /// σ [km/s]; ≤ 0 = skipped; (0, 50) raised to 50.
    pub sigma: f64,
    /// Velocity shift [km/s].
    pub vshift: f64,
}

/// One continuum patch of the patch mode: its id and the positions (into the
/// `lines` slice) of its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchLines {
    /// Patch id (letters; merged patches concatenate them).
    pub id: String,
    /// Positions of the patch's lines in the `lines` slice.
    pub lines: Vec<usize>,
}

/// Per-line S/N estimate (`get_snr`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LineSnr {
    /// Local continuum: median of the residuals over the continuum pixels.
    pub clocal: f64,
    /// Robust noise (q75 − q25)/1.349 of the residuals over the continuum pixels.
    pub cnoise: f64,
    /// Amplitude above the local continuum.
    pub amp: f64,
    /// amp / cnoise (0 if cnoise ≤ 0).
    pub snr: f64,
}

/// Output of [`linepix_and_contpix`]. Per-line vectors are indexed like the
/// `lines` slice; `None` = the line got no pixels (FastSpecFit omits its key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinePixels {
    /// Line pixels (ascending).
    pub linepix: Vec<Option<Vec<usize>>>,
    /// Continuum pixels (ascending; shared by the lines of a patch).
    pub contpix: Vec<Option<Vec<usize>>>,
    /// S/N per line (only with `snr` inputs, only for lines with pixels).
    pub snr: Vec<Option<LineSnr>>,
    /// Patch mode: (patch id, pixel set) in FastSpecFit's dict order (merged
    /// patches removed and their union appended at the end).
    pub patch_contpix: Vec<(String, Vec<usize>)>,
    /// Patch mode: ids of patches none of whose lines got pixels.
    pub dropped: Vec<String>,
    /// Patch mode: merges as (new id, [left id, right id]).
    pub merged: Vec<(String, [String; 2])>,
}

/// Data for the S/N estimate: flux (amplitudes) and residuals (continuum).
#[derive(Debug, Clone, Copy)]
pub struct SnrInput<'a> {
    /// Observed flux.
    pub flux: &'a [f64],
    /// Residual spectrum (flux − line model).
    pub residuals: &'a [f64],
}

/// Pixels i with lo < wave[i] < hi (and ivar > 0 / unmasked as asked), ascending.
/// With `sorted` (wave ascending, no NaN) only the bracketing range found by binary
/// search is scanned; the result is the same as the full scan.
fn window(
    wave: &[f64],
    ivar: &[f64],
    lo: f64,
    hi: f64,
    mask: Option<&[bool]>,
    use_ivar: bool,
    sorted: bool,
) -> Vec<usize> {
    let (start, end) = if sorted {
        let s = wave.partition_point(|&w| w <= lo);
        (s, s + wave[s..].partition_point(|&w| w < hi))
    } else {
        (0, wave.len())
    };
    (start..end)
        .filter(|&i| {
            wave[i] > lo
                && wave[i] < hi
                && (!use_ivar || ivar[i] > 0.0)
                && mask.is_none_or(|m| !m[i])
        })
        .collect()
}

/// Line and continuum pixels of `lines` on `wave` (observed frame, ascending)
/// at redshift `z`: linepix = pixels strictly within ±nσ·σ of
/// λ_rest(1 + z + v/c) with ivar > 0; continuum pixels as SPEC §2.5 (per line,
/// or per patch when `patches` is given); with `snr` the per-line S/N.
///
/// # Errors
/// [`KernelError::Shape`] on inconsistent lengths or a patch naming a line
/// outside `lines`; [`KernelError::Domain`] when a line or patch has no
/// continuum pixel at all (FastSpecFit raises ValueError).
#[allow(clippy::needless_range_loop)] // several per-line arrays indexed together
pub fn linepix_and_contpix(
    wave: &[f64],
    ivar: &[f64],
    lines: &[PixLine<'_>],
    z: f64,
    nsigma: f64,
    patches: Option<&[PatchLines]>,
    snr: Option<SnrInput<'_>>,
) -> Result<LinePixels, KernelError> {
    let n = wave.len();
    if ivar.len() != n
        || snr.is_some_and(|s| s.flux.len() != n || s.residuals.len() != n)
        || patches.is_some_and(|p| p.iter().any(|q| q.lines.iter().any(|&l| l >= lines.len())))
    {
        return Err(KernelError::Shape(format!(
            "linepix_and_contpix: {n} wavelengths, {} ivar, or bad patch/S/N inputs",
            ivar.len()
        )));
    }
    let nl = lines.len();
    // ascending and NaN-free: the windows need only a binary search of their ends
    let sorted = wave.windows(2).all(|p| p[0] <= p[1]) && wave.iter().all(|w| !w.is_nan());
    let zwave: Vec<f64> = lines
        .iter()
        .map(|l| l.restwave * (1.0 + z + l.vshift / C_LIGHT))
        .collect();
    let sig_ang: Vec<f64> = lines
        .iter()
        .zip(&zwave)
        .map(|(l, &zw)| {
            let s = if l.sigma > 0.0 && l.sigma < MIN_LINE_SIGMA {
                MIN_LINE_SIGMA
            } else {
                l.sigma
            };
            s * zw / C_LIGHT
        })
        .collect();
    let zlya: Option<f64> = lines
        .iter()
        .zip(&zwave)
        .find(|(l, _)| l.name == "lyalpha")
        .map(|(_, &w)| w);
    let in_patch: Vec<bool> = match patches {
        None => vec![true; nl],
        Some(ps) => {
            let mut v = vec![false; nl];
            ps.iter().flat_map(|p| &p.lines).for_each(|&l| v[l] = true);
            v
        }
    };

    let mut out = LinePixels {
        linepix: vec![None; nl],
        contpix: vec![None; nl],
        snr: vec![None; nl],
        ..Default::default()
    };
    let mut linemask = vec![false; n];
    for j in 0..nl {
        let s = sig_ang[j];
        if s <= 0.0 {
            continue;
        }
        let lp = window(
            wave,
            ivar,
            zwave[j] - nsigma * s,
            zwave[j] + nsigma * s,
            None,
            true,
            sorted,
        );
        if !lp.is_empty() && in_patch[j] {
            lp.iter().for_each(|&i| linemask[i] = true);
            out.linepix[j] = Some(lp);
        }
    }

    // continuum window over a set of lines, never blueward of Lyα
    let contwin = |idx: &[usize], f: f64, mask: Option<&[bool]>, use_ivar: bool| {
        let mut lo = idx
            .iter()
            .map(|&j| zwave[j] - f * nsigma * sig_ang[j])
            .fold(f64::INFINITY, f64::min);
        if let Some(ly) = zlya {
            if lo < ly {
                lo = ly;
            }
        }
        let hi = idx
            .iter()
            .map(|&j| zwave[j] + f * nsigma * sig_ang[j])
            .fold(f64::NEG_INFINITY, f64::max);
        window(wave, ivar, lo, hi, mask, use_ivar, sorted)
    };

    match patches {
        None => {
            for j in 0..nl {
                let Some(lp) = &out.linepix[j] else { continue };
                let mut cp = Vec::new();
                for f in FACTORS {
                    cp = contwin(&[j], f, Some(&linemask), true);
                    if cp.len() >= MIN_CONT_PIX {
                        break;
                    }
                }
                if cp.len() < MIN_CONT_PIX {
                    cp = contwin(&[j], FACTORS[0], None, true);
                    if cp.is_empty() {
                        cp = contwin(&[j], FACTORS[0], None, false);
                    }
                    let without: Vec<usize> = cp
                        .iter()
                        .copied()
                        .filter(|i| lp.binary_search(i).is_err())
                        .collect();
                    if !without.is_empty() {
                        cp = without;
                    }
                }
                if cp.is_empty() {
                    return Err(KernelError::Domain(format!(
                        "Unable to measure the continuum pixels for line {}",
                        lines[j].name
                    )));
                }
                out.contpix[j] = Some(cp);
            }
        }
        Some(ps) => {
            let mut pc: Vec<(String, Vec<usize>)> = Vec::new();
            for p in ps {
                let kept: Vec<usize> = p
                    .lines
                    .iter()
                    .copied()
                    .filter(|&l| out.linepix[l].is_some())
                    .collect();
                if kept.is_empty() {
                    out.dropped.push(p.id.clone());
                    continue;
                }
                let mut cp = Vec::new();
                let mut last = FACTORS[0];
                for f in FACTORS {
                    last = f;
                    cp = contwin(&kept, f, Some(&linemask), true);
                    if cp.len() >= MIN_CONT_PIX {
                        break;
                    }
                }
                if cp.is_empty() {
                    cp = contwin(&kept, last, None, true);
                }
                if cp.is_empty() {
                    cp = contwin(&kept, last, None, false);
                }
                if cp.is_empty() {
                    return Err(KernelError::Domain(format!(
                        "Unable to measure the continuum pixels for patch {}",
                        p.id
                    )));
                }
                let (mut mn, mut mx) = (cp[0], cp[cp.len() - 1]);
                for &l in &kept {
                    out.contpix[l] = Some(cp.clone());
                    let lp = out.linepix[l].as_ref().expect("kept lines have pixels");
                    mn = mn.min(lp[0]);
                    mx = mx.max(lp[lp.len() - 1]);
                }
                let mut set = cp;
                set.push(mn);
                set.push(mx);
                set.sort_unstable();
                set.dedup();
                pc.push((p.id.clone(), set));
            }
            // merge consecutive patches (original order) overlapping by > MIN_CONT_PIX
            for k in 0..ps.len().saturating_sub(1) {
                let (a, b) = (&ps[k].id, &ps[k + 1].id);
                let (Some(ia), Some(ib)) = (
                    pc.iter().position(|(id, _)| id == a),
                    pc.iter().position(|(id, _)| id == b),
                ) else {
                    continue;
                };
                let common = count_common(&pc[ia].1, &pc[ib].1);
                if common > MIN_CONT_PIX {
                    let mut union = pc[ia].1.clone();
                    union.extend_from_slice(&pc[ib].1);
                    union.sort_unstable();
                    union.dedup();
                    let new_id = format!("{a}{b}");
                    pc.retain(|(id, _)| id != a && id != b);
                    pc.push((new_id.clone(), union));
                    out.merged.push((new_id, [a.clone(), b.clone()]));
                }
            }
            out.patch_contpix = pc;
        }
    }

    if let Some(s) = snr {
        let mut scratch = Vec::new();
        let mut vals = Vec::new();
        for j in 0..nl {
            let (Some(lp), Some(cp)) = (&out.linepix[j], &out.contpix[j]) else {
                continue;
            };
            vals.clear();
            vals.extend(cp.iter().map(|&i| s.residuals[i]));
            let mut q = [0.0; 3];
            quantiles(&vals, &[0.25, 0.5, 0.75], &mut q, &mut scratch)?;
            let clocal = q[1];
            let cnoise = (q[2] - q[0]) / 1.349;
            let r = if cnoise <= 0.0 {
                LineSnr {
                    clocal,
                    ..Default::default()
                }
            } else {
                let np = lp.len();
                let amp = if np > 15 {
                    let mid = lp[np / 2];
                    let lo = mid.saturating_sub(7);
                    let hi = (mid + 7).min(lp[np - 1]);
                    let w = s
                        .flux
                        .get(lo..hi)
                        .filter(|w| !w.is_empty())
                        .ok_or_else(|| {
                            KernelError::Domain(format!(
                                "empty amplitude window for {}",
                                lines[j].name
                            ))
                        })?;
                    w.iter().copied().fold(f64::NEG_INFINITY, f64::max) - clocal
                } else {
                    vals.clear();
                    vals.extend(lp.iter().map(|&i| s.flux[i] - clocal));
                    quantile(&vals, 0.975, &mut scratch)?
                };
                LineSnr {
                    clocal,
                    cnoise,
                    amp,
                    snr: amp / cnoise,
                }
            };
            out.snr[j] = Some(r);
        }
    }
    Ok(out)
}

/// Number of common elements of two ascending, duplicate-free index lists.
fn count_common(a: &[usize], b: &[usize]) -> usize {
    let (mut i, mut j, mut c) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                c += 1;
                i += 1;
                j += 1;
            }
        }
    }
    c
}
