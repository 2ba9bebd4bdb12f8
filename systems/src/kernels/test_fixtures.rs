//! Test-only helpers shared by the kernel tests: loading the JSON fixtures that the scripts in
//! `tests/fixtures/scripts` produced from FastSpecFit's own functions.

/// Parse `tests/fixtures/<rel>` (relative to the repository root).
pub fn load(rel: &str) -> serde_json::Value {
    let path = format!("{}/../tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: invalid JSON: {e}"))
}

/// A JSON array of numbers as `Vec<f64>`.
pub fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}
