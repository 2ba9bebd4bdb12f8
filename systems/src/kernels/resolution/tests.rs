//! Resolution kernels against fastspecfit.resolution.Resolution on real DESI
//! matrices (slices of the B/R/Z_RESOLUTION HDUs of the bundled coadds), plus
//! the scalar/SIMD parity test.

use super::*;

use crate::kernels::test_fixtures::f64s as vec;

fn fixture(name: &str) -> serde_json::Value {
    crate::kernels::test_fixtures::load(&format!("resolution/{name}"))
}

/// max |got − want| / max |want|, and the same per element relative to |want|
/// where |want| is not tiny.
fn errors(got: &[f64], want: &[f64]) -> (f64, f64) {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let mut abs = 0.0_f64;
    let mut rel = 0.0_f64;
    for (g, w) in got.iter().zip(want) {
        abs = abs.max((g - w).abs() / scale);
        if w.abs() > 1e-6 * scale {
            rel = rel.max((g - w).abs() / w.abs());
        }
    }
    (abs, rel)
}

fn check_case(case: &serde_json::Value) {
    let name = case["name"].as_str().unwrap();
    let (nd, n) = (
        case["ndiag"].as_u64().unwrap() as usize,
        case["npix"].as_u64().unwrap() as usize,
    );
    let r = Resolution::new(nd, n, vec(&case["data"])).unwrap();
    let x = vec(&case["x"]);
    let mut out = vec![0.0; n];

    // R·x: scalar twin is FastSpecFit's summation order (bit-identical)
    r.dot_scalar(&x, &mut out).unwrap();
    for (i, (g, w)) in out.iter().zip(vec(&case["rx"])).enumerate() {
        assert_eq!(*g, w, "{name}: scalar R·x[{i}] must be bit-identical");
    }
    r.dot(&x, &mut out).unwrap();
    let (_, rel) = errors(&out, &vec(&case["rx"]));
    assert!(rel <= 1e-13, "{name}: SIMD R·x rel {rel}");

    // W and W·x
    let wmat = r.deconvolved().unwrap();
    let (abs, rel) = errors(&wmat.data, &vec(&case["w"]));
    assert!(
        abs <= 1e-12 && rel <= 1e-10,
        "{name}: W abs {abs} rel {rel}"
    );
    wmat.dot(&x, &mut out).unwrap();
    let (_, rel) = errors(&out, &vec(&case["wx"]));
    assert!(rel <= 1e-11, "{name}: W·x rel {rel}");

    // row data of W
    let mut rows = vec![f64::NAN; n * nd];
    wmat.row_data(&mut rows).unwrap();
    let (abs, _) = errors(&rows, &vec(&case["rowdata"]));
    assert!(abs <= 1e-12, "{name}: row data {abs}");
}

#[test]
fn matches_fastspecfit_real_matrices() {
    for f in [
        "80613_b_first300.json",
        "80613_r_mid301.json",
        "80613_z_last300.json",
        "27247_r_mid300.json",
    ] {
        check_case(&fixture(f));
    }
}

/// Width 7 (generic Gaussian size) and the 1-diagonal stack case W = R/0.6383.
#[test]
fn matches_fastspecfit_other_widths() {
    let fx = fixture("small_widths.json");
    for case in fx["cases"].as_array().unwrap() {
        check_case(case);
    }
    let r = Resolution::new(1, 20, vec![1.0; 20]).unwrap();
    let w = r.deconvolved().unwrap();
    let g11 = 1.0 / (2.0 * std::f64::consts::PI).sqrt() / 0.625;
    assert!(w.data.iter().all(|&v| (v - 1.0 / g11).abs() < 1e-15));
    assert!((1.0 / g11 - 1.5667).abs() < 1e-4);
}

/// Deterministic pseudo-random numbers in [0.5, 1.5) (xorshift).
fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            0.5 + (s >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

/// SIMD product vs scalar twin on every size around the block and edge
/// boundaries, several band widths, and a full 7958-pixel DESI-size matrix.
#[test]
fn simd_scalar_parity() {
    for nd in [1usize, 3, 5, 11, 13] {
        for n in (1..60).chain([7958]) {
            let data = noise(nd * n, (nd * 1000 + n) as u64);
            let x = noise(n, n as u64 + 7);
            let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
            dia_matvec_scalar(&data, nd, &x, &mut a).unwrap();
            dia_matvec(&data, nd, &x, &mut b).unwrap();
            for i in 0..n {
                assert!(
                    (a[i] - b[i]).abs() <= 1e-14 * a[i].abs(),
                    "nd={nd} n={n} i={i}: {} vs {}",
                    a[i],
                    b[i]
                );
            }
        }
    }
}

/// The product agrees with the dense definition Σ_j M[i, j] x_j via `get`.
#[test]
fn dense_definition() {
    let (nd, n) = (11, 37);
    let r = Resolution::new(nd, n, noise(nd * n, 3)).unwrap();
    let x = noise(n, 4);
    let mut out = vec![0.0; n];
    r.dot_scalar(&x, &mut out).unwrap();
    for (i, o) in out.iter().enumerate() {
        let dense: f64 = (0..n).map(|j| r.get(i, j) * x[j]).sum();
        assert!((dense - o).abs() <= 1e-14 * dense);
    }
}

#[test]
fn bad_inputs_are_errors() {
    assert!(matches!(
        Resolution::new(10, 5, vec![0.0; 50]),
        Err(KernelError::Shape(_))
    ));
    assert!(matches!(
        Resolution::new(3, 5, vec![0.0; 14]),
        Err(KernelError::Shape(_))
    ));
    assert!(matches!(
        Resolution::new(1, 2, vec![0.0, f64::NAN]),
        Err(KernelError::NonFinite(_))
    ));
    let r = Resolution::new(11, 5, vec![1.0; 55]).unwrap();
    assert!(matches!(r.deconvolved(), Err(KernelError::Shape(_))));
    assert!(matches!(
        r.dot(&[1.0; 4], &mut [0.0; 5]),
        Err(KernelError::Shape(_))
    ));
    assert!(matches!(
        r.row_data(&mut [0.0; 54]),
        Err(KernelError::Shape(_))
    ));
    assert!(matches!(
        dia_matvec(&[1.0; 7], 3, &[1.0; 2], &mut [0.0; 2]),
        Err(KernelError::Shape(_))
    ));
}

/// `dia_matvec_rows` reproduces the bits of `dia_matvec` on any row range
/// (signed values, so that a different summation order shows), for band
/// widths on both sides of the SIMD limit and sizes around the block edges.
#[test]
fn row_ranges_bit_identical() {
    use super::dia_matvec_rows;
    let mut differs_from_scalar = false;
    for nd in [1usize, 3, 11, 13, 33] {
        for n in (1..40).chain([531, 7958]) {
            let data: Vec<f64> = noise(nd * n, (nd * 77 + n) as u64)
                .iter()
                .map(|v| (v - 1.0) * 3.0)
                .collect();
            let x: Vec<f64> = noise(n, n as u64 + 3).iter().map(|v| v - 1.0).collect();
            let (mut full, mut scalar) = (vec![0.0; n], vec![0.0; n]);
            dia_matvec(&data, nd, &x, &mut full).unwrap();
            dia_matvec_scalar(&data, nd, &x, &mut scalar).unwrap();
            differs_from_scalar |= full.iter().zip(&scalar).any(|(a, b)| a != b);
            let step = (n / 13).max(1);
            let mut out = vec![f64::NAN; n];
            for a in (0..n).step_by(step) {
                for b in (a..=n).step_by(step).chain([n]) {
                    dia_matvec_rows(&data, nd, &x, a, b, &mut out);
                    for i in a..b {
                        assert_eq!(
                            out[i - a].to_bits(),
                            full[i].to_bits(),
                            "nd={nd} n={n} rows [{a}, {b}) row {i}"
                        );
                    }
                }
            }
        }
    }
    // the test data exercise the order (else the check above could not fail)
    assert!(differs_from_scalar);
}
