//! Production driver: --plan, resume after SIGKILL, failures with an honest exit status,
//! determinism across thread counts (and ranks, with the `mpi` feature and an MPI launcher).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::common::*;

/// A cumulative-tile production tree with `n` copies of the real 80613 pair (petals 0..n).
fn make_tree(root: &Path, n: usize) -> Vec<PathBuf> {
    let night = root
        .join("prod")
        .join("tiles")
        .join("cumulative")
        .join("80613")
        .join("20210324");
    std::fs::create_dir_all(&night).unwrap();
    std::fs::copy(
        desi().join("tiles-iron.csv"),
        root.join("prod").join("tiles-iron.csv"),
    )
    .unwrap();
    (0..n)
        .map(|p| {
            let rr = night.join(format!("redrock-{p}-80613-thru20210324.fits"));
            std::fs::copy(desi().join("redrock-4-80613-thru20210324.fits"), &rr).unwrap();
            std::fs::copy(
                desi().join("coadd-4-80613-thru20210324.fits"),
                night.join(format!("coadd-{p}-80613-thru20210324.fits")),
            )
            .unwrap();
            rr
        })
        .collect()
}

fn prod_args(root: &Path, out: &Path) -> Vec<String> {
    let d = s(&desi());
    vec![
        "production".into(),
        "--redux_dir".into(),
        s(root),
        "--specprod".into(),
        "prod".into(),
        "--coadd-type".into(),
        "cumulative".into(),
        "--outdir-data".into(),
        s(out),
        "--mapdir".into(),
        d.clone(),
        "--fphotodir".into(),
        d,
    ]
}

fn run_prod(args: &[String], extra: &[&str]) -> std::process::Output {
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend_from_slice(extra);
    run(&a)
}

fn outputs(out: &Path) -> Vec<PathBuf> {
    let dir = out
        .join("prod")
        .join("tiles")
        .join("cumulative")
        .join("80613")
        .join("20210324");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Start the binary with a pause after each written file (so a test can act mid-run).
fn spawn_paused(
    args: &[String],
    pause_ms: u64,
    stderr: std::process::Stdio,
) -> std::process::Child {
    Command::new(bin())
        .args(args)
        .env("FASTSPECFIT_TEST_PAUSE_MS", pause_ms.to_string())
        .env_remove("DUST_DIR")
        .env_remove("FPHOTO_DIR")
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Wait until the first complete output (a `.fits`, not its temporary file) exists.
fn wait_for_first_output(out: &Path) {
    let t0 = std::time::Instant::now();
    while !outputs(out)
        .iter()
        .any(|p| p.extension().map(|e| e == "fits").unwrap_or(false))
    {
        assert!(t0.elapsed().as_secs() < 120, "no output appeared");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn plan_then_run_then_resume() {
    let d = tempfile::tempdir().unwrap();
    make_tree(d.path(), 3);
    let out = d.path().join("out");
    let args = prod_args(d.path(), &out);
    let o = run_prod(&args, &["--plan"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        plan.lines().filter(|l| !l.starts_with('#')).count(),
        3,
        "{plan}"
    );
    assert!(
        plan.contains("# 3 files (3 targets) to do, 0 done already"),
        "{plan}"
    );
    assert!(outputs(&out).is_empty(), "--plan must not write outputs");

    let o = run_prod(&args, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let outs = outputs(&out);
    let names: Vec<String> = outs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![
            "fastspec-0-80613-thru20210324.fits",
            "fastspec-1-80613-thru20210324.fits",
            "fastspec-2-80613-thru20210324.fits"
        ]
    );

    // Each output's METADATA equals the single-file run's.
    let single = d.path().join("single.fits");
    let a1 = args_80613(&single);
    let mut a: Vec<&str> = vec!["fastspec"];
    a.extend(a1.iter().map(String::as_str));
    assert!(run(&a).status.success());
    let r = read_table(&single, "METADATA");
    let t = read_table(&outs[1], "METADATA");
    // SURVEY/PROGRAM come from the tree's tiles table in both.
    assert_eq!(t, r);

    // Resume: remove one output; only that one is redone.
    std::fs::remove_file(&outs[1]).unwrap();
    let o = run_prod(&args, &["--plan"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("# 1 files (1 targets) to do, 2 done already")
    );
    let o = run_prod(&args, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("1 files fitted, 2 skipped"), "{err}");
    assert_eq!(outputs(&out).len(), 3);
}

#[test]
fn one_corrupt_file_fails_the_run_but_not_the_others() {
    let d = tempfile::tempdir().unwrap();
    let rrs = make_tree(d.path(), 3);
    let coadd1 = rrs[1].with_file_name("coadd-1-80613-thru20210324.fits");
    let b = std::fs::read(&coadd1).unwrap();
    std::fs::write(&coadd1, &b[..b.len() / 2]).unwrap();
    let out = d.path().join("out");
    let o = run_prod(&prod_args(d.path(), &out), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "a failed file must give a non-zero exit status: {err}"
    );
    assert!(
        err.contains("2 files fitted") && err.contains("1 failed"),
        "{err}"
    );
    assert!(
        err.contains("coadd-1-80613-thru20210324.fits"),
        "the error names the file: {err}"
    );
    let names: Vec<String> = outputs(&out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![
            "fastspec-0-80613-thru20210324.fits",
            "fastspec-2-80613-thru20210324.fits"
        ]
    );
}

#[test]
fn sigkill_then_restart_finishes_only_what_is_missing() {
    let d = tempfile::tempdir().unwrap();
    make_tree(d.path(), 6);
    let out = d.path().join("out");
    let args = prod_args(d.path(), &out);
    let mut child = spawn_paused(&args, 400, std::process::Stdio::null());
    // Wait for the first output, then kill -9.
    wait_for_first_output(&out);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let after_kill = outputs(&out);
    let done: Vec<&PathBuf> = after_kill
        .iter()
        .filter(|p| p.extension().map(|e| e == "fits").unwrap_or(false))
        .collect();
    assert!(
        !done.is_empty() && done.len() < 6,
        "kill should land mid-run: {after_kill:?}"
    );
    for p in &done {
        // every file under a final name is complete and readable
        assert_eq!(read_table(p, "METADATA").len(), 68);
    }
    let o = run_prod(&args, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "{} files fitted, {} skipped",
            6 - done.len(),
            done.len()
        )),
        "{err}"
    );
    let fin = outputs(&out);
    assert_eq!(fin.len(), 6, "{fin:?}");
    assert!(
        fin.iter()
            .all(|p| p.extension().map(|e| e == "fits").unwrap_or(false)),
        "no temporary files left: {fin:?}"
    );
}

#[test]
fn outputs_do_not_depend_on_thread_count() {
    let d = tempfile::tempdir().unwrap();
    make_tree(d.path(), 2);
    let mut bytes = Vec::new();
    for mp in ["1", "2"] {
        let out = d.path().join(format!("out{mp}"));
        let o = run_prod(&prod_args(d.path(), &out), &["--mp", mp]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        bytes.push(
            outputs(&out)
                .iter()
                .map(|p| stable_bytes(p))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(bytes[0].len(), 2);
    assert!(
        bytes[0] == bytes[1],
        "outputs differ between --mp 1 and --mp 2"
    );
}

/// With the `mpi` feature and `mpirun` available: 2 ranks give the same bytes as 1 rank.
#[test]
fn outputs_do_not_depend_on_rank_count() {
    if !cfg!(feature = "mpi") {
        eprintln!("skipped: built without the `mpi` feature (CI runs it with --features mpi)");
        return;
    }
    let Ok(mpirun) = which_mpirun() else {
        panic!("the mpi feature is on but no mpirun was found");
    };
    let d = tempfile::tempdir().unwrap();
    make_tree(d.path(), 3);
    let out1 = d.path().join("out1");
    let o = run_prod(&prod_args(d.path(), &out1), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out2 = d.path().join("out2");
    let mut cmd = Command::new(mpirun);
    cmd.args(["-n", "2"])
        .arg(bin())
        .args(prod_args(d.path(), &out2));
    let o = cmd
        .env_remove("DUST_DIR")
        .env_remove("FPHOTO_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("3 files fitted"),
        "the summary counts all ranks: {err}"
    );
    let b1: Vec<Vec<u8>> = outputs(&out1).iter().map(|p| stable_bytes(p)).collect();
    let b2: Vec<Vec<u8>> = outputs(&out2).iter().map(|p| stable_bytes(p)).collect();
    assert_eq!(b1.len(), 3);
    assert!(b1 == b2, "outputs differ between 1 and 2 ranks");
}

fn which_mpirun() -> Result<PathBuf, ()> {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("mpirun");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(())
}

#[test]
fn input_vanishing_mid_run_fails_that_file_only() {
    let d = tempfile::tempdir().unwrap();
    let rrs = make_tree(d.path(), 4);
    let out = d.path().join("out");
    let args = prod_args(d.path(), &out);
    let child = spawn_paused(&args, 500, std::process::Stdio::piped());
    wait_for_first_output(&out);
    // The first file is done and the second is already prefetched: remove the last input.
    std::fs::remove_file(rrs[3].with_file_name("coadd-3-80613-thru20210324.fits")).unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("3 files fitted") && err.contains("1 failed"),
        "{err}"
    );
    assert!(err.contains("coadd-3-80613-thru20210324.fits"), "{err}");
    assert_eq!(outputs(&out).len(), 3);
}

#[test]
fn output_directory_lost_mid_run_fails_the_remaining_files_cleanly() {
    let d = tempfile::tempdir().unwrap();
    make_tree(d.path(), 3);
    let out = d.path().join("out");
    let args = prod_args(d.path(), &out);
    let child = spawn_paused(&args, 500, std::process::Stdio::piped());
    wait_for_first_output(&out);
    // Replace the output tree by a plain file: nothing more can be written there.
    std::fs::remove_dir_all(out.join("prod")).unwrap();
    std::fs::write(out.join("prod"), b"not a directory").unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("2 failed"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn fastphot_fits_do_not_depend_on_thread_count() {
    // Three targets fitted in parallel passes (with the Monte Carlo): same bytes for 1 and 2 threads.
    let d = tempfile::tempdir().unwrap();
    let rob = data().join("robust");
    let rr = s(&rob.join("redrock-4-80613-thru20210324.fits"));
    let (dd, r) = (s(&desi()), s(&rob));
    let mut bytes = Vec::new();
    for mp in ["1", "2"] {
        let out = d.path().join(format!("fp{mp}.fits"));
        let o = run(&[
            "fastphot",
            &rr,
            "--mapdir",
            &dd,
            "--fphotodir",
            &dd,
            "--redux_dir",
            &r,
            "--specprod",
            &r,
            "--mp",
            mp,
            "-o",
            &s(&out),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(hdu_names(&out).contains(&"SPECPHOT".to_string()));
        bytes.push(stable_bytes(&out));
    }
    assert!(
        bytes[0] == bytes[1],
        "fastphot output differs between --mp 1 and --mp 2"
    );
}
