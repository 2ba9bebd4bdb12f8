use super::*;

fn fixture() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/solvers/stats.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture solvers/stats.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn vec_f64(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    (a - b).abs() <= atol + rtol * b.abs() || (a.is_nan() && b.is_nan())
}

/// SPEC §9 test_util values.
#[test]
fn spec_test_util_values() {
    let a: Vec<f64> = (0..35).map(f64::from).collect();
    let mut s = Vec::new();
    let mut q = [0.0; 2];
    quantiles(&a, &[0.1, 0.9], &mut q, &mut s).unwrap();
    assert!(
        close(q[0], 3.4, 1e-12, 0.0) && close(q[1], 30.6, 1e-12, 0.0),
        "{q:?}"
    );
    assert_eq!(median(&a, &mut s).unwrap(), 17.0);
    assert!(matches!(
        quantile(&a, 1.5, &mut s),
        Err(KernelError::Domain(_))
    ));
    assert!(matches!(
        quantile(&a, -0.1, &mut s),
        Err(KernelError::Domain(_))
    ));
    let mut keep = vec![false; 35];
    assert_eq!(sigmaclip(&a, 3.0, 3.0, &mut keep).unwrap(), 35);
    assert!(keep.iter().all(|&k| k));
    assert_eq!(var2ivar(10.0, false), 0.1);
    assert_eq!(var2ivar(10.0, true), 0.01);
    assert_eq!(var2ivar(0.0, false), 0.0);
    let mut var = [9.0; 3];
    let mut good = [true; 3];
    assert_eq!(
        ivar2var(&[0.0, 1e-9, 0.1], 1e-8, false, false, &mut var, &mut good).unwrap(),
        1
    );
    assert_eq!(var[0], 0.0);
    assert_eq!(var[1], 0.0);
    assert!(close(var[2], 10.0, 1e-15, 0.0));
    assert!(ivar2var(
        &[0.0, 0.0],
        1e-8,
        false,
        false,
        &mut var[..2],
        &mut good[..2]
    )
    .is_err());
    assert_eq!(
        ivar2var(
            &[0.0, 0.0],
            1e-8,
            false,
            true,
            &mut var[..2],
            &mut good[..2]
        )
        .unwrap(),
        0
    );
}

#[test]
fn quantiles_match_fastspecfit() {
    let fx = fixture();
    let mut s = Vec::new();
    for case in fx["quantile"].as_array().unwrap() {
        let a = vec_f64(&case["a"]);
        let qs = vec_f64(&case["q"]);
        let want = vec_f64(&case["quantiles"]);
        let mut got = vec![0.0; qs.len()];
        quantiles(&a, &qs, &mut got, &mut s).unwrap();
        for (k, (&g, &w)) in got.iter().zip(&want).enumerate() {
            assert!(
                close(g, w, 1e-15, 1e-15),
                "n={} q={} got {g} want {w}",
                a.len(),
                qs[k]
            );
            assert!(close(quantile(&a, qs[k], &mut s).unwrap(), w, 1e-15, 1e-15));
        }
        let med = median(&a, &mut s).unwrap();
        assert!(close(med, case["median"].as_f64().unwrap(), 1e-15, 0.0));
        let rs = robust_sigma(&a, &mut s).unwrap();
        assert!(close(
            rs,
            case["robust_sigma"].as_f64().unwrap(),
            1e-14,
            1e-15
        ));
    }
}

#[test]
fn nan_and_empty_inputs() {
    let mut s = Vec::new();
    assert!(median(&[1.0, f64::NAN, 2.0], &mut s).unwrap().is_nan());
    assert!(quantile(&[1.0, f64::NAN], 0.5, &mut s).unwrap().is_nan());
    assert!(median(&[], &mut s).is_err());
    assert!(quantile(&[], 0.5, &mut s).is_err());
    assert!(quantile(&[1.0], f64::NAN, &mut s).is_err());
    assert!(simpson(&[], &[], &mut s).is_err());
}

#[test]
fn sigmaclip_matches_fastspecfit() {
    let fx = fixture();
    for case in fx["sigmaclip"].as_array().unwrap() {
        let c = vec_f64(&case["c"]);
        let want: Vec<bool> = case["mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64() == Some(1))
            .collect();
        let mut keep = vec![false; c.len()];
        let low = case["low"].as_f64().unwrap();
        let high = case["high"].as_f64().unwrap();
        let n = sigmaclip(&c, low, high, &mut keep).unwrap();
        assert_eq!(keep, want, "n={}", c.len());
        assert_eq!(n as i64, case["nkept"].as_i64().unwrap());
    }
}

#[test]
fn simpson_matches_scipy() {
    let fx = fixture();
    let mut s = Vec::new();
    for case in fx["simpson"].as_array().unwrap() {
        let x = vec_f64(&case["x"]);
        let y = vec_f64(&case["y"]);
        let want = case["value"].as_f64().unwrap();
        let got = simpson(&y, &x, &mut s).unwrap();
        // serde_json parses decimals to within an ulp, which moves x by ~1e-13 here.
        assert!(
            close(got, want, 1e-12, 1e-12),
            "N={} got {got} want {want}",
            x.len()
        );
    }
}

#[test]
fn var2ivar_and_ivar2var_match_fastspecfit() {
    let fx = fixture();
    for case in fx["var2ivar"].as_array().unwrap() {
        let v = case["var"].as_f64().unwrap();
        // 1e-12: serde_json's decimal parsing may move `v` by an ulp.
        assert!(
            close(
                var2ivar(v, false),
                case["ivar"].as_f64().unwrap(),
                1e-12,
                0.0
            ),
            "var={v}"
        );
        assert!(
            close(
                var2ivar(v, true),
                case["ivar_sigma"].as_f64().unwrap(),
                1e-12,
                0.0
            ),
            "sigma={v}"
        );
    }
    for case in fx["ivar2var"].as_array().unwrap() {
        let ivar = vec_f64(&case["ivar"]);
        let clip = case["clip"].as_f64().unwrap();
        let n = ivar.len();
        let (mut var, mut sig, mut good) = (vec![0.0; n], vec![0.0; n], vec![false; n]);
        ivar2var(&ivar, clip, false, false, &mut var, &mut good).unwrap();
        ivar2var(&ivar, clip, true, false, &mut sig, &mut good).unwrap();
        for i in 0..n {
            assert!(close(var[i], vec_f64(&case["var"])[i], 1e-15, 0.0));
            assert!(close(sig[i], vec_f64(&case["sigma"])[i], 1e-15, 0.0));
            assert_eq!(good[i], case["good"][i].as_i64() == Some(1));
        }
    }
}

#[test]
fn pairwise_sum_is_exact_on_integers() {
    for n in [0usize, 1, 7, 8, 9, 127, 128, 129, 1000] {
        let a: Vec<f64> = (0..n).map(|i| i as f64).collect();
        assert_eq!(pairwise_sum(&a), (n * n.saturating_sub(1) / 2) as f64);
    }
}
