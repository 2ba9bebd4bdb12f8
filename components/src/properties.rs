//! Derived physical properties of a continuum fit (SPEC §4.11 model part, §4.12, §4.9
//! variances, §6.4, §6.7).

use bevy_ecs::prelude::Component;

/// K-corrections, absolute magnitudes, luminosities, continuum fluxes and SPS properties.
///
/// Written by `passes::properties::derive_properties` (FitSystems::Finalize) from
/// `ContinuumFit`; read by the SPECPHOT writer. Every value already follows the output
/// conventions of SPEC §4.9/§6.7 (a value whose ivar rule failed is 0; ivars are 0 when not
/// measured), so writers copy the fields as they are. All zero when the target was not fitted
/// or all coefficients are zero.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct PhysicalProperties {
    /// Whether the properties were computed (fit made and some coefficient non-zero).
    pub computed: bool,
    /// τ_V as written (0 when Monte Carlo ran but its ivar is 0 — [QUIRK] §4.9).
    pub tauv: f64,
    /// Inverse variance of τ_V.
    pub tauv_ivar: f64,
    /// Coefficient-weighted mean template age, Gyr.
    pub age_gyr: f64,
    /// Inverse variance of the age, Gyr⁻².
    pub age_ivar: f64,
    /// Mass-weighted log₁₀ Z/Z☉.
    pub zzsun: f64,
    /// Inverse variance of `zzsun`.
    pub zzsun_ivar: f64,
    /// log₁₀ M★/M☉.
    pub logmstar: f64,
    /// Inverse variance of `logmstar`.
    pub logmstar_ivar: f64,
    /// 100-Myr star-formation rate, M☉/yr.
    pub sfr: f64,
    /// Inverse variance of `sfr`, yr²/M☉².
    pub sfr_ivar: f64,
    /// Dn(4000) of the line-free model.
    pub dn4000_model: f64,
    /// Inverse variance of `dn4000_model`.
    pub dn4000_model_ivar: f64,
    /// Model photometry per configured band, nanomaggies (FLUX_SYNTH_PHOTMODEL_*).
    pub flux_synth_photmodel_nmgy: Vec<f64>,
    /// ABSMAG per absmag band, mag.
    pub absmag: Vec<f64>,
    /// ABSMAG_IVAR per absmag band, mag⁻².
    pub absmag_ivar: Vec<f64>,
    /// ABSMAG_SYNTH per absmag band, mag.
    pub absmag_synth: Vec<f64>,
    /// ABSMAG_SYNTH_IVAR per absmag band, mag⁻².
    pub absmag_synth_ivar: Vec<f64>,
    /// KCORR per absmag band, mag.
    pub kcorr: Vec<f64>,
    /// LOGL_1450, LOGLNU_1500, LOGL_1700, LOGLNU_2800, LOGL_3000, LOGL_5100 (this order).
    pub lums: [f64; 6],
    /// Inverse variances of `lums`.
    pub lums_ivar: [f64; 6],
    /// FLYA_1215_CONT, FOII_3727_CONT, FHBETA_CONT, FOIII_5007_CONT, FHALPHA_CONT,
    /// observed frame, 1e-17 erg/s/cm²/Å.
    pub cfluxes: [f64; 5],
    /// Inverse variances of `cfluxes`.
    pub cfluxes_ivar: [f64; 5],
}
