//! Photometry kernels (SPEC §1.6, §2.6, §3.5 end): SFD E(B−V) lookup, Milky Way
//! spectral transmission, and AB-maggie synthesis.
//!
//! Inputs: the bundled SFD cut-out maps (`tests/data/desi`), the DESI
//! camera-coadd grid (3600–9824 Å, 0.8 Å, 7781 px), and a template-like grid
//! uniform in velocity (25 km/s, 900–400000 Å observed) for the seven DR9
//! north filters (BASS-g/r, MzLS-z, W1–W4).

use criterion::{criterion_group, criterion_main, Criterion};
use fastspecfit::io::sfd::load_sfd;
use fsf_systems::kernels::filters::{load_filter, FilterCurve};
use fsf_systems::kernels::mwdust::{dust_transmission, Fitzpatrick99, RV_DEFAULT};
use fsf_systems::kernels::sfd::ebv;
use fsf_systems::kernels::synthphot::{
    ab_maggies, ab_maggies_pre, ab_maggies_unchecked, SynthScratch,
};
use std::hint::black_box;
use std::path::Path;

fn coadd_wave() -> Vec<f64> {
    (0..7781).map(|i| 3600.0 + 0.8 * i as f64).collect()
}

fn template_wave() -> Vec<f64> {
    let dlnw = 25.0 / 299_792.458;
    let n = ((400_000.0_f64 / 900.0).ln() / dlnw) as usize;
    (0..n).map(|i| 900.0 * (i as f64 * dlnw).exp()).collect()
}

fn smooth_flux(wave: &[f64]) -> Vec<f64> {
    wave.iter()
        .map(|w| 1e-17 * (1.0 + 0.3 * (w / 700.0).sin()) * (5000.0 / w))
        .collect()
}

fn filters(names: &[&str]) -> Vec<FilterCurve> {
    names
        .iter()
        .map(|n| load_filter(n).expect("bundled filter"))
        .collect()
}

fn benches(c: &mut Criterion) {
    let mapdir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/desi"));
    let maps = load_sfd(mapdir).expect("bundled SFD cut-outs");
    c.bench_function("sfd_ebv_lookup", |b| {
        b.iter(|| {
            ebv(
                black_box(105.48977452498902),
                black_box(56.669300058331935),
                &maps.ngp,
                &maps.sgp,
            )
            .expect("inside")
        })
    });

    let wave = coadd_wave();
    let curve = Fitzpatrick99::new(RV_DEFAULT);
    let mut trans = vec![0.0; wave.len()];
    c.bench_function("dust_transmission_7781px", |b| {
        b.iter(|| dust_transmission(&curve, black_box(&wave), 0.0514, &mut trans).expect("ok"))
    });

    let dr9n = filters(&[
        "BASS-g",
        "BASS-r",
        "MzLS-z",
        "wise2010-W1",
        "wise2010-W2",
        "wise2010-W3",
        "wise2010-W4",
    ]);
    let twave = template_wave();
    let tflux = smooth_flux(&twave);
    c.bench_function("synth_pre_7filters_template_grid", |b| {
        b.iter(|| ab_maggies_pre(black_box(&dr9n), &twave).expect("covered"))
    });
    let pre = ab_maggies_pre(&dr9n, &twave).expect("covered");
    let mut out = vec![0.0; dr9n.len()];
    c.bench_function("synth_unchecked_7filters_template_grid", |b| {
        b.iter(|| ab_maggies_unchecked(&pre, black_box(&tflux), &twave, &mut out).expect("ok"))
    });

    let synth_s = filters(&["decam2014-g", "decam2014-r", "decam2014-z"]);
    let flux = smooth_flux(&wave);
    let mut scratch = SynthScratch::new();
    let mut out3 = vec![0.0; 3];
    c.bench_function("synth_padded_3filters_coadd", |b| {
        b.iter(|| {
            ab_maggies(&synth_s, black_box(&flux), &wave, &mut out3, &mut scratch).expect("ok")
        })
    });
}

criterion_group!(group, benches);
criterion_main!(group);
