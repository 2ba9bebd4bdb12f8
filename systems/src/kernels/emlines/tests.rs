//! Kernel tests against FastSpecFit 3.6.1 fixtures
//! (`tests/fixtures/scripts/gen_emlines.py`) and SPEC §9 test_emline_fit.

use serde_json::Value;

use super::super::resolution::Resolution;
use super::*;

fn fixture(name: &str) -> Value {
    let p = format!(
        "{}/../tests/fixtures/emlines/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("json")
}

fn fv(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("f64"))
        .collect()
}

fn bv(v: &Value) -> Vec<bool> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_bool().expect("bool"))
        .collect()
}

fn iv(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_i64().expect("int"))
        .collect()
}

fn uv(v: &Value) -> Vec<usize> {
    iv(v).into_iter().map(|x| x as usize).collect()
}

fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    (a - b).abs() <= atol + rtol * b.abs()
}

/// Spectrum, mapping and free parameters of the model fixture (z = 0.368744,
/// default table, narrow_broad model).
fn setup() -> (Value, EmlineSpectrum, ParamsMapping, Vec<f64>) {
    let m = fixture("model.json");
    let t = fixture("table.json");
    let lm = &fixture("linemodels.json")[1];
    assert_eq!(lm["z"].as_f64(), Some(0.368744));
    let b = &lm["broad"];
    let d = &t["default"];
    let mapping = ParamsMapping::new(
        &bv(&b["free"]),
        &iv(&b["tiedtoparam"])
            .into_iter()
            .map(|x| x as i32)
            .collect::<Vec<_>>(),
        &fv(&b["tiedfactor"]),
        &uv(&d["doublet_idx"]),
        &uv(&d["doublet_src"]),
    );
    let mut cams = Vec::new();
    let mut start = 0;
    for c in m["cameras"].as_array().expect("cams") {
        let wave = fv(&c["wave"]);
        let r = Resolution::new(11, wave.len(), fv(&c["res"])).expect("res");
        let w = r.deconvolved().expect("deconv");
        cams.push(EmlineCamera::new(start, &wave, w).expect("cam"));
        start += wave.len();
    }
    let spec =
        EmlineSpectrum::new(fv(&d["restwave"]), m["z"].as_f64().expect("z"), cams).expect("spec");
    let free = fv(&m["free_params"]);
    (m, spec, mapping, free)
}

#[test]
fn mapping_matches_fastspecfit() {
    let (m, _, mapping, free) = setup();
    let mut full = vec![0.0; mapping.nparams()];
    mapping.free_to_full(&free, &mut full, true);
    let want = fv(&m["full_params"]);
    for (a, b) in full.iter().zip(&want) {
        assert!(close(*a, *b, 1e-15, 0.0), "{a} vs {b}");
    }
    mapping.free_to_full(&free, &mut full, false);
    for (a, b) in full.iter().zip(&fv(&m["full_params_ratio"])) {
        assert!(close(*a, *b, 1e-15, 0.0), "{a} vs {b}");
    }
    // every fixture line model: fixed mask of the mapping
    for rec in fixture("linemodels.json").as_array().expect("recs") {
        let t = fixture("table.json");
        let d = &t[rec["kind"].as_str().expect("kind")];
        for key in ["broad", "nobroad"] {
            let b = &rec[key];
            let mp = ParamsMapping::new(
                &bv(&b["free"]),
                &iv(&b["tiedtoparam"])
                    .into_iter()
                    .map(|x| x as i32)
                    .collect::<Vec<_>>(),
                &fv(&b["tiedfactor"]),
                &uv(&d["doublet_idx"]),
                &uv(&d["doublet_src"]),
            );
            assert_eq!(mp.fixed_mask(), bv(&b["mapping_fixed"]));
        }
    }
}

#[test]
fn doublet_ratios_hold() {
    let (_, _, mapping, free) = setup();
    let t = fixture("table.json");
    let d = &t["default"];
    let mut full = vec![0.0; mapping.nparams()];
    mapping.free_to_full(&free, &mut full, true);
    let mut ratio = vec![0.0; mapping.nparams()];
    mapping.free_to_full(&free, &mut ratio, false);
    for (&tgt, &src) in uv(&d["doublet_idx"]).iter().zip(&uv(&d["doublet_src"])) {
        if full[src] != 0.0 {
            assert!(close(full[tgt] / full[src], ratio[tgt], 1e-6, 0.0));
        }
    }
    // fixed ratios: nii_6548 = 0.32975 nii_6584 etc.
    let names: Vec<&str> = d["name"]
        .as_array()
        .expect("n")
        .iter()
        .map(|x| x.as_str().expect("s"))
        .collect();
    let idx = |n: &str| names.iter().position(|x| *x == n).expect("line");
    for (l, r, f) in [
        ("nii_6548", "nii_6584", 0.32975),
        ("oiii_4959", "oiii_5007", 0.33735),
        ("oii_7330", "oii_7320", 0.81633),
    ] {
        assert!(close(full[idx(l)], f * full[idx(r)], 1e-6, 0.0));
    }
}

#[test]
fn model_matches_fastspecfit_on_real_grids() {
    let (m, spec, mapping, free) = setup();
    let mut full = vec![0.0; mapping.nparams()];
    mapping.free_to_full(&free, &mut full, true);
    let mut out = vec![0.0; spec.npix];
    let mut ws = ModelWorkspace::default();
    spec.model(&full, &mut out, &mut ws).expect("model");
    let w = fv(&m["weights"]);
    let want = fv(&m["weighted_model"]);
    let scale = want.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    let mut worst = 0.0f64;
    for i in 0..out.len() {
        let got = out[i] * w[i];
        worst = worst.max((got - want[i]).abs() / scale);
        assert!(
            close(got, want[i], 1e-8, 1e-12 * scale),
            "pixel {i}: {got} vs {}",
            want[i]
        );
    }
    eprintln!("emline model vs FastSpecFit: max |Δ|/max = {worst:.2e}");
    spec.model_clipped(&full, &mut out, &mut ws).expect("model");
    for (a, b) in out.iter().zip(&fv(&m["model_clipped"])) {
        assert!(close(*a, *b, 1e-8, 1e-12 * scale));
    }
}

#[test]
fn jacobian_matches_fastspecfit_and_finite_differences() {
    let (m, spec, mut mapping, free) = setup();
    let w = fv(&m["weights"]);
    let nf = free.len();
    let mut full = vec![0.0; mapping.nparams()];
    mapping.free_to_full(&free, &mut full, true);
    let mut jac = EmlineJacobian::default();
    jac.evaluate(&spec, &mut mapping, &free, &full, &w)
        .expect("jac");
    assert_eq!(jac.shape(), (spec.npix, nf));
    let dense = fv(&m["jac_dense"]);
    let scale = dense.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    let (mut col, mut e) = (vec![0.0; spec.npix], vec![0.0; nf]);
    let mut ws = ModelWorkspace::default();
    let (mut fp, mut fm, mut pp) = (
        vec![0.0; spec.npix],
        vec![0.0; spec.npix],
        vec![0.0; mapping.nparams()],
    );
    let mut worst_fd = 0.0f64;
    for k in 0..nf {
        e.iter_mut().for_each(|x| *x = 0.0);
        e[k] = 1.0;
        jac.matvec(&spec, &mapping, &e, &mut col);
        for i in 0..spec.npix {
            let want = dense[i * nf + k];
            assert!(
                close(col[i], want, 1e-8, 1e-12 * scale),
                "col {k} px {i}: {} vs {want}",
                col[i]
            );
        }
        // central differences, h = 1e-4 max(1, |p|)  (SPEC §9)
        let h = 1e-4 * free[k].abs().max(1.0);
        let mut x = free.clone();
        x[k] += h;
        mapping.free_to_full(&x, &mut pp, true);
        spec.model(&pp, &mut fp, &mut ws).expect("m");
        x[k] -= 2.0 * h;
        mapping.free_to_full(&x, &mut pp, true);
        spec.model(&pp, &mut fm, &mut ws).expect("m");
        let cmax = col.iter().fold(0.0f64, |a, b| a.max(b.abs()));
        for i in 0..spec.npix {
            let fd = (fp[i] - fm[i]) / (2.0 * h) * w[i];
            worst_fd = worst_fd.max((fd - col[i]).abs() / cmax.max(1e-300));
            assert!(
                close(col[i], fd, 1e-3, 1e-6 + 1e-3 * cmax),
                "FD col {k} px {i}: {} vs {fd}",
                col[i]
            );
        }
    }
    eprintln!("jacobian vs central FD: max |Δ|/colmax = {worst_fd:.2e}");
    let mut r = vec![0.0; nf];
    jac.rmatvec(&spec, &mapping, &fv(&m["u"]), &mut r);
    for (a, b) in r.iter().zip(&fv(&m["jac_rmatvec_u"])) {
        assert!(close(*a, *b, 1e-8, 1e-10), "{a} vs {b}");
    }
}

/// §9: flux conservation of the un-convolved profile on a 0.8 Å grid.
#[test]
fn flux_conservation_and_core_formula() {
    let wave: Vec<f64> = (0..)
        .map(|i| 3600.0 + 0.8 * i as f64)
        .take_while(|&w| w <= 9825.0)
        .collect();
    let lw: Vec<f64> = wave.iter().map(|w| w.ln()).collect();
    let mut buf = vec![0.0; wave.len()];
    let mut out = vec![0.0; wave.len()];
    for (sigma_g, rtol) in [(0.0, 2e-3), (SIGMA_G, 1e-2)] {
        for (rest, sig) in [(6564.6, 50.0), (5008.24, 150.0), (3727.1, 300.0)] {
            let (a, v, z) = (2.5, 40.0, 0.1);
            emline_model(&[rest], &[a, v, sig], &lw, z, sigma_g, &mut out, &mut buf).expect("m");
            let sum: f64 = out.iter().sum::<f64>() * 0.8;
            let f = analytic_flux(rest, a, v, sig, z);
            assert!(
                close(sum, f, rtol, 0.0),
                "σ_G {sigma_g} λ {rest}: {sum} vs {f}"
            );
            // core formula, rtol 1e-12
            let (s, e) = line_profile(rest, a, v, sig, &lw, z, sigma_g, &mut buf);
            let lc = (rest * (1.0 + z + v / C_LIGHT)).ln();
            let sl = sig / C_LIGHT;
            let se = (sl * sl + (sigma_g / lc.exp()).powi(2)).sqrt();
            for i in s..e {
                let x = lw[i] - lc;
                let want = a * sl / se * (-x * x / (2.0 * se * se)).exp();
                assert!(close(buf[i - s], want, 1e-12, 0.0));
            }
        }
    }
    // zero amplitude → zeros; out-of-range line → zeros
    emline_model(
        &[6564.6],
        &[0.0, 0.0, 100.0],
        &lw,
        0.1,
        SIGMA_G,
        &mut out,
        &mut buf,
    )
    .expect("m");
    assert!(out.iter().all(|&x| x == 0.0));
    emline_model(
        &[6564.6],
        &[1.0, 0.0, 100.0],
        &lw,
        2.0,
        SIGMA_G,
        &mut out,
        &mut buf,
    )
    .expect("m");
    assert!(out.iter().all(|&x| x == 0.0));
}

/// §9: sub-pixel position changes the flux sum by < 2% rms (σ = 5, 15, 50 km/s).
#[test]
fn subpixel_flux_rms() {
    let wave: Vec<f64> = (0..7800).map(|i| 3600.0 + 0.8 * i as f64).collect();
    let lw: Vec<f64> = wave.iter().map(|w| w.ln()).collect();
    let (mut out, mut buf) = (vec![0.0; wave.len()], vec![0.0; wave.len()]);
    for sig in [5.0, 15.0, 50.0] {
        let mut sums = Vec::new();
        for k in 0..25 {
            let z = 0.1 + (k as f64 / 25.0) * 0.8 / 6564.6;
            emline_model(
                &[6564.6],
                &[1.0, 0.0, sig],
                &lw,
                z,
                SIGMA_G,
                &mut out,
                &mut buf,
            )
            .expect("m");
            let f = analytic_flux(6564.6, 1.0, 0.0, sig, z);
            sums.push(out.iter().sum::<f64>() * 0.8 / f);
        }
        let mean = sums.iter().sum::<f64>() / 25.0;
        let rms = (sums.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / 25.0).sqrt();
        assert!(rms < 0.02, "σ {sig}: rms {rms}");
    }
}

#[test]
fn buffer_width_grows_with_sigma() {
    let lw: Vec<f64> = (0..1000).map(|i| (3600.0 + 0.8 * i as f64).ln()).collect();
    let a = max_buffer_width(&lw, &[100.0], 0, SIGMA_G);
    let b = max_buffer_width(&lw, &[1000.0], 0, SIGMA_G);
    assert!(a > 0 && b > a);
    assert_eq!(max_buffer_width(&lw, &[100.0], 11, SIGMA_G), a + 22);
}
