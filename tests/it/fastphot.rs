//! fastphot continuum fit (SPEC §4.1–§4.3, §4.9, §4.10) against FastSpecFit 3.6.1.
//!
//! * Kernels vs `tests/fixtures/continuum/fastphot.json` (made by
//!   `tests/fixtures/scripts/gen_continuum.py` from FastSpecFit's own functions):
//!   parse_photometry, model photometry of each template at (z, τ_V), one VARPRO solve.
//! * Both real targets run through the library exactly as the reference commands, compared
//!   with `tests/data/reference/fastphot-*.fits` SPECPHOT: COEFF within 1% of their sum,
//!   TAUV within 0.01, RCHI2_PHOT within 1%, SEED exact, and TAUV_IVAR within 0.1% (the
//!   Monte Carlo reproduces NumPy's PCG64 + ziggurat draws; the brief's 30% allowance
//!   was for a statistically equivalent generator).

use super::common::{f64s, load_fixture};
use clap::Parser;
use fastspecfit::cli::{Cli, Command};
use fastspecfit::io::templates::{bundled_template_path, read_templates_with, TemplateOptions};
use fastspecfit::metadata::FileMeta;
use fastspecfit::run::{load_file, Engine, Mode, RunContext, RunSummary};
use fsf_systems::kernels::continuum::photvec::parse_photometry;
use fsf_systems::kernels::continuum::{varpro_phot, PhotModel, TemplateArrays, VarproWorkspace};
use fsf_systems::kernels::filters::load_filter;
use fsf_systems::kernels::igm::Inoue14;

use super::common::*;

fn fixture() -> serde_json::Value {
    load_fixture("continuum/fastphot.json")
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn parse_photometry_matches_fastspecfit() {
    let f = fixture();
    let p = &f["parse"];
    let n = f64s(&p["nmgy"]).len();
    let (mut flam, mut ivar) = (vec![0.0; n], vec![0.0; n]);
    let mu = f64s(&p["min_uncertainty"]);
    parse_photometry(
        &f64s(&p["nmgy"]),
        &f64s(&p["ivar"]),
        &f64s(&p["lambda_eff"]),
        Some(&mu),
        &mut flam,
        &mut ivar,
    )
    .unwrap();
    for (a, b) in flam.iter().zip(f64s(&p["flam"])) {
        assert!((a - b).abs() <= 1e-12 * b.abs(), "flam {a} vs {b}");
    }
    for (a, b) in ivar.iter().zip(f64s(&p["flam_ivar"])) {
        assert!((a - b).abs() <= 1e-12 * b.abs(), "flam_ivar {a} vs {b}");
    }
}

#[test]
fn model_photometry_and_varpro_match_fastspecfit() {
    let f = fixture();
    let t = read_templates_with(&bundled_template_path(), &TemplateOptions::default())
        .expect("templates");
    let tpl = TemplateArrays {
        wave: &t.wave_ang,
        klambda: &t.dust_klambda,
        dustflux: &t.dustflux,
        flux: &t.flux_nomvdisp,
        flux_nolines: &t.flux_nolines_nomvdisp,
    };
    let filters: Vec<_> = f["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| load_filter(n.as_str().unwrap()).unwrap())
        .collect();
    let igm = Inoue14::new().unwrap();
    let nb = filters.len();
    let (mut atten, mut d, mut m) = (vec![0.0; t.nwave], vec![0.0; 1], vec![0.0; nb]);
    for case in f["cases"].as_array().unwrap() {
        let (z, dl, tauv) = (
            case["z"].as_f64().unwrap(),
            case["dlum"].as_f64().unwrap(),
            case["tauv"].as_f64().unwrap(),
        );
        for (k, expect) in case["model_flam_per_template"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let model = PhotModel::new(&tpl, &[k], z, dl, &igm, &filters).unwrap();
            model.fill(&tpl, tauv, &mut atten, &mut d, &mut m);
            for (b, e) in f64s(expect).iter().enumerate() {
                assert!(
                    rel(m[b], *e) < 1e-6 || (m[b] - e).abs() < 1e-12 * f64s(expect)[2].abs(),
                    "z={z} template {k} band {b}: {} vs {e}",
                    m[b]
                );
            }
        }
        let v = &case["varpro"];
        let rows: Vec<usize> = (0..t.ntemplate).collect();
        let model = PhotModel::new(&tpl, &rows, z, dl, &igm, &filters).unwrap();
        let istd: Vec<f64> = f64s(&v["objflamivar"]).iter().map(|x| x.sqrt()).collect();
        let fit = varpro_phot(
            &model,
            &tpl,
            &f64s(&v["objflam"]),
            &istd,
            &mut VarproWorkspace::default(),
        )
        .unwrap();
        let ce = f64s(&v["coeff"]);
        let sum: f64 = ce.iter().sum();
        assert!(
            (fit.tauv - v["tauv"].as_f64().unwrap()).abs() < 1e-3,
            "z={z} tauv {} vs {}",
            fit.tauv,
            v["tauv"]
        );
        for (a, b) in fit.coeff.iter().zip(&ce) {
            assert!(
                (a - b).abs() < 1e-3 * sum,
                "z={z} coeff {:?} vs {ce:?}",
                fit.coeff
            );
        }
        assert!(
            rel(fit.chi2, v["chi2"].as_f64().unwrap()) < 1e-3,
            "z={z} chi2 {} vs {}",
            fit.chi2,
            v["chi2"]
        );
    }
}

/// Fit the first (only) file of `args` with the library, as `fastphot` would.
fn fit(args: Vec<String>) -> FileMeta {
    let cli = Cli::try_parse_from(
        ["fastspecfit".to_string(), "fastphot".to_string()]
            .into_iter()
            .chain(args),
    )
    .expect("args");
    let Command::Fastphot(a) = cli.command else {
        panic!("not fastphot")
    };
    let ctx = RunContext::new(&a, Mode::Fastphot).expect("context");
    let mut engine = Engine::new(&ctx).expect("engine");
    let loaded = load_file(&a.redrockfiles[0], &ctx)
        .expect("load")
        .expect("targets");
    engine.fit_file(loaded, &mut RunSummary::default())
}

fn scalar(cols: &[(String, Col)], name: &str) -> f64 {
    match &cols
        .iter()
        .find(|c| c.0 == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
    {
        Col::Float(v) => v[0],
        Col::Int(v) => v[0] as f64,
        Col::Str(_) => panic!("{name} is a string"),
    }
}

fn compare(meta: &FileMeta, refname: &str, coeff_ref: &[f64]) {
    let r = read_table(&reference(refname), "SPECPHOT");
    assert!(meta.status[0].ok(), "{:?}", meta.status[0]);
    let c = &meta.continuum[0];
    assert!(c.fitted);
    assert_eq!(c.seed as f64, scalar(&r, "SEED"), "SEED");
    let sum: f64 = coeff_ref.iter().sum();
    for (a, b) in c.coeff.iter().zip(coeff_ref) {
        assert!(
            (a - b).abs() <= 0.01 * sum,
            "{refname} COEFF {:?} vs {coeff_ref:?}",
            c.coeff
        );
    }
    let tauv = scalar(&r, "TAUV");
    assert!(
        (c.tauv - tauv).abs() <= 0.01,
        "{refname} TAUV {} vs {tauv}",
        c.tauv
    );
    let rchi2 = scalar(&r, "RCHI2_PHOT");
    assert!(
        rel(c.rchi2_phot, rchi2) <= 0.01,
        "{refname} RCHI2_PHOT {} vs {rchi2}",
        c.rchi2_phot
    );
    let tivar = scalar(&r, "TAUV_IVAR");
    assert!(
        rel(c.tauv_ivar, tivar) <= 1e-3,
        "{refname} TAUV_IVAR {} vs {tivar}",
        c.tauv_ivar
    );
    assert!((c.vdisp_kms - scalar(&r, "VDISP")).abs() < 1e-3, "VDISP");
    assert_eq!(c.mc_tauv.len(), 50);
    assert_eq!(c.sedmodel.len(), c.sedmodel_nolines.len());
    eprintln!(
        "{refname}: COEFF {:?} (ref {coeff_ref:?}) TAUV {} ({tauv}) RCHI2_PHOT {} ({rchi2}) TAUV_IVAR {} ({tivar})",
        c.coeff, c.tauv, c.rchi2_phot, c.tauv_ivar
    );
}

// COEFF vectors printed from tests/data/reference/fastphot-*.fits SPECPHOT (vector column).
const COEFF_80613: [f64; 5] = [0.00831252, 0.0, 0.18587385, 0.47359267, 0.0];
const COEFF_27247: [f64; 5] = [0.01305434, 0.0662289, 1.6275032, 0.0, 0.0];

#[test]
fn fastphot_80613_matches_reference() {
    let dir = tempfile::tempdir().unwrap();
    let meta = fit(args_80613(&dir.path().join("out.fits")));
    compare(&meta, "fastphot-80613.fits", &COEFF_80613);
}

#[test]
fn fastphot_27247_matches_reference() {
    let dir = tempfile::tempdir().unwrap();
    let meta = fit(args_27247(&dir.path().join("out.fits")));
    compare(&meta, "fastphot-27247.fits", &COEFF_27247);
    // --constrain-age at z = 3.15: the two oldest templates are excluded
    assert_eq!(meta.continuum[0].agekeep.iter().filter(|&&k| k).count(), 3);
}
