//! Tests against FastSpecFit's `mwdust_transmission` and desiutil's `dust_transmission`.

use super::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/mwdust/mwdust.json"
);

fn fixture() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(FIXTURE).expect("fixture")).expect("json")
}

fn vec_f64(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn rel(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        a.abs()
    } else {
        ((a - b) / b).abs()
    }
}

#[test]
fn decam_g_brief_values() {
    let t: Vec<f64> = [0.07, 0.458]
        .iter()
        .map(|&e| mwdust_transmission("decam2014-g", e).expect("known"))
        .collect();
    assert!(
        // the brief quotes 8 decimals
        (t[0] - 0.81295031).abs() < 5e-9 && (t[1] - 0.25796548).abs() < 5e-9,
        "{t:?}"
    );
}

#[test]
fn band_transmissions_match_fastspecfit() {
    let fx = fixture();
    let ebvs = vec_f64(&fx["ebv"]);
    let bands = fx["bands"].as_object().expect("bands");
    assert_eq!(bands.len(), 30);
    for (name, vals) in bands {
        for (e, want) in ebvs.iter().zip(vec_f64(vals)) {
            let got = mwdust_transmission(name, *e).expect("known filter");
            assert!(rel(got, want) < 1e-14, "{name} ebv {e}: {got} vs {want}");
        }
    }
}

#[test]
fn unknown_filter_is_an_error() {
    assert!(matches!(
        mwdust_transmission("decam2014-q", 0.1),
        Err(KernelError::Domain(_))
    ));
    assert!(mw_extinction_coefficient("sdss2010-r").is_err());
}

#[test]
fn f99_curve_matches_desiutil() {
    let fx = fixture();
    let curve = Fitzpatrick99::new(RV_DEFAULT);
    let (wave, want) = (
        vec_f64(&fx["f99"]["wave"]),
        vec_f64(&fx["f99"]["a_over_av"]),
    );
    let worst = wave
        .iter()
        .zip(&want)
        .map(|(&w, &y)| rel(curve.a_over_av(w), y))
        .fold(0.0, f64::max);
    assert!(worst < 1e-12, "worst relative error {worst}");
}

#[test]
fn spectral_transmission_matches_desiutil() {
    let fx = fixture();
    let curve = Fitzpatrick99::new(RV_DEFAULT);
    for s in fx["spectra"].as_array().expect("spectra") {
        let (wave, want) = (vec_f64(&s["wave"]), vec_f64(&s["trans"]));
        let ebv = s["ebv"].as_f64().expect("ebv");
        let mut got = vec![0.0; wave.len()];
        dust_transmission(&curve, &wave, ebv, &mut got).expect("valid");
        let worst = got
            .iter()
            .zip(&want)
            .map(|(&g, &w)| rel(g, w))
            .fold(0.0, f64::max);
        assert!(
            worst < 1e-12,
            "{} ebv {ebv}: worst relative error {worst}",
            s["name"]
        );
    }
}

#[test]
fn spectral_transmission_rejects_bad_input() {
    let curve = Fitzpatrick99::new(RV_DEFAULT);
    let mut out = [0.0; 2];
    assert!(matches!(
        dust_transmission(&curve, &[5000.0], 0.1, &mut out),
        Err(KernelError::Shape(_))
    ));
    assert!(matches!(
        dust_transmission(&curve, &[5000.0, 0.0], 0.1, &mut out),
        Err(KernelError::Domain(_))
    ));
}
