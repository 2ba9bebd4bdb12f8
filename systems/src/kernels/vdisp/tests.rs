//! Tests of the velocity-dispersion kernels against `tests/fixtures/templates/vdisp.json`
//! (FastSpecFit's `_gaussian_kernel1d`, scipy `oaconvolve(mode='same')` and
//! `next_fast_len(real=True)`), and of the FFT path against the direct one. The comparisons
//! on the bundled template file live with the template reader (`fastspecfit::io::templates`).
use super::*;
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/templates/vdisp.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn vecf(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn assert_close(got: &[f64], want: &[f64], rtol: f64, atol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

/// A smooth positive test spectrum of `nt` rows with structure on all scales.
fn synthetic(nt: usize, nwave: usize) -> Vec<f64> {
    (0..nt * nwave)
        .map(|k| {
            let (t, i) = ((k / nwave) as f64, (k % nwave) as f64);
            2.0 + (0.013 * i * (t + 1.0)).sin() + 0.5 * (0.7 * i + t).cos() + 1e-3 * i
        })
        .collect()
}

#[test]
fn next_fast_len_matches_scipy() {
    for pair in fixture()["next_fast_len_real"].as_array().unwrap() {
        let (n, want) = (
            pair[0].as_u64().unwrap() as usize,
            pair[1].as_u64().unwrap() as usize,
        );
        assert_eq!(next_fast_len_real(n), want, "next_fast_len({n})");
    }
    assert_eq!(pre_fft_len(4382, pre_max_radius(49.965409666666666)), 4500);
}

#[test]
fn gaussian_kernel_matches_fastspecfit() {
    let fx = fixture();
    let pixkms = fx["pixkms"].as_f64().unwrap();
    for case in fx["cases"].as_array().unwrap() {
        let sigma = case["vdisp"].as_f64().unwrap() / pixkms;
        let r = gaussian_radius(sigma);
        assert_eq!(r, case["radius"].as_u64().unwrap() as usize);
        let mut g = vec![0.0; 2 * r + 1];
        gaussian_kernel(sigma, &mut g).unwrap();
        assert_close(&g, &vecf(&case["kernel"]), 1e-13, 1e-300, "kernel");
    }
    let mut one = [0.0];
    gaussian_kernel(0.0, &mut one).unwrap();
    assert_eq!(one, [1.0]);
    assert!(gaussian_kernel(f64::NAN, &mut [0.0; 3]).is_err());
    assert!(gaussian_kernel(1.0, &mut [0.0; 2]).is_err());
}

#[test]
fn direct_matches_oaconvolve_same() {
    for toy in fixture()["toys"].as_array().unwrap() {
        let flux = vecf(&toy["flux"]);
        let grid = VdispGrid {
            lo: toy["lo"].as_u64().unwrap() as usize,
            hi: toy["hi"].as_u64().unwrap() as usize,
            pixkms: toy["pixkms"].as_f64().unwrap(),
        };
        let mut ws = VdispWorkspace::new(0, 0);
        let mut out = vec![0.0; flux.len()];
        convolve_direct(
            &flux,
            &grid,
            toy["vdisp"].as_f64().unwrap(),
            &mut ws,
            &mut out,
        )
        .unwrap();
        // scipy's oaconvolve goes through an FFT: agreement to its roundoff
        assert_close(&out, &vecf(&toy["out"]), 1e-12, 1e-14, "toy");
    }
}

fn build_pre(
    flux: &[f64],
    nwave: usize,
    grid: &VdispGrid,
) -> (usize, usize, Vec<f64>, Vec<f64>, Vec<f64>) {
    let r = pre_max_radius(grid.pixkms);
    let l = pre_fft_len(grid.hi - grid.lo, r);
    let nt = flux.len() / nwave;
    let nf = l / 2 + 1;
    let mut ws = VdispWorkspace::new(l, r);
    let (mut outer, mut re, mut im) = (
        vec![0.0; nt * (nwave - grid.hi + grid.lo)],
        vec![0.0; nt * nf],
        vec![0.0; nt * nf],
    );
    precompute(flux, nwave, grid, r, &mut ws, &mut outer, &mut re, &mut im).unwrap();
    (l, r, outer, re, im)
}

#[test]
fn fft_path_equals_direct() {
    let (nt, nwave) = (4, 1500);
    let grid = VdispGrid {
        lo: 200,
        hi: 1300,
        pixkms: 49.965409666666666,
    };
    let flux = synthetic(nt, nwave);
    let (l, r, outer, re, im) = build_pre(&flux, nwave, &grid);
    let pre = PreCache {
        ntemplate: nt,
        fft_len: l,
        max_radius: r,
        flux_outer: &outer,
        ft_re: &re,
        ft_im: &im,
    };
    let coeff = [0.3, 0.0, 2.5, 0.7];
    let sum: Vec<f64> = (0..nwave)
        .map(|i| (0..nt).map(|t| coeff[t] * flux[t * nwave + i]).sum())
        .collect();
    let mut ws = VdispWorkspace::new(l, r);
    let (mut a, mut b) = (vec![0.0; nwave], vec![0.0; nwave]);
    for sigma in [
        0.0,
        -3.0,
        1.0,
        50.0,
        119.80819586597768,
        300.0,
        500.0,
        300.0,
    ] {
        convolve_from_pre(&pre, &grid, &coeff, sigma, &mut ws, &mut a).unwrap();
        convolve_direct(&sum, &grid, sigma, &mut ws, &mut b).unwrap();
        assert_close(&a, &b, 1e-12, 1e-13, "fft vs direct");
        if sigma <= 0.0 {
            assert_close(&b, &sum, 0.0, 0.0, "unconvolved");
        }
        assert_eq!(a[..grid.lo], sum[..grid.lo], "outer pixels untouched");
    }
    assert!(matches!(
        convolve_from_pre(&pre, &grid, &coeff, 520.0, &mut ws, &mut a),
        Err(KernelError::Domain(_))
    ));
    assert!(convolve_from_pre(&pre, &grid, &coeff[..3], 100.0, &mut ws, &mut a).is_err());
    assert!(convolve_from_pre(&pre, &grid, &coeff, f64::NAN, &mut ws, &mut a).is_err());
}

#[test]
fn direct_rows_and_shape_errors() {
    let (nt, nwave) = (3, 300);
    let grid = VdispGrid {
        lo: 20,
        hi: 280,
        pixkms: 25.0,
    };
    let flux = synthetic(nt, nwave);
    let mut ws = VdispWorkspace::new(0, 0);
    let mut all = vec![0.0; flux.len()];
    convolve_direct_rows(&flux, nwave, &grid, 150.0, &mut ws, &mut all).unwrap();
    let mut one = vec![0.0; nwave];
    convolve_direct(&flux[nwave..2 * nwave], &grid, 150.0, &mut ws, &mut one).unwrap();
    assert_eq!(&all[nwave..2 * nwave], &one[..]);
    // the kernel has unit sum: far from the edges a constant stays constant
    let flat = vec![3.0; nwave];
    convolve_direct(&flat, &grid, 150.0, &mut ws, &mut one).unwrap();
    assert!((one[150] - 3.0).abs() < 1e-14 && one[grid.lo] < 3.0);
    let bad = VdispGrid {
        lo: 290,
        hi: 280,
        pixkms: 25.0,
    };
    assert!(convolve_direct(&flat, &bad, 150.0, &mut ws, &mut one).is_err());
    assert!(convolve_direct(&flat, &grid, 150.0, &mut ws, &mut one[..10]).is_err());
    assert!(
        convolve_direct_rows(&flux[..nwave + 1], nwave, &grid, 1.0, &mut ws, &mut all).is_err()
    );
    // a pixel range gives the same bits on the range (straddling a segment edge, inside
    // the segment, outside it) and leaves the rest alone
    convolve_direct_rows(&flux, nwave, &grid, 150.0, &mut ws, &mut all).unwrap();
    for part in [5..40, 30..270, 270..300, 0..300, 100..100] {
        let mut got = vec![-7.0; flux.len()];
        convolve_direct_rows_range(&flux, nwave, &grid, 150.0, &mut ws, &mut got, part.clone())
            .unwrap();
        for (t, (g, a)) in got.chunks(nwave).zip(all.chunks(nwave)).enumerate() {
            for j in 0..nwave {
                if part.contains(&j) {
                    assert_eq!(g[j].to_bits(), a[j].to_bits(), "row {t} pixel {j}");
                } else {
                    assert_eq!(g[j], -7.0);
                }
            }
        }
    }
    assert!(
        convolve_direct_rows_range(&flux, nwave, &grid, 150.0, &mut ws, &mut all, 10..301).is_err()
    );
}
