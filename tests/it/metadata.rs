//! METADATA of both real DESI targets against FastSpecFit 3.6.1's reference outputs.
//!
//! Tolerances (issue "Foundation"): strings and integers exact, floats rtol 1e-6 — including
//! the dust-corrected FLUX_* and MW_TRANSMISSION_* columns. Column names and order exact.

use std::path::Path;

use super::common::*;

fn compare_metadata(ours: &Path, reference: &Path) {
    let a = read_table(ours, "METADATA");
    let b = read_table(reference, "METADATA");
    let na: Vec<&str> = a.iter().map(|c| c.0.as_str()).collect();
    let nb: Vec<&str> = b.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(na, nb, "METADATA column names/order differ");
    for ((name, ca), (_, cb)) in a.iter().zip(&b) {
        match (ca, cb) {
            (Col::Float(x), Col::Float(y)) => {
                assert_eq!(x.len(), y.len(), "{name}: row count");
                for (u, v) in x.iter().zip(y) {
                    let tol = 1e-6 * v.abs().max(1e-30);
                    assert!((u - v).abs() <= tol, "{name}: ours {u} vs reference {v}");
                }
            }
            _ => assert_eq!(ca, cb, "{name} differs"),
        }
    }
}

#[test]
fn metadata_80613_matches_reference() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fastspec-80613.fits");
    let args = args_80613(&out);
    let mut a: Vec<&str> = vec!["fastspec"];
    a.extend(args.iter().map(String::as_str));
    let o = run(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    compare_metadata(&out, &reference("fastspec-80613.fits"));
}

#[test]
fn metadata_27247_matches_reference() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fastspec-27247.fits");
    let args = args_27247(&out);
    let mut a: Vec<&str> = vec!["fastspec"];
    a.extend(args.iter().map(String::as_str));
    let o = run(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    compare_metadata(&out, &reference("fastspec-27247.fits"));
}

#[test]
fn fastphot_metadata_80613_matches_reference() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fastphot-80613.fits");
    let args = args_80613(&out);
    let mut a: Vec<&str> = vec!["fastphot"];
    a.extend(args.iter().map(String::as_str));
    let o = run(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    compare_metadata(&out, &reference("fastphot-80613.fits"));
}

#[test]
fn primary_header_records_run_options() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.fits");
    let args = args_27247(&out);
    let mut a: Vec<&str> = vec!["fastspec"];
    a.extend(args.iter().map(String::as_str));
    let o = run(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut f = fitsio::FitsFile::open(&out).unwrap();
    let p = f.primary_hdu().unwrap();
    assert_eq!(p.read_key::<String>(&mut f, "COADDTYP").unwrap(), "healpix");
    assert_eq!(p.read_key::<String>(&mut f, "SPECPROD").unwrap(), "ioannis");
    assert_eq!(p.read_key::<i64>(&mut f, "NMONTE").unwrap(), 50);
    assert_eq!(
        p.read_key::<String>(&mut f, "VDISPBND").unwrap(),
        "50.0,500.0"
    );
    assert_eq!(p.read_key::<String>(&mut f, "PHOTSRC").unwrap(), "EXTERNAL");
    assert!(!dir.path().join("o.fits.tmp").exists());
}

/// Documented deviation: with no photometry source, the FIBERMAP fluxes are used and the
/// header says so; the run still produces the reference-identical identifiers and EBV.
#[test]
fn bare_run_uses_fibermap_photometry() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bare.fits");
    let rr = s(&desi().join("redrock-4-80613-thru20210324.fits"));
    let o = run(&["fastspec", &rr, "-o", &s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("FIBERMAP"),
        "expected a warning about the fibermap fallback: {stderr}"
    );
    let t = read_table(&out, "METADATA");
    let get = |n: &str| t.iter().find(|c| c.0 == n).map(|c| c.1.clone()).unwrap();
    assert_eq!(get("TARGETID"), Col::Int(vec![39633345008634465]));
    match get("EBV") {
        Col::Float(v) => assert!((v[0] - 0.051411786479653276).abs() < 1e-9),
        _ => panic!(),
    }
    // FIBERMAP FLUX_G is 3.2370... nanomaggies before dereddening; dereddened must be larger.
    match get("FLUX_G") {
        Col::Float(v) => assert!(v[0] > 3.0 && v[0] < 4.5, "{}", v[0]),
        _ => panic!(),
    }
}
