//! Tests of the template reader against `tests/fixtures/templates/{read,vdisp}.json`, written
//! by `tests/fixtures/scripts/gen_templates.py` from what `fastspecfit.templates.Templates`
//! computes on the bundled BC03 file, plus synthetic files for the header branches and
//! the error paths.

use std::path::Path;

use fitsio::images::{ImageDescription, ImageType};
use fitsio::tables::{ColumnDataType, ColumnDescription};
use fitsio::FitsFile;
use serde_json::Value;

use fsf_systems::kernels::vdisp::{
    convolve_direct, convolve_from_pre, PreCache, VdispGrid, VdispWorkspace,
};

use super::*;

fn fixture(name: &str) -> Value {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/templates"
    ))
    .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn vecf(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("int") as usize)
        .collect()
}

/// (JSON floats are compared to ~1 ulp: serde_json's default parser may be off by one.)
/// Largest |got − want| / (atol + |want|) over the pairs; ≤ rtol means "close".
fn max_rel(got: &[f64], want: &[f64], atol: f64) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / (atol + w.abs()))
        .fold(0.0, f64::max)
}

fn bundled() -> Templates {
    read_templates(&bundled_template_path()).expect("bundled templates")
}

fn trapz(y: &[f64], x: &[f64]) -> f64 {
    x.windows(2)
        .zip(y.windows(2))
        .map(|(x, y)| 0.5 * (x[1] - x[0]) * (y[0] + y[1]))
        .sum()
}

#[test]
fn bundled_file_matches_fastspecfit() {
    let fx = fixture("read.json");
    let t = bundled();
    let u = |k: &str| fx[k].as_u64().unwrap() as usize;
    let f = |k: &str| fx[k].as_f64().unwrap();
    assert_eq!((t.ntemplate, t.nwave), (u("ntemplate"), u("nwave")));
    assert_eq!((t.ntemplate, t.nwave), (5, 13329));
    assert_eq!(t.version, fx["version"].as_str().unwrap());
    assert_eq!(t.imf, "kroupa");
    let b = usizes(&fx["pixkms_bounds"]);
    assert_eq!(t.pixkms_bounds, (b[0], b[1]));
    assert!((t.pixkms / f("pixkms") - 1.0).abs() < 1e-15);
    assert!((t.sigma_c3k_kms / f("sigma_c3k") - 1.0).abs() < 1e-15);
    let wb = [t.pixkms_wave_bounds_ang.0, t.pixkms_wave_bounds_ang.1];
    assert!(max_rel(&wb, &vecf(&fx["pixkms_wave_bounds"]), 0.0) < 1e-15);
    assert!((t.vdisp_nominal_kernel_kms - f("vdisp_nominal_kernel")).abs() < 1e-12);
    assert!((t.vdisp_nominal_kernel_kms - 119.81).abs() < 0.01);
    assert_eq!(
        (t.conv_pre.fft_len, t.conv_pre.nfreq),
        (u("fft_len"), u("nfreq"))
    );
    assert_eq!(t.conv_pre_nolines.fft_len, u("fft_len"));
    // metadata (float32 in the file, widened exactly)
    assert!(max_rel(&t.age_yr, &vecf(&fx["age"]), 0.0) < 1e-15);
    assert!(max_rel(&t.zzsun, &vecf(&fx["zzsun"]), 0.0) < 1e-15);
    assert!(max_rel(&t.mstar, &vecf(&fx["mstar"]), 0.0) < 1e-15);
    assert!(max_rel(&t.sfr, &vecf(&fx["sfr"]), 0.0) < 1e-15);
    assert!(max_rel(t.dt_yr.as_deref().unwrap(), &vecf(&fx["dt"]), 0.0) < 1e-15);
    // dust emission: integral over the kept grid, and over the whole file grid
    assert!((trapz(&t.dustflux, &t.wave_ang) - f("dust_integral_trimmed")).abs() < 1e-12);
    let mut r = FitsReader::open(&bundled_template_path()).unwrap();
    let (w, _) = r.image_f64("WAVE").unwrap();
    let (d, _) = r.image_f64("DUSTFLUX").unwrap();
    assert_eq!(w.len(), u("nwave_raw"));
    assert!((trapz(&d, &w) - f("dust_integral_full")).abs() < 1e-12);
    assert!((trapz(&d, &w) - 1.0137).abs() < 1e-4);

    let idx = usizes(&fx["idx"]);
    let pick = |a: &[f64]| idx.iter().map(|&i| a[i]).collect::<Vec<_>>();
    assert!(max_rel(&pick(&t.wave_ang), &vecf(&fx["wave"]), 0.0) < 1e-15);
    assert!(max_rel(&pick(&t.dustflux), &vecf(&fx["dustflux"]), 0.0) < 1e-15);
    assert!(max_rel(&pick(&t.dust_klambda), &vecf(&fx["dust_klambda"]), 0.0) < 1e-14);
    for k in 0..t.ntemplate {
        assert!(
            max_rel(&pick(t.row(&t.flux, k)), &vecf(&fx["flux"][k]), 0.0) < 1e-15,
            "flux[{k}]"
        );
        let nl = pick(t.row(&t.flux_nolines, k));
        assert!(
            max_rel(&nl, &vecf(&fx["flux_nolines"][k]), 0.0) < 1e-15,
            "nolines[{k}]"
        );
        // FastSpecFit convolves with scipy's FFT-based oaconvolve; ours is the direct sum
        let scale = t
            .row(&t.flux, k)
            .iter()
            .fold(0.0, |m: f64, v| m.max(v.abs()));
        for (name, arr) in [
            ("flux_nomvdisp", &t.flux_nomvdisp),
            ("flux_nolines_nomvdisp", &t.flux_nolines_nomvdisp),
        ] {
            let e = max_rel(&pick(t.row(arr, k)), &vecf(&fx[name][k]), 1e-12 * scale);
            assert!(e < 1e-12, "{name}[{k}]: {e:e}");
        }
        let (lo, hi) = t.pixkms_bounds;
        let s: f64 = t.row(&t.flux_nomvdisp, k)[lo..hi].iter().sum();
        let want = fx["nomvdisp_segment_sum"][k].as_f64().unwrap();
        assert!((s - want).abs() <= 1e-12 * want.abs(), "segment sum[{k}]");
    }
    // FFT pre-cache transforms, relative to the largest coefficient (the DC term)
    let fidx = usizes(&fx["fidx"]);
    for (pre, re_key, im_key) in [
        (&t.conv_pre, "ft_re", "ft_im"),
        (&t.conv_pre_nolines, "ft_nolines_re", "ft_nolines_im"),
    ] {
        for k in 0..t.ntemplate {
            let row = |a: &[f64]| {
                fidx.iter()
                    .map(|&f| a[k * pre.nfreq + f])
                    .collect::<Vec<_>>()
            };
            let scale = pre.ft_re[k * pre.nfreq].abs();
            assert!(
                max_rel(&row(&pre.ft_re), &vecf(&fx[re_key][k]), scale) < 1e-13,
                "{re_key}[{k}]"
            );
            assert!(
                max_rel(&row(&pre.ft_im), &vecf(&fx[im_key][k]), scale) < 1e-13,
                "{im_key}[{k}]"
            );
        }
    }
}

#[test]
fn convolution_of_bundled_templates_matches_fastspecfit() {
    let fx = fixture("vdisp.json");
    let t = bundled();
    let grid = VdispGrid {
        lo: t.pixkms_bounds.0,
        hi: t.pixkms_bounds.1,
        pixkms: t.pixkms,
    };
    let coeff = vecf(&fx["coeff"]);
    let idx = usizes(&fx["idx"]);
    let pick = |a: &[f64]| idx.iter().map(|&i| a[i]).collect::<Vec<_>>();
    let combined: Vec<f64> = (0..t.nwave)
        .map(|i| {
            (0..t.ntemplate)
                .map(|k| coeff[k] * t.flux[k * t.nwave + i])
                .sum()
        })
        .collect();
    assert!(max_rel(&pick(&combined), &vecf(&fx["combined"]), 0.0) < 1e-14);
    let p = &t.conv_pre;
    let pre = PreCache::from(p);
    let mut ws = VdispWorkspace::new(p.fft_len, p.max_radius_pix);
    let (mut direct, mut viafft) = (vec![0.0; t.nwave], vec![0.0; t.nwave]);
    let scale = combined.iter().fold(0.0, |m: f64, v| m.max(v.abs()));
    for case in fx["cases"].as_array().unwrap() {
        let sigma = case["vdisp"].as_f64().unwrap();
        convolve_direct(&combined, &grid, sigma, &mut ws, &mut direct).unwrap();
        convolve_from_pre(&pre, &grid, &coeff, sigma, &mut ws, &mut viafft).unwrap();
        let (pd, pf) = (vecf(&case["direct"]), vecf(&case["fft"]));
        // the required bound is rtol 1e-4; both paths agree with Python to ~1e-14
        let atol = 1e-13 * scale;
        for (what, got, want) in [
            ("direct vs python direct", &direct, &pd),
            ("fft vs python fft", &viafft, &pf),
            ("fft vs python direct", &viafft, &pd),
        ] {
            let e = max_rel(&pick(got), want, atol);
            assert!(e < 1e-12, "σ = {sigma}: {what}: {e:e}");
        }
        let e = max_rel(&viafft, &direct, atol);
        assert!(e < 1e-12, "σ = {sigma}: rust fft vs direct: {e:e}");
        let seg = &viafft[grid.lo..grid.hi];
        let (s, s2): (f64, f64) = (seg.iter().sum(), seg.iter().map(|v| v * v).sum());
        assert!((s / case["fft_segment_sum"].as_f64().unwrap() - 1.0).abs() < 1e-12);
        assert!((s2 / case["fft_segment_sumsq"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    }
    // σ ≤ 0 leaves the spectrum unchanged
    convolve_direct(&combined, &grid, 0.0, &mut ws, &mut direct).unwrap();
    assert_eq!(direct, combined);
    convolve_from_pre(&pre, &grid, &coeff, 0.0, &mut ws, &mut viafft).unwrap();
    assert!(max_rel(&viafft, &combined, 1e-14 * scale) < 1e-12);
}

/// What a synthetic template file should contain.
struct Synth {
    version: Option<&'static str>,
    sigc3k: bool,
    dustflux: bool,
    imf: bool,
    columns: &'static [&'static str],
}

impl Default for Synth {
    fn default() -> Self {
        Synth {
            version: Some("2.2.0"),
            sigc3k: true,
            dustflux: true,
            imf: true,
            columns: &["age", "zzsun", "mstar", "sfr", "dt"],
        }
    }
}

const SYN_NWAVE: usize = 400;
const SYN_NSED: usize = 3;
const SYN_DLNL: f64 = 0.016;

fn syn_wave() -> Vec<f64> {
    // 1000 Å … ≈ 5.9e5 Å, uniform in ln λ
    (0..SYN_NWAVE)
        .map(|i| 1000.0 * (SYN_DLNL * i as f64).exp())
        .collect()
}

fn write_synth(path: &Path, s: &Synth) {
    let wave = syn_wave();
    let flux: Vec<f64> = (0..SYN_NWAVE * SYN_NSED)
        .map(|k| 1.0 + (k % SYN_NSED) as f64 + 0.01 * (k / SYN_NSED) as f64)
        .collect();
    let line: Vec<f64> = flux.iter().map(|v| 0.1 * v).collect();
    let desc = ImageDescription {
        data_type: ImageType::Double,
        dimensions: &[SYN_NWAVE, SYN_NSED],
    };
    let vdesc = ImageDescription {
        data_type: ImageType::Double,
        dimensions: &[SYN_NWAVE],
    };
    let mut f = FitsFile::create(path)
        .with_custom_primary(&desc)
        .open()
        .unwrap();
    let h = f.primary_hdu().unwrap();
    h.write_image(&mut f, &flux).unwrap();
    h.write_key(&mut f, "EXTNAME", "FLUX").unwrap();
    if let Some(v) = s.version {
        h.write_key(&mut f, "VERSION", v).unwrap();
    }
    let h = f.create_image("LINEFLUX", &desc).unwrap();
    h.write_image(&mut f, &line).unwrap();
    if s.dustflux {
        let h = f.create_image("DUSTFLUX", &vdesc).unwrap();
        h.write_image(&mut f, &vec![1e-6; SYN_NWAVE]).unwrap();
    }
    let h = f.create_image("WAVE", &vdesc).unwrap();
    h.write_image(&mut f, &wave).unwrap();
    if s.sigc3k {
        h.write_key(&mut f, "PIXWAVLO", wave[40]).unwrap();
        h.write_key(&mut f, "PIXWAVHI", wave[200] + 1.0).unwrap();
        h.write_key(&mut f, "PIXKMS", SYN_DLNL * C_LIGHT_KMS)
            .unwrap();
        h.write_key(&mut f, "SIGC3K", 60.0).unwrap();
    }
    let cols: Vec<_> = s
        .columns
        .iter()
        .map(|c| {
            ColumnDescription::new(*c)
                .with_type(ColumnDataType::Float)
                .create()
                .unwrap()
        })
        .collect();
    let h = f.create_table("METADATA", &cols).unwrap();
    for c in s.columns {
        h.write_col(&mut f, *c, &[1e7f32, 1e8, 1e9]).unwrap();
    }
    if s.imf {
        h.write_key(&mut f, "IMF", "chabrier").unwrap();
    }
}

fn read_synth(s: &Synth) -> (Result<Templates, IoError>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ftemplates-test.fits");
    write_synth(&path, s);
    (read_templates(&path), dir)
}

#[test]
fn header_branches() {
    let c = C_LIGHT_KMS;
    let sigma_c3k = c / (3000.0 * (8.0 * 2f64.ln()).sqrt());
    // SIGC3K present: everything from the WAVE header
    let t = read_synth(&Synth::default()).0.unwrap();
    let wave = syn_wave();
    assert_eq!(t.nwave, wave.partition_point(|&w| w <= 4e5));
    assert_eq!((t.pixkms, t.sigma_c3k_kms), (SYN_DLNL * c, 60.0));
    assert_eq!(t.pixkms_bounds, (40, 201));
    assert!((t.vdisp_nominal_kernel_kms - (150f64.powi(2) - 3600.0).sqrt()).abs() < 1e-12);
    assert!((t.flux_nolines[7] - 0.9 * t.flux[7]).abs() < 1e-15);
    assert_eq!(
        (t.ntemplate, t.imf.as_str(), t.dt_yr.is_some()),
        (3, "chabrier", true)
    );
    // no SIGC3K, version < 3: 25 km/s on 2750–9100 Å
    let t = read_synth(&Synth {
        sigc3k: false,
        ..Synth::default()
    })
    .0
    .unwrap();
    assert_eq!(
        (t.pixkms, t.pixkms_wave_bounds_ang, t.sigma_c3k_kms),
        (25.0, (2750.0, 9100.0), sigma_c3k)
    );
    assert_eq!(t.pixkms_bounds.0, wave.partition_point(|&w| w < 2750.0));
    assert!((t.vdisp_nominal_kernel_kms - 143.8719066).abs() < 1e-6);
    // no SIGC3K, version ≥ 3: class defaults
    let t = read_synth(&Synth {
        sigc3k: false,
        version: Some("3.1.0"),
        ..Synth::default()
    })
    .0
    .unwrap();
    assert_eq!(
        (t.pixkms, t.pixkms_wave_bounds_ang),
        (c / 6000.0, (3500.0, 9800.0))
    );
    assert!((t.pixkms - 49.965409666).abs() < 1e-8);
    // no VERSION: assume 2.2.0; no dt column: tolerated
    let t = read_synth(&Synth {
        version: None,
        sigc3k: false,
        columns: &["age", "zzsun", "mstar", "sfr"],
        ..Synth::default()
    })
    .0
    .unwrap();
    assert_eq!(
        (t.version.as_str(), t.pixkms, t.dt_yr.is_none()),
        ("2.2.0", 25.0, true)
    );
}

#[test]
fn missing_mandatory_parts_are_named() {
    let cases: [(Synth, &str); 4] = [
        (
            Synth {
                dustflux: false,
                ..Synth::default()
            },
            "DUSTFLUX",
        ),
        (
            Synth {
                imf: false,
                ..Synth::default()
            },
            "IMF",
        ),
        (
            Synth {
                columns: &["age", "zzsun", "sfr"],
                ..Synth::default()
            },
            "mstar",
        ),
        (
            Synth {
                version: Some("x.y"),
                sigc3k: false,
                ..Synth::default()
            },
            "VERSION",
        ),
    ];
    for (s, needle) in cases {
        let (res, dir) = read_synth(&s);
        let msg = res.expect_err(needle).to_string();
        assert!(msg.contains(needle), "{msg}");
        assert!(
            msg.contains(
                &dir.path()
                    .join("ftemplates-test.fits")
                    .display()
                    .to_string()
            ),
            "{msg}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.fits");
    assert!(read_templates(&missing)
        .unwrap_err()
        .to_string()
        .contains("not found"));
    let opts = TemplateOptions {
        vdisp_bounds_kms: (500.0, 50.0),
        ..TemplateOptions::default()
    };
    let msg = read_templates_with(&bundled_template_path(), &opts)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("lo <= hi"), "{msg}");
}

#[test]
fn template_path_resolution() {
    let bundled = bundled_template_path();
    let noenv = |_: &str| None;
    // --templates wins, even over FTEMPLATES_DIR
    let got = resolve_with(
        Some(&bundled),
        "2.2.0",
        "chabrier",
        Some("/nonexistent".into()),
        &noenv,
    )
    .unwrap();
    assert_eq!(got, bundled);
    let err = resolve_with(
        Some(Path::new("/nonexistent/t.fits")),
        "2.2.0",
        "chabrier",
        None,
        &noenv,
    )
    .unwrap_err();
    assert!(err.to_string().contains("--templates"));
    // $FTEMPLATES_DIR/{version}/ftemplates-{imf}-{version}.fits, with $VAR expansion
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("9.9.9");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy(&bundled, sub.join("ftemplates-kroupa-9.9.9.fits")).unwrap();
    let root = dir.path().display().to_string();
    let getenv = |k: &str| (k == "TROOT").then(|| root.clone());
    let got = resolve_with(None, "9.9.9", "kroupa", Some("${TROOT}".into()), &getenv).unwrap();
    assert_eq!(got, sub.join("ftemplates-kroupa-9.9.9.fits"));
    let got = resolve_with(None, "9.9.9", "kroupa", Some(root.clone().into()), &noenv).unwrap();
    assert_eq!(got, sub.join("ftemplates-kroupa-9.9.9.fits"));
    let err =
        resolve_with(None, "2.2.0", "chabrier", Some(root.clone().into()), &noenv).unwrap_err();
    assert!(err.to_string().contains("FTEMPLATES_DIR"), "{err}");
    // neither: the bundled BC03 file
    assert_eq!(
        resolve_with(None, "2.2.0", "chabrier", None, &noenv).unwrap(),
        bundled
    );
    assert!(bundled.is_file());
    // expansion leaves unknown variables and lone dollars alone
    assert_eq!(
        expand_vars("$TROOT/a/${TROOT}/$NOPE/${x/$", &getenv),
        format!("{root}/a/{root}/$NOPE/${{x/$")
    );
}
