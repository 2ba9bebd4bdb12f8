//! Shared helpers: paths to bundled data, running the binary, reading FITS columns generically.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fitsio::hdu::HduInfo;
use fitsio::tables::ColumnDataType;
use fitsio::FitsFile;

pub fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
}

pub fn desi() -> PathBuf {
    data().join("desi")
}

pub fn reference(name: &str) -> PathBuf {
    data().join("reference").join(name)
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fastspecfit"))
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("DUST_DIR")
        .env_remove("FPHOTO_DIR")
        .env_remove("DESI_SPECTRO_REDUX")
        .output()
        .expect("spawn fastspecfit")
}

pub fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Arguments reproducing `../shared/reference/README.md`'s commands on the bundled data.
pub fn args_80613(out: &Path) -> Vec<String> {
    let d = s(&desi());
    vec![
        s(&desi().join("redrock-4-80613-thru20210324.fits")),
        "--redux_dir".into(),
        d.clone(),
        "--mapdir".into(),
        d.clone(),
        "--fphotodir".into(),
        d.clone(),
        "--specprod".into(),
        d,
        "-o".into(),
        s(out),
    ]
}

pub fn args_27247(out: &Path) -> Vec<String> {
    let d = s(&desi());
    vec![
        s(&desi().join("redrock-special-dark-27247.fits")),
        "--redux_dir".into(),
        d.clone(),
        "--mapdir".into(),
        d.clone(),
        "--fphotodir".into(),
        format!("{}[PHOTINFO]", s(&desi().join("suprime-photinfo.fits"))),
        "--fphotofile".into(),
        s(&desi().join("suprime-photinfo.yaml")),
        "--targetids".into(),
        "39089837499744649".into(),
        "--input-redshifts".into(),
        "3.1484".into(),
        "--constrain-age".into(),
        "-o".into(),
        s(out),
    ]
}

/// A column read generically.
#[derive(Debug, Clone, PartialEq)]
pub enum Col {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Str(Vec<String>),
}

/// (name, TFORM-type, values) of every column of table HDU `hdu`.
pub fn read_table(path: &Path, hdu: &str) -> Vec<(String, Col)> {
    let mut f = FitsFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let h = f
        .hdu(hdu)
        .unwrap_or_else(|e| panic!("{}[{hdu}]: {e}", path.display()));
    let descs = match &h.info {
        HduInfo::TableInfo {
            column_descriptions,
            ..
        } => column_descriptions.clone(),
        _ => panic!("not a table"),
    };
    let mut out = Vec::new();
    for d in descs {
        let col = match d.data_type.typ {
            ColumnDataType::String => Col::Str(
                h.read_col::<String>(&mut f, &d.name)
                    .unwrap()
                    .into_iter()
                    .map(|s| s.trim_end().to_string())
                    .collect(),
            ),
            ColumnDataType::Float | ColumnDataType::Double => {
                Col::Float(h.read_col::<f64>(&mut f, &d.name).unwrap())
            }
            ColumnDataType::Logical => Col::Int(
                h.read_col::<bool>(&mut f, &d.name)
                    .unwrap()
                    .into_iter()
                    .map(i64::from)
                    .collect(),
            ),
            _ => Col::Int(h.read_col::<i64>(&mut f, &d.name).unwrap()),
        };
        out.push((d.name.clone(), col));
    }
    out
}

pub fn hdu_names(path: &Path) -> Vec<String> {
    let mut f = FitsFile::open(path).unwrap();
    let n = f.num_hdus().unwrap();
    (0..n)
        .map(|i| {
            let h = f.hdu(i).unwrap();
            h.read_key::<String>(&mut f, "EXTNAME")
                .unwrap_or_else(|_| "PRIMARY".into())
        })
        .collect()
}

/// Parse the JSON fixture `tests/fixtures/<rel>` (made by tests/fixtures/scripts).
pub fn load_fixture(rel: &str) -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A JSON array of numbers.
pub fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// A JSON array of indices.
pub fn usizes(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("index") as usize)
        .collect()
}

/// Largest |a − b| / max(|b|, floor) over the pairs.
pub fn max_rel(a: &[f64], b: &[f64], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(floor))
        .fold(0.0, f64::max)
}

/// File bytes with the CHECKSUM/DATASUM cards (which carry a date) blanked.
pub fn stable_bytes(p: &Path) -> Vec<u8> {
    let mut b = std::fs::read(p).unwrap();
    for i in (0..b.len()).step_by(80) {
        if b[i..].starts_with(b"CHECKSUM=") || b[i..].starts_with(b"DATASUM =") {
            for x in &mut b[i..i + 80] {
                *x = b' ';
            }
        }
    }
    b
}
