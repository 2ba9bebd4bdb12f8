//! The σ★ fit of fastspec: FastSpecFit runs its TRF fit 51 times per σ★ target (the best
//! fit and 50 Monte Carlo refits, each from the same cold start); we run the TRF for the
//! best fit and converge the refits by variable projection (`vdispmc`).
//!
//! Input: [`VdispFixture`], a synthetic z = 0.1 spectrum made from the bundled BC03
//! templates at (τ_V, σ) = (0.3, 180 km/s), S/N ≈ 20 per pixel.
//!
//! * `vdisp_fit/trf_from_x0`: one whole TRF fit from FastSpecFit's x0 = (0.1, nominal
//!   kernel, 1, …) (`least_squares_dense_qr`, FastSpecFit's tolerances), the unit FastSpecFit
//!   repeats for each Monte Carlo refit (`--vdisp-mc fsf`);
//! * `vdisp_fit/mc_converged`: one Monte Carlo refit by `converge_sigma` from the best fit
//!   (a fresh noise realisation on the fixture's data, the default);
//! * `vdisp_fit/residuals`: one residual evaluation at a new σ (convolution, attenuation and
//!   the pass through L that also yields the Jacobian).
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use fastspecfit::simulate::vdisp_fixture::{lcg_noise, VdispFixture};
use fsf_systems::kernels::continuum::vdispmc::{converge_sigma, McSigmaWorkspace};
use fsf_systems::kernels::trf::{least_squares_dense_qr, Problem, TrfWorkspace};

fn benches(c: &mut Criterion) {
    let fx = VdispFixture::new().expect("fixture");
    let mut prob = fx.problem(&fx.istd).expect("problem");
    prob.set_data(&fx.flux).expect("data");
    let (lb, ub, x0, opts) = (&fx.lb, &fx.ub, &fx.x0, &fx.opts);
    let mut tws = TrfWorkspace::new(prob.n_residuals(), x0.len());
    let mut g = c.benchmark_group("vdisp_fit");
    g.sample_size(20);
    g.bench_function("trf_from_x0", |b| {
        b.iter(|| {
            let mut x = x0.clone();
            let s = least_squares_dense_qr(&mut prob, &mut x, lb, ub, opts, &mut tws).expect("fit");
            black_box((x, s.nfev))
        })
    });
    let mut xh = x0.clone();
    least_squares_dense_qr(&mut prob, &mut xh, lb, ub, opts, &mut tws).expect("fit");
    let mut state = 7u64;
    let mc: Vec<Vec<f64>> = (0..8)
        .map(|_| {
            let u = lcg_noise(&mut state, fx.flux.len());
            fx.flux
                .iter()
                .zip(&u)
                .map(|(f, u)| f + fx.noise * u)
                .collect()
        })
        .collect();
    let mut mws = McSigmaWorkspace::default();
    let mut k = 0;
    g.bench_function("mc_converged", |b| {
        b.iter(|| {
            k = (k + 1) % mc.len();
            prob.set_data(&mc[k]).expect("data");
            black_box(converge_sigma(&mut prob, &xh, lb, ub, &mut mws).expect("refit"))
        })
    });
    prob.set_data(&fx.flux).expect("data");
    let mut f = vec![0.0; prob.n_residuals()];
    let mut flip = false;
    g.bench_function("residuals", |b| {
        b.iter(|| {
            flip = !flip;
            let mut x = fx.x_true.clone();
            x[1] = if flip { 180.0 } else { 180.5 };
            prob.residuals(black_box(&x), &mut f);
            black_box(f[0])
        })
    });
    g.finish();
}

criterion_group!(vdisp, benches);
criterion_main!(vdisp);
