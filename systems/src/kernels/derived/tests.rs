//! Tests against FastSpecFit 3.6.1 (`tests/fixtures/derived/derived.json`, made by
//! `tests/fixtures/scripts/gen_derived.py`) and the verified numbers of SPEC §4.11/§4.12.

use super::cflux::{continuum_fluxes, continuum_fluxes_with, ContinuumScratch};
use super::dn4000::{dn4000, Dn4000Scratch};
use super::kcorr::{kcorr_and_absmag, synth_absmag, KcorrPre};
use super::mcvar::{nan_ivar_capped, plain_ivar};
use super::sps::{sps_properties, TemplateInfo};
use crate::kernels::filters::{load_filter, FilterCurve};
use std::sync::OnceLock;

const FIX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/derived/derived.json"
);

fn fx() -> &'static serde_json::Value {
    static F: OnceLock<serde_json::Value> = OnceLock::new();
    F.get_or_init(|| {
        serde_json::from_str(&std::fs::read_to_string(FIX).expect("fixture")).expect("json")
    })
}

fn v(x: &serde_json::Value) -> Vec<f64> {
    x.as_array()
        .expect("array")
        .iter()
        .map(|a| a.as_f64().expect("number"))
        .collect()
}

fn close(a: f64, b: f64, rtol: f64, what: &str) {
    assert!(
        (a - b).abs() <= rtol * b.abs().max(1e-300),
        "{what}: {a} vs {b}"
    );
}

/// np.logspace(log10(50), log10(4e5), 10000).
fn flat_grid() -> Vec<f64> {
    let (a, b) = (50f64.log10(), 4e5f64.log10());
    let n = 10000;
    let step = (b - a) / (n - 1) as f64;
    (0..n)
        .map(|i| {
            if i == n - 1 {
                10f64.powf(b)
            } else {
                10f64.powf(a + i as f64 * step)
            }
        })
        .collect()
}

#[test]
fn dn4000_flat_matches_spec_and_fastspecfit() {
    let w = flat_grid();
    let f = vec![1.0; w.len()];
    let mut s = Dn4000Scratch::default();
    let (dn, iv) = dn4000(&w, &f, None, Some(0.2), &mut s);
    close(dn, 1.078368181, 1e-4, "SPEC flat Dn4000");
    let r = v(&fx()["dn4000"]["flat_obs"]["result"]);
    close(dn, r[0], 1e-9, "flat_obs");
    assert_eq!(iv, 0.0);
    let ivar = vec![100.0 / 1.2f64.powi(2); w.len()];
    let (dn, iv) = dn4000(&w, &f, Some(&ivar), None, &mut s);
    let r = v(&fx()["dn4000"]["flat_rest_ivar"]["result"]);
    close(dn, r[0], 1e-9, "flat_rest_ivar");
    close(iv, r[1], 1e-7, "flat_rest_ivar ivar");
}

#[test]
fn dn4000_templates_and_overlap_match_fastspecfit() {
    let d = &fx()["dn4000"];
    let mut s = Dn4000Scratch::default();
    let c = &d["template_rest"];
    let (dn, _) = dn4000(&v(&c["wave"]), &v(&c["flux"]), None, None, &mut s);
    close(dn, v(&c["result"])[0], 1e-9, "template_rest");
    let c = &d["template_obs_ivar"];
    let iv = v(&c["ivar"]);
    let (dn, div) = dn4000(
        &v(&c["wave"]),
        &v(&c["flux"]),
        Some(&iv),
        c["z"].as_f64(),
        &mut s,
    );
    close(dn, v(&c["result"])[0], 1e-9, "template_obs_ivar");
    close(div, v(&c["result"])[1], 1e-6, "template_obs_ivar ivar");
    let c = &d["overlap"];
    let iv = v(&c["ivar"]);
    let (dn, div) = dn4000(&v(&c["wave"]), &v(&c["flux"]), Some(&iv), None, &mut s);
    close(dn, v(&c["result"])[0], 1e-9, "overlap");
    close(div, v(&c["result"])[1], 1e-6, "overlap ivar");
}

#[test]
fn dn4000_no_coverage_is_zero() {
    let w: Vec<f64> = (0..100).map(|i| 5000.0 + i as f64).collect();
    let f = vec![1.0; 100];
    assert_eq!(
        dn4000(&w, &f, None, None, &mut Dn4000Scratch::default()),
        (0.0, 0.0)
    );
}

fn out_filters() -> Vec<FilterCurve> {
    let k = &fx()["kcorr"];
    let names = k["absmag_filters"].as_array().expect("names");
    let shifts = v(&k["band_shift"]);
    names
        .iter()
        .zip(shifts)
        .map(|(n, s)| {
            load_filter(n.as_str().expect("name"))
                .expect("filter")
                .shifted(s)
                .expect("shift")
        })
        .collect()
}

#[test]
fn kcorr_matches_spec_and_fastspecfit() {
    let k = &fx()["kcorr"];
    let outf = out_filters();
    let btf: Vec<bool> = k["bands_to_fit"]
        .as_array()
        .expect("b")
        .iter()
        .map(|b| b.as_bool().expect("bool"))
        .collect();
    let twave = v(&fx()["template_wave"]);
    for c in k["cases"].as_array().expect("cases") {
        let name = c["name"].as_str().expect("name");
        let z = c["z"].as_f64().expect("z");
        let dmod = c["dmod"].as_f64().expect("dmod");
        let obsf: Vec<FilterCurve> = c["filters"]
            .as_array()
            .expect("f")
            .iter()
            .map(|n| load_filter(n.as_str().expect("n")).expect("f"))
            .collect();
        let (zwave, model) = if name == "flat" {
            let w = flat_grid();
            let m = vec![1.0; w.len()];
            (w, m)
        } else {
            (
                twave.iter().map(|w| w * (1.0 + z)).collect(),
                v(&c["model"]),
            )
        };
        let pre = KcorrPre::new(&obsf, &outf, &zwave, z).expect("pre");
        let r = kcorr_and_absmag(
            &pre,
            z,
            dmod,
            &zwave,
            &model,
            &v(&c["nanomaggies"]),
            &v(&c["ivar"]),
            &btf,
        )
        .expect("kcorr");
        let tol = 1e-4;
        for (what, got, want) in [
            ("synth_absmag", &r.synth_absmag, v(&c["synth_absmag"])),
            ("maggies_rest", &r.maggies_rest, v(&c["maggies_rest"])),
            ("kcorr", &r.kcorr, v(&c["kcorr"])),
            ("absmag", &r.absmag, v(&c["absmag"])),
            ("ivar_absmag", &r.absmag_ivar, v(&c["ivar_absmag"])),
            ("maggies_obs", &r.maggies_obs, v(&c["maggies_obs"])),
        ] {
            assert_eq!(got.len(), want.len(), "{name} {what}");
            for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= tol * b.abs() + 1e-6,
                    "{name} {what}[{j}]: {a} vs {b}"
                );
            }
        }
        let mut sa = Vec::new();
        synth_absmag(&pre, z, dmod, &model, &mut sa).expect("synth");
        assert_eq!(sa, r.synth_absmag);
        if name == "flat" {
            // SPEC §4.12 verified numbers.
            let want_sa = [
                -16.19285649,
                -16.81623895,
                -17.58668895,
                -17.0631772,
                -17.49934411,
                -17.98466151,
            ];
            let want_k = [
                -1.30718301,
                -0.683789219,
                0.0866694134,
                -0.436832738,
                -6.69176268e-4,
                -0.138803532,
            ];
            for j in 0..6 {
                close(r.synth_absmag[j], want_sa[j], 1e-4, "SPEC ABSMAG_SYNTH");
                assert!(
                    (r.kcorr[j] - want_k[j]).abs() <= 1e-4 * want_k[j].abs() + 1e-6,
                    "SPEC KCORR {j}"
                );
            }
        }
    }
}

#[test]
fn continuum_fluxes_match_fastspecfit() {
    let c = &fx()["cflux"];
    let (lums, cfl) = continuum_fluxes(
        &v(&fx()["template_wave"]),
        &v(&c["continuum"]),
        c["z"].as_f64().expect("z"),
        c["dlum"].as_f64().expect("d"),
    );
    for (a, b) in lums.iter().zip(v(&c["lums"])) {
        assert!((a - b).abs() < 1e-8, "lums {a} vs {b}");
    }
    for (a, b) in cfl.iter().zip(v(&c["cfluxes"])) {
        close(*a, b, 1e-8, "cfluxes");
    }
}

#[test]
fn sps_properties_formulae() {
    let mstar = [0.9, 0.7, 0.5];
    let zz = [0.0, 0.0, 0.0];
    let age = [5e7, 1e9, 1e10];
    let dt = [1e8, 1e9, 5e9];
    let sfr = [0.0; 3];
    let info = TemplateInfo {
        mstar: &mstar,
        zzsun: &zz,
        age_yr: &age,
        dt_yr: Some(&dt),
        sfr: &sfr,
    };
    let p = sps_properties(&[1.0, 0.0, 2.0], &[true, true, true], &info);
    close(p[2], (1e10f64 * 1.9).log10(), 1e-12, "logmstar");
    close(p[0], (5e7 + 2e10) / 3.0 / 1e9, 1e-12, "age");
    // template 0: t_near = 0, min(1e8, 1e8) → frac 1; template 2 is older → 0.
    close(p[3], 1e10 / 1e8, 1e-12, "sfr");
    assert_eq!(p[1], 0.0);
    assert_eq!(sps_properties(&[0.0; 3], &[true; 3], &info), [0.0; 4]);
}

#[test]
fn mc_variance_rules() {
    assert_eq!(plain_ivar(&[1.0, f64::NAN, 2.0]), 0.0);
    assert_eq!(plain_ivar(&[1.0, f64::NEG_INFINITY]), 0.0);
    close(nan_ivar_capped(&[1.0, f64::NAN, 3.0]), 1.0, 1e-12, "nanvar");
    assert_eq!(nan_ivar_capped(&[1.0, 1.0]), 0.0);
    close(plain_ivar(&[1.0, 3.0]), 1.0, 1e-12, "plain");
}

#[test]
fn dn4000_window_is_bit_identical() {
    use crate::kernels::derived::dn4000::dn4000_rest_window;
    let mut s = Dn4000Scratch::default();
    for (start, step) in [
        (3000.0, 0.7),
        (3000.0, 1.0),
        (3848.0, 1.0),
        (3849.0, 1.0),
        (3700.0, 3.3),
    ] {
        let w: Vec<f64> = (0..1500).map(|i| start + step * i as f64).collect();
        let f: Vec<f64> = w.iter().map(|x| 1.0 + (x / 97.0).sin() * 0.3).collect();
        let full = dn4000(&w, &f, None, None, &mut s);
        let r = dn4000_rest_window(&w);
        let part = dn4000(&w[r.clone()], &f[r], None, None, &mut s);
        assert_eq!(
            full.0.to_bits(),
            part.0.to_bits(),
            "start {start} step {step}"
        );
    }
}

/// The windows fitted together by `continuum_fluxes_with` give exactly the one-window
/// `continuum_at` values (template SEDs, a wiggly one, one with gaps in coverage).
#[test]
fn continuum_fluxes_together_equal_one_by_one() {
    use crate::kernels::derived::cflux::{continuum_at, CFLUXES, LUMS};
    let wave = v(&fx()["template_wave"]);
    let c = &fx()["cflux"];
    let cont = v(&c["continuum"]);
    let wiggly: Vec<f64> = wave
        .iter()
        .zip(&cont)
        .map(|(w, f)| f * (1.0 + 0.2 * (w / 13.0).sin()))
        .collect();
    let short: Vec<f64> = wave.iter().copied().filter(|&w| w < 3000.0).collect();
    let (z, dlum) = (0.3, 1500.0);
    let mut s = ContinuumScratch::default();
    for (wv, sed) in [(&wave, &cont), (&wave, &wiggly), (&short, &cont)] {
        let (lums, cfl) = continuum_fluxes_with(wv, sed, z, dlum, &mut s);
        let (l1, f1) = continuum_fluxes(wv, sed, z, dlum);
        assert_eq!(lums.map(f64::to_bits), l1.map(f64::to_bits));
        assert_eq!(cfl.map(f64::to_bits), f1.map(f64::to_bits));
        for (k, (_, cw, ic)) in CFLUXES.iter().enumerate() {
            let one = continuum_at(wv, sed, *cw, *ic);
            assert_eq!(cfl[k].to_bits(), one.to_bits(), "{cw}");
        }
        let d = 3.085_677_58e24 * dlum;
        let dfactor = (1.0 + z) * 4.0 * std::f64::consts::PI * d * d / 1e17;
        for (k, (name, cw)) in LUMS.iter().enumerate() {
            let mut l = continuum_at(wv, sed, *cw, false) * dfactor;
            l *= if name.starts_with("LOGL_") {
                cw / 3.846e33 / 1e10
            } else {
                cw * cw / (299_792.458 * 1e13) / 1e28
            };
            let want = if l > 0.0 { l.log10() } else { 0.0 };
            assert_eq!(lums[k].to_bits(), want.to_bits(), "{name}");
        }
    }
}

/// The four-lane Monte Carlo kernels give exactly the one-realisation values: SEDs with dust
/// emission → synthetic absmags, line-free SEDs on windows, continuum fluxes and Dn4000, on
/// the real template grid with coefficient sets that have zeros (also a template
/// zero in every lane) and different τ_V per lane.
#[test]
fn mc_batch_lanes_equal_one_by_one() {
    use super::cflux::{continuum_fluxes_lanes, read_windows, LaneScratch};
    use super::dn4000::{dn4000_rest_window, Dn4000Rest};
    use super::mcbatch::{McBatch, LANES};
    use super::sed::{build_sed, build_sed_nodust_ranges, SedInputs};
    let wave = v(&fx()["template_wave"]);
    let nt = 5;
    // smooth positive "templates" with different shapes, a dust-emission curve, zfactors
    let flux: Vec<f64> = (0..nt)
        .flat_map(|t| {
            wave.iter()
                .map(move |w| {
                    (1.0 + 0.3 * (w / (50.0 + 40.0 * t as f64)).sin()) / (1.0 + w / 8000.0)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let flux_nl: Vec<f64> = flux.iter().map(|f| 0.9 * f).collect();
    let klambda: Vec<f64> = wave.iter().map(|w| (w / 5500.0).powf(-0.7)).collect();
    let dustflux: Vec<f64> = wave
        .iter()
        .map(|w| (-(w / 3e5 - 1.0).powi(2)).exp() * 1e-6)
        .collect();
    let zf: Vec<f64> = wave
        .iter()
        .map(|w| 0.8 + 0.2 * (w / 3000.0).cos())
        .collect();
    let z = 0.3;
    let with = SedInputs {
        wave: &wave,
        flux: &flux,
        klambda: &klambda,
        dustflux: &dustflux,
        zfactors: &zf,
    };
    let nol = SedInputs {
        flux: &flux_nl,
        ..with
    };
    let coeffs: [Vec<f64>; LANES] = [
        vec![0.3, 0.0, 1.2, 0.0, 0.5],
        vec![0.0, 0.0, 2.0, 0.0, 0.1],
        vec![1e-3, 0.0, 0.0, 0.0, 7.0],
        vec![0.4, 0.0, 0.4, 0.0, 0.4],
    ];
    let tauv = [0.27, 1e-5, 1.3, 0.0];
    let c4: [&[f64]; LANES] = std::array::from_fn(|r| coeffs[r].as_slice());
    let zwave: Vec<f64> = wave.iter().map(|w| w * (1.0 + z)).collect();
    let outf = out_filters();
    let pre = KcorrPre::new(&outf, &outf, &zwave, z).expect("pre");
    let mut windows = read_windows(&wave);
    let dnw = dn4000_rest_window(&wave);
    windows.push(dnw.clone());
    let mut b = McBatch::new(&[&flux, &flux_nl]);
    b.build_with_lines(&with, &c4, tauv).expect("batch");
    let mut sa4 = Vec::new();
    b.synth_absmag(&with, &pre, z, 40.0, &mut sa4)
        .expect("synth");
    let mut s2l: [Vec<f64>; LANES] = Default::default();
    b.nodust_ranges(&nol, &c4, &windows, &mut s2l)
        .expect("nodust");
    let lf4 = continuum_fluxes_lanes(
        &wave,
        std::array::from_fn(|r| s2l[r].as_slice()),
        z,
        1500.0,
        &mut LaneScratch::default(),
    );
    let mut dnr = Dn4000Rest::new(&wave[dnw.clone()]);
    let (mut atten, mut s1, mut s2, mut sa) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut cs = ContinuumScratch::default();
    let mut dns = Dn4000Scratch::default();
    for r in 0..LANES {
        build_sed(&with, &coeffs[r], tauv[r], true, &mut atten, &mut s1).expect("sed");
        synth_absmag(&pre, z, 40.0, &s1, &mut sa).expect("sa");
        let got: Vec<u64> = sa4.iter().map(|v| v[r].to_bits()).collect();
        assert_eq!(
            got,
            sa.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "lane {r}"
        );
        build_sed_nodust_ranges(&nol, &coeffs[r], &atten, &windows, &mut s2).expect("nd");
        assert_eq!(
            s2.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            s2l[r].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "lane {r} line-free SED"
        );
        let (l, f) = continuum_fluxes_with(&wave, &s2, z, 1500.0, &mut cs);
        assert_eq!(
            l.map(f64::to_bits),
            lf4[r].0.map(f64::to_bits),
            "lane {r} lums"
        );
        assert_eq!(
            f.map(f64::to_bits),
            lf4[r].1.map(f64::to_bits),
            "lane {r} cfluxes"
        );
        let dn = dn4000(&wave[dnw.clone()], &s2[dnw.clone()], None, None, &mut dns).0;
        assert!(dn > 0.5, "{dn}");
        assert_eq!(
            dn.to_bits(),
            dnr.eval(&s2[dnw.clone()]).to_bits(),
            "lane {r} Dn4000"
        );
    }
}

/// `Dn4000Rest` equals `dn4000` without ivar on assorted grids (incl. no coverage).
#[test]
fn dn4000_rest_equals_dn4000() {
    use super::dn4000::Dn4000Rest;
    let mut s = Dn4000Scratch::default();
    for (start, step) in [(3000.0, 0.7), (3848.0, 1.0), (3700.0, 3.3), (3900.0, 1.0)] {
        let w: Vec<f64> = (0..1500).map(|i| start + step * i as f64).collect();
        let mut d = Dn4000Rest::new(&w);
        for a in [0.0, 0.3, -0.9] {
            let f: Vec<f64> = w.iter().map(|x| 1.0 + (x / 97.0).sin() * a).collect();
            let want = dn4000(&w, &f, None, None, &mut s).0;
            assert_eq!(want.to_bits(), d.eval(&f).to_bits(), "{start} {step} {a}");
        }
    }
}
