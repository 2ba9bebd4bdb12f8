//! Bounded fuzzing of the input readers (FITS, photometry YAML, line-table ECSV, constraints
//! YAML): random mutations of the real bundled files must give `Ok` or a clear error, never a
//! panic. 48 cases per reader keep the suite fast; `PROPTEST_CASES` raises it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use fastspecfit::io::desi::{read_targets, SelectOptions};
use fastspecfit::io::emlines::{parse_constraints, parse_line_table};
use fastspecfit::io::photometry::PhotometryConfig;
use fastspecfit::io::spectra::read_spectra_checked;
use proptest::prelude::*;

use super::common::*;

fn mutate(bytes: &mut Vec<u8>, edits: &[(usize, u8)], truncate: Option<usize>) {
    let n = bytes.len();
    for &(pos, b) in edits {
        bytes[pos % n] = b;
    }
    if let Some(t) = truncate {
        bytes.truncate(t % n.max(1));
    }
}

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(48),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn fits_readers_never_panic(
        which in 0usize..2,
        // Mutations land mostly in the headers and tables at the start of the files.
        edits in proptest::collection::vec((0usize..40_000, any::<u8>()), 1..24),
        truncate in proptest::option::weighted(0.2, 0usize..700_000),
    ) {
        let d = tempfile::tempdir().unwrap();
        let rr = d.path().join("redrock-4-80613-thru20210324.fits");
        let co = d.path().join("coadd-4-80613-thru20210324.fits");
        let mut a = std::fs::read(desi().join("redrock-4-80613-thru20210324.fits")).unwrap();
        let mut b = std::fs::read(desi().join("coadd-4-80613-thru20210324.fits")).unwrap();
        if which == 0 { mutate(&mut a, &edits, truncate) } else { mutate(&mut b, &edits, truncate) }
        std::fs::write(&rr, &a).unwrap();
        std::fs::write(&co, &b).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            if let Ok(Some(t)) = read_targets(&rr, &SelectOptions::default()) {
                let _ = read_spectra_checked(&t.coadd_path, &t.rows, t.nrows_file);
            }
        }));
        prop_assert!(r.is_ok(), "reader panicked");
    }

    #[test]
    fn photometry_yaml_never_panics(edits in proptest::collection::vec((0usize..4000, any::<u8>()), 1..12)) {
        let mut t = std::fs::read(data().join("config").join("legacysurvey-dr9.yaml")).unwrap();
        mutate(&mut t, &edits, None);
        let text = String::from_utf8_lossy(&t).into_owned();
        let r = catch_unwind(|| PhotometryConfig::from_yaml(&text, Path::new("fuzz.yaml")).is_ok());
        prop_assert!(r.is_ok());
    }

    #[test]
    fn line_table_and_constraints_never_panic(
        edits in proptest::collection::vec((0usize..16000, any::<u8>()), 1..12),
        which in 0usize..2,
    ) {
        let name = if which == 0 { "emlines.ecsv" } else { "emline-constraints.yaml" };
        let mut t = std::fs::read(data().join("config").join(name)).unwrap();
        mutate(&mut t, &edits, None);
        let text = String::from_utf8_lossy(&t).into_owned();
        let r = catch_unwind(|| {
            if which == 0 {
                let _ = parse_line_table(&text, Path::new("fuzz.ecsv"));
            } else {
                let _ = parse_constraints(&text, Path::new("fuzz.yaml"), None);
            }
        });
        prop_assert!(r.is_ok());
    }
}
