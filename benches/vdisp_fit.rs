//! The σ★ TRF fit of fastspec, the largest single cost of the engine (≈ 45% of the CPU time on
//! the 200-target throughput file; FastSpecFit runs it 51 times per σ★ target: the best fit and
//! 50 Monte Carlo refits, each from the same cold start).
//!
//! Input: the bundled BC03 templates and a synthetic z = 0.1 spectrum on three DESI-like
//! cameras (0.8 Å pixels, an 11-diagonal Gaussian resolution matrix), made from the model
//! itself at (τ_V, σ) = (0.3, 180 km/s) with a fixed pseudo-random noise pattern at S/N ≈ 20
//! per pixel, weighted on the σ★ fit window exactly as fastspec does (`can_compute_vdisp`).
//!
//! * `vdisp_fit/trf_from_x0`: one whole fit from FastSpecFit's x0 = (0.1, nominal kernel, 1, …)
//!   (`least_squares_dense_qr`, FastSpecFit's tolerances), the unit the Monte Carlo repeats;
//! * `vdisp_fit/residuals`: one residual evaluation at a new σ (convolution, attenuation and
//!   the pass through L that also yields the Jacobian).
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use fastspecfit::io::templates::{bundled_template_path, read_templates};
use fsf_systems::kernels::continuum::vdispfit::{
    can_compute_vdisp, vdisp_trf_setup, VdispModel, VdispProblem,
};
use fsf_systems::kernels::continuum::{CameraData, SpecOperator};
use fsf_systems::kernels::trf::{least_squares_dense_qr, Problem, TrfWorkspace};
use fsf_systems::kernels::vdisp::{PreCache, VdispGrid};

const Z: f64 = 0.1;
const NDIAG: usize = 11;

/// DIA rows of a Gaussian resolution matrix (σ = 1 pixel), columns normalised.
fn resolution(npix: usize) -> Vec<f64> {
    let h = (NDIAG / 2) as f64;
    let g: Vec<f64> = (0..NDIAG)
        .map(|d| (-0.5 * (d as f64 - h).powi(2)).exp())
        .collect();
    let s: f64 = g.iter().sum();
    (0..NDIAG)
        .flat_map(|d| std::iter::repeat_n(g[d] / s, npix))
        .collect()
}

fn benches(c: &mut Criterion) {
    let t = read_templates(&bundled_template_path()).expect("templates");
    let (nt, nw) = (t.ntemplate, t.nwave);
    let zwave: Vec<f64> = t.wave_ang.iter().map(|w| w * (1.0 + Z)).collect();
    let cams: Vec<Vec<f64>> = [(3600.0, 5800.0), (5760.0, 7620.0), (7520.0, 9824.0)]
        .iter()
        .map(|&(a, b): &(f64, f64)| {
            let n = ((b - a) / 0.8) as usize;
            (0..n).map(|i| a + 0.8 * i as f64).collect()
        })
        .collect();
    let res: Vec<Vec<f64>> = cams.iter().map(|w| resolution(w.len())).collect();
    let npix: usize = cams.iter().map(Vec::len).sum();
    let zeros = vec![0.0; npix];
    let nomask = vec![false; npix];
    let cameras: Vec<CameraData<'_>> = cams
        .iter()
        .zip(&res)
        .map(|(w, r)| CameraData {
            wave: w,
            flux: &zeros[..w.len()],
            ivar: &zeros[..w.len()],
            linemask: &nomask[..w.len()],
            res_ndiag: NDIAG,
            res: r,
        })
        .collect();
    let op = SpecOperator::new(&zwave, &cameras).expect("operator");
    let specwave: Vec<f64> = cams.concat();
    let (ok, (vs, ve)) = can_compute_vdisp(Z, &specwave);
    assert!(ok && ve > vs, "σ window");
    let grid = VdispGrid {
        lo: t.pixkms_bounds.0,
        hi: t.pixkms_bounds.1,
        pixkms: t.pixkms,
    };
    let zf = vec![1.0; nw];
    let problem = |istd| {
        VdispProblem::new(VdispModel {
            op: &op,
            pre: PreCache::from(&t.conv_pre_nolines),
            flux_nolines: &t.flux_nolines,
            grid,
            klambda: &t.dust_klambda,
            zfactors: &zf,
            istd,
        })
        .expect("problem")
    };
    // the noiseless model at the truth, on all pixels
    let ones = vec![1.0; npix];
    let mut truth = problem(&ones);
    let mut x_true = vec![1.0; 2 + nt];
    x_true[0] = 0.3;
    x_true[1] = 180.0;
    let mut sed = vec![0.0; nw];
    truth.full_model(&x_true, &mut sed).expect("model");
    let mut model = vec![0.0; npix];
    op.apply(&sed, &mut model).expect("apply");
    // S/N ≈ 20 with a fixed noise pattern (an LCG's uniform deviates, variance-matched)
    let level = model[vs..ve].iter().sum::<f64>() / (ve - vs) as f64;
    let sigma = level / 20.0;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let flux: Vec<f64> = model
        .iter()
        .map(|m| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            m + sigma * u * 12f64.sqrt()
        })
        .collect();
    let mut istd = vec![0.0; npix];
    istd[vs..ve].fill(1.0 / sigma);

    let mut prob = problem(&istd);
    prob.set_data(&flux).expect("data");
    let (lb, ub, x0, opts) = vdisp_trf_setup(nt, t.vdisp_bounds_kms, t.vdisp_nominal_kernel_kms);
    let mut tws = TrfWorkspace::new(prob.n_residuals(), x0.len());
    let mut g = c.benchmark_group("vdisp_fit");
    g.sample_size(20);
    g.bench_function("trf_from_x0", |b| {
        b.iter(|| {
            let mut x = x0.clone();
            let s =
                least_squares_dense_qr(&mut prob, &mut x, &lb, &ub, &opts, &mut tws).expect("fit");
            black_box((x, s.nfev))
        })
    });
    let mut f = vec![0.0; prob.n_residuals()];
    let mut flip = false;
    g.bench_function("residuals", |b| {
        b.iter(|| {
            flip = !flip;
            let mut x = x_true.clone();
            x[1] = if flip { 180.0 } else { 180.5 };
            prob.residuals(black_box(&x), &mut f);
            black_box(f[0])
        })
    });
    g.finish();
}

criterion_group!(vdisp, benches);
criterion_main!(vdisp);
