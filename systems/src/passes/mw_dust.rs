//! `correct_mw_dust`: Milky Way E(B−V) from the SFD98 maps and dereddened photometry (SPEC §1.6).

use bevy_ecs::prelude::*;
use fsf_components::{
    FitStatus, InputEbv, MilkyWayDust, ObservedPhotometry, PhotometricSetup, SkyPosition, Target,
};

use crate::kernels::mwdust::mwdust_transmission;
use crate::kernels::sfd::{ebv as sfd_ebv, SfdHemisphere};

/// The SFD98 E(B−V) maps of both Galactic hemispheres, shared read-only by all targets.
#[derive(Resource, Debug, Clone)]
pub struct DustMap {
    /// North Galactic hemisphere map.
    pub ngp: SfdHemisphere,
    /// South Galactic hemisphere map.
    pub sgp: SfdHemisphere,
}

/// Per-target kernel: E(B−V), band transmissions and dereddened fluxes.
///
/// Arithmetic mirrors FastSpecFit's dtypes: transmissions are rounded to float32 and the
/// band fluxes and ivars are corrected in float32 (`flux/T`, `ivar·T²`); fiber fluxes are
/// divided by float64 transmissions and stored as float32.
///
/// # Errors
/// A position outside the map, an unknown filter, or a negative inverse variance.
pub fn deredden_photometry(
    pos: &SkyPosition,
    phot: &ObservedPhotometry,
    setup: &PhotometricSetup,
    map: &DustMap,
) -> Result<MilkyWayDust, (u32, String)> {
    let ebv = sfd_ebv(pos.ra_deg, pos.dec_deg, &map.ngp, &map.sgp).map_err(|e| {
        (
            FitStatus::FLAG_MW_DUST,
            format!("SFD E(B-V) lookup failed: {e}"),
        )
    })?;
    deredden_with_ebv(ebv, phot, setup)
}

/// Per-target kernel with a given E(B−V) (stacks and generic spectra, [`InputEbv`]): band
/// transmissions and dereddened fluxes as [`deredden_photometry`].
///
/// # Errors
/// An unknown filter or a negative inverse variance.
pub fn deredden_with_ebv(
    ebv: f64,
    phot: &ObservedPhotometry,
    setup: &PhotometricSetup,
) -> Result<MilkyWayDust, (u32, String)> {
    let filters = setup.filters_for(&phot.photsys).ok_or_else(|| {
        (
            FitStatus::FLAG_PHOTOMETRY,
            format!("no filters configured for PHOTSYS '{}'", phot.photsys),
        )
    })?;
    let mut out = MilkyWayDust {
        ebv,
        ..Default::default()
    };
    for (b, filt) in filters.iter().enumerate() {
        let t = mwdust_transmission(filt, ebv)
            .map_err(|e| (FitStatus::FLAG_PHOTOMETRY, e.to_string()))? as f32;
        let (f, iv) = (phot.flux_nmgy[b], phot.ivar_nmgy2[b]);
        out.transmission.push(t);
        out.flux_nmgy.push(f / t);
        out.ivar_nmgy2.push(iv * (t * t));
    }
    if let Some(b) = out.ivar_nmgy2.iter().position(|&v| v < 0.0 || v.is_nan()) {
        return Err((
            FitStatus::FLAG_PHOTOMETRY,
            format!(
                "negative or NaN inverse variance in band {}",
                setup.bands.get(b).map(String::as_str).unwrap_or("?")
            ),
        ));
    }
    if !phot.fiberflux_nmgy.is_empty() {
        let ffilters = setup.fiber_filters_for(&phot.photsys).ok_or_else(|| {
            (
                FitStatus::FLAG_PHOTOMETRY,
                format!("no fiber filters for PHOTSYS '{}'", phot.photsys),
            )
        })?;
        for (b, filt) in ffilters.iter().enumerate() {
            let t = mwdust_transmission(filt, ebv)
                .map_err(|e| (FitStatus::FLAG_PHOTOMETRY, e.to_string()))?;
            out.fiberflux_nmgy
                .push((phot.fiberflux_nmgy[b] as f64 / t) as f32);
            out.fibertotflux_nmgy
                .push((phot.fibertotflux_nmgy[b] as f64 / t) as f32);
        }
    }
    Ok(out)
}

/// The per-target data `correct_mw_dust` reads and writes.
type DustQuery = (
    &'static Target,
    &'static SkyPosition,
    &'static ObservedPhotometry,
    Option<&'static InputEbv>,
    &'static mut MilkyWayDust,
    &'static mut FitStatus,
);

/// System: look up E(B−V) and deredden every target's photometry.
///
/// Targets with an [`InputEbv`] (stacks, generic spectra) use it instead of the SFD98 map,
/// which may then be absent (a target without either is flagged).
///
/// Reads `SkyPosition`, `ObservedPhotometry`, `InputEbv`, resources `PhotometricSetup`, `DustMap`;
/// writes `MilkyWayDust`, or flags `FitStatus` (the target keeps zero transmissions and
/// zero ivars, i.e. "not measured") with a log line naming the TARGETID. SPEC §1.6.
pub fn correct_mw_dust(
    setup: Res<PhotometricSetup>,
    map: Option<Res<DustMap>>,
    mut q: Query<DustQuery>,
) {
    let _span = tracing::info_span!("correct_mw_dust").entered();
    let map = map.as_deref();
    q.par_iter_mut()
        .for_each(|(target, pos, phot, input_ebv, mut dust, mut status)| {
            let r = match (input_ebv, map) {
                (Some(e), _) => deredden_with_ebv(e.0, phot, &setup),
                (None, Some(m)) => deredden_photometry(pos, phot, &setup, m),
                (None, None) => Err((FitStatus::FLAG_MW_DUST, "no SFD98 map loaded".to_string())),
            };
            match r {
                Ok(d) => *dust = d,
                Err((flag, reason)) => {
                    tracing::warn!(targetid = target.targetid, "{reason}");
                    let nb = phot.flux_nmgy.len();
                    *dust = MilkyWayDust {
                        ebv: 0.0,
                        transmission: vec![0.0; nb],
                        flux_nmgy: vec![0.0; nb],
                        ivar_nmgy2: vec![0.0; nb],
                        fiberflux_nmgy: vec![0.0; phot.fiberflux_nmgy.len()],
                        fibertotflux_nmgy: vec![0.0; phot.fibertotflux_nmgy.len()],
                    };
                    status.flag(flag, reason);
                }
            }
        });
}
