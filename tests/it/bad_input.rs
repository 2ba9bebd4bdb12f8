//! Bad inputs: each gets a one-line error naming the file and the problem, a non-zero exit
//! status, and no output file (not even a partial or temporary one).

use std::path::{Path, PathBuf};

use super::common::*;

/// Copy the 80613 redrock/coadd pair into `dir` (so tests can damage the copies).
fn copy_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let rr = dir.join("redrock-4-80613-thru20210324.fits");
    let co = dir.join("coadd-4-80613-thru20210324.fits");
    std::fs::copy(desi().join("redrock-4-80613-thru20210324.fits"), &rr).unwrap();
    std::fs::copy(desi().join("coadd-4-80613-thru20210324.fits"), &co).unwrap();
    (rr, co)
}

fn run_bad(redrock: &Path, out: &Path, extra: &[&str]) -> String {
    let d = s(&desi());
    let (rr, o) = (s(redrock), s(out));
    let mut args = vec![
        "fastspec",
        rr.as_str(),
        "--mapdir",
        d.as_str(),
        "--fphotodir",
        d.as_str(),
        "-o",
        o.as_str(),
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(!o.status.success(), "expected failure, got success");
    assert!(!out.exists(), "output file must not exist after a failure");
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    assert!(!Path::new(&tmp).exists(), "temporary file left behind");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let err: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(err.len(), 1, "exactly one error line expected: {stderr}");
    err[0].to_string()
}

#[test]
fn missing_redrock_file() {
    let dir = tempfile::tempdir().unwrap();
    let rr = dir.path().join("redrock-nothere.fits");
    let e = run_bad(&rr, &dir.path().join("o.fits"), &[]);
    assert!(
        e.contains("redrock-nothere.fits") && e.contains("not found"),
        "{e}"
    );
}

#[test]
fn missing_coadd_file() {
    let dir = tempfile::tempdir().unwrap();
    let (rr, co) = copy_pair(dir.path());
    std::fs::remove_file(&co).unwrap();
    let e = run_bad(&rr, &dir.path().join("o.fits"), &[]);
    assert!(
        e.contains("coadd-4-80613") && e.contains("not found"),
        "{e}"
    );
}

#[test]
fn not_a_fits_file() {
    let dir = tempfile::tempdir().unwrap();
    let (rr, _) = copy_pair(dir.path());
    std::fs::write(&rr, b"this is not a FITS file at all, just text\n").unwrap();
    let e = run_bad(&rr, &dir.path().join("o.fits"), &[]);
    assert!(
        e.contains("redrock-4-80613") && e.contains("not a FITS file"),
        "{e}"
    );
}

#[test]
fn truncated_fits_file() {
    let dir = tempfile::tempdir().unwrap();
    let (rr, co) = copy_pair(dir.path());
    let bytes = std::fs::read(&co).unwrap();
    std::fs::write(&co, &bytes[..bytes.len() / 3]).unwrap();
    let e = run_bad(&rr, &dir.path().join("o.fits"), &[]);
    assert!(e.contains("coadd-4-80613"), "{e}");
}

#[test]
fn missing_hdu() {
    let dir = tempfile::tempdir().unwrap();
    let (rr, _) = copy_pair(dir.path());
    {
        let mut f = fitsio::FitsFile::edit(&rr).unwrap();
        let h = f.hdu("TSNR2").unwrap();
        h.delete(&mut f).unwrap();
    }
    let e = run_bad(&rr, &dir.path().join("o.fits"), &[]);
    assert!(e.contains("redrock-4-80613") && e.contains("TSNR2"), "{e}");
}

#[test]
fn missing_column() {
    let dir = tempfile::tempdir().unwrap();
    let (rr, _) = copy_pair(dir.path());
    {
        let mut f = fitsio::FitsFile::edit(&rr).unwrap();
        let h = f.hdu("REDSHIFTS").unwrap();
        h.delete_column(&mut f, "DELTACHI2").unwrap();
    }
    let e = run_bad(&rr, &dir.path().join("o.fits"), &[]);
    assert!(
        e.contains("redrock-4-80613") && e.contains("DELTACHI2"),
        "{e}"
    );
}

#[test]
fn targetids_disagree_between_coadd_and_redrock() {
    let dir = tempfile::tempdir().unwrap();
    let (rr, co) = copy_pair(dir.path());
    {
        let mut f = fitsio::FitsFile::edit(&co).unwrap();
        let h = f.hdu("FIBERMAP").unwrap();
        h.write_col(&mut f, "TARGETID", &[12345i64]).unwrap();
    }
    let e = run_bad(&rr, &dir.path().join("o.fits"), &[]);
    assert!(
        e.contains("coadd-4-80613") && e.contains("does not match"),
        "{e}"
    );
}

#[test]
fn requested_targetid_not_in_file() {
    let dir = tempfile::tempdir().unwrap();
    let rr = desi().join("redrock-4-80613-thru20210324.fits");
    let e = run_bad(&rr, &dir.path().join("o.fits"), &["--targetids", "42"]);
    assert!(e.contains("redrock-4-80613") && e.contains("42"), "{e}");
}

#[test]
fn output_directory_missing() {
    let dir = tempfile::tempdir().unwrap();
    let rr = desi().join("redrock-4-80613-thru20210324.fits");
    let out = dir
        .path()
        .join("no")
        .join("such")
        .join("dir")
        .join("o.fits");
    let e = run_bad(&rr, &out, &[]);
    assert!(e.contains("o.fits") && e.contains("does not exist"), "{e}");
}

#[test]
fn output_directory_not_writable() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mut perm = std::fs::metadata(&ro).unwrap().permissions();
    use std::os::unix::fs::PermissionsExt;
    perm.set_mode(0o555);
    std::fs::set_permissions(&ro, perm).unwrap();
    // root ignores directory permissions; only assert when the directory is really read-only.
    if std::fs::File::create(ro.join("probe")).is_ok() {
        // Running as root: permissions do not stop us, but nobody can create files in /proc/self.
        let rr = desi().join("redrock-4-80613-thru20210324.fits");
        let e = run_bad(&rr, Path::new("/proc/self/o.fits"), &[]);
        assert!(e.contains("o.fits") && e.contains("not writable"), "{e}");
        return;
    }
    let rr = desi().join("redrock-4-80613-thru20210324.fits");
    let e = run_bad(&rr, &ro.join("o.fits"), &[]);
    assert!(e.contains("o.fits") && e.contains("not writable"), "{e}");
}

#[test]
fn malformed_constraints_file_is_rejected_before_reading_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("constraints.yaml");
    std::fs::write(&bad, "profiles: [this is: not: valid\n").unwrap();
    let rr = desi().join("redrock-4-80613-thru20210324.fits");
    let e = run_bad(
        &rr,
        &dir.path().join("o.fits"),
        &["--constraintsfile", &s(&bad)],
    );
    assert!(e.contains("constraints.yaml"), "{e}");
}

#[test]
fn missing_line_table_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let rr = desi().join("redrock-4-80613-thru20210324.fits");
    let e = run_bad(
        &rr,
        &dir.path().join("o.fits"),
        &["--emlinesfile", "/nonexistent/emlines.ecsv"],
    );
    assert!(
        e.contains("emlines.ecsv") && e.contains("does not exist"),
        "{e}"
    );
}
