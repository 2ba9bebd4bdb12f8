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
        w,
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

/// Patch bookkeeping of `linepix_and_contpix` on a synthetic grid: a patch whose lines have no
/// unmasked pixel is dropped; consecutive patches sharing > 11 pixels merge in one pass, and a
/// patch merged with its predecessor is not merged again with its successor (no chains).
#[test]
fn patches_drop_and_merge_without_chains() {
    let wave: Vec<f64> = (0..1500).map(|i| 4000.0 + i as f64).collect();
    let mut ivar = vec![1.0; wave.len()];
    // the region of line D is fully masked
    for (w, iv) in wave.iter().zip(ivar.iter_mut()) {
        if (5100.0..5300.0).contains(w) {
            *iv = 0.0;
        }
    }
    let mk = |name: &'static str, restwave: f64| PixLine {
        name,
        restwave,
        sigma: 600.0,
        vshift: 0.0,
    };
    let lines = [
        mk("a", 4300.0),
        mk("b", 4330.0),
        mk("c", 4360.0),
        mk("d", 5200.0),
    ];
    let patch = |id: &str, l: usize| PatchLines {
        id: id.into(),
        lines: vec![l],
    };
    let two = [patch("p2", 1), patch("p3", 2)];
    let r = linepix_and_contpix(&wave, &ivar, &lines, 0.0, 5.0, Some(&two), None).expect("two");
    assert_eq!(
        r.merged,
        vec![("p2p3".to_string(), ["p2".into(), "p3".into()])]
    );

    let all = [
        patch("p1", 0),
        patch("p2", 1),
        patch("p3", 2),
        patch("p4", 3),
    ];
    let r = linepix_and_contpix(&wave, &ivar, &lines, 0.0, 5.0, Some(&all), None).expect("all");
    assert_eq!(r.dropped, vec!["p4".to_string()]);
    assert_eq!(
        r.merged,
        vec![("p1p2".to_string(), ["p1".into(), "p2".into()])]
    );
    let ids: Vec<&str> = r.patch_contpix.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["p3", "p1p2"]);
    // lines of a patch share its continuum pixels; the patch set spans its line pixels
    let (_, set) = &r.patch_contpix[1];
    for l in [0, 1] {
        let lp = r.linepix[l].as_ref().expect("line pixels");
        assert!(set[0] <= lp[0] && *set.last().expect("set") >= lp[lp.len() - 1]);
        assert!(r.contpix[l].as_ref().expect("contpix").len() >= MIN_CONT_PIX);
    }
    assert!(r.linepix[3].is_none() && r.contpix[3].is_none());
}

/// Per-camera mapping: coadd pixels outside a camera's [min, max] are skipped, the rest are
/// found by left binary search.
#[test]
fn camera_mapping_by_left_search() {
    let coadd: Vec<f64> = (0..20).map(|i| 100.0 + i as f64).collect();
    let cam: Vec<f64> = (5..15).map(|i| 100.0 + i as f64).collect();
    let lp = vec![(3, vec![2, 4, 5, 6]), (7, vec![0, 1]), (9, vec![14, 15])];
    let (mask, pix) = camera_linepix(&coadd, &lp, &cam).expect("map");
    assert_eq!(pix, vec![(3, vec![0, 1]), (9, vec![9])]);
    assert_eq!(mask.iter().filter(|&&m| m).count(), 3);
    assert!(camera_linepix(&coadd, &[(0, vec![25])], &cam).is_err());
}
