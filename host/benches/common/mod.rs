//! Helpers shared by the benches (`mod common;` in each): model lookup, settings from the
//! environment, order statistics.

// Each bench uses its own subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rinseq::models::load::ModelFiles;
use rinseq::source::{resolve, SourceConfig};

/// A bench error: printed by `main`.
pub type BoxError = Box<dyn std::error::Error>;

/// The SmolLM2-135M-Instruct Q4_1 GGUF: `RINSEQ_SMOLLM2_GGUF`, else
/// `<repo>/../shared/models/`, else the rinseq cache (the `smollm2-135m` alias).
pub fn find_gguf() -> Result<PathBuf, BoxError> {
    if let Some(p) = std::env::var_os("RINSEQ_SMOLLM2_GGUF") {
        return Ok(PathBuf::from(p));
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if shared.is_file() {
        return Ok(shared);
    }
    match resolve("smollm2-135m", &SourceConfig::from_env())? {
        ModelFiles::Gguf(p) => Ok(p),
        other => Err(format!("unexpected model files {other:?}").into()),
    }
}

/// The repetitions: `RINSEQ_BENCH_REPS`, else `default`.
pub fn reps(default: usize) -> usize {
    std::env::var("RINSEQ_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `RINSEQ_BENCH_PYTHON`: a Python with torch, transformers and gguf (and inseq where needed).
pub fn python() -> Result<String, String> {
    std::env::var("RINSEQ_BENCH_PYTHON").map_err(|_| {
        "set RINSEQ_BENCH_PYTHON to a python with torch, transformers and gguf".to_string()
    })
}

/// The path of a file in `host/benches/`.
pub fn bench_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join(name)
}

pub fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}
