//! [`build_linemask`] and [`camera_linepix`] against FastSpecFit 3.6.1's `build_linemask` and
//! `one_spectrum` on both reference targets (`tests/fixtures/scripts/gen_linemask.py`).

use super::super::emlines::optimize::OptimizeWorkspace;
use super::super::test_fixtures::load;
use super::testdata::{arr, resolution, tables, uv};
use super::*;

fn check(tag: &str) {
    let (table, cons) = tables();
    let f = load(&format!("linemask/linemask-{tag}.json"));
    let r = load(&format!("linemask/linemask-{tag}-res.json"));
    let wave = arr(&f["wave"]);
    let flux = arr(&f["flux"]);
    let ivar = arr(&f["ivar"]);
    let w = resolution(r["ndiag"].as_u64().expect("nd") as usize, &r["w"]);
    let z = f["z"].as_f64().expect("z");
    let mut ws = OptimizeWorkspace::default();
    let m = build_linemask(
        &table,
        &cons,
        &wave,
        &flux,
        &ivar,
        &w,
        z,
        &LineMaskOptions::default(),
        &mut ws,
    )
    .expect("build_linemask");
    let out = &f["out"];
    let refs = &f["reference"];
    let got = [
        ("linesigma_broad", "INIT_SIGMA_UV", m.linesigma_broad),
        ("linesigma_narrow", "INIT_SIGMA_NARROW", m.linesigma_narrow),
        (
            "linesigma_balmer_broad",
            "INIT_SIGMA_BALMER",
            m.linesigma_balmer_broad,
        ),
        ("linevshift_broad", "INIT_VSHIFT_UV", m.linevshift_broad),
        (
            "linevshift_narrow",
            "INIT_VSHIFT_NARROW",
            m.linevshift_narrow,
        ),
        (
            "linevshift_balmer_broad",
            "INIT_VSHIFT_BALMER",
            m.linevshift_balmer_broad,
        ),
    ];
    for (key, col, v) in got {
        let want = out[key].as_f64().expect("value");
        let refv = refs[col].as_f64().expect("ref");
        // FastSpecFit's own spread when the flux is perturbed by 1e-12 (relative)
        let spread = f["spread"][key].as_f64().expect("spread");
        let tol = (0.1f64).max(1e-4 * want.abs()).max(3.0 * spread);
        eprintln!(
            "{tag} {key}: {v} vs FastSpecFit {want} (Δ {:.3e} km/s; its own spread {spread:.3e}), \
             reference {col} {refv}",
            v - want
        );
        assert!((v - want).abs() <= tol, "{tag} {key}: {v} vs {want}");
        // the reference file stores float32 values of the same run
        assert!(
            (v - refv).abs() <= tol + 1e-6 * refv.abs(),
            "{tag} {col}: {v} vs {refv}"
        );
    }
    assert_eq!(m.balmerbroad, f["balmerbroad"].as_bool().expect("bb"));
    assert_eq!(
        m.balmerbroad,
        refs["INIT_BALMER_BROAD"].as_bool().expect("bb")
    );

    // coadd_linepix: same lines, same order, same pixels
    let names: Vec<&str> = m
        .coadd_linepix
        .iter()
        .map(|(j, _)| table.lines[*j].name.as_str())
        .collect();
    let want_order: Vec<&str> = f["coadd_linepix_order"]
        .as_array()
        .expect("order")
        .iter()
        .map(|v| v.as_str().expect("name"))
        .collect();
    assert_eq!(names, want_order, "{tag} coadd_linepix keys");
    for (j, lp) in &m.coadd_linepix {
        let want = uv(&f["coadd_linepix"][&table.lines[*j].name]);
        assert_eq!(lp, &want, "{tag} {}", table.lines[*j].name);
    }

    // per-camera masks and line pixels
    for cam in f["cameras"].as_array().expect("cams") {
        let cw = arr(&cam["wave"]);
        let (mask, linepix) = camera_linepix(&wave, &m.coadd_linepix, &cw).expect("camera");
        let got: Vec<usize> = (0..mask.len()).filter(|&i| mask[i]).collect();
        assert_eq!(got, uv(&cam["linemask"]), "{tag} camera {}", cam["name"]);
        let want_lp = cam["linepix"].as_object().expect("linepix");
        assert_eq!(linepix.len(), want_lp.len());
        for (j, idx) in &linepix {
            assert_eq!(
                idx,
                &uv(&want_lp[&table.lines[*j].name]),
                "{tag} {}",
                cam["name"]
            );
        }
        eprintln!(
            "{tag} camera {}: {} masked pixels, {} lines",
            cam["name"],
            got.len(),
            linepix.len()
        );
    }
}

#[test]
fn linemask_80613_matches_fastspecfit() {
    check("80613");
}

#[test]
fn linemask_27247_matches_fastspecfit() {
    check("27247");
}
