use faer::Mat;

use super::*;

fn fixture() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/solvers/nnls.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture solvers/nnls.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn vec_f64(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// The 64-bit LCG of `gen_solvers.py` (uniform deviates in [0, 1)).
fn lcg_uniform(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 * (1.0 / 9007199254740992.0)
        })
        .collect()
}

/// `template_like` of `gen_solvers.py`.
pub(crate) fn template_like(m: usize, n: usize, seed: u64) -> (Mat<f64>, Vec<f64>) {
    let c_true = [1.0, -0.5, 0.8, 0.0, 0.3, -0.2, 0.6, 0.1];
    let a = Mat::from_fn(m, n, |i, j| {
        let t = i as f64 / (m - 1) as f64;
        let k = j as f64 + 1.0;
        (-t * k * 0.7).exp() * (1.0 + 0.3 * (7.0 * t * k).sin()) + 0.05 * k
    });
    let u = lcg_uniform(seed, m);
    let b = (0..m)
        .map(|i| (0..n).map(|j| a[(i, j)] * c_true[j]).sum::<f64>() + 0.01 * (u[i] - 0.5))
        .collect();
    (a, b)
}

fn case_problem(case: &serde_json::Value) -> (Mat<f64>, Vec<f64>) {
    let m = case["m"].as_u64().unwrap() as usize;
    let n = case["n"].as_u64().unwrap() as usize;
    if let Some(r) = case.get("recipe") {
        return template_like(m, n, r["seed"].as_u64().unwrap());
    }
    let a = vec_f64(&case["a"]);
    (Mat::from_fn(m, n, |i, j| a[i * n + j]), vec_f64(&case["b"]))
}

fn residual_norm(a: &Mat<f64>, b: &[f64], x: &[f64]) -> f64 {
    (0..a.nrows())
        .map(|i| {
            let r = (0..a.ncols()).map(|j| a[(i, j)] * x[j]).sum::<f64>() - b[i];
            r * r
        })
        .sum::<f64>()
        .sqrt()
}

/// KKT conditions: x ≥ 0, gradient Aᵀ(Ax − b) ≥ 0 on zeros, ≈ 0 on positives.
fn assert_kkt(a: &Mat<f64>, b: &[f64], x: &[f64], tol: f64) {
    let (m, n) = a.shape();
    let r: Vec<f64> = (0..m)
        .map(|i| (0..n).map(|j| a[(i, j)] * x[j]).sum::<f64>() - b[i])
        .collect();
    let scale = b.iter().map(|v| v * v).sum::<f64>().sqrt().max(1.0);
    for j in 0..n {
        assert!(x[j] >= 0.0);
        let cn = (0..m)
            .map(|i| a[(i, j)] * a[(i, j)])
            .sum::<f64>()
            .sqrt()
            .max(1.0);
        let g: f64 = (0..m).map(|i| a[(i, j)] * r[i]).sum();
        if x[j] > 0.0 {
            assert!(
                g.abs() <= tol * cn * scale,
                "col {j}: gradient {g} on a positive coefficient"
            );
        } else {
            assert!(
                g >= -tol * cn * scale,
                "col {j}: gradient {g} < 0 on a zero coefficient"
            );
        }
    }
}

fn check_case(case: &serde_json::Value, full: bool, ws: &mut NnlsWorkspace) {
    let name = case["name"].as_str().unwrap();
    let (a, b) = case_problem(case);
    let mut x = vec![0.0; a.ncols()];
    let opts = NnlsOptions {
        maxiter: case
            .get("maxiter")
            .and_then(|v| v.as_u64())
            .map(|v| v as usize),
    };
    let res = if full {
        nnls_full(a.as_ref(), &b, &mut x, &opts, ws)
    } else {
        nnls(a.as_ref(), &b, &mut x, &opts, ws)
    };
    if !case["error"].is_null() {
        assert!(
            matches!(res, Err(KernelError::NoConvergence(_))),
            "{name}: expected failure"
        );
        return;
    }
    let info = res.unwrap_or_else(|e| panic!("{name}: {e}"));
    let want = vec_f64(&case["x"]);
    for (j, (&g, &w)) in x.iter().zip(&want).enumerate() {
        let ok = if w == 0.0 {
            g.abs() <= 1e-10
        } else {
            (g - w).abs() <= 1e-8 * w.abs()
        };
        assert!(ok, "{name} (full={full}): x[{j}] = {g:e}, scipy {w:e}");
    }
    let rn = case["rnorm"].as_f64().unwrap();
    assert!(
        (info.rnorm - rn).abs() <= 1e-10 * rn.max(1.0),
        "{name}: rnorm {} vs {rn}",
        info.rnorm
    );
    if a.nrows() >= a.ncols() {
        let direct = residual_norm(&a, &b, &x);
        assert!(
            (direct - rn).abs() <= 1e-9 * rn.max(1.0),
            "{name}: |Ax-b| {direct} vs {rn}"
        );
    }
    if !name.starts_with("degenerate") {
        assert_kkt(&a, &b, &x, 1e-9);
    }
}

#[test]
fn reduced_path_matches_scipy() {
    let fx = fixture();
    let mut ws = NnlsWorkspace::new(10, 3);
    for case in fx["cases"].as_array().unwrap() {
        check_case(case, false, &mut ws);
    }
}

#[test]
fn full_path_matches_scipy() {
    let fx = fixture();
    let mut ws = NnlsWorkspace::new(0, 0);
    for case in fx["cases"].as_array().unwrap() {
        check_case(case, true, &mut ws);
    }
}

#[test]
fn bad_inputs_are_errors() {
    let mut ws = NnlsWorkspace::new(3, 2);
    let a = Mat::from_fn(3, 2, |i, j| (i + j) as f64);
    let mut x = [0.0; 2];
    let o = NnlsOptions::default();
    assert!(matches!(
        nnls(a.as_ref(), &[1.0, 2.0], &mut x, &o, &mut ws),
        Err(KernelError::Shape(_))
    ));
    assert!(matches!(
        nnls(a.as_ref(), &[1.0, f64::NAN, 0.0], &mut x, &o, &mut ws),
        Err(KernelError::NonFinite(_))
    ));
    let mut an = a.clone();
    an[(1, 1)] = f64::INFINITY;
    assert!(matches!(
        nnls(an.as_ref(), &[1.0, 2.0, 0.0], &mut x, &o, &mut ws),
        Err(KernelError::NonFinite(_))
    ));
}

#[test]
fn row_major_views_are_accepted() {
    let (a, b) = template_like(500, 5, 3);
    let at = a.transpose().to_owned();
    let mut ws = NnlsWorkspace::new(500, 5);
    let (mut x1, mut x2) = ([0.0; 5], [0.0; 5]);
    nnls(a.as_ref(), &b, &mut x1, &NnlsOptions::default(), &mut ws).unwrap();
    nnls(
        at.transpose(),
        &b,
        &mut x2,
        &NnlsOptions::default(),
        &mut ws,
    )
    .unwrap();
    assert_eq!(x1, x2);
}
