//! Shared helpers for the benchmarks: loading the editing traces.
//!
//! The traces live in `bench/traces/` of the repository, not committed (the
//! README says how to fetch them), or wherever `SYNCLINE_TRACES` points.

use std::io::Read;
use std::path::PathBuf;

use serde::Deserialize;

/// One transaction of a trace: patches `(position, deleted, inserted)` in
/// Unicode code points, applied in order.
#[derive(Deserialize)]
pub struct Txn {
    pub patches: Vec<(usize, usize, String)>,
    #[serde(default)]
    pub parents: Vec<usize>,
    #[serde(default)]
    pub agent: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    #[serde(default)]
    pub start_content: String,
    pub end_content: String,
    pub txns: Vec<Txn>,
}

pub fn traces_dir() -> PathBuf {
    std::env::var_os("SYNCLINE_TRACES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/traces"))
}

/// Loads `<name>.json.gz` from the traces folder.
pub fn load_trace(name: &str) -> Trace {
    let path = traces_dir().join(format!("{name}.json.gz"));
    let file = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e} (set SYNCLINE_TRACES)", path.display()));
    let mut json = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut json)
        .expect("trace is not gzip");
    serde_json::from_str(&json).expect("trace is not valid JSON")
}
