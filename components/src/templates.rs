//! The stellar-population template set (SPEC §3.1, §3.2): one read-only resource per run.
//!
//! Written once by `fastspecfit::io::templates::read_templates`; read by every continuum
//! system. Arrays over templates are flat and row-major, `[ntemplate][nwave]`: template `t`
//! occupies `t * nwave .. (t + 1) * nwave`. Fluxes are erg s⁻¹ cm⁻² Å⁻¹ at 10 pc per M☉
//! formed, on the rest-frame vacuum wavelength grid [`Templates::wave_ang`].

use bevy_ecs::prelude::Resource;

/// FFT pre-cache for fast velocity-dispersion convolution of coefficient-weighted template
/// sums (SPEC §3.2, FastSpecFit's `conv_pre`).
///
/// For every template the segment `[lo, hi)` (uniform velocity pixels) is zero-padded to
/// `fft_len` and real-FFT'd; the pixels outside the segment are kept as they are. A
/// convolution then needs one complex multiply-accumulate per template, one kernel FFT and
/// one inverse FFT (`fsf_systems::kernels::vdisp::convolve_from_pre`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConvPre {
    /// Number of templates cached.
    pub ntemplate: usize,
    /// Real-FFT length L: the smallest 5-smooth integer ≥ (hi − lo) + 2·`max_radius_pix`.
    pub fft_len: usize,
    /// Number of rfft frequencies, `fft_len / 2 + 1`.
    pub nfreq: usize,
    /// Largest supported Gaussian kernel radius, pixels (that of `MAX_PRE_VDISP` = 500 km/s).
    pub max_radius_pix: usize,
    /// Un-convolved outer pixels, `[ntemplate][nwave − (hi − lo)]`: pixels `[0, lo)` followed
    /// by pixels `[hi, nwave)`.
    pub flux_outer: Vec<f64>,
    /// Real parts of rfft_L(flux[t, lo..hi]), `[ntemplate][nfreq]`.
    pub ft_re: Vec<f64>,
    /// Imaginary parts of rfft_L(flux[t, lo..hi]), `[ntemplate][nfreq]`.
    pub ft_im: Vec<f64>,
}

/// The template set of a run with everything derived from it at read time (SPEC §3.1).
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct Templates {
    /// The file the templates were read from (for logs and the output header).
    pub file: String,
    /// Template data-model version (primary header `VERSION`; "2.2.0" when absent).
    pub version: String,
    /// Initial mass function (METADATA header `IMF`).
    pub imf: String,
    /// Number of templates (METADATA rows).
    pub ntemplate: usize,
    /// Number of kept wavelengths (up to and including the last one ≤ 4e5 Å).
    pub nwave: usize,
    /// Rest-frame vacuum wavelengths, Å, `[nwave]`.
    pub wave_ang: Vec<f64>,
    /// Stellar + nebular spectra, `[ntemplate][nwave]`.
    pub flux: Vec<f64>,
    /// Spectra without nebular lines (FLUX − LINEFLUX), `[ntemplate][nwave]`.
    pub flux_nolines: Vec<f64>,
    /// IR dust-emission spectrum on `wave_ang`, `[nwave]`, as stored (unit integral over the
    /// untrimmed grid; not renormalised after trimming).
    pub dustflux: Vec<f64>,
    /// Dust attenuation curve k(λ) = (λ/5500 Å)^−0.7, `[nwave]`.
    pub dust_klambda: Vec<f64>,
    /// Mean age of each template's star-formation bin, yr (float32 in the file).
    pub age_yr: Vec<f64>,
    /// log₁₀ Z/Z☉ per template.
    pub zzsun: Vec<f64>,
    /// Surviving stellar mass per M☉ formed, per template.
    pub mstar: Vec<f64>,
    /// Star-formation rate at the time of observation per M☉ formed, M☉/yr, per template.
    pub sfr: Vec<f64>,
    /// Width of each star-formation bin, yr; `None` for files without a `dt` column.
    pub dt_yr: Option<Vec<f64>>,
    /// Pixel size in velocity inside the uniform segment, km/s.
    pub pixkms: f64,
    /// Wavelength range of the uniform-velocity segment, Å (PIXWAVLO, PIXWAVHI).
    pub pixkms_wave_bounds_ang: (f64, f64),
    /// Pixel index range `[lo, hi)` of the uniform-velocity segment (left bisection of
    /// `pixkms_wave_bounds_ang` in `wave_ang`); convolution acts only here.
    pub pixkms_bounds: (usize, usize),
    /// Intrinsic Gaussian σ of the templates inside the segment, km/s.
    pub sigma_c3k_kms: f64,
    /// σ★ reported when the velocity dispersion is not measured, km/s (default 150).
    pub vdisp_nominal_kms: f64,
    /// Convolution kernel σ giving `vdisp_nominal_kms`: √max(0, nominal² − σ_C3K²), km/s.
    pub vdisp_nominal_kernel_kms: f64,
    /// Bounds on the kernel σ, km/s (lo ≤ hi; default (50, 500)).
    pub vdisp_bounds_kms: (f64, f64),
    /// `flux` convolved with `vdisp_nominal_kernel_kms`, `[ntemplate][nwave]`.
    pub flux_nomvdisp: Vec<f64>,
    /// `flux_nolines` convolved with `vdisp_nominal_kernel_kms`, `[ntemplate][nwave]`.
    pub flux_nolines_nomvdisp: Vec<f64>,
    /// FFT pre-cache of `flux`.
    pub conv_pre: ConvPre,
    /// FFT pre-cache of `flux_nolines`.
    pub conv_pre_nolines: ConvPre,
}

impl Templates {
    /// Row `t` of a flat `[ntemplate][nwave]` array such as [`Templates::flux`].
    ///
    /// # Panics
    /// If `t >= ntemplate` or `arr` is shorter than `ntemplate * nwave`.
    pub fn row<'a>(&self, arr: &'a [f64], t: usize) -> &'a [f64] {
        &arr[t * self.nwave..(t + 1) * self.nwave]
    }
}
