//! Forward-model kernels (SPEC §2.4, §3.3–3.6): trapezoidal rebinning onto the
//! three DESI cameras, banded resolution products (scalar and SIMD), the
//! deconvolved-W construction, IGM transmission and cosmology lookups.
//!
//! Inputs are synthetic but DESI-shaped: a template-like grid uniform in
//! velocity (50 km/s pixels, 1000–10000 Å rest, ≈13.8k nodes as the BC03 file),
//! the real camera grids (b 3600–5800, r 5760–7620, z 7520–9824 Å, 0.8 Å) and an
//! 11-diagonal Gaussian-like band with σ ≈ 0.9 px.

use criterion::{criterion_group, criterion_main, Criterion};
use fsf_systems::kernels::cosmology::Cosmology;
use fsf_systems::kernels::igm::Inoue14;
use fsf_systems::kernels::rebin::{centers2edges, trapz_rebin};
use fsf_systems::kernels::resolution::{dia_matvec, dia_matvec_scalar, Resolution, NDIAG};
use std::hint::black_box;

const CAMERAS: [(f64, f64); 3] = [(3600.0, 5800.0), (5760.0, 7620.0), (7520.0, 9824.0)];

fn camera_wave(lo: f64, hi: f64) -> Vec<f64> {
    let n = ((hi - lo) / 0.8).round() as usize + 1;
    (0..n).map(|i| lo + 0.8 * i as f64).collect()
}

fn template_rest_wave() -> Vec<f64> {
    let dlnw = 50.0 / 299_792.458;
    let n = ((10_000.0_f64 / 1000.0).ln() / dlnw) as usize;
    (0..n).map(|i| 1000.0 * (i as f64 * dlnw).exp()).collect()
}

/// DIA data `[11][n]` with a smooth Gaussian-like profile that drifts with pixel.
fn band(n: usize) -> Vec<f64> {
    let w2 = (NDIAG / 2) as f64;
    let mut d = vec![0.0; NDIAG * n];
    for j in 0..n {
        let sigma = 0.8 + 0.2 * (j as f64 / n as f64);
        let mut norm = 0.0;
        for k in 0..NDIAG {
            let off = k as f64 - w2;
            let v = (-0.5 * (off / sigma).powi(2)).exp();
            d[k * n + j] = v;
            norm += v;
        }
        for k in 0..NDIAG {
            d[k * n + j] /= norm;
        }
    }
    d
}

fn bench_rebin(c: &mut Criterion) {
    let z = 0.368744;
    let x: Vec<f64> = template_rest_wave().iter().map(|w| w * (1.0 + z)).collect();
    let y: Vec<f64> = x.iter().map(|w| 1.0 + 0.5 * (w / 37.0).sin()).collect();
    let cams: Vec<(Vec<f64>, Vec<f64>)> = CAMERAS
        .iter()
        .map(|&(lo, hi)| {
            let w = camera_wave(lo, hi);
            let mut e = vec![0.0; w.len() + 1];
            centers2edges(&w, &mut e).expect("edges");
            let out = vec![0.0; w.len()];
            (e, out)
        })
        .collect();
    let mut outs: Vec<Vec<f64>> = cams.iter().map(|(_, o)| o.clone()).collect();
    c.bench_function("trapz_rebin/3 cameras (7958 px) z=0.37", |b| {
        b.iter(|| {
            for ((e, _), o) in cams.iter().zip(outs.iter_mut()) {
                trapz_rebin(black_box(&x), black_box(&y), e, o).expect("rebin");
            }
        })
    });
}

fn bench_matvec(c: &mut Criterion) {
    let n = 7958;
    let data = band(n);
    let x: Vec<f64> = (0..n)
        .map(|i| 1.0 + 0.3 * (i as f64 * 0.01).sin())
        .collect();
    let mut out = vec![0.0; n];
    let mut g = c.benchmark_group("resolution_dot/7958px x 11diag");
    g.bench_function("scalar", |b| {
        b.iter(|| dia_matvec_scalar(black_box(&data), NDIAG, black_box(&x), &mut out).expect("dot"))
    });
    g.bench_function("simd f64x4", |b| {
        b.iter(|| dia_matvec(black_box(&data), NDIAG, black_box(&x), &mut out).expect("dot"))
    });
    g.finish();
}

fn bench_deconvolve(c: &mut Criterion) {
    let mut g = c.benchmark_group("resolution_deconvolved");
    for (name, (lo, hi)) in ["b", "r", "z"].iter().zip(CAMERAS) {
        let n = camera_wave(lo, hi).len();
        let r = Resolution::new(NDIAG, n, band(n)).expect("resolution");
        g.bench_function(format!("{name} ({n} px)"), |b| {
            b.iter(|| black_box(&r).deconvolved().expect("W"))
        });
    }
    g.finish();
}

fn bench_igm(c: &mut Criterion) {
    let igm = Inoue14::new().expect("igm");
    let rest = template_rest_wave();
    let mut out = vec![0.0; rest.len()];
    let mut g = c.benchmark_group("igm_transmission/template grid (13.8k px)");
    for z in [0.368744, 3.1484] {
        let obs: Vec<f64> = rest.iter().map(|w| w * (1.0 + z)).collect();
        g.bench_function(format!("z={z}"), |b| {
            b.iter(|| igm.transmission(black_box(z), &obs, &mut out).expect("igm"))
        });
    }
    g.finish();
}

fn bench_cosmology(c: &mut Criterion) {
    let cosmo = Cosmology::desi_fiducial().expect("cosmology");
    let mut g = c.benchmark_group("cosmology");
    g.bench_function("luminosity_distance", |b| {
        b.iter(|| cosmo.luminosity_distance(black_box(0.368744)).expect("dl"))
    });
    g.bench_function("universe_age", |b| {
        b.iter(|| cosmo.universe_age(black_box(3.1484)).expect("age"))
    });
    g.bench_function("desi_fiducial (parse embedded table)", |b| {
        b.iter(|| Cosmology::desi_fiducial().expect("cosmology"))
    });
    g.finish();
}

criterion_group!(
    group,
    bench_rebin,
    bench_matvec,
    bench_deconvolve,
    bench_igm,
    bench_cosmology
);
criterion_main!(group);
