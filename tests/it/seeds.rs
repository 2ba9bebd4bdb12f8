//! Monte Carlo seeds as FastSpecFit assigns them: one `default_rng(seed).integers(2**32)` stream
//! over all objects of a run (so a file's seeds depend on the files before it), or
//! `--input-seeds` with `--targetids`. Expected values are NumPy's
//! `default_rng(1).integers(2**32, size=4, dtype=int64)`.

use super::common::*;

fn seed_column(path: &std::path::Path) -> Vec<i64> {
    match &read_table(path, "SPECPHOT")
        .into_iter()
        .find(|c| c.0 == "SEED")
        .unwrap()
        .1
    {
        Col::Int(v) => v.clone(),
        _ => panic!("SEED is not an integer column"),
    }
}

#[test]
fn seeds_continue_across_the_files_of_one_run() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("fp.fits");
    let (dd, rob) = (s(&desi()), data().join("robust"));
    let r = s(&rob);
    let o = run(&[
        "fastphot",
        &s(&desi().join("redrock-4-80613-thru20210324.fits")),
        &s(&rob.join("redrock-4-80613-thru20210324.fits")),
        "--mapdir",
        &dd,
        "--fphotodir",
        &dd,
        "--redux_dir",
        &r,
        "--specprod",
        &r,
        "-o",
        &s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        seed_column(&out),
        vec![2032329983, 2198257139, 3243419750, 4082210491]
    );
}

#[test]
fn input_seeds_are_used_with_targetids() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("fp.fits");
    let args = args_80613(&out);
    let mut a: Vec<&str> = vec!["fastphot"];
    a.extend(args.iter().map(String::as_str));
    a.extend_from_slice(&[
        "--targetids",
        "39633345008634465",
        "--input-seeds",
        "42",
        "--nmonte",
        "5",
    ]);
    let o = run(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(seed_column(&out), vec![42]);
}
