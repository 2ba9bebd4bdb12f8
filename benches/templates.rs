//! Template reading and velocity-dispersion convolution (SPEC §3.1, §3.2) on the bundled
//! BC03 template file (5 templates, 13 329 kept pixels, convolved segment 4 382 pixels,
//! FFT length 4 500).
//!
//! * `read_templates`: the whole reader, including both FFT pre-caches and the two
//!   nominal-σ direct convolutions of all templates;
//! * `fft_from_pre/*`: one convolution of a 5-template coefficient-weighted sum through the
//!   pre-cache, either at a σ that changes every call (kernel FFT recomputed, as in the σ★
//!   fit) or at a repeated σ (kernel transform cached in the workspace);
//! * `direct_150kms`: direct convolution of one spectrum at 150 km/s (25-tap kernel);
//! * `direct_rows_150kms`: direct convolution of all 5 templates (the σ★ χ² scan step).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use fastspecfit::io::templates::{bundled_template_path, read_templates};
use fsf_systems::kernels::vdisp::{
    convolve_direct, convolve_direct_rows, convolve_from_pre, PreCache, VdispGrid, VdispWorkspace,
};

fn benches(c: &mut Criterion) {
    let path = bundled_template_path();
    c.bench_function("read_templates", |b| {
        b.iter(|| read_templates(black_box(&path)).expect("templates"))
    });

    let t = read_templates(&path).expect("templates");
    let grid = VdispGrid {
        lo: t.pixkms_bounds.0,
        hi: t.pixkms_bounds.1,
        pixkms: t.pixkms,
    };
    let p = &t.conv_pre;
    let pre = PreCache::from(p);
    let coeff = [0.3, 1.2, 0.0, 2.5, 0.7];
    let mut ws = VdispWorkspace::new(p.fft_len, p.max_radius_pix);
    let mut out = vec![0.0; t.nwave];

    let mut flip = false;
    c.bench_function("fft_from_pre/new_sigma", |b| {
        b.iter(|| {
            flip = !flip;
            let sigma = if flip { 150.0 } else { 150.001 };
            convolve_from_pre(&pre, &grid, black_box(&coeff), sigma, &mut ws, &mut out)
                .expect("convolution")
        })
    });
    c.bench_function("fft_from_pre/same_sigma", |b| {
        b.iter(|| {
            convolve_from_pre(&pre, &grid, black_box(&coeff), 150.0, &mut ws, &mut out)
                .expect("convolution")
        })
    });

    let combined: Vec<f64> = (0..t.nwave)
        .map(|i| {
            (0..t.ntemplate)
                .map(|k| coeff[k] * t.flux[k * t.nwave + i])
                .sum()
        })
        .collect();
    c.bench_function("direct_150kms", |b| {
        b.iter(|| {
            convolve_direct(black_box(&combined), &grid, 150.0, &mut ws, &mut out)
                .expect("convolution")
        })
    });
    let mut all = vec![0.0; t.flux.len()];
    c.bench_function("direct_rows_150kms", |b| {
        b.iter(|| {
            convolve_direct_rows(black_box(&t.flux), t.nwave, &grid, 150.0, &mut ws, &mut all)
                .expect("convolution")
        })
    });
}

criterion_group!(group, benches);
criterion_main!(group);
