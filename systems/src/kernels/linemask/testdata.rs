//! Test-only loaders for the fixtures of `tests/fixtures/scripts/gen_linemask.py`: base64
//! float arrays, the line table and the constraint YAML (stored as JSON), and the real
//! spectra of the two reference targets.

use serde_json::Value;

use super::super::emlines::table::{
    Constraints, DoubletRatio, EmLine, FixedRatio, GroupFinalPass, KinBounds, KinGroup, LineTable,
    Profile, ProfileFinalPass,
};
use super::super::resolution::Resolution;
use super::super::test_fixtures::load;

/// Decode a `{"dtype": "f4"|"f8", "n": .., "b64": ..}` array.
pub fn arr(v: &Value) -> Vec<f64> {
    let s = v["b64"].as_str().expect("b64 string");
    let bytes = b64decode(s);
    let out: Vec<f64> = match v["dtype"].as_str().expect("dtype") {
        "f4" => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        "f8" => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        d => panic!("dtype {d}"),
    };
    assert_eq!(out.len() as u64, v["n"].as_u64().expect("n"));
    out
}

fn b64decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 byte {c}"),
        }
    };
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for q in b.chunks(4) {
        let pad = q.iter().filter(|&&c| c == b'=').count();
        let mut acc = 0u32;
        for &c in q {
            acc = (acc << 6) | if c == b'=' { 0 } else { val(c) };
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    out
}

/// A JSON array of numbers.
pub fn fv(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("f64"))
        .collect()
}

/// A JSON array of booleans.
pub fn bv(v: &Value) -> Vec<bool> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_bool().expect("bool"))
        .collect()
}

/// A JSON array of non-negative integers.
pub fn uv(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("uint") as usize)
        .collect()
}

/// A JSON array of integers.
pub fn iv(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_i64().expect("int"))
        .collect()
}

fn strs(v: &Value) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        _ => v
            .as_array()
            .expect("list")
            .iter()
            .map(|x| x.as_str().expect("str").to_owned())
            .collect(),
    }
}

fn bounds(g: &Value) -> KinBounds {
    KinBounds {
        sigma_min: g["bounds"]["sigma"]["min"].as_f64().expect("smin"),
        sigma_max: g["bounds"]["sigma"]["max"].as_f64().expect("smax"),
        vshift_max: g["bounds"]["vshift"]["max"].as_f64().expect("vmax"),
        sigma_init: g["initial"]["sigma"].as_f64().expect("sinit"),
        vshift_init: g["initial"]["vshift"].as_f64().expect("vinit"),
    }
}

fn group(g: &Value) -> KinGroup {
    let fp = &g["final_pass"];
    KinGroup {
        name: g["name"].as_str().expect("name").to_owned(),
        anchor: g["anchor"].as_str().expect("anchor").to_owned(),
        members: strs(&g["members"]),
        bounds: bounds(g),
        final_pass: GroupFinalPass {
            free_vshift: fp["free_vshift"].as_bool().unwrap_or(false),
            free_sigma: fp["free_sigma"].as_bool().unwrap_or(false),
            delta_vshift_max: fp["delta_vshift_max"].as_f64(),
            delta_sigma_max: fp["delta_sigma_max"].as_f64(),
            locked_members: Default::default(),
        },
    }
}

/// The default line table and constraints (FastSpecFit's bundled files).
pub fn tables() -> (LineTable, Constraints) {
    let t = load("linemask/tables.json");
    let lines = t["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|r| EmLine {
            name: r["name"].as_str().expect("name").to_owned(),
            restwave: r["restwave"].as_f64().expect("restwave"),
            patch: r["patch"].as_str().expect("patch").to_owned(),
            isbalmer: r["isbalmer"].as_bool().expect("b"),
            ishelium: r["ishelium"].as_bool().expect("b"),
            isbroad: r["isbroad"].as_bool().expect("b"),
            isstrong: r["isstrong"].as_bool().expect("b"),
            nicename: String::new(),
            plotgroup: String::new(),
        })
        .collect();
    let c = &t["constraints"];
    let ac = &c["amplitude_constraints"];
    let amplitude_fixed = ac["fixed"]
        .as_array()
        .expect("fixed")
        .iter()
        .map(|f| FixedRatio {
            line: f["line"].as_str().expect("line").to_owned(),
            ref_line: f["ref"].as_str().expect("ref").to_owned(),
            factor: f["factor"].as_f64().expect("factor"),
            param_name: f["param_name"].as_str().unwrap_or("").to_owned(),
        })
        .collect();
    let doublet_ratios = ac["doublet_ratios"]
        .as_array()
        .expect("doublets")
        .iter()
        .map(|d| DoubletRatio {
            line: d["line"].as_str().expect("line").to_owned(),
            ref_line: d["ref"].as_str().expect("ref").to_owned(),
            param_name: d["param_name"].as_str().expect("pn").to_owned(),
            min: d["bounds"]["min"].as_f64().expect("min"),
            max: d["bounds"]["max"].as_f64().expect("max"),
            initial: d["initial"].as_f64().expect("initial"),
        })
        .collect();
    let g = &c["global"];
    let global_default = KinBounds {
        sigma_min: g["default_bounds"]["sigma"]["min"].as_f64().expect("x"),
        sigma_max: g["default_bounds"]["sigma"]["max"].as_f64().expect("x"),
        vshift_max: g["default_bounds"]["vshift"]["max"].as_f64().expect("x"),
        sigma_init: g["default_initial"]["sigma"].as_f64().expect("x"),
        vshift_init: g["default_initial"]["vshift"].as_f64().expect("x"),
    };
    let profiles = t["profile_order"]
        .as_array()
        .expect("order")
        .iter()
        .map(|n| {
            let name = n.as_str().expect("profile").to_owned();
            let p = &c["profiles"][&name];
            Profile {
                kinematic_groups: p["kinematic_groups"]
                    .as_array()
                    .map(|a| a.iter().map(group).collect())
                    .unwrap_or_default(),
                free_lines: strs(&p["free_lines"]),
                fixed_lines: strs(&p["fixed_lines"]),
                final_pass: ProfileFinalPass {
                    enabled: true,
                    warm_start: true,
                    adopt_if: "chi2_improves".into(),
                    inherit_in_mc: true,
                },
                name,
            }
        })
        .collect();
    let cons = Constraints {
        amplitude_fixed,
        doublet_ratios,
        global_default,
        global_free_lines: strs(&g["free_lines"]),
        global_kinematic_groups: g["kinematic_groups"]
            .as_array()
            .map(|a| a.iter().map(group).collect())
            .unwrap_or_default(),
        profiles,
        moments: Vec::new(),
    };
    (LineTable::new(lines), cons)
}

/// A DIA matrix from a base64 `[ndiag][npix]` array.
pub fn resolution(ndiag: usize, v: &Value) -> Resolution {
    let data = arr(v);
    let npix = data.len() / ndiag;
    Resolution::new(ndiag, npix, data).expect("resolution")
}
