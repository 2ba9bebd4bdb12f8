//! Tests against speclite's `load_filter` / `create_shifted` (fixture from
//! `tests/fixtures/scripts/gen_phot_filters.py`) and SPEC.md §1.5 values.

use super::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/filters/filters.json"
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
    ((a - b) / b).abs()
}

#[test]
fn spec_effective_wavelengths() {
    // SPEC.md §1.5 quotes two decimals: agreement to ±0.005 Å (≈1e-6 relative).
    let spec = [
        ("decam2014-g", 4890.04),
        ("decam2014-r", 6469.62),
        ("decam2014-z", 9196.46),
        ("BASS-g", 4815.95),
        ("BASS-r", 6437.79),
        ("MzLS-z", 9229.66),
        ("wise2010-W1", 34002.54),
        ("wise2010-W2", 46520.08),
        ("wise2010-W3", 128103.38),
        ("wise2010-W4", 223752.78),
        ("bessell-U", 3618.41),
        ("bessell-B", 4442.25),
        ("bessell-V", 5536.15),
        ("twomass-J", 12407.99),
        ("sdss2010-u", 3614.37),
        ("sdss2010-g", 4749.23),
        ("sdss2010-r", 6205.83),
        ("sdss2010-i", 7525.62),
        ("sdss2010-z", 8947.38),
    ];
    for (name, want) in spec {
        let f = load_filter(name).expect("bundled");
        assert!(
            (f.lambda_eff - want).abs() <= 0.005 + 1e-9,
            "{name}: {}",
            f.lambda_eff
        );
    }
}

#[test]
fn every_bundled_filter_matches_speclite() {
    let fx = fixture();
    let shifts = vec_f64(&fx["shifts"]);
    let all = fx["filters"].as_object().expect("filters");
    assert_eq!(bundled_filter_names().count(), all.len());
    for (name, want) in all {
        let f = load_filter(name).expect("bundled filter loads");
        assert_eq!(
            f.wave.len() as u64,
            want["n"].as_u64().expect("n"),
            "{name}"
        );
        assert_eq!(f.wave[..2], vec_f64(&want["wave_first"])[..], "{name}");
        assert_eq!(
            f.wave[f.wave.len() - 2..],
            vec_f64(&want["wave_last"])[..],
            "{name}"
        );
        let ws: f64 = f.wave.iter().sum();
        let rs: f64 = f.resp.iter().sum();
        assert!(
            rel(ws, want["wave_sum"].as_f64().expect("ws")) < 1e-13,
            "{name}"
        );
        assert!(
            rel(rs, want["resp_sum"].as_f64().expect("rs")) < 1e-13,
            "{name}"
        );
        let le = want["lambda_eff"].as_f64().expect("le");
        assert!(
            rel(f.lambda_eff, le) < 1e-13,
            "{name}: {} vs {le}",
            f.lambda_eff
        );
        for (s, le) in shifts.iter().zip(vec_f64(&want["shifted_lambda_eff"])) {
            let g = f.shifted(*s).expect("valid shift");
            assert!(
                rel(g.lambda_eff, le) < 1e-13,
                "{name} shift {s}: {} vs {le}",
                g.lambda_eff
            );
            assert_eq!(g.resp, f.resp);
        }
    }
}

#[test]
fn full_curves_are_bit_identical() {
    let fx = fixture();
    for (name, want) in fx["full"].as_object().expect("full") {
        let f = load_filter(name).expect("bundled");
        assert_eq!(f.wave, vec_f64(&want["wave"]), "{name} wavelengths");
        assert_eq!(f.resp, vec_f64(&want["resp"]), "{name} responses");
    }
}

#[test]
fn trimming_keeps_one_zero_each_side() {
    let f = FilterCurve::new(
        "t-a",
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        vec![0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0],
    )
    .expect("valid");
    assert_eq!(f.wave, vec![3.0, 4.0, 5.0, 6.0]);
    assert_eq!(f.resp, vec![0.0, 1.0, 2.0, 0.0]);
    // trapezoid by hand: ∫λ²R = .5(0+16) + .5(16+50) + .5(50+0) = 66, ∫λR = 2 + 7 + 5 = 14
    assert!((f.lambda_eff - 66.0 / 14.0).abs() < 1e-12);
    assert_eq!(f.response_at(4.5), 1.5);
    assert_eq!(f.response_at(2.0), 0.0);
    assert_eq!(f.response_at(6.0), 0.0);
}

#[test]
fn invalid_curves_and_names_are_errors() {
    let bad = |w: Vec<f64>, r: Vec<f64>| FilterCurve::new("t-b", w, r).is_err();
    assert!(bad(vec![1.0, 2.0], vec![0.0, 0.0]));
    assert!(bad(vec![1.0, 2.0, 3.0], vec![0.0, 1.0]));
    assert!(bad(vec![1.0, 3.0, 2.0], vec![0.0, 1.0, 0.0]));
    assert!(bad(vec![1.0, 2.0, 3.0], vec![0.0, 0.0, 0.0]));
    assert!(bad(vec![1.0, 2.0, 3.0], vec![0.0, -1.0, 0.0]));
    assert!(bad(vec![1.0, 2.0, 3.0], vec![1.0, 1.0, 0.0]));
    assert!(bad(vec![1.0, 2.0, 3.0], vec![0.0, f64::NAN, 0.0]));
    let e = load_filter("decam2014-q").unwrap_err().to_string();
    assert!(e.contains("decam2014-q") && e.contains("wise2010"), "{e}");
    let f = load_filter("decam2014-g").expect("bundled");
    assert!(f.shifted(-1.0).is_err());
    assert!(f.shifted(0.1).expect("ok").shifted(0.1).is_err());
    assert!(FilterCurve::from_ecsv(
        "x-y",
        "# - {name: wavelength, unit: parsec}\nwavelength response\n1 0\n2 1\n3 0\n"
    )
    .is_err());
    assert!(FilterCurve::from_ecsv(
        "x-y",
        "# - {name: wavelength, unit: nm}\nwavelength response\n1 0\n2 one\n3 0\n"
    )
    .is_err());
}
