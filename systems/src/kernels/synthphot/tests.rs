//! Tests against `fastspecfit.photometry.Photometry` (fixtures from
//! `tests/fixtures/scripts/gen_phot_synth.py`).

use super::*;
use crate::kernels::filters::load_filter;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/synthphot");

fn fixture(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{DIR}/{name}")).expect("fixture");
    serde_json::from_str(&text).expect("json")
}

fn vec_f64(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn filters_of(set: &serde_json::Value) -> Vec<FilterCurve> {
    set["filters"]
        .as_array()
        .expect("names")
        .iter()
        .map(|n| load_filter(n.as_str().expect("name")).expect("bundled"))
        .collect()
}

fn rel(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

/// (a) FLUX_SYNTH of the real 80613 coadd: padding needed for both photsys.
#[test]
fn coadd_80613_matches_get_ab_maggies() {
    let fx = fixture("coadd80613.json");
    let wave = vec_f64(&fx["wave"]);
    let fluxnorm = fx["fluxnorm"].as_f64().expect("fluxnorm");
    let flux: Vec<f64> = vec_f64(&fx["flux"]).iter().map(|f| f / fluxnorm).collect();
    assert_eq!(wave.len(), 7781);
    let mut scratch = SynthScratch::new();
    for (photsys, set) in fx["sets"].as_object().expect("sets") {
        let filters = filters_of(set);
        let want = vec_f64(&set["maggies"]);
        let mut got = vec![0.0; filters.len()];
        ab_maggies(&filters, &flux, &wave, &mut got, &mut scratch).expect("padded synthesis");
        for (g, w) in got.iter().zip(&want) {
            assert!(rel(*g, *w) < 1e-12, "{photsys}: {got:?} vs {want:?}");
        }
        // padding reproduces speclite's grid and edge values
        let (mut pf, mut pw) = (Vec::new(), Vec::new());
        let padded = pad_spectrum_edge(&filters, &flux, &wave, &mut pf, &mut pw).expect("pad");
        assert_eq!(padded, set["padded"].as_bool().expect("padded"));
        assert_eq!(pw.len() as u64, set["padded_n"].as_u64().expect("n"));
        assert_eq!(pw[..5], vec_f64(&set["padded_wave_head"])[..]);
        assert_eq!(pw[pw.len() - 5..], vec_f64(&set["padded_wave_tail"])[..]);
        assert_eq!(pf[..5], vec_f64(&set["padded_flux_head"])[..]);
        assert_eq!(pf[pf.len() - 5..], vec_f64(&set["padded_flux_tail"])[..]);
        // the unchecked path refuses the uncovered grid
        assert!(matches!(
            ab_maggies_pre(&filters, &wave),
            Err(KernelError::Domain(_))
        ));
        // f_lambda at lambda_eff
        let lam: Vec<f64> = filters.iter().map(|f| f.lambda_eff).collect();
        for (l, w) in lam.iter().zip(vec_f64(&set["lambda_eff"])) {
            assert!(rel(*l, w) < 1e-13);
        }
        let mut flam = vec![0.0; got.len()];
        maggies_to_flam(&got, &lam, &mut flam).expect("shapes");
        for (g, w) in flam.iter().zip(vec_f64(&set["photflam"])) {
            assert!(rel(*g, w) < 1e-12, "{photsys} flam {g} vs {w}");
        }
    }
}

/// (b) A redshifted template on its own irregular grid through all DR9 filters.
#[test]
fn template_grid_matches_pre_and_unchecked() {
    let fx = fixture("template.json");
    let (wave, flux) = (vec_f64(&fx["wave"]), vec_f64(&fx["flux"]));
    for (photsys, set) in fx["sets"].as_object().expect("sets") {
        let filters = filters_of(set);
        let pre = ab_maggies_pre(&filters, &wave).expect("template grid covers DR9 filters");
        let idenom = vec_f64(&set["idenom"]);
        let resp_sum = vec_f64(&set["resp_sum"]);
        let rtw_sum = vec_f64(&set["rtw_sum"]);
        let (lo, hi) = (&set["lo"], &set["hi"]);
        let mut tw = Vec::new();
        for (k, p) in pre.iter().enumerate() {
            assert_eq!(
                p.lo as u64,
                lo[k].as_u64().expect("lo"),
                "{photsys} filter {k}"
            );
            assert_eq!(
                p.hi as u64,
                hi[k].as_u64().expect("hi"),
                "{photsys} filter {k}"
            );
            assert!(rel(p.idenom, idenom[k]) < 1e-12, "{photsys} {k}: idenom");
            assert!(rel(p.resp.iter().sum::<f64>(), resp_sum[k]) < 1e-12);
            p.trapz_weights(&wave, &mut tw);
            assert!(rel(tw.iter().sum::<f64>(), rtw_sum[k]) < 1e-12);
            // the weights reproduce the trapezoid numerator
            let dot: f64 = tw.iter().zip(&flux[p.lo..p.hi]).map(|(t, f)| t * f).sum();
            assert!(rel(dot * p.idenom, p.maggies(&flux, &wave)) < 1e-12);
        }
        let mut got = vec![0.0; pre.len()];
        ab_maggies_unchecked(&pre, &flux, &wave, &mut got).expect("shapes");
        let want = vec_f64(&set["maggies"]);
        for (g, w) in got.iter().zip(&want) {
            assert!(rel(*g, *w) < 1e-12, "{photsys}: {got:?} vs {want:?}");
        }
        // the padding API takes the unpadded path here
        let mut got2 = vec![0.0; pre.len()];
        ab_maggies(&filters, &flux, &wave, &mut got2, &mut SynthScratch::new()).expect("ok");
        assert_eq!(got, got2);
        let mut flam = vec![0.0; got.len()];
        let lam: Vec<f64> = filters.iter().map(|f| f.lambda_eff).collect();
        maggies_to_flam(&got, &lam, &mut flam).expect("shapes");
        for (g, w) in flam.iter().zip(vec_f64(&set["photflam"])) {
            assert!(rel(*g, w) < 1e-12, "{photsys} flam {g} vs {w}");
        }
    }
}

#[test]
fn ab_source_has_unit_maggies_and_quirk_constant() {
    // A flat f_nu = 3.631e-20 source is exactly 1 maggy in the synthesis ...
    let filters = vec![load_filter("decam2014-r").expect("bundled")];
    let wave: Vec<f64> = (0..4000).map(|i| 3000.0 + 2.0 * i as f64).collect();
    let flux: Vec<f64> = wave.iter().map(|&w| ab_flam(w)).collect();
    let mut m = [0.0];
    ab_maggies(&filters, &flux, &wave, &mut m, &mut SynthScratch::new()).expect("covered");
    assert!((m[0] - 1.0).abs() < 1e-13, "{}", m[0]);
    // ... while get_photflam uses 10^(-0.4*48.6) [QUIRK]
    let l = filters[0].lambda_eff;
    let ratio = photflam_factor(l) / ab_flam(l);
    assert!((ratio - 10f64.powf(-19.44) / 3.631e-20).abs() < 1e-15);
    assert!((ratio - 0.99994).abs() < 1e-5, "{ratio}");
}

#[test]
fn bad_inputs_are_errors() {
    let filters = vec![load_filter("BASS-g").expect("bundled")];
    let wave: Vec<f64> = (0..100).map(|i| 3000.0 + 60.0 * i as f64).collect();
    let flux = vec![1.0; 100];
    let mut out = [0.0; 1];
    let mut s = SynthScratch::new();
    assert!(matches!(
        ab_maggies(&filters, &flux[..99], &wave, &mut out, &mut s),
        Err(KernelError::Shape(_))
    ));
    assert!(matches!(
        ab_maggies(&filters, &flux, &wave, &mut [0.0; 2], &mut s),
        Err(KernelError::Shape(_))
    ));
    let pre = ab_maggies_pre(&filters, &wave).expect("covered");
    assert!(matches!(
        ab_maggies_unchecked(&pre, &flux[..50], &wave[..50], &mut out),
        Err(KernelError::Shape(_))
    ));
    // a grid with no point strictly inside the filter (one point in [lo, hi))
    let coarse = [1000.0, 20000.0];
    assert!(matches!(
        FilterPre::new(&filters[0], &coarse),
        Err(KernelError::Domain(_))
    ));
    assert!(matches!(
        maggies_to_flam(&[1.0], &[], &mut [0.0]),
        Err(KernelError::Shape(_))
    ));
    assert!(pad_spectrum_edge(&filters, &[], &[], &mut Vec::new(), &mut Vec::new()).is_err());
}

/// [`maggies_with_many`] gives each filter's [`FilterPre::maggies_with`] exactly, for any
/// number of filters (overlapping or not, of any lengths, empty and one-pixel ranges).
#[test]
fn maggies_with_many_equals_one_by_one() {
    let fx = fixture("template.json");
    let (wave, flux) = (vec_f64(&fx["wave"]), vec_f64(&fx["flux"]));
    let mut all = Vec::new();
    for set in fx["sets"].as_object().expect("sets").values() {
        all.extend(ab_maggies_pre(&filters_of(set), &wave).expect("covered"));
    }
    // degenerate ranges: one pixel, none
    let mut one = all[0].clone();
    (one.hi, one.resp) = (one.lo + 1, one.resp[..1].to_vec());
    let mut none = all[1].clone();
    (none.hi, none.resp) = (none.lo, Vec::new());
    all.push(one);
    all.push(none);
    let f = |i: usize| flux[i] * 1.25 / 1e17;
    for n in 0..=all.len() {
        for start in [0, 3] {
            let set: Vec<FilterPre> = all.iter().cycle().skip(start).take(n).cloned().collect();
            let want: Vec<f64> = set.iter().map(|p| p.maggies_with(&wave, f)).collect();
            let mut got = vec![f64::NAN; n];
            maggies_with_many(&set, &wave, f, &mut got);
            let same = got
                .iter()
                .zip(&want)
                .all(|(g, w)| g.to_bits() == w.to_bits());
            assert!(same, "{n} filters from {start}: {got:?} vs {want:?}");
        }
    }
    assert!(all.len() >= 8);
}

/// Timing of [`maggies_with_many`] against one filter at a time (`--ignored --nocapture`).
#[test]
#[ignore]
fn bench_maggies_with_many() {
    let fx = fixture("template.json");
    let (wave, flux) = (vec_f64(&fx["wave"]), vec_f64(&fx["flux"]));
    let set = fx["sets"]
        .as_object()
        .expect("sets")
        .values()
        .next()
        .unwrap();
    let pre = ab_maggies_pre(&filters_of(set), &wave).expect("covered");
    let pre = &pre[..4];
    println!("{:?}", pre.iter().map(|p| p.hi - p.lo).collect::<Vec<_>>());
    let scaled: Vec<f64> = flux.iter().map(|v| v * 1.25 / 1e17).collect();
    let f = |i: usize| scaled[i];
    let mut out = vec![0.0; pre.len()];
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let mut a = 0.0;
        for _ in 0..2000 {
            for p in pre {
                a += p.maggies_with(&wave, f);
            }
        }
        let t1 = t.elapsed();
        let t = std::time::Instant::now();
        let mut b = 0.0;
        for _ in 0..2000 {
            maggies_with_many(pre, &wave, f, &mut out);
            b += out.iter().sum::<f64>();
        }
        let t2 = t.elapsed();
        println!(
            "one by one {:.2} us, many {:.2} us ({a} {b})",
            t1.as_secs_f64() * 1e6 / 2000.0,
            t2.as_secs_f64() * 1e6 / 2000.0
        );
    }
}
