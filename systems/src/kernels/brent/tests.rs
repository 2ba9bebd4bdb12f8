use super::*;

fn fixture() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/solvers/brent.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture solvers/brent.json");
    serde_json::from_str(&text).expect("valid JSON")
}

/// The objective functions of `gen_solvers.py`, by name.
fn func(name: &str) -> fn(f64) -> f64 {
    match name {
        "quadratic" => |x| (x - 0.7) * (x - 0.7),
        "quartic" => |x| x.powf(4.0) - 3.0 * x.powf(3.0) + 2.0,
        "linear_up" => |x| x,
        "linear_down" => |x| -x,
        "sine" => f64::sin,
        "inf_left" => |x| {
            if x < 0.5 {
                f64::INFINITY
            } else {
                (x - 1.0) * (x - 1.0)
            }
        },
        "abs_kink" => |x| (x - 0.3).abs() + 0.1 * x,
        "chi2_like" => |x| 100.0 * (3.0 * (x - 0.4)).cosh() + 5.0 * x,
        "flat" => |_| 1.0,
        other => panic!("unknown function {other}"),
    }
}

#[test]
fn matches_scipy_minimize_scalar_bounded() {
    let fx = fixture();
    for case in fx["cases"].as_array().unwrap() {
        let name = case["func"].as_str().unwrap();
        let f = func(name);
        let lo = case["bounds"][0].as_f64().unwrap();
        let hi = case["bounds"][1].as_f64().unwrap();
        let opts = BoundedOptions {
            xatol: case["xatol"].as_f64().unwrap(),
            maxiter: case["maxiter"].as_u64().unwrap() as usize,
        };
        let mut trace = Vec::new();
        let res = minimize_bounded(
            |x| {
                trace.push(x);
                f(x)
            },
            lo,
            hi,
            &opts,
        )
        .unwrap();
        let want: Vec<f64> = case["trace"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(
            res.nfev,
            case["nfev"].as_u64().unwrap() as usize,
            "{name}: nfev"
        );
        assert_eq!(trace.len(), want.len(), "{name}: trace length");
        for (k, (a, b)) in trace.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                "{name}: point {k}: {a} vs {b}"
            );
        }
        let x = case["x"].as_f64().unwrap();
        assert!((res.x - x).abs() <= 1e-10, "{name}: x {} vs {x}", res.x);
        let fun = case["fun"].as_f64().unwrap();
        assert!(
            (res.fun - fun).abs() <= 1e-12 * fun.abs().max(1.0),
            "{name}: fun"
        );
        assert_eq!(
            res.status.code() as i64,
            case["status"].as_i64().unwrap(),
            "{name}: status"
        );
    }
}

#[test]
fn rejects_bad_bounds() {
    let o = BoundedOptions::default();
    assert!(minimize_bounded(|x| x, 1.0, 0.0, &o).is_err());
    assert!(minimize_bounded(|x| x, 0.0, f64::INFINITY, &o).is_err());
    assert!(minimize_bounded(|x| x, f64::NAN, 1.0, &o).is_err());
}

#[test]
fn nan_objective_reports_nan_status() {
    let r = minimize_bounded(|_| f64::NAN, 0.0, 1.0, &BoundedOptions::default()).unwrap();
    assert_eq!(r.status, BoundedStatus::NaN);
}
