use super::*;

fn fixture() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/solvers/spline.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture solvers/spline.json");
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
    (a - b).abs() <= atol + rtol * b.abs()
}

#[test]
fn matches_scipy_univariate_spline() {
    let fx = fixture();
    let mut sp = SmoothingSpline::new();
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (x, y, w) = (
            vec_f64(&case["x"]),
            vec_f64(&case["y"]),
            vec_f64(&case["w"]),
        );
        let k = case["k"].as_u64().unwrap() as usize;
        sp.fit(&x, &y, &w, k, None).unwrap();
        assert_eq!(
            sp.ier() as i64,
            case["ier"].as_i64().unwrap(),
            "{name}: ier"
        );
        let t = vec_f64(&case["t"]);
        assert_eq!(sp.knots().len(), t.len(), "{name}: number of knots");
        // 1e-9: the inputs pass through JSON (serde_json parses to within an ulp).
        for (a, b) in sp.knots().iter().zip(&t) {
            assert!(close(*a, *b, 1e-12, 0.0), "{name}: knot {a} vs {b}");
        }
        let c = vec_f64(&case["c"]);
        let cscale = c.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in sp.coeffs().iter().zip(&c) {
            assert!(
                close(*a, *b, 1e-9, 1e-9 * cscale),
                "{name}: coefficient {a} vs {b}"
            );
        }
        let fp = case["fp"].as_f64().unwrap();
        assert!(
            close(sp.residual(), fp, 1e-8, 1e-12),
            "{name}: fp {} vs {fp}",
            sp.residual()
        );
        let xe = vec_f64(&case["xeval"]);
        let ye = vec_f64(&case["yeval"]);
        let mut out = vec![0.0; xe.len()];
        sp.eval_into(&xe, &mut out).unwrap();
        let yscale = ye.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for ((&xv, &a), &b) in xe.iter().zip(&out).zip(&ye) {
            assert!(
                close(a, b, 1e-9, 1e-9 * yscale),
                "{name}: s({xv}) = {a} vs {b}"
            );
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let mut sp = SmoothingSpline::new();
    let x = [0.0, 1.0, 2.0, 3.0];
    let y = [0.0, 1.0, 0.0, 1.0];
    let w = [1.0; 4];
    assert!(matches!(
        sp.fit(&x, &y[..3], &w, 2, None),
        Err(KernelError::Shape(_))
    ));
    assert!(matches!(
        sp.fit(&x[..2], &y[..2], &w[..2], 2, None),
        Err(KernelError::Shape(_))
    ));
    assert!(matches!(
        sp.fit(&x, &y, &w, 6, None),
        Err(KernelError::Domain(_))
    ));
    assert!(matches!(
        sp.fit(&[0.0, 2.0, 1.0, 3.0], &y, &w, 2, None),
        Err(KernelError::Domain(_))
    ));
    assert!(matches!(
        sp.fit(&x, &[0.0, f64::NAN, 0.0, 1.0], &w, 2, None),
        Err(KernelError::NonFinite(_))
    ));
    assert!(sp.fit(&x, &y, &w, 2, Some(-1.0)).is_err());
}

#[test]
fn constant_extrapolation_outside_the_data() {
    let x: Vec<f64> = (0..10).map(|i| i as f64).collect();
    let y: Vec<f64> = x.iter().map(|v| v * v).collect();
    let mut sp = SmoothingSpline::new();
    sp.fit(&x, &y, &[1.0; 10], 2, None).unwrap();
    assert_eq!(sp.eval(-5.0), sp.eval(0.0));
    assert_eq!(sp.eval(100.0), sp.eval(9.0));
}
