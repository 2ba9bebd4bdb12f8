//! The physical model of one simulated target: parameters drawn from the seeded
//! generator, the observed-frame continuum (BC03 templates, velocity dispersion, dust,
//! IGM, Milky Way), emission lines, camera spectra (rebinning, resolution, noise) and
//! broadband photometry.

use anyhow::Context;
use fsf_components::templates::Templates;
use fsf_systems::kernels::cosmology::Cosmology;
use fsf_systems::kernels::dust::{attenuate, attenuation, zfactors};
use fsf_systems::kernels::emlines::table::LineTable;
use fsf_systems::kernels::filters::FilterCurve;
use fsf_systems::kernels::igm::Inoue14;
use fsf_systems::kernels::mwdust::{dust_transmission, Fitzpatrick99};
use fsf_systems::kernels::rebin::{centers2edges, trapz_rebin};
use fsf_systems::kernels::synthphot::{ab_maggies, SynthScratch};
use fsf_systems::kernels::vdisp::{convolve_direct, gaussian_radius, VdispGrid, VdispWorkspace};

use super::rng::Rng;
use super::spectro::{apply_resolution, gaussian_resolution, pixel_gaussian, CameraGrid};

/// Model flux unit: 1e-17 erg/s/cm²/Å (FastSpecFit's FLUXNORM).
const FLUXNORM: f64 = 1e17;
/// Stellar-mass unit of the template coefficients, M☉ (FastSpecFit's MASSNORM).
const MASSNORM: f64 = 1e10;

/// Speed of light, km/s.
pub const C_KMS: f64 = 299_792.458;

/// Galaxy class of a simulated target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Old stars, little dust, weak or no lines.
    Quiescent,
    /// Young stars, dust and strong narrow lines.
    StarForming,
    /// Star-forming with broad Balmer (and UV) lines.
    BroadLine,
}

impl Kind {
    /// Name written to the truth table.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Quiescent => "QUIESCENT",
            Kind::StarForming => "STARFORMING",
            Kind::BroadLine => "BROADLINE",
        }
    }
}

/// Everything the truth table records about one target (fluxes in 1e-17 erg/s/cm²[/Å]).
#[derive(Debug, Clone)]
pub struct Truth {
    /// Target id.
    pub targetid: i64,
    /// Right ascension, deg.
    pub ra: f64,
    /// Declination, deg.
    pub dec: f64,
    /// SFD E(B−V) applied as Milky Way extinction.
    pub ebv: f64,
    /// Redshift.
    pub z: f64,
    /// Galaxy class.
    pub kind: Kind,
    /// Template coefficients (FastSpecFit's COEFF convention: units of MASSNORM M☉).
    pub coeff: Vec<f64>,
    /// V-band optical depth.
    pub tauv: f64,
    /// Stellar velocity dispersion, km/s.
    pub vdisp: f64,
    /// Narrow-line σ, km/s.
    pub narrow_sigma: f64,
    /// Broad-line σ, km/s (0 without broad lines).
    pub broad_sigma: f64,
    /// Integrated flux of every line of the table (observed frame, before Milky Way dust).
    pub line_flux: Vec<f64>,
    /// Noise-free photometry, nanomaggies (Milky Way extinction included).
    pub phot_true: Vec<f64>,
    /// Reported photometry, nanomaggies.
    pub phot: Vec<f64>,
    /// Inverse variance of `phot`.
    pub phot_ivar: Vec<f64>,
}

/// One camera's simulated coadd.
#[derive(Debug, Clone)]
pub struct CameraSim {
    /// Noise-free model after the resolution matrix.
    pub model: Vec<f64>,
    /// Observed flux.
    pub flux: Vec<f64>,
    /// Inverse variance (0 on masked pixels).
    pub ivar: Vec<f64>,
    /// Pixel mask (non-zero = bad).
    pub mask: Vec<u32>,
    /// Resolution data `[11][npix]`.
    pub resolution: Vec<f64>,
}

/// Shared inputs of the simulation.
pub struct SimContext<'a> {
    /// Template set.
    pub templates: &'a Templates,
    /// Emission-line table.
    pub lines: &'a LineTable,
    /// Camera wavelength grids.
    pub cameras: &'a [CameraGrid],
    /// Photometric filters.
    pub filters: &'a [FilterCurve],
    /// 1σ depth of each band, nanomaggies.
    pub depth_nmgy: &'a [f64],
    /// Cosmology for luminosity distances.
    pub cosmo: &'a Cosmology,
    /// IGM attenuation.
    pub igm: &'a Inoue14,
    /// Write noise-free spectra and photometry.
    pub noiseless: bool,
    /// Add no emission lines.
    pub no_lines: bool,
}

/// Narrow lines relative to Hβ; entries whose ratio depends on per-target draws are set
/// in [`line_ratios`].
fn line_ratios(rng: &mut Rng, kind: Kind) -> Vec<(&'static str, f64)> {
    let o3 = if kind == Kind::Quiescent {
        rng.range(0.2, 1.0)
    } else {
        rng.range(0.3, 4.0)
    };
    let o2 = rng.range(0.8, 3.0);
    let n2 = rng.range(0.1, 0.5) * 2.86;
    vec![
        ("hbeta", 1.0),
        ("halpha", 2.86),
        ("hgamma", 0.468),
        ("hdelta", 0.259),
        ("hepsilon", 0.159),
        ("h6", 0.105),
        ("oiii_5007", o3),
        ("oiii_4959", o3 / 2.98),
        ("oii_3726", 0.42 * o2),
        ("oii_3729", 0.58 * o2),
        ("neiii_3869", 0.08 * o3),
        ("nii_6584", n2),
        ("nii_6548", n2 / 2.94),
        ("sii_6716", 0.25),
        ("sii_6731", 0.18),
        ("hei_5876", 0.1),
        ("oi_6300", 0.1),
        ("siii_9069", 0.1),
        ("siii_9532", 0.25),
        ("lyalpha", 5.0),
        ("civ_1549", 0.4),
        ("ciii_1908", 0.25),
        ("mgii_2796", 0.3),
        ("mgii_2803", 0.15),
    ]
}

/// Draw the parameters of target `index` and render its spectra and photometry.
///
/// # Errors
/// A kernel failing (e.g. a position outside the SFD cut-outs, a redshift outside the
/// cosmology table).
pub fn simulate_target(
    ctx: &SimContext,
    rng: &mut Rng,
    targetid: i64,
    (ra, dec, ebv): (f64, f64, f64),
) -> anyhow::Result<(Truth, Vec<CameraSim>)> {
    let t = ctx.templates;
    let u = rng.uniform();
    let kind = if u < 0.4 {
        Kind::Quiescent
    } else if u < 0.8 {
        Kind::StarForming
    } else {
        Kind::BroadLine
    };
    let z = match kind {
        Kind::Quiescent => rng.range(0.01, 1.2),
        Kind::StarForming => 0.01 + 1.99 * rng.uniform().powf(1.3),
        Kind::BroadLine => 0.05 + 3.45 * rng.uniform(),
    };
    let nt = t.ntemplate;
    let mut coeff: Vec<f64> = (0..nt)
        .map(|k| {
            let old = (k + 1) as f64 / nt as f64;
            let w = match kind {
                Kind::Quiescent => old.powi(4),
                _ => 1.0 - 0.8 * old,
            };
            w * rng.uniform().powi(2) + 1e-3 * w
        })
        .collect();
    let (tauv, vdisp) = match kind {
        Kind::Quiescent => (rng.range(0.0, 0.3), rng.range(150.0, 300.0)),
        Kind::StarForming => (rng.range(0.1, 1.5), rng.range(60.0, 150.0)),
        Kind::BroadLine => (rng.range(0.0, 0.5), rng.range(80.0, 200.0)),
    };
    let narrow_sigma = rng.range(50.0, 150.0);
    let broad_sigma = if kind == Kind::BroadLine {
        rng.range(1000.0, 3000.0)
    } else {
        0.0
    };

    // Rest-frame continuum, convolved, attenuated and moved to the observed frame.
    let nw = t.nwave;
    let mut rest = vec![0.0; nw];
    for (k, c) in coeff.iter().enumerate() {
        for (r, f) in rest.iter_mut().zip(t.row(&t.flux_nolines, k)) {
            *r += c * f;
        }
    }
    let grid = VdispGrid {
        lo: t.pixkms_bounds.0,
        hi: t.pixkms_bounds.1,
        pixkms: t.pixkms,
    };
    let mut ws = VdispWorkspace::new(0, gaussian_radius(vdisp / t.pixkms));
    let mut model = vec![0.0; nw];
    convolve_direct(&rest, &grid, vdisp, &mut ws, &mut model).context("vdisp convolution")?;
    let obs_wave: Vec<f64> = t.wave_ang.iter().map(|w| w * (1.0 + z)).collect();
    let mut atten = vec![0.0; nw];
    attenuation(tauv, &t.dust_klambda, &mut atten).context("dust attenuation")?;
    let dlum = ctx
        .cosmo
        .luminosity_distance(z)
        .context("luminosity distance")?;
    let mut zf = vec![0.0; nw];
    zfactors(ctx.igm, z, dlum, FLUXNORM, MASSNORM, &obs_wave, &mut zf).context("IGM")?;
    attenuate(&mut model, &atten, &zf, &t.wave_ang, &t.dustflux).context("dust")?;

    // Normalise to a DESI-like continuum level (1e-17 erg/s/cm²/Å) at 5000-9000 Å.
    let mut inband: Vec<f64> = obs_wave
        .iter()
        .zip(&model)
        .filter(|(w, _)| (5000.0..9000.0).contains(*w))
        .map(|(_, m)| *m)
        .collect();
    inband.sort_by(f64::total_cmp);
    let med = inband.get(inband.len() / 2).copied().unwrap_or(0.0);
    let level = rng.log_range(1.0, 8.0);
    let scale = if med > 0.0 { level / med } else { 1.0 };
    coeff.iter_mut().for_each(|c| *c *= scale);
    model.iter_mut().for_each(|m| *m *= scale);

    // Emission lines: Hβ from a rest equivalent width on the continuum at Hβ.
    let hb_obs = 4862.71 * (1.0 + z);
    let i_hb = obs_wave.partition_point(|w| *w < hb_obs).min(nw - 1);
    let cont_hb = model[i_hb].max(0.0);
    let ew = match kind {
        Kind::Quiescent if rng.uniform() < 0.5 => 0.0,
        Kind::Quiescent => rng.range(0.5, 3.0),
        _ => rng.range(5.0, 60.0),
    };
    let fhb = if ctx.no_lines {
        0.0
    } else {
        ew * (1.0 + z) * cont_hb
    };
    let ratios = line_ratios(rng, kind);
    let broad_hb = if kind == Kind::BroadLine {
        rng.range(2.0, 6.0) * fhb.max(0.1)
    } else {
        0.0
    };
    let line_flux: Vec<f64> = ctx
        .lines
        .lines
        .iter()
        .map(|l| match l.name.as_str() {
            "hbeta_broad" => broad_hb,
            "halpha_broad" => 3.0 * broad_hb,
            "hgamma_broad" => 0.47 * broad_hb,
            n => ratios
                .iter()
                .find(|(r, _)| *r == n)
                .map_or(0.0, |(_, r)| r * fhb),
        })
        .collect();
    let sigma_of = |i: usize| {
        let l = &ctx.lines.lines[i];
        if l.isbroad && kind == Kind::BroadLine {
            broad_sigma
        } else {
            narrow_sigma
        }
    };

    // Milky Way extinction on the observed model and at each line centre.
    let f99 = Fitzpatrick99::new(3.1);
    let mut mw = vec![0.0; nw];
    dust_transmission(&f99, &obs_wave, ebv, &mut mw).context("Milky Way dust")?;
    let cont_obs: Vec<f64> = model.iter().zip(&mw).map(|(m, t)| m * t).collect();
    let centres: Vec<f64> = ctx
        .lines
        .lines
        .iter()
        .map(|l| l.restwave * (1.0 + z))
        .collect();
    let mut mw_line = vec![0.0; centres.len()];
    dust_transmission(&f99, &centres, ebv, &mut mw_line).context("Milky Way dust")?;

    let cams = render_cameras(
        ctx, rng, &obs_wave, &cont_obs, &centres, &line_flux, &mw_line, &sigma_of,
    )?;
    let (phot_true, phot, phot_ivar) = photometry(
        ctx, rng, &obs_wave, &cont_obs, &centres, &line_flux, &mw_line, &sigma_of,
    )?;
    let truth = Truth {
        targetid,
        ra,
        dec,
        ebv,
        z,
        kind,
        coeff,
        tauv,
        vdisp,
        narrow_sigma,
        broad_sigma,
        line_flux,
        phot_true,
        phot,
        phot_ivar,
    };
    Ok((truth, cams))
}

#[allow(clippy::too_many_arguments)]
fn render_cameras(
    ctx: &SimContext,
    rng: &mut Rng,
    obs_wave: &[f64],
    cont_obs: &[f64],
    centres: &[f64],
    line_flux: &[f64],
    mw_line: &[f64],
    sigma_of: &dyn Fn(usize) -> f64,
) -> anyhow::Result<Vec<CameraSim>> {
    let noise0 = rng.range(0.3, 1.5);
    // Noise from its own stream, so noisy and noise-free sets share every other draw.
    let mut noise = Rng::new(rng.next_u64(), 0x5EED);
    let lsf_scale = rng.range(0.95, 1.05);
    let mut out = Vec::with_capacity(ctx.cameras.len());
    for cam in ctx.cameras {
        let n = cam.wave.len();
        let mut edges = vec![0.0; n + 1];
        centers2edges(&cam.wave, &mut edges).context("camera edges")?;
        let mut pix = vec![0.0; n];
        trapz_rebin(obs_wave, cont_obs, &edges, &mut pix)
            .with_context(|| format!("rebinning camera {}", cam.name))?;
        for (i, (&c, &f)) in centres.iter().zip(line_flux).enumerate() {
            if f > 0.0 && c > edges[0] - 50.0 && c < edges[n] + 50.0 {
                pixel_gaussian(&edges, c, c * sigma_of(i) / C_KMS, f * mw_line[i], &mut pix);
            }
        }
        let resolution = gaussian_resolution(cam, lsf_scale);
        let model = apply_resolution(&resolution, &pix);
        let mut flux = model.clone();
        let mut ivar = vec![0.0; n];
        for i in 0..n {
            let x = 2.0 * (i as f64 / (n - 1) as f64) - 1.0;
            let sig2 = (noise0 * (1.0 + 1.5 * x.powi(4))).powi(2) + 0.01 * model[i].abs();
            ivar[i] = 1.0 / sig2;
            if !ctx.noiseless {
                flux[i] += sig2.sqrt() * noise.normal();
            }
        }
        // A few bad pixels and one short bad run.
        let mut mask = vec![0u32; n];
        let run = rng.below(n.saturating_sub(4));
        let singles: Vec<usize> = (0..3).map(|_| rng.below(n)).collect();
        for i in singles.into_iter().chain(run..run + 4) {
            if i < n {
                mask[i] = 1 << 1;
                ivar[i] = 0.0;
            }
        }
        out.push(CameraSim {
            model,
            flux,
            ivar,
            mask,
            resolution,
        });
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn photometry(
    ctx: &SimContext,
    rng: &mut Rng,
    obs_wave: &[f64],
    cont_obs: &[f64],
    centres: &[f64],
    line_flux: &[f64],
    mw_line: &[f64],
    sigma_of: &dyn Fn(usize) -> f64,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    // Lines drawn on the template grid with σ at least the local spacing, so that the
    // trapezoidal synthesis conserves their flux.
    let mut spec = cont_obs.to_vec();
    for (i, (&c, &f)) in centres.iter().zip(line_flux).enumerate() {
        if f <= 0.0 {
            continue;
        }
        let k = obs_wave
            .partition_point(|w| *w < c)
            .clamp(1, obs_wave.len() - 1);
        let dw = obs_wave[k] - obs_wave[k - 1];
        let s = (c * sigma_of(i) / C_KMS).max(dw);
        let norm = f * mw_line[i] / (s * (2.0 * std::f64::consts::PI).sqrt());
        for (w, v) in obs_wave.iter().zip(spec.iter_mut()) {
            let d = (w - c) / s;
            if d.abs() < 6.0 {
                *v += norm * (-0.5 * d * d).exp();
            }
        }
    }
    let cgs: Vec<f64> = spec.iter().map(|v| v / FLUXNORM).collect();
    let mut maggies = vec![0.0; ctx.filters.len()];
    ab_maggies(
        ctx.filters,
        &cgs,
        obs_wave,
        &mut maggies,
        &mut SynthScratch::new(),
    )
    .context("synthetic photometry")?;
    let truth: Vec<f64> = maggies.iter().map(|m| m * 1e9).collect();
    let mut obs = truth.clone();
    let mut ivar = vec![0.0; truth.len()];
    for (b, t) in truth.iter().enumerate() {
        let sig = ((0.02 * t).powi(2) + ctx.depth_nmgy[b].powi(2)).sqrt();
        ivar[b] = 1.0 / (sig * sig);
        if !ctx.noiseless {
            obs[b] += sig * rng.normal();
        }
    }
    Ok((truth, obs, ivar))
}
