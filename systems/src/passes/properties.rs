//! `derive_properties`: K-corrections, absolute magnitudes, luminosities, continuum fluxes,
//! SPS properties and the model Dn(4000), with Monte Carlo variances (SPEC §4.9, §4.10,
//! §4.11, §4.12, §6.7). Runs in [`FitSystems::Finalize`].
//!
//! The Monte Carlo realisations are evaluated four at a time, one SIMD lane each
//! ([`crate::kernels::derived::mcbatch`], [`crate::kernels::derived::cflux::continuum_fluxes_lanes`],
//! [`crate::kernels::derived::dn4000::Dn4000Rest`]): every realisation gets exactly the
//! operations of the one-by-one kernels, so the `*_IVAR` columns are bit-identical.

use std::sync::OnceLock;

use bevy_ecs::prelude::*;
use fsf_components::templates::Templates;
use fsf_components::{
    ContinuumFit, FitStatus, MilkyWayDust, ObservedPhotometry, PhysicalProperties, Redshift, Target,
};

use crate::kernels::cosmology::Cosmology;
use crate::kernels::derived::cflux::{
    continuum_fluxes_lanes, continuum_fluxes_with, read_windows, ContinuumScratch, LaneScratch,
};
use crate::kernels::derived::dn4000::{dn4000, dn4000_rest_window, Dn4000Rest, Dn4000Scratch};
use crate::kernels::derived::kcorr::{kcorr_and_absmag, synth_absmag, KcorrPre};
use crate::kernels::derived::mcbatch::{Lanes, McBatch, LANES};
use crate::kernels::derived::mcvar::{nan_ivar_capped, nan_var, plain_ivar, var2ivar, F32MAX};
use crate::kernels::derived::sed::{build_sed, SedInputs};
use crate::kernels::derived::sps::{sps_properties, TemplateInfo, MASSNORM};
use crate::kernels::dust::zfactors;
use crate::kernels::filters::{load_filter, FilterCurve};
use crate::kernels::igm::Inoue14;
use crate::kernels::KernelError;
use crate::passes::FitSystems;

/// FitStatus bit: the derived quantities could not be computed.
pub const FLAG_PROPERTIES: u32 = 1 << 8;

/// Photometric configuration the derived quantities need (one per run).
#[derive(Resource, Debug, Clone)]
pub struct DerivedSetup {
    /// Observed band names (FLUX_SYNTH_PHOTMODEL_* order).
    pub bands: Vec<String>,
    /// Whether each band enters the fit (multiplies the ivar in the band-choice rule).
    pub bands_to_fit: Vec<bool>,
    /// Observed filters per photometric system.
    pub obs_filters: Vec<(String, Vec<FilterCurve>)>,
    /// Absmag band names (as in the YAML).
    pub absmag_bands: Vec<String>,
    /// Band shifts of the absmag filters.
    pub band_shift: Vec<f64>,
    /// Band-shifted absmag filters.
    pub absmag_filters: Vec<FilterCurve>,
}

impl DerivedSetup {
    /// Load the filters by name (bundled speclite curves) and shift the absmag ones.
    ///
    /// # Errors
    /// Unknown filter names, inconsistent lengths or invalid band shifts.
    pub fn new(
        bands: Vec<String>,
        bands_to_fit: Vec<bool>,
        filters: &[(String, Vec<String>)],
        absmag_bands: Vec<String>,
        band_shift: Vec<f64>,
        absmag_filter_names: &[String],
    ) -> Result<Self, KernelError> {
        if absmag_bands.len() != band_shift.len() || band_shift.len() != absmag_filter_names.len() {
            return Err(KernelError::Shape(
                "absmag_bands, band_shift and absmag_filters differ in length".into(),
            ));
        }
        let mut obs_filters = Vec::new();
        for (k, names) in filters {
            let f = names
                .iter()
                .map(|n| load_filter(n))
                .collect::<Result<Vec<_>, _>>()?;
            obs_filters.push((k.clone(), f));
        }
        let absmag_filters = absmag_filter_names
            .iter()
            .zip(&band_shift)
            .map(|(n, &s)| load_filter(n).and_then(|f| f.shifted(s)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DerivedSetup {
            bands,
            bands_to_fit,
            obs_filters,
            absmag_bands,
            band_shift,
            absmag_filters,
        })
    }

    /// The observed filters of photometric system `photsys`.
    pub fn filters_for(&self, photsys: &str) -> Option<&[FilterCurve]> {
        self.obs_filters
            .iter()
            .find(|(k, _)| k == photsys)
            .map(|(_, v)| v.as_slice())
    }
}

fn igm() -> Result<&'static Inoue14, String> {
    static IGM: OnceLock<Result<Inoue14, String>> = OnceLock::new();
    IGM.get_or_init(|| Inoue14::new().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

fn cosmo() -> Result<&'static Cosmology, String> {
    static C: OnceLock<Result<Cosmology, String>> = OnceLock::new();
    C.get_or_init(|| Cosmology::desi_fiducial().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

/// Rule of §4.9 for TAUV and DN4000_MODEL: `(value, ivar)` as written.
fn mc_rule(value: f64, ivar: f64, mc_ran: bool) -> (f64, f64) {
    if ivar > 0.0 && ivar < F32MAX {
        (value, ivar)
    } else if !mc_ran {
        (value, 0.0)
    } else {
        (0.0, 0.0)
    }
}

/// Compute the derived properties of one fitted target.
///
/// `nanomaggies`/`ivar` are the dereddened observed photometry (no floor).
///
/// # Errors
/// Unknown photometric system, inconsistent shapes, distances that cannot be computed.
pub fn compute_properties(
    z: f64,
    photsys: &str,
    nanomaggies: &[f64],
    ivar: &[f64],
    cf: &ContinuumFit,
    tpl: &Templates,
    setup: &DerivedSetup,
) -> Result<PhysicalProperties, String> {
    let mut p = PhysicalProperties::default();
    if !cf.fitted || cf.coeff.iter().all(|&c| c == 0.0) {
        return Ok(p);
    }
    let nw = tpl.wave_ang.len();
    let obsf = setup
        .filters_for(photsys)
        .ok_or_else(|| format!("no filters for PHOTSYS '{photsys}'"))?;
    let (dlum, dmod) = if cf.dlum_mpc > 0.0 {
        (cf.dlum_mpc, cf.dmod)
    } else {
        let c = cosmo()?;
        (
            c.luminosity_distance(z).map_err(|e| e.to_string())?,
            c.distance_modulus(z).map_err(|e| e.to_string())?,
        )
    };
    let zwave: Vec<f64> = tpl.wave_ang.iter().map(|w| w * (1.0 + z)).collect();
    let mut zf = vec![0.0; nw];
    zfactors(igm()?, z, dlum, 1e17, MASSNORM, &zwave, &mut zf).map_err(|e| e.to_string())?;
    let inp = |flux: &'static str| -> SedInputs<'_> {
        SedInputs {
            wave: &tpl.wave_ang,
            flux: if flux == "lines" {
                &tpl.flux_nomvdisp
            } else {
                &tpl.flux_nolines_nomvdisp
            },
            klambda: &tpl.dust_klambda,
            dustflux: &tpl.dustflux,
            zfactors: &zf,
        }
    };
    let (mut with_lines, mut no_lines) = (inp("lines"), inp("nolines"));
    // fastspec: Monte Carlo SEDs from the templates convolved to the fitted σ (kept rows only).
    let kept_rows: Vec<usize> = (0..cf.coeff.len())
        .filter(|&t| cf.agekeep.get(t).copied().unwrap_or(true))
        .collect();
    let vd = cf
        .templates_vdisp
        .as_ref()
        .filter(|a| a.0.len() == kept_rows.len() * nw && a.1.len() == kept_rows.len() * nw);
    if let Some(a) = vd {
        with_lines.flux = &a.0;
        no_lines.flux = &a.1;
    }
    let mc_coeff_of = |c: &[f64]| -> Vec<f64> {
        if vd.is_some() {
            kept_rows
                .iter()
                .map(|&t| c.get(t).copied().unwrap_or(0.0))
                .collect()
        } else {
            c.to_vec()
        }
    };
    let mut atten = Vec::new();
    let sed: std::borrow::Cow<'_, [f64]> = if cf.sedmodel.len() == nw {
        std::borrow::Cow::Borrowed(&cf.sedmodel)
    } else {
        let mut s = Vec::new();
        build_sed(
            &with_lines,
            &mc_coeff_of(&cf.coeff),
            cf.tauv,
            true,
            &mut atten,
            &mut s,
        )
        .map_err(|e| e.to_string())?;
        s.into()
    };
    let sed_nl: std::borrow::Cow<'_, [f64]> = if cf.sedmodel_nolines.len() == nw {
        std::borrow::Cow::Borrowed(&cf.sedmodel_nolines)
    } else {
        let mut s = Vec::new();
        build_sed(
            &no_lines,
            &mc_coeff_of(&cf.coeff),
            cf.tauv,
            false,
            &mut atten,
            &mut s,
        )
        .map_err(|e| e.to_string())?;
        s.into()
    };

    let pre = KcorrPre::new(obsf, &setup.absmag_filters, &zwave, z).map_err(|e| e.to_string())?;
    let k = kcorr_and_absmag(
        &pre,
        z,
        dmod,
        &zwave,
        &sed,
        nanomaggies,
        ivar,
        &setup.bands_to_fit,
    )
    .map_err(|e| e.to_string())?;
    let mut cs = ContinuumScratch::default();
    let (lums, cfl) = continuum_fluxes_with(&tpl.wave_ang, &sed_nl, z, dlum, &mut cs);
    let mut dns = Dn4000Scratch::default();
    let (dn_model, _) = dn4000(&tpl.wave_ang, &sed_nl, None, None, &mut dns);
    let info = TemplateInfo {
        mstar: &tpl.mstar,
        zzsun: &tpl.zzsun,
        age_yr: &tpl.age_yr,
        dt_yr: tpl.dt_yr.as_deref(),
        sfr: &tpl.sfr,
    };
    let keep: &[bool] = &cf.agekeep;
    let sps = sps_properties(&cf.coeff, keep, &info);

    // Monte Carlo realisations: rebuild each SED from its coefficients and τ_V.
    let nmc = cf.mc_coeff.len().min(cf.mc_tauv.len());
    let nabs = setup.absmag_filters.len();
    let mut sa_mc = vec![Vec::with_capacity(nmc); nabs];
    let mut lums_mc = vec![Vec::with_capacity(nmc); 6];
    let mut cfl_mc = vec![Vec::with_capacity(nmc); 5];
    let mut sps_mc = vec![Vec::with_capacity(nmc); 4];
    let mut dn_mc = Vec::with_capacity(nmc);
    let mut sa = Vec::new();
    // DN4000 reads only a window of the grid: skip the rest per realisation.
    let dnw = dn4000_rest_window(&tpl.wave_ang);
    let mut s2_windows = read_windows(&tpl.wave_ang);
    s2_windows.push(dnw.clone());
    // Per realisation, in order: Dn4000, synthetic absmags, continuum fluxes (from the
    // line-free SED on the windows), SPS properties.
    let mut push = |c: &[f64], sa: &[f64], (l, f): ([f64; 6], [f64; 5]), dn: f64| {
        dn_mc.push(dn);
        for (j, v) in sa.iter().enumerate() {
            sa_mc[j].push(*v);
        }
        l.iter().enumerate().for_each(|(j, v)| lums_mc[j].push(*v));
        f.iter().enumerate().for_each(|(j, v)| cfl_mc[j].push(*v));
        let q = sps_properties(c, keep, &info);
        q.iter().enumerate().for_each(|(j, v)| sps_mc[j].push(*v));
    };
    let real: Vec<(&[f64], f64)> = cf
        .mc_coeff
        .iter()
        .zip(&cf.mc_tauv)
        .take(nmc)
        .map(|(c, &tv)| (c.as_slice(), tv))
        .collect();
    let nonzero = |c: &[f64]| c.iter().any(|&x| x != 0.0);
    let mut batch = McBatch::new(&[with_lines.flux, no_lines.flux]);
    let mut s2l: [Vec<f64>; LANES] = Default::default();
    let mut sa4 = Vec::new();
    let mut zeros = Vec::new();
    let mut cls = LaneScratch::default();
    let mut dnr = Dn4000Rest::new(&tpl.wave_ang[dnw.clone()]);
    let mut i = 0;
    while i < real.len() {
        let (c, _) = real[i];
        if !nonzero(c) {
            // an all-zero realisation: zero SEDs
            zeros.clear();
            zeros.resize(nw, 0.0);
            synth_absmag(&pre, z, dmod, &zeros, &mut sa).map_err(|e| e.to_string())?;
            let lf = continuum_fluxes_with(&tpl.wave_ang, &zeros, z, dlum, &mut cs);
            push(c, &sa, lf, 0.0);
            i += 1;
            continue;
        }
        // up to LANES consecutive non-zero realisations together (short batches repeat
        // their last realisation in the spare lanes)
        let mut j = i + 1;
        while j < real.len() && j - i < LANES && nonzero(real[j].0) {
            j += 1;
        }
        let cnt = j - i;
        let sed_c: Vec<Vec<f64>> = real[i..j].iter().map(|(c, _)| mc_coeff_of(c)).collect();
        let lane = |r: usize| r.min(cnt - 1);
        let c4: [&[f64]; LANES] = std::array::from_fn(|r| sed_c[lane(r)].as_slice());
        let tv4: Lanes = std::array::from_fn(|r| real[i + lane(r)].1);
        batch
            .build_with_lines(&with_lines, &c4, tv4)
            .map_err(|e| e.to_string())?;
        batch
            .synth_absmag(&with_lines, &pre, z, dmod, &mut sa4)
            .map_err(|e| e.to_string())?;
        // same τ_V: the line-free SED from the same attenuation, read only on the
        // continuum-flux windows and the Dn4000 window
        batch
            .nodust_ranges(&no_lines, &c4, &s2_windows, &mut s2l)
            .map_err(|e| e.to_string())?;
        let lf4 = continuum_fluxes_lanes(
            &tpl.wave_ang,
            std::array::from_fn(|r| s2l[r].as_slice()),
            z,
            dlum,
            &mut cls,
        );
        for (r, &lf) in lf4.iter().enumerate().take(cnt) {
            let s2 = &s2l[r];
            let dn = dnr.eval(&s2[dnw.clone()]);
            sa.clear();
            sa.extend(sa4.iter().map(|v| v[r]));
            push(real[i + r].0, &sa, lf, dn);
        }
        i = j;
    }
    let mc_ran = nmc > 0;

    p.computed = true;
    let tauv_ivar = if cf.mc_tauv.is_empty() {
        cf.tauv_ivar
    } else {
        var2ivar(nan_var(&cf.mc_tauv))
    };
    (p.tauv, p.tauv_ivar) = mc_rule(cf.tauv, tauv_ivar, mc_ran || !cf.mc_tauv.is_empty());
    let dn_ivar = if mc_ran {
        var2ivar(nan_var(&dn_mc))
    } else {
        0.0
    };
    (p.dn4000_model, p.dn4000_model_ivar) = mc_rule(dn_model, dn_ivar, mc_ran);
    [p.age_gyr, p.zzsun, p.logmstar, p.sfr] = sps;
    if mc_ran {
        p.age_ivar = nan_ivar_capped(&sps_mc[0]);
        p.zzsun_ivar = nan_ivar_capped(&sps_mc[1]);
        p.logmstar_ivar = nan_ivar_capped(&sps_mc[2]);
        p.sfr_ivar = nan_ivar_capped(&sps_mc[3]);
    }
    p.flux_synth_photmodel_nmgy = k.maggies_obs.iter().map(|m| 1e9 * m).collect();
    p.absmag = k.absmag;
    p.absmag_ivar = k.absmag_ivar;
    p.absmag_synth = k.synth_absmag;
    p.kcorr = k.kcorr;
    p.absmag_synth_ivar = if mc_ran {
        sa_mc.iter().map(|v| plain_ivar(v)).collect()
    } else {
        vec![0.0; nabs]
    };
    p.lums = lums;
    p.cfluxes = cfl;
    if mc_ran {
        for j in 0..6 {
            p.lums_ivar[j] = plain_ivar(&lums_mc[j]);
        }
        for j in 0..5 {
            p.cfluxes_ivar[j] = plain_ivar(&cfl_mc[j]);
        }
    }
    Ok(p)
}

/// System: derive every target's physical properties from its continuum fit.
///
/// Reads `Redshift`, `ObservedPhotometry` (photsys), `MilkyWayDust` (dereddened
/// photometry), `ContinuumFit`, resources `Templates` and [`DerivedSetup`]; writes
/// `PhysicalProperties`, or flags `FitStatus` (properties stay all zero). Targets with
/// `fitted == false` keep all zeros. Without the resources (no continuum fit in this run) it
/// does nothing.
#[allow(clippy::type_complexity)]
pub fn derive_properties(
    setup: Option<Res<DerivedSetup>>,
    templates: Option<Res<Templates>>,
    mut q: Query<(
        &Target,
        &Redshift,
        &ObservedPhotometry,
        &MilkyWayDust,
        &ContinuumFit,
        &mut PhysicalProperties,
        &mut FitStatus,
    )>,
) {
    let _span = tracing::info_span!("derive_properties").entered();
    let (Some(setup), Some(tpl)) = (setup, templates) else {
        return;
    };
    q.par_iter_mut()
        .batching_strategy(super::PER_TARGET)
        .for_each(|(t, z, phot, dust, cf, mut props, mut status)| {
            if !cf.fitted {
                *props = PhysicalProperties::default();
                return;
            }
            let nm: Vec<f64> = dust.flux_nmgy.iter().map(|&v| v as f64).collect();
            let iv: Vec<f64> = dust.ivar_nmgy2.iter().map(|&v| v as f64).collect();
            match compute_properties(z.z, &phot.photsys, &nm, &iv, cf, &tpl, &setup) {
                Ok(p) => *props = p,
                Err(reason) => {
                    tracing::warn!(targetid = t.targetid, "derived properties failed: {reason}");
                    *props = PhysicalProperties::default();
                    status.flag(FLAG_PROPERTIES, format!("derived properties: {reason}"));
                }
            }
        });
}

/// Register this module's systems in the schedule.
pub fn register(schedule: &mut Schedule) {
    schedule.add_systems(derive_properties.in_set(FitSystems::Finalize));
}
