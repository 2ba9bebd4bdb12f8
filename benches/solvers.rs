//! Solver kernels (SPEC Appendix A.1–A.3): NNLS on a template-sized design
//! matrix (7958 × 5, the VARPRO inner solve of §4.3), bounded Brent on a cheap
//! objective, and TRF on the 2000-pixel, 11-parameter Gaussian-sum fixture with
//! FastSpecFit's two option sets (σ★ style: 2-point Jacobian + exact solver +
//! x_scale='jac'; line-fit style: operator Jacobian + LSMR).

use criterion::{criterion_group, criterion_main, Criterion};
use fsf_systems::kernels::brent::{minimize_bounded, BoundedOptions};
use fsf_systems::kernels::nnls::{nnls, nnls_full, MatRef, NnlsOptions, NnlsWorkspace};
use fsf_systems::kernels::trf::{
    least_squares_dense, least_squares_fd, least_squares_operator, DenseJacobian, LsmrOptions,
    MatMut, OperatorJacobian, Problem, TrSolver, TrfOptions, TrfWorkspace, XScale,
};
use std::hint::black_box;

/// The `template_like` recipe of `tests/fixtures/scripts/gen_solvers.py`
/// (column-major m×n design matrix and data).
fn template_like(m: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let c_true = [1.0, -0.5, 0.8, 0.0, 0.3, -0.2, 0.6, 0.1];
    let mut a = vec![0.0; m * n];
    for j in 0..n {
        for i in 0..m {
            let t = i as f64 / (m - 1) as f64;
            let k = j as f64 + 1.0;
            a[i + j * m] = (-t * k * 0.7).exp() * (1.0 + 0.3 * (7.0 * t * k).sin()) + 0.05 * k;
        }
    }
    let mut s: u64 = 11;
    let b = (0..m)
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (s >> 11) as f64 * (1.0 / 9007199254740992.0);
            (0..n).map(|j| a[i + j * m] * c_true[j]).sum::<f64>() + 0.01 * (u - 0.5)
        })
        .collect();
    (a, b)
}

const NPIX: usize = 2000;
const NOISE: f64 = 0.5;

/// Three Gaussians + linear continuum (problem (a) of `gen_solvers_trf.py`).
struct Gauss {
    data: Vec<f64>,
    jac: Vec<f64>,
}

impl Gauss {
    fn fill(&self, p: &[f64], mut j: MatMut<'_, f64>) {
        for i in 0..NPIX {
            let w = 4000.0 + i as f64;
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
}

impl Problem for Gauss {
    fn n_residuals(&self) -> usize {
        NPIX
    }
    fn residuals(&mut self, p: &[f64], f: &mut [f64]) {
        for (i, fi) in f.iter_mut().enumerate() {
            let w = 4000.0 + i as f64;
            let mut y = p[9] + p[10] * (w - 5000.0) / 1000.0;
            for k in 0..3 {
                let z = (w - p[3 * k + 1]) / p[3 * k + 2];
                y += p[3 * k] * (-0.5 * (z * z)).exp();
            }
            *fi = (y - self.data[i]) / NOISE;
        }
    }
}

impl DenseJacobian for Gauss {
    fn jacobian(&mut self, p: &[f64], jac: MatMut<'_, f64>) {
        self.fill(p, jac);
    }
}

impl OperatorJacobian for Gauss {
    fn update_jacobian(&mut self, p: &[f64]) {
        let mut jac = std::mem::take(&mut self.jac);
        jac.resize(NPIX * 11, 0.0);
        self.fill(p, MatMut::from_column_major_slice_mut(&mut jac, NPIX, 11));
        self.jac = jac;
    }
    fn matvec(&self, v: &[f64], out: &mut [f64]) {
        out.fill(0.0);
        for (j, &vj) in v.iter().enumerate() {
            for (o, &a) in out.iter_mut().zip(&self.jac[j * NPIX..(j + 1) * NPIX]) {
                *o += a * vj;
            }
        }
    }
    fn rmatvec(&self, u: &[f64], out: &mut [f64]) {
        for (j, o) in out.iter_mut().enumerate() {
            *o = self.jac[j * NPIX..(j + 1) * NPIX]
                .iter()
                .zip(u)
                .map(|(a, b)| a * b)
                .sum();
        }
    }
}

fn gauss_data() -> Vec<f64> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/solvers/trf.json"
    );
    let text = std::fs::read_to_string(path).expect("tests/fixtures/solvers/trf.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    v["gauss"]["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

const X0: [f64; 11] = [
    1.0, 4502.0, 2.5, 1.0, 5202.0, 2.5, 1.0, 5698.0, 2.5, 0.0, 0.0,
];
const LB: [f64; 11] = [
    0.0,
    4490.0,
    2.0,
    0.0,
    5190.0,
    2.0,
    0.0,
    5690.0,
    2.0,
    f64::NEG_INFINITY,
    f64::NEG_INFINITY,
];
const UB: [f64; 11] = [
    1e5,
    4510.0,
    20.0,
    1e5,
    5210.0,
    20.0,
    1e5,
    5710.0,
    20.0,
    f64::INFINITY,
    f64::INFINITY,
];

fn benches(c: &mut Criterion) {
    // NNLS 7958 x 5.
    let (a_data, b) = template_like(7958, 5);
    let a = MatRef::from_column_major_slice(&a_data, 7958, 5);
    let mut ws = NnlsWorkspace::new(7958, 5);
    let mut x = [0.0; 5];
    let o = NnlsOptions::default();
    c.bench_function("nnls_7958x5_qr_reduced", |bch| {
        bch.iter(|| nnls(black_box(a), black_box(&b), &mut x, &o, &mut ws).map(|i| i.rnorm))
    });
    c.bench_function("nnls_7958x5_full_scipy_path", |bch| {
        bch.iter(|| nnls_full(black_box(a), black_box(&b), &mut x, &o, &mut ws).map(|i| i.rnorm))
    });

    // Bounded Brent, FastSpecFit's tau_V options.
    let bo = BoundedOptions {
        xatol: 1e-4,
        maxiter: 500,
    };
    c.bench_function("brent_bounded_quadratic", |bch| {
        bch.iter(|| {
            minimize_bounded(
                |t| (t - 0.7) * (t - 0.7) + 0.1 * t,
                0.0,
                2.0,
                black_box(&bo),
            )
        })
    });

    // TRF on the Gaussian-sum fixture.
    let data = gauss_data();
    let mut prob = Gauss {
        data,
        jac: Vec::new(),
    };
    let mut tws = TrfWorkspace::new(NPIX, 11);
    let sigma_star = TrfOptions {
        ftol: 1e-6,
        xtol: 1e-10,
        max_nfev: Some(5000),
        x_scale: XScale::Jac,
        tr_solver: TrSolver::Exact,
        ..TrfOptions::default()
    };
    let line_fit = TrfOptions {
        ftol: 1e-5,
        xtol: 1e-10,
        max_nfev: Some(5000),
        tr_solver: TrSolver::Lsmr(LsmrOptions {
            maxiter: Some(1000),
            ..LsmrOptions::default()
        }),
        ..TrfOptions::default()
    };
    let mut g = c.benchmark_group("trf_gauss_2000x11");
    g.sample_size(20);
    g.bench_function("fd_exact_xscale_jac", |bch| {
        bch.iter(|| {
            let mut x = X0;
            least_squares_fd(&mut prob, &mut x, &LB, &UB, &sigma_star, &mut tws).map(|s| s.nfev)
        })
    });
    g.bench_function("dense_exact", |bch| {
        bch.iter(|| {
            let mut x = X0;
            least_squares_dense(
                &mut prob,
                &mut x,
                &LB,
                &UB,
                &TrfOptions::default(),
                &mut tws,
            )
            .map(|s| s.nfev)
        })
    });
    g.bench_function("operator_lsmr", |bch| {
        bch.iter(|| {
            let mut x = X0;
            least_squares_operator(&mut prob, &mut x, &LB, &UB, &line_fit, &mut tws).map(|s| s.nfev)
        })
    });
    g.finish();
}

criterion_group!(group, benches);
criterion_main!(group);
