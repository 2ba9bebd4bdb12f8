//! `simulate` (DESI-format files read back by our readers and fitted by our `fastspec`)
//! and `compare` (identical and perturbed catalogues).

use std::path::Path;

use fastspecfit::compare::{
    compare_tables, compare_tables_with, read_num_table, run_compare, CompareArgs, Tolerance,
};
use fastspecfit::io::desi::{read_targets, SelectOptions};
use fastspecfit::io::fits::{write_fits_atomic, ColData, FitsReader, OutColumn, OutHdu};
use fastspecfit::io::spectra::read_spectra;
use fastspecfit::simulate::{simulate, SimulateArgs, SimulatedSet};

use super::common::{desi, run, s, stable_bytes};

fn sim(dir: &Path, n: usize, seed: u64, noiseless: bool) -> SimulatedSet {
    let args = SimulateArgs {
        outdir: dir.to_path_buf(),
        ntargets: n,
        seed,
        noiseless,
        no_lines: false,
        templates: None,
        mapdir: None,
        survey: "main".into(),
        program: "dark".into(),
    };
    simulate(&args).unwrap()
}

#[test]
fn simulated_set_reads_back_with_desi_shapes_and_noise_matching_ivar() {
    let d = tempfile::tempdir().unwrap();
    let quiet = sim(&d.path().join("quiet"), 5, 3, true);
    let noisy = sim(&d.path().join("noisy"), 5, 3, false);
    let t = read_targets(&quiet.redrock, &SelectOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(t.targetid.len(), 5);
    assert_eq!(t.header.healpix, Some(7108));
    assert_eq!(t.header.survey, "main");
    let truth = read_num_table(&quiet.truth, None).unwrap();
    let tz = &truth.columns.iter().find(|c| c.0 == "Z").unwrap().1;
    for (z, zt) in t.z.iter().zip(tz) {
        assert!((z - zt).abs() < 1e-12 && (0.01..=3.5).contains(z));
    }
    let coeff = truth.columns.iter().find(|c| c.0 == "COEFF").unwrap();
    assert!(coeff.2 >= 2 && coeff.1.iter().all(|c| *c >= 0.0));

    let a = read_spectra(&quiet.coadd, &t.rows, 5).unwrap();
    let b = read_spectra(&noisy.coadd, &t.rows, 5).unwrap();
    let npix: Vec<usize> = a.cameras.iter().map(|c| c.npix).collect();
    assert_eq!(npix, vec![2751, 2326, 2881]);
    for (ca, cb) in a.cameras.iter().zip(&b.cameras) {
        assert_eq!(ca.ndiag, 11);
        assert!((ca.wave_ang[1] - ca.wave_ang[0] - 0.8).abs() < 1e-3);
        assert!(
            ca.ivar == cb.ivar,
            "ivar differs between noisy and noise-free sets"
        );
        assert!(ca.resolution == cb.resolution, "resolution differs");
        // masked pixels carry zero ivar; a few per target and camera
        let nmask = ca.mask.iter().filter(|m| **m != 0).count();
        assert!((5..=7 * 5).contains(&nmask), "{nmask}");
        assert!(ca
            .mask
            .iter()
            .zip(&ca.ivar)
            .all(|(m, iv)| *m == 0 || *iv == 0.0));
        // resolution columns sum to 1
        for j in [0, ca.npix / 2, ca.npix - 1] {
            let sum: f64 = (0..11).map(|d| ca.resolution[d * ca.npix + j]).sum();
            assert!((sum - 1.0).abs() < 1e-5);
        }
        // noisy - noiseless, in units of sigma, is unit normal
        let pulls: Vec<f64> = ca
            .flux
            .iter()
            .zip(&cb.flux)
            .zip(&ca.ivar)
            .filter(|(_, iv)| **iv > 0.0)
            .map(|((x, y), iv)| (y - x) * iv.sqrt())
            .collect();
        let n = pulls.len() as f64;
        let mean = pulls.iter().sum::<f64>() / n;
        let var = pulls.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / n;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "{} {mean} {var}",
            ca.name
        );
        assert!(ca.flux.iter().all(|f| f.is_finite()));
    }
    // same seed, same files
    let again = sim(&d.path().join("again"), 5, 3, true);
    let c = read_spectra(&again.coadd, &t.rows, 5).unwrap();
    assert!(
        c.cameras[1].flux == a.cameras[1].flux,
        "same seed gave different spectra"
    );
}

#[test]
fn our_fastspec_runs_on_a_simulated_set_and_compare_reports_agreement() {
    let d = tempfile::tempdir().unwrap();
    let set = sim(d.path(), 5, 1, false);
    let out = d.path().join("fastspec.fits");
    let phot = format!("{}[PHOTINFO]", s(&set.phot));
    let o = run(&[
        "fastspec",
        &s(&set.redrock),
        "-o",
        &s(&out),
        "--mapdir",
        &s(&desi()),
        "--fphotodir",
        &phot,
        "--fphotofile",
        &s(&set.phot_yaml),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        FitsReader::open(&out)
            .unwrap()
            .num_rows("METADATA")
            .unwrap(),
        5
    );
    // targets pass through the systems in batches (bounded memory): batches of 2 give
    // the same bytes as the whole file in one batch
    let out2 = d.path().join("fastspec-batch2.fits");
    let o = run(&[
        "fastspec",
        &s(&set.redrock),
        "-o",
        &s(&out2),
        "--mapdir",
        &s(&desi()),
        "--fphotodir",
        &phot,
        "--fphotofile",
        &s(&set.phot_yaml),
        "--batch-size",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("fitted batch 3/3"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stable_bytes(&out) == stable_bytes(&out2),
        "outputs differ between one batch and batches of 2"
    );

    let args = CompareArgs {
        a: out.clone(),
        b: out.clone(),
        truth: Some(set.truth.clone()),
        hdu: None,
        hdu_a: None,
        hdu_b: None,
        columns: None,
        rtol: 1e-3,
        atol: 0.0,
        stol: 0.0,
        min_snr: None,
    };
    let report = run_compare(&args).unwrap();
    let z = report.lines().find(|l| l.starts_with("Z ")).unwrap();
    let f: Vec<&str> = z.split_whitespace().collect();
    assert_eq!(f[1], "5");
    assert_eq!(f[2], "1.000000");
    assert_eq!(f[4], "1.0000");
    // the CLI prints the same report
    let o = run(&["compare", &s(&out), &s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e = run_compare(&CompareArgs {
        b: d.path().join("missing.fits"),
        ..args
    })
    .unwrap_err();
    assert!(format!("{e:#}").contains("missing.fits"));
}

#[test]
fn compare_reports_a_perturbation_in_ratio_sigma_and_tolerance() {
    let d = tempfile::tempdir().unwrap();
    let write = |name: &str, scale: f64, order: &[i64]| {
        let x: Vec<f64> = order.iter().map(|t| 10.0 + *t as f64).collect();
        let p = d.path().join(name);
        let cols = vec![
            OutColumn::new("TARGETID", ColData::I64(order.to_vec())),
            OutColumn::new("X", ColData::F64(x.iter().map(|v| v * scale).collect())),
            OutColumn::new("X_IVAR", ColData::F64(vec![1.0; order.len()])),
            OutColumn::new(
                "V",
                ColData::F32Vec(
                    x.iter()
                        .flat_map(|v| [*v as f32, (2.0 * v * scale) as f32])
                        .collect(),
                    2,
                ),
            ),
        ];
        write_fits_atomic(
            &p,
            &[],
            &[OutHdu::Table {
                extname: "FASTSPEC".into(),
                columns: cols,
                cards: vec![],
            }],
        )
        .unwrap();
        p
    };
    let ids: Vec<i64> = (1..=40).collect();
    let mut rev = ids.clone();
    rev.reverse();
    let a = read_num_table(&write("a.fits", 1.0, &ids), None).unwrap();
    let b = read_num_table(&write("b.fits", 1.01, &rev), None).unwrap();
    let (n, st) = compare_tables(&a, &b, None, 1e-3, 0.0);
    assert_eq!(n, 40);
    let x = st.iter().find(|s| s.name == "X").unwrap();
    assert!((x.median_ratio - 1.0 / 1.01).abs() < 1e-12);
    assert_eq!(x.frac_within, 0.0);
    // (A-B)/sqrt(2) = -0.01 x/sqrt(2): robust scatter of x in 10.5..50.5
    let sc = x.scatter_sigma.unwrap();
    assert!(sc > 0.05 && sc < 0.2, "{sc}");
    let v0 = st.iter().find(|s| s.name == "V[0]").unwrap();
    let v1 = st.iter().find(|s| s.name == "V[1]").unwrap();
    assert_eq!((v0.median_ratio, v0.frac_within), (1.0, 1.0));
    assert!((v1.median_ratio - 1.0 / 1.01).abs() < 1e-6 && v1.scatter_sigma.is_none());
    let (_, loose) = compare_tables(&a, &b, Some(&["X".to_string()]), 0.02, 0.0);
    assert_eq!(loose.len(), 1);
    assert_eq!(loose[0].frac_within, 1.0);
    // σ tolerance: |A-B| = 0.01 x <= 0.305 σ (σ = 1) for x = 11..30, half the rows
    let tol = Tolerance {
        rtol: 1e-3,
        atol: 0.0,
        stol: 0.305,
        min_snr: None,
    };
    let only = ["X".to_string(), "V".to_string()];
    let (_, st) = compare_tables_with(&a, &b, Some(&only), &tol);
    assert_eq!((st[0].name.as_str(), st[0].n), ("X", 40));
    assert_eq!(st[0].frac_within, 0.5);
    // S/N selection: x >= 30.5 in A and 1.01 x >= 30.5 in B keeps x = 31..50; V has no
    // ivar and keeps every row
    let (_, st) = compare_tables_with(
        &a,
        &b,
        Some(&only),
        &Tolerance {
            min_snr: Some(30.5),
            ..tol
        },
    );
    assert_eq!(st[0].n, 20);
    assert_eq!(st[0].frac_within, 0.0);
    assert!(st[1..].iter().all(|s| s.n == 40), "{st:?}");
}
