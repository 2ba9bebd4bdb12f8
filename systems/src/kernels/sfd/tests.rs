//! Tests of the SFD lookup against desiutil's `SFDMap` on the bundled cut-out maps.

use super::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/sfd/ebv.json"
);
const MAPDIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/desi");

/// Minimal reader for a primary-HDU float32 FITS image (test only; the
/// application reads the maps with cfitsio in `src/io/sfd.rs`).
fn read_map(name: &str) -> SfdHemisphere {
    let bytes = std::fs::read(format!("{MAPDIR}/{name}")).expect("bundled map");
    let mut cards = std::collections::HashMap::new();
    let mut off = 0;
    'blocks: loop {
        for card in bytes[off..off + 2880].chunks(80) {
            let s = std::str::from_utf8(card).expect("ascii header");
            if s.starts_with("END ") {
                off += 2880;
                break 'blocks;
            }
            if s.as_bytes()[8] == b'=' {
                let val = s[10..].split('/').next().unwrap_or("").trim().to_string();
                cards.insert(s[..8].trim().to_string(), val);
            }
        }
        off += 2880;
    }
    let num = |k: &str| cards[k].parse::<f64>().expect("numeric card");
    assert_eq!(num("BITPIX"), -32.0);
    let (nx, ny) = (num("NAXIS1") as usize, num("NAXIS2") as usize);
    let data = bytes[off..off + 4 * nx * ny]
        .chunks_exact(4)
        .map(|b| f32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    SfdHemisphere {
        data,
        nx,
        ny,
        crpix1: num("CRPIX1"),
        crpix2: num("CRPIX2"),
        lam_scal: num("LAM_SCAL"),
        lam_nsgp: num("LAM_NSGP"),
    }
}

fn maps() -> (SfdHemisphere, SfdHemisphere) {
    (
        read_map("SFD_dust_4096_ngp.fits"),
        read_map("SFD_dust_4096_sgp.fits"),
    )
}

fn fixture() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(FIXTURE).expect("fixture")).expect("json")
}

fn vec_f64(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn rotation_matches_astropy_matrix_and_angles() {
    let fx = fixture();
    for (i, row) in fx["icrs_to_galactic"]
        .as_array()
        .expect("rows")
        .iter()
        .enumerate()
    {
        for (j, v) in vec_f64(row).into_iter().enumerate() {
            assert_eq!(ICRS_TO_GALACTIC[i][j], v);
        }
    }
    let (ra, dec) = (vec_f64(&fx["ra"]), vec_f64(&fx["dec"]));
    let (gl, gb) = (vec_f64(&fx["gal_l"]), vec_f64(&fx["gal_b"]));
    for k in 0..ra.len() {
        let (l, b) = icrs_to_galactic(ra[k], dec[k]);
        let dl = (l.to_degrees() - gl[k]).rem_euclid(360.0);
        let dl = dl.min(360.0 - dl);
        // 1e-9 deg = 2.5e-8 SFD pixels
        assert!(
            dl < 1e-9 && (b.to_degrees() - gb[k]).abs() < 1e-9,
            "point {k}: dl {dl}"
        );
    }
}

#[test]
fn random_positions_match_desiutil() {
    let fx = fixture();
    let (ngp, sgp) = maps();
    let (ra, dec, want) = (vec_f64(&fx["ra"]), vec_f64(&fx["dec"]), vec_f64(&fx["ebv"]));
    assert_eq!(ra.len(), 50);
    let mut worst = 0.0f64;
    for k in 0..ra.len() {
        let got = ebv(ra[k], dec[k], &ngp, &sgp).expect("inside the cut-out");
        worst = worst.max(((got - want[k]) / want[k]).abs());
    }
    assert!(worst < 1e-12, "worst relative error {worst}");
}

#[test]
fn reference_targets_match_fastspecfit() {
    let (ngp, sgp) = maps();
    for t in fixture()["targets"].as_array().expect("targets") {
        let (ra, dec) = (
            t["ra"].as_f64().expect("ra"),
            t["dec"].as_f64().expect("dec"),
        );
        let want = t["ebv"].as_f64().expect("ebv");
        let got = ebv(ra, dec, &ngp, &sgp).expect("inside");
        assert!(((got - want) / want).abs() < 1e-12, "{got} vs {want}");
    }
}

#[test]
fn outside_cutout_is_domain_error() {
    let (ngp, sgp) = maps();
    // Galactic north pole (RA 192.86, Dec 27.13) is far outside the NGP cut-out.
    assert!(matches!(
        ebv(192.85948, 27.12825, &ngp, &sgp),
        Err(KernelError::Domain(_))
    ));
    assert!(matches!(
        ebv(0.0, -60.0, &ngp, &sgp),
        Err(KernelError::Domain(_))
    ));
    assert!(matches!(
        ebv(f64::NAN, 10.0, &ngp, &sgp),
        Err(KernelError::NonFinite(_))
    ));
    let bad = SfdHemisphere {
        data: vec![0.0; 3],
        ..ngp.clone()
    };
    assert!(matches!(bad.ebv_lb(0.1, 0.5), Err(KernelError::Shape(_))));
}

#[test]
fn edge_clamping_follows_desiutil() {
    // 2x2 map, pole placed so that the stencil hangs half a pixel off each edge.
    let map = |crpix1: f64, crpix2: f64| SfdHemisphere {
        data: vec![1.0, 2.0, 3.0, 4.0],
        nx: 2,
        ny: 2,
        crpix1,
        crpix2,
        lam_scal: 2048.0,
        lam_nsgp: 1.0,
    };
    // At the pole (b = π/2) x = CRPIX1 − 1, y = CRPIX2 − 1.
    let pole = std::f64::consts::FRAC_PI_2;
    // x = −0.5: x0 = −1 → clamped to 0, x1 = 0; y = 0.25 inside.
    let v = map(0.5, 1.25).ebv_lb(0.0, pole).expect("clamped");
    let want = 0.75 * 1.0 + 0.25 * 3.0;
    assert!((v - want).abs() < 1e-12, "{v}");
    // x = 1.5: x0 = 1, x1 = 2 → clamped to 1.
    let v = map(2.5, 1.0).ebv_lb(0.0, pole).expect("clamped");
    assert!((v - 2.0).abs() < 1e-12, "{v}");
    // x = −1.5 and x = 2.0 + ε... : beyond what the clamps repair.
    assert!(map(-0.5, 1.0).ebv_lb(0.0, pole).is_err());
    assert!(map(3.0, 1.0).ebv_lb(0.0, pole).is_err());
}
