use faer::MatMut;

use super::*;

fn fixture() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/solvers/trf.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture solvers/trf.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn num(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::Number(n) => n.as_f64().expect("number"),
        serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
        serde_json::Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => panic!("not a number: {other}"),
    }
}

fn vec_f64(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(num).collect()
}

/// Test problems of `gen_solvers_trf.py`.
enum Kind {
    Gauss(Vec<f64>),
    Rosen,
    RosenNan,
    Exp,
}

struct Test {
    kind: Kind,
    calls: usize,
    /// Stored Jacobian for the operator form.
    jac: Vec<f64>,
}

const NPIX: usize = 2000;
const NOISE: f64 = 0.5;

fn wave(i: usize) -> f64 {
    4000.0 + i as f64
}

fn t_grid(i: usize) -> f64 {
    // np.linspace(0, 10, 50)
    i as f64 * (10.0 / 49.0)
}

fn exp_data(t: f64) -> f64 {
    3.0 * (-0.7 * t).exp() + 0.5 + 0.05 * (7.0 * t).sin()
}

impl Test {
    fn m(&self) -> usize {
        match self.kind {
            Kind::Gauss(_) => NPIX,
            Kind::Rosen | Kind::RosenNan => 2,
            Kind::Exp => 50,
        }
    }

    fn fill_jac(&self, p: &[f64], mut j: MatMut<'_, f64>) {
        match &self.kind {
            Kind::Gauss(_) => {
                for i in 0..NPIX {
                    let w = wave(i);
                    for k in 0..3 {
                        let (a, mu, sig) = (p[3 * k], p[3 * k + 1], p[3 * k + 2]);
                        let z = (w - mu) / sig;
                        let e = (-0.5 * (z * z)).exp();
                        j[(i, 3 * k)] = e / NOISE;
                        j[(i, 3 * k + 1)] = a * e * z / sig / NOISE;
                        j[(i, 3 * k + 2)] = a * e * (z * z) / sig / NOISE;
                    }
                    j[(i, 9)] = 1.0 / NOISE;
                    j[(i, 10)] = (w - 5000.0) / 1000.0 / NOISE;
                }
            }
            Kind::Rosen | Kind::RosenNan => {
                j[(0, 0)] = -20.0 * p[0];
                j[(0, 1)] = 10.0;
                j[(1, 0)] = -1.0;
                j[(1, 1)] = 0.0;
            }
            Kind::Exp => {
                for i in 0..50 {
                    let t = t_grid(i);
                    let e = (-p[1] * t).exp();
                    j[(i, 0)] = e;
                    j[(i, 1)] = -p[0] * t * e;
                    j[(i, 2)] = 1.0;
                }
            }
        }
    }
}

impl Problem for Test {
    fn n_residuals(&self) -> usize {
        self.m()
    }

    fn residuals(&mut self, p: &[f64], f: &mut [f64]) {
        self.calls += 1;
        match &self.kind {
            Kind::Gauss(data) => {
                for i in 0..NPIX {
                    let w = wave(i);
                    let mut y = p[9] + p[10] * (w - 5000.0) / 1000.0;
                    for k in 0..3 {
                        let z = (w - p[3 * k + 1]) / p[3 * k + 2];
                        y += p[3 * k] * (-0.5 * (z * z)).exp();
                    }
                    f[i] = (y - data[i]) / NOISE;
                }
            }
            Kind::Rosen | Kind::RosenNan => {
                if matches!(self.kind, Kind::RosenNan) && p[0] > 0.5 {
                    f.fill(f64::NAN);
                    return;
                }
                f[0] = 10.0 * (p[1] - p[0] * p[0]);
                f[1] = 1.0 - p[0];
            }
            Kind::Exp => {
                for (i, fi) in f.iter_mut().enumerate() {
                    let t = t_grid(i);
                    *fi = p[0] * (-p[1] * t).exp() + p[2] - exp_data(t);
                }
            }
        }
    }
}

impl DenseJacobian for Test {
    fn jacobian(&mut self, p: &[f64], jac: MatMut<'_, f64>) {
        self.fill_jac(p, jac);
    }
}

impl OperatorJacobian for Test {
    fn update_jacobian(&mut self, p: &[f64]) {
        let (m, n) = (self.m(), p.len());
        let mut jac = std::mem::take(&mut self.jac);
        jac.resize(m * n, 0.0);
        self.fill_jac(p, MatMut::from_column_major_slice_mut(&mut jac, m, n));
        self.jac = jac;
    }

    fn matvec(&self, v: &[f64], out: &mut [f64]) {
        let m = self.m();
        out.fill(0.0);
        for (j, &vj) in v.iter().enumerate() {
            for (o, &a) in out.iter_mut().zip(&self.jac[j * m..(j + 1) * m]) {
                *o += a * vj;
            }
        }
    }

    fn rmatvec(&self, u: &[f64], out: &mut [f64]) {
        let m = self.m();
        for (j, o) in out.iter_mut().enumerate() {
            *o = self.jac[j * m..(j + 1) * m]
                .iter()
                .zip(u)
                .map(|(a, b)| a * b)
                .sum();
        }
    }
}

fn bounds(v: &serde_json::Value) -> Vec<f64> {
    vec_f64(v)
}

fn options(run: &serde_json::Value) -> TrfOptions {
    let x_scale = match &run["x_scale"] {
        serde_json::Value::String(s) if s == "jac" => XScale::Jac,
        serde_json::Value::Array(_) => XScale::Values(vec_f64(&run["x_scale"])),
        _ => XScale::Ones,
    };
    let tr_solver = if run["tr_solver"] == "lsmr" {
        TrSolver::Lsmr(LsmrOptions {
            maxiter: run["lsmr_maxiter"].as_u64().map(|v| v as usize),
            ..LsmrOptions::default()
        })
    } else {
        TrSolver::Exact
    };
    TrfOptions {
        ftol: num(&run["ftol"]),
        xtol: num(&run["xtol"]),
        gtol: num(&run["gtol"]),
        max_nfev: run["max_nfev"].as_u64().map(|v| v as usize),
        x_scale,
        tr_solver,
    }
}

fn solve(
    run: &serde_json::Value,
    data: &[f64],
    ws: &mut TrfWorkspace,
) -> (Vec<f64>, TrfSummary, usize) {
    solve_as(run, run["jac"].as_str().unwrap(), data, ws)
}

fn solve_as(
    run: &serde_json::Value,
    mode: &str,
    data: &[f64],
    ws: &mut TrfWorkspace,
) -> (Vec<f64>, TrfSummary, usize) {
    let kind = match run["problem"].as_str().unwrap() {
        "gauss" => Kind::Gauss(data.to_vec()),
        "rosen" => Kind::Rosen,
        "rosen_nan" => Kind::RosenNan,
        "exp" => Kind::Exp,
        other => panic!("unknown problem {other}"),
    };
    let mut prob = Test {
        kind,
        calls: 0,
        jac: Vec::new(),
    };
    let mut x = vec_f64(&run["x0"]);
    let lb = bounds(&run["lb"]);
    let ub = bounds(&run["ub"]);
    let opts = options(run);
    let res = match mode {
        "2-point" => least_squares_fd(&mut prob, &mut x, &lb, &ub, &opts, ws),
        "dense" => least_squares_dense(&mut prob, &mut x, &lb, &ub, &opts, ws),
        "dense_qr" => least_squares_dense_qr(&mut prob, &mut x, &lb, &ub, &opts, ws),
        "operator" => least_squares_operator(&mut prob, &mut x, &lb, &ub, &opts, ws),
        other => panic!("unknown jac mode {other}"),
    };
    let summary = res.unwrap_or_else(|e| panic!("{}: {e}", run["name"]));
    (x, summary, prob.calls)
}

#[test]
fn matches_scipy_least_squares() {
    let fx = fixture();
    let data = vec_f64(&fx["gauss"]["data"]);
    let mut ws = TrfWorkspace::new(10, 2);
    let mut report = Vec::new();
    // every dense exact-solver run once more through the R-factor model
    let runs = fx["runs"].as_array().unwrap();
    let qr_runs = runs
        .iter()
        .filter(|r| r["jac"] == "dense" && r["tr_solver"] != "lsmr")
        .map(|r| (r, "dense_qr"));
    let mut nqr = 0;
    for (run, mode) in runs
        .iter()
        .map(|r| (r, r["jac"].as_str().unwrap()))
        .chain(qr_runs)
    {
        let name = &format!("{} ({mode})", run["name"].as_str().unwrap());
        nqr += usize::from(mode == "dense_qr");
        let (x, s, _) = solve_as(run, mode, &data, &mut ws);
        let want = vec_f64(&run["x"]);
        let lb = bounds(&run["lb"]);
        let ub = bounds(&run["ub"]);
        // The LSMR runs of the Gaussian-sum problem are chaotic at the rounding
        // level: its Lanczos vectors come out of heavy cancellation (column norms
        // of J differ by 10³ with x_scale = 1), so scipy itself moves by 2e-3 when
        // the data change by 1e-15 (gen_solvers_trf.py's problem, checked by hand).
        // There the well-determined parameters get rtol 1e-3, the weak third line
        // (true amplitude 0) 0.1, the cost 5e-4; everything else rtol 1e-6.
        let chaotic = name.starts_with("gauss_line_fit");
        for (i, (&g, &w)) in x.iter().zip(&want).enumerate() {
            let rtol = match (chaotic, i) {
                (false, _) => 1e-6,
                (true, 6..=8) => 0.1,
                (true, _) => 1e-3,
            };
            // Relative, or relative to the bound box / unit scale for values near 0.
            let span = if (ub[i] - lb[i]).is_finite() {
                (ub[i] - lb[i]).min(1.0)
            } else {
                1.0
            };
            assert!(
                (g - w).abs() <= rtol * w.abs().max(span),
                "{name}: x[{i}] = {g} vs scipy {w}"
            );
        }
        let cost = num(&run["cost"]);
        let crtol = if chaotic { 5e-4 } else { 1e-8 };
        assert!(
            (s.cost - cost).abs() <= crtol * cost.max(1e-12),
            "{name}: cost {} vs {cost}",
            s.cost
        );
        assert_eq!(s.njev as u64, run["njev"].as_u64().unwrap(), "{name}: njev");
        assert_eq!(
            s.status.code() as i64,
            run["status"].as_i64().unwrap(),
            "{name}: status"
        );
        let am: Vec<i8> = run["active_mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap() as i8)
            .collect();
        assert_eq!(ws.active_mask(), &am[..], "{name}: active mask");
        report.push((
            name.to_string(),
            s.nfev,
            run["nfev"].as_u64().unwrap() as usize,
            s.njev,
        ));
    }
    assert!(nqr >= 2, "only {nqr} dense exact runs");
    for (name, got, want, njev) in &report {
        assert_eq!(
            got, want,
            "{name}: nfev {got} vs scipy {want} (njev {njev})"
        );
    }
}

#[test]
fn jacobian_and_residuals_are_left_in_the_workspace() {
    let fx = fixture();
    let data = vec_f64(&fx["gauss"]["data"]);
    let run = fx["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "gauss_dense_exact")
        .unwrap();
    let mut ws = TrfWorkspace::new(NPIX, 11);
    let (x, s, _) = solve(run, &data, &mut ws);
    let f = ws.residuals();
    let cost = 0.5 * f.iter().map(|v| v * v).sum::<f64>();
    assert!((cost - s.cost).abs() <= 1e-12 * cost);
    let j = ws.jacobian();
    assert_eq!(j.shape(), (NPIX, 11));
    // g = Jᵀ f
    for k in 0..11 {
        let gk: f64 = (0..NPIX).map(|i| j[(i, k)] * f[i]).sum();
        assert!((gk - ws.grad()[k]).abs() <= 1e-9 * gk.abs().max(1.0));
    }
    assert!(x.iter().all(|v| v.is_finite()));
}

#[test]
fn bad_inputs_are_errors() {
    let mut ws = TrfWorkspace::new(2, 2);
    let mut p = Test {
        kind: Kind::Rosen,
        calls: 0,
        jac: Vec::new(),
    };
    let o = TrfOptions::default();
    let mut x = vec![0.0, 0.0];
    let e = least_squares_fd(&mut p, &mut x, &[1.0, 0.0], &[0.5, 1.0], &o, &mut ws);
    assert!(matches!(e, Err(KernelError::Domain(_))), "lb >= ub");
    let e = least_squares_fd(&mut p, &mut x, &[1.0, -1.0], &[2.0, 1.0], &o, &mut ws);
    assert!(matches!(e, Err(KernelError::Domain(_))), "x0 outside");
    let e = least_squares_fd(&mut p, &mut x, &[-1.0], &[1.0], &o, &mut ws);
    assert!(matches!(e, Err(KernelError::Shape(_))), "bounds length");
    let mut pn = Test {
        kind: Kind::RosenNan,
        calls: 0,
        jac: Vec::new(),
    };
    let mut x = vec![0.9, 0.0];
    let e = least_squares_fd(&mut pn, &mut x, &[-1.0, -1.0], &[1.0, 1.0], &o, &mut ws);
    assert!(matches!(e, Err(KernelError::NonFinite(_))), "non-finite f0");
    let lo = TrfOptions {
        x_scale: XScale::Jac,
        tr_solver: TrSolver::Lsmr(LsmrOptions::default()),
        ..o.clone()
    };
    let mut x = vec![0.0, 0.0];
    let e = least_squares_operator(&mut p, &mut x, &[-1.0, -1.0], &[1.0, 1.0], &lo, &mut ws);
    assert!(
        matches!(e, Err(KernelError::Domain(_))),
        "jac scale with operator"
    );
    let e = least_squares_operator(&mut p, &mut x, &[-1.0, -1.0], &[1.0, 1.0], &o, &mut ws);
    assert!(
        matches!(e, Err(KernelError::Domain(_))),
        "exact with operator"
    );
}

#[test]
fn initial_point_on_a_bound_is_moved_inside() {
    // scipy: an amplitude starting at its lower bound 0 starts at 1e-10.
    let mut ws = TrfWorkspace::new(50, 3);
    let mut p = Test {
        kind: Kind::Exp,
        calls: 0,
        jac: Vec::new(),
    };
    let mut x = vec![0.0, 0.5, 0.0];
    let o = TrfOptions {
        max_nfev: Some(1),
        ..TrfOptions::default()
    };
    let s = least_squares_dense(
        &mut p,
        &mut x,
        &[0.0, 0.0, -1.0],
        &[10.0, 2.0, 1.0],
        &o,
        &mut ws,
    )
    .unwrap();
    assert_eq!(x[0], 1e-10);
    assert_eq!(s.nfev, 1);
    assert_eq!(s.status, TrfStatus::MaxNfev);
}

#[test]
#[ignore = "diagnostic printout"]
fn print_comparison() {
    let fx = fixture();
    let data = vec_f64(&fx["gauss"]["data"]);
    let mut ws = TrfWorkspace::new(10, 2);
    for run in fx["runs"].as_array().unwrap() {
        let (x, s, calls) = solve(run, &data, &mut ws);
        let want = vec_f64(&run["x"]);
        let rel: Vec<f64> = x
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1e-300))
            .collect();
        let maxrel = rel.iter().copied().fold(0.0, f64::max);
        if maxrel > 1e-6 {
            eprintln!(
                "  per-parameter relative differences {:?}",
                rel.iter().map(|v| format!("{v:.1e}")).collect::<Vec<_>>()
            );
        }
        eprintln!(
            "{:28} nfev {:3}/{:3} njev {:3}/{:3} status {}/{} calls {calls} maxrel {maxrel:.2e} cost {:.12e}/{:.12e}",
            run["name"].as_str().unwrap(),
            s.nfev, run["nfev"], s.njev, run["njev"], s.status.code(), run["status"], s.cost, num(&run["cost"])
        );
    }
}
