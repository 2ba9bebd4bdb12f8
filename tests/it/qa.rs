//! `qa`: figures for both real targets (fastspec and fastphot), the rebuilt SED and the
//! spectrum/model alignment checked against the output file's own numbers, the profile chart,
//! and the HTML report loaded in headless Chromium.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use fastspecfit::io::photometry::PhotometryConfig;
use fastspecfit::io::templates::{bundled_template_path, read_templates};
use fastspecfit::qa::input::{photometry, FitFile, SedBuilder, SpectraSource};
use fastspecfit::qa::report::{parse_profile, svg_profile};
use fsf_systems::kernels::cosmology::Cosmology;
use fsf_systems::kernels::prepare::synth_nanomaggies;
use fsf_systems::kernels::synthphot::SynthScratch;

use super::common::{desi, reference, run, s};

const PNG_80613: [&str; 2] = [
    "fastspec-80613-cumulative-39633345008634465.png",
    "fastphot-80613-cumulative-39633345008634465.png",
];
const PNG_27247: [&str; 2] = [
    "fastspec-special-dark-27247-39089837499744649.png",
    "fastphot-special-dark-27247-39089837499744649.png",
];

/// A profile table as `--profile` prints it, from a real [`ProfileLayer`] that timed spans.
fn profile_text() -> String {
    use tracing_subscriber::prelude::*;
    let layer = fastspecfit::profile::ProfileLayer::new();
    let sub = tracing_subscriber::registry().with(layer.clone());
    tracing::subscriber::with_default(sub, || {
        for _ in 0..3 {
            let _s = tracing::info_span!("continuum_fit").entered();
            std::thread::sleep(std::time::Duration::from_millis(4));
        }
        let _s = tracing::info_span!("emline_fit").entered();
        std::thread::sleep(std::time::Duration::from_millis(2));
    });
    format!(
        "some log line\n{}more log\n",
        layer.render(std::time::Duration::from_millis(40), 1)
    )
}

struct QaOut {
    dir80613: PathBuf,
    dir27247: PathBuf,
}

/// Run `qa` once on the reference outputs of both targets (shared by the tests below).
fn qa_outputs() -> &'static QaOut {
    static OUT: OnceLock<QaOut> = OnceLock::new();
    OUT.get_or_init(|| {
        // Under the target directory (kept for inspection, replaced on every run).
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qa-report");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let (a, b) = (root.join("qa80613"), root.join("qa27247"));
        let prof = root.join("profile.log");
        std::fs::write(&prof, profile_text()).unwrap();
        let out = run(&[
            "qa",
            &s(&reference("fastspec-80613.fits")),
            &s(&reference("fastphot-80613.fits")),
            "-o",
            &s(&a),
            "--redrockfiles",
            &s(&desi().join("redrock-4-80613-thru20210324.fits")),
            "--profile",
            &s(&prof),
        ]);
        assert!(
            out.status.success(),
            "qa 80613 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(&[
            "qa",
            &s(&reference("fastspec-27247.fits")),
            &s(&reference("fastphot-27247.fits")),
            "-o",
            &s(&b),
            "--redrockfiles",
            &s(&desi().join("redrock-special-dark-27247.fits")),
            "--fphotofile",
            &s(&desi().join("suprime-photinfo.yaml")),
        ]);
        assert!(
            out.status.success(),
            "qa 27247 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        QaOut {
            dir80613: a,
            dir27247: b,
        }
    })
}

/// (width, height, RGB bytes) of a PNG.
fn read_png(p: &Path) -> (u32, u32, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", p.display());
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// (distinct colours, fraction of non-white pixels, pixels of exactly `rgb`).
fn colour_stats(buf: &[u8], rgb: [u8; 3]) -> (usize, f64, usize) {
    let mut set = HashSet::new();
    let (mut ink, mut exact) = (0usize, 0usize);
    for p in buf.chunks_exact(3) {
        set.insert([p[0], p[1], p[2]]);
        if p != [255, 255, 255] {
            ink += 1;
        }
        if p == rgb {
            exact += 1;
        }
    }
    (set.len(), ink as f64 / (buf.len() / 3) as f64, exact)
}

#[test]
fn qa_figures_for_both_targets_render() {
    let q = qa_outputs();
    for (dir, names) in [(&q.dir80613, PNG_80613), (&q.dir27247, PNG_27247)] {
        for name in names {
            let p = dir.join(name);
            assert!(p.is_file(), "missing {}", p.display());
            let (w, h, buf) = read_png(&p);
            let fastspec = name.starts_with("fastspec");
            let want = if fastspec { (2400, 1800) } else { (1800, 900) };
            assert_eq!((w, h), want, "{name}");
            // Orange (observed photometry fill, #ff8c00) is drawn exactly.
            let (ncol, ink, orange) = colour_stats(&buf, [0xff, 0x8c, 0x00]);
            println!(
                "{name}: {w}x{h}, {ncol} colours, {:.1}% ink, {orange} orange px",
                100.0 * ink
            );
            assert!(ncol > 300, "{name}: only {ncol} distinct colours");
            assert!(ink > 0.05 && ink < 0.6, "{name}: ink fraction {ink}");
            assert!(
                orange > 500,
                "{name}: photometry points missing ({orange} px)"
            );
            if fastspec {
                // The camera data/model colours of the spectrum panel: the B-camera model
                // (#003f91 at 90% over white) must be present, i.e. the spectrum was found.
                let blue = buf
                    .chunks_exact(3)
                    .filter(|p| p[2] > 120 && p[0] < 60 && p[1] < 110)
                    .count();
                assert!(blue > 2000, "{name}: spectrum model not drawn ({blue} px)");
            }
            let thumb = dir.join("thumbs").join(name);
            let (tw, th, _) = read_png(&thumb);
            assert_eq!((tw, th), (want.0 / 4, want.1 / 4), "thumbnail of {name}");
        }
        let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
        for name in names {
            assert!(
                html.contains(&format!("href=\"{name}\"")),
                "report lacks {name}"
            );
            assert!(html.contains(&format!("src=\"thumbs/{name}\"")));
        }
        assert!(
            html.matches("<svg").count() >= 4,
            "summary distributions missing"
        );
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
        assert!(!html.contains("<link"), "external resources in the report");
    }
    // The 80613 report carries the profile chart with the systems of the profile file.
    let html = std::fs::read_to_string(q.dir80613.join("index.html")).unwrap();
    assert!(html.contains("Per-system profile"));
    assert!(html.contains(">continuum_fit<") && html.contains(">emline_fit<"));
}

/// The SED rebuilt from COEFF/TAUV with the templates, synthesized through the filters,
/// reproduces the model photometry FastSpecFit wrote (FLUX_SYNTH_PHOTMODEL_*).
#[test]
fn qa_rebuilt_sed_reproduces_model_photometry() {
    let tpl = read_templates(&bundled_template_path()).unwrap();
    let sb = SedBuilder::new(tpl, Cosmology::desi_fiducial().unwrap()).unwrap();
    for (file, yaml) in [
        ("fastphot-80613.fits", None),
        ("fastspec-80613.fits", None),
        (
            "fastphot-27247.fits",
            Some(desi().join("suprime-photinfo.yaml")),
        ),
        (
            "fastspec-27247.fits",
            Some(desi().join("suprime-photinfo.yaml")),
        ),
    ] {
        let ff = FitFile::read(&reference(file)).unwrap();
        let cfg = PhotometryConfig::load(yaml.as_deref()).unwrap();
        let (bands, curves) = photometry(&ff, 0, &cfg).unwrap();
        let sed = sb.sed(&ff, 0).unwrap().expect("SED rebuilt");
        let mut out = vec![0.0; curves.len()];
        let (mut scaled, mut scratch) = (Vec::new(), SynthScratch::new());
        synth_nanomaggies(
            &curves,
            &sed.flam,
            &sed.wave,
            &mut out,
            &mut scaled,
            &mut scratch,
        )
        .unwrap();
        let mut worst = 0.0_f64;
        for (b, o) in bands.iter().zip(&out) {
            let rel = (o / b.model - 1.0).abs();
            worst = worst.max(rel);
        }
        println!(
            "{file}: rebuilt-SED photometry vs FLUX_SYNTH_PHOTMODEL_*: max |rel| = {worst:.2e}"
        );
        assert!(worst < 1e-3, "{file}: max relative difference {worst}");
    }
}

/// The observed spectrum found and prepared by `qa` and the MODELS of the output file line
/// up: χ²/pixel of data − (continuum + smooth + lines) is FastSpecFit's RCHI2_LINE.
#[test]
fn qa_spectrum_and_models_line_up() {
    for (file, rr) in [
        ("fastspec-80613.fits", "redrock-4-80613-thru20210324.fits"),
        ("fastspec-27247.fits", "redrock-special-dark-27247.fits"),
    ] {
        let ff = FitFile::read(&reference(file)).unwrap();
        let src = SpectraSource {
            redrockfiles: vec![desi().join(rr)],
            redrock_prefix: "redrock-".into(),
            specfile_prefix: "coadd-".into(),
            ..Default::default()
        };
        let cams = src.spectrum(&ff, 0).unwrap().expect("spectrum found");
        assert_eq!(cams.len(), 3);
        let m = ff.models.as_ref().unwrap();
        let (mut chi2, mut n) = (0.0, 0usize);
        for c in &cams {
            for i in 0..c.wave.len() {
                if c.ivar[i] > 0.0 {
                    let model: f64 = (0..3).map(|k| m.interp(0, k, c.wave[i])).sum();
                    // The fit's 1% uncertainty floor, in quadrature.
                    let var = 1.0 / c.ivar[i] + (0.01 * c.flux[i]).powi(2);
                    chi2 += (c.flux[i] - model).powi(2) / var;
                    n += 1;
                }
            }
        }
        let rchi2 = chi2 / n as f64;
        let want = ff.num(0, "RCHI2_LINE");
        println!("{file}: chi2/pix = {rchi2:.4} over {n} pixels; RCHI2_LINE = {want:.4}");
        assert!(
            (rchi2 / want - 1.0).abs() < 0.01,
            "{file}: {rchi2} vs RCHI2_LINE {want}"
        );
    }
}

#[test]
fn qa_profile_table_and_tsv_parse() {
    let (rows, wall) = parse_profile(&profile_text()).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].name, "continuum_fit");
    assert_eq!(rows[0].calls, 3);
    assert!(
        rows[0].seconds >= 0.012 && rows[0].seconds < 1.0,
        "{:?}",
        rows[0]
    );
    assert_eq!((rows[1].name.as_str(), rows[1].calls), ("emline_fit", 1));
    assert!((wall.unwrap() - 0.04).abs() < 1e-9);
    let (rows, wall) =
        parse_profile("# name\tseconds\tcalls\nload\t0.5\t2\nfit\t2.0\t1\nwall\t3.0\n").unwrap();
    assert_eq!(rows[0].name, "fit");
    assert_eq!(rows[1].calls, 2);
    assert_eq!(wall, Some(3.0));
    let svg = svg_profile(&rows, wall);
    assert_eq!(svg.matches("<rect").count(), 2);
    assert!(parse_profile("nothing here\n").is_err());
}

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(p) = which(name) {
            return Some(p);
        }
    }
    None
}

fn which(name: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// (DOM, console lines) of `page` loaded in headless Chromium.
fn load_in_chromium(chrome: &Path, page: &Path) -> (String, Vec<String>) {
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let out = Command::new(chrome)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            &url,
        ])
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

#[test]
fn qa_report_loads_in_headless_chromium() {
    let Some(chrome) = chromium() else {
        println!("NOTICE: chromium not installed; skipping the headless-browser check of the QA report (apt-get install chromium)");
        return;
    };
    let q = qa_outputs();
    // Negative control: a page with a missing image and a script error must be caught.
    let bad = q.dir80613.join("broken.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>x</title></head><body>\
         <img src=\"thumbs/missing.png\"><script>window.addEventListener('load',function(){\
         document.querySelectorAll('img').forEach(function(i){if(i.naturalWidth===0){\
         console.error('image failed to load: '+i.getAttribute('src'));}});});\
         undefinedFunction();</script></body></html>",
    )
    .unwrap();
    let (_, console) = load_in_chromium(&chrome, &bad);
    assert!(
        console.iter().any(|l| l.contains("undefinedFunction"))
            && console.iter().any(|l| l.contains("missing.png")),
        "console errors not detected: {console:?}"
    );
    for dir in [&q.dir80613, &q.dir27247] {
        let (dom, console) = load_in_chromium(&chrome, &dir.join("index.html"));
        assert!(
            console.is_empty(),
            "console messages from {}: {console:?}",
            dir.display()
        );
        assert!(
            dom.contains("<table class=\"targets\">"),
            "report DOM not rendered"
        );
        assert_eq!(dom.matches("<img class=\"thumb\"").count(), 2);
        println!(
            "{}: loaded in {} with no console message",
            dir.display(),
            chrome.display()
        );
    }
}

fn qa_args(files: &[PathBuf], outdir: &Path) -> fastspecfit::qa::QaArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct W {
        #[command(flatten)]
        a: fastspecfit::qa::QaArgs,
    }
    let mut argv = vec!["qa".to_string()];
    argv.extend(files.iter().map(|p| s(p)));
    argv.extend(["-o".into(), s(outdir)]);
    W::parse_from(argv).a
}

/// Without the Redrock inputs the fastspec figure is still drawn (with a notice) and the
/// target is reported; a photometry YAML that does not match the file is refused up front.
#[test]
fn qa_missing_inputs_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = qa_args(&[reference("fastspec-80613.fits")], dir.path());
    a.redux_dir = None;
    let sum = fastspecfit::qa::run_qa(&a).unwrap();
    assert_eq!(sum.missing_spectra, vec![39633345008634465]);
    assert_eq!(sum.drawn, 1);
    let (w, h, _) = read_png(&sum.pngs[0]);
    assert_eq!((w, h), (2400, 1800));
    // Second call: figure exists, nothing redrawn, report still written.
    let sum = fastspecfit::qa::run_qa(&a).unwrap();
    assert_eq!(sum.drawn, 0);
    assert!(sum.report.is_file());

    let mut a = qa_args(&[reference("fastphot-27247.fits")], dir.path());
    a.redux_dir = None;
    let err = fastspecfit::qa::run_qa(&a).unwrap_err().to_string();
    assert!(
        err.contains("FLUX_W1") && err.contains("--fphotofile"),
        "{err}"
    );
}
