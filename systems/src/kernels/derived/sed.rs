//! Rebuilding an observed-frame SED from coefficients and τ_V (SPEC §3.3, §3.4; FastSpecFit
//! `ContinuumTools.build_stellar_continuum` with pre-convolved templates, `vdisp=None`).
//!
//! S(λ) = [(Σ_t c_t F_t(λ))·A(λ) + L_abs·DUSTFLUX(λ)]·Z(λ) with dust emission, or
//! (Σ_t c_t F_t)·A·Z without, where A = exp(−τ_V k(λ)) and Z are the zfactors.

use crate::kernels::dust::{attenuate, attenuate_nodust, attenuate_pair, attenuation};
use crate::kernels::KernelError;

/// Read-only inputs shared by all SEDs of one target.
#[derive(Debug, Clone, Copy)]
pub struct SedInputs<'a> {
    /// Rest template wavelengths, Å.
    pub wave: &'a [f64],
    /// Template fluxes `[ntemplate][nwave]` (already vdisp-convolved).
    pub flux: &'a [f64],
    /// Dust attenuation curve k(λ).
    pub klambda: &'a [f64],
    /// Dust-emission spectrum (used only with `dust_emission`).
    pub dustflux: &'a [f64],
    /// zfactors of the target on the redshifted grid.
    pub zfactors: &'a [f64],
}

/// Build the SED of `coeff` (one per template; zero for excluded ones) into `out`.
///
/// # Errors
/// Shape mismatches, non-finite τ_V.
pub fn build_sed(
    inp: &SedInputs<'_>,
    coeff: &[f64],
    tauv: f64,
    dust_emission: bool,
    atten: &mut Vec<f64>,
    out: &mut Vec<f64>,
) -> Result<(), KernelError> {
    let nw = inp.wave.len();
    if nw == 0 || inp.flux.len() != coeff.len() * nw {
        return Err(KernelError::Shape(format!(
            "build_sed: {} template values for {} coefficients x {} wavelengths",
            inp.flux.len(),
            coeff.len(),
            nw
        )));
    }
    // every value is overwritten: resize without clearing
    atten.resize(nw, 0.0);
    attenuation(tauv, inp.klambda, atten)?;
    build_sed_attenuated(inp, coeff, atten, dust_emission, out)
}

/// [`build_sed`] with the attenuation curve A = exp(−τ_V k) already in `atten` (so the
/// with- and without-lines SEDs of one τ_V share one pass of exponentials; same numbers).
///
/// # Errors
/// Shape mismatches.
pub fn build_sed_attenuated(
    inp: &SedInputs<'_>,
    coeff: &[f64],
    atten: &[f64],
    dust_emission: bool,
    out: &mut Vec<f64>,
) -> Result<(), KernelError> {
    let nw = inp.wave.len();
    if nw == 0 || inp.flux.len() != coeff.len() * nw {
        return Err(KernelError::Shape(format!(
            "build_sed: {} template values for {} coefficients x {} wavelengths",
            inp.flux.len(),
            coeff.len(),
            nw
        )));
    }
    template_sum(inp, coeff, out);
    if dust_emission {
        attenuate(out, atten, inp.zfactors, inp.wave, inp.dustflux)?;
    } else {
        attenuate_nodust(out, atten, inp.zfactors)?;
    }
    Ok(())
}

/// Σ_t c_t F_t into `out` (length nw), from 0 in template order, skipping zero
/// coefficients; the first term is written as 0 + c·f directly instead of accumulating into
/// a zeroed buffer (same values).
fn template_sum(inp: &SedInputs<'_>, coeff: &[f64], out: &mut Vec<f64>) {
    crate::kernels::simd::dispatch(
        #[inline(always)]
        || template_sum_impl(inp, coeff, out),
    )
}

/// The body of [`template_sum`] (compiled under the SIMD dispatch; same operations).
#[inline(always)]
fn template_sum_impl(inp: &SedInputs<'_>, coeff: &[f64], out: &mut Vec<f64>) {
    let nw = inp.wave.len();
    out.clear();
    let mut terms = coeff.iter().enumerate().filter(|(_, &c)| c != 0.0);
    match terms.next() {
        None => out.resize(nw, 0.0),
        Some((t, &c)) => out.extend(inp.flux[t * nw..(t + 1) * nw].iter().map(|&f| 0.0 + c * f)),
    }
    for (t, &c) in terms {
        for (o, &f) in out.iter_mut().zip(&inp.flux[t * nw..(t + 1) * nw]) {
            *o += c * f;
        }
    }
}

/// [`build_sed`] with dust emission for two (coefficients, τ_V) at once: the same values as
/// two calls, with the two L_abs integrals interleaved ([`attenuate_pair`]). The
/// attenuation curves are left in `atten_a`, `atten_b`.
///
/// # Errors
/// As [`build_sed`].
#[allow(clippy::too_many_arguments)]
pub fn build_sed_pair(
    inp: &SedInputs<'_>,
    (coeff_a, tauv_a): (&[f64], f64),
    (coeff_b, tauv_b): (&[f64], f64),
    atten_a: &mut Vec<f64>,
    atten_b: &mut Vec<f64>,
    out_a: &mut Vec<f64>,
    out_b: &mut Vec<f64>,
) -> Result<(), KernelError> {
    let nw = inp.wave.len();
    for coeff in [coeff_a, coeff_b] {
        if nw == 0 || inp.flux.len() != coeff.len() * nw {
            return Err(KernelError::Shape(format!(
                "build_sed: {} template values for {} coefficients x {} wavelengths",
                inp.flux.len(),
                coeff.len(),
                nw
            )));
        }
    }
    atten_a.resize(nw, 0.0);
    attenuation(tauv_a, inp.klambda, atten_a)?;
    atten_b.resize(nw, 0.0);
    attenuation(tauv_b, inp.klambda, atten_b)?;
    template_sum(inp, coeff_a, out_a);
    template_sum(inp, coeff_b, out_b);
    attenuate_pair(
        out_a,
        atten_a,
        out_b,
        atten_b,
        inp.zfactors,
        inp.wave,
        inp.dustflux,
    )?;
    Ok(())
}

/// [`build_sed_attenuated`] without dust emission, computed only on the grid pixels of
/// `ranges`: the same sums in the same order, so equal values there. Elsewhere `out` is zero
/// when it did not hold `nw` values before; otherwise pixels outside `ranges` are left as
/// they were (so with the same `ranges` on every call they stay zero, without re-zeroing
/// the whole grid each time).
///
/// # Errors
/// As [`build_sed_attenuated`]; a range beyond the grid.
pub fn build_sed_nodust_ranges(
    inp: &SedInputs<'_>,
    coeff: &[f64],
    atten: &[f64],
    ranges: &[std::ops::Range<usize>],
    out: &mut Vec<f64>,
) -> Result<(), KernelError> {
    let nw = inp.wave.len();
    if nw == 0
        || inp.flux.len() != coeff.len() * nw
        || atten.len() != nw
        || inp.zfactors.len() != nw
        || ranges.iter().any(|r| r.end > nw)
    {
        return Err(KernelError::Shape(format!(
            "build_sed: {} template values for {} coefficients x {} wavelengths",
            inp.flux.len(),
            coeff.len(),
            nw
        )));
    }
    if out.len() != nw {
        out.clear();
        out.resize(nw, 0.0);
    }
    crate::kernels::simd::dispatch(
        #[inline(always)]
        || nodust_ranges_impl(inp, coeff, atten, ranges, out),
    );
    Ok(())
}

/// The sums of [`build_sed_nodust_ranges`] (compiled under the SIMD dispatch; same
/// operations).
#[inline(always)]
fn nodust_ranges_impl(
    inp: &SedInputs<'_>,
    coeff: &[f64],
    atten: &[f64],
    ranges: &[std::ops::Range<usize>],
    out: &mut [f64],
) {
    let nw = inp.wave.len();
    for r in ranges {
        let o = &mut out[r.clone()];
        o.fill(0.0);
        for (t, &c) in coeff.iter().enumerate() {
            if c == 0.0 {
                continue;
            }
            for (v, &f) in o
                .iter_mut()
                .zip(&inp.flux[t * nw + r.start..t * nw + r.end])
            {
                *v += c * f;
            }
        }
        for ((v, &a), &z) in o
            .iter_mut()
            .zip(&atten[r.clone()])
            .zip(&inp.zfactors[r.clone()])
        {
            *v *= a * z;
        }
    }
}
