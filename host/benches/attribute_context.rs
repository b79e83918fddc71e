//! `cargo bench -p rinseq --bench attribute_context`: `rinseq attribute-context` as a whole
//! process (start, plugin and model loading, CTI, CCI, the console view, the JSON file) against
//! Inseq 0.7.1's `attribute-context` as a whole process (`benches/inseq_attribute_context.py`:
//! Python start, imports, model load, Inseq's `attribute_context_with_model`), on
//! SmolLM2-135M-Instruct (Q4_1 GGUF, f32) on CPU.
//!
//! Cases: the (`saliency`, metric `kl_divergence`, one context-sensitive token) and a
//! contrastive one (`contrast_prob_diff` as metric and attributed function, several tokens, each
//! with a generated contextless output).
//!
//! - the rinseq binary is the one next to this bench's folder (`target/<profile>/rinseq`), or
//!   `RINSEQ_BENCH_BIN`: build it first (`cargo build --release --workspace`, or `cargo build
//!   --workspace` with `cargo bench --profile dev`); its plugins come from `registry.toml`;
//! - the GGUF is `RINSEQ_SMOLLM2_GGUF`, else `<repo>/../shared/models/`, else the rinseq cache;
//! - `RINSEQ_BENCH_PYTHON` names a Python with inseq 0.7.1, torch, transformers and gguf; without
//!   it only rinseq is timed;
//! - `RINSEQ_BENCH_REPS` sets the runs per side and case (default 3).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{bench_file, find_gguf, median, min, BoxError};
use serde_json::{json, Value};

const CONTEXT: &str = "Paris is the capital of France. Rome is the capital of Italy.";
const CURRENT: &str = "The capital of Italy is";

/// `(name, Inseq's AttributeContextArgs fields)`.
fn cases() -> Vec<(&'static str, Value)> {
    vec![
        (
            "issue (saliency, kl_divergence)",
            json!({"attribution_method": "saliency", "input_context_text": CONTEXT,
                   "input_current_text": CURRENT, "output_current_text": "Rome"}),
        ),
        (
            "contrastive (contrast_prob_diff x2)",
            json!({"attribution_method": "saliency", "input_context_text": CONTEXT,
                   "input_current_text": CURRENT,
                   "output_current_text": "Rome, a city with a long history.",
                   "context_sensitivity_metric": "contrast_prob_diff",
                   "attributed_fn": "contrast_prob_diff"}),
        ),
    ]
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// The rinseq binary of this build profile.
fn rinseq_bin() -> Result<PathBuf, BoxError> {
    if let Some(p) = std::env::var_os("RINSEQ_BENCH_BIN") {
        return Ok(PathBuf::from(p));
    }
    // target/<profile>/deps/attribute_context-HASH -> target/<profile>/rinseq
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("rinseq"))
        .ok_or("cannot find the target folder")?;
    if !bin.is_file() {
        return Err(format!(
            "{} not found: build it first (cargo build --release --workspace)",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}

/// rinseq flags from Inseq's field names.
fn flags(fields: &Value) -> Vec<String> {
    let mut f = Vec::new();
    for (k, v) in fields.as_object().into_iter().flatten() {
        f.push(match k.as_str() {
            "attribution_method" => "-a".to_string(),
            other => format!("--{}", other.replace('_', "-")),
        });
        f.push(v.as_str().map_or_else(|| v.to_string(), String::from));
    }
    f
}

/// Seconds of one whole process; fails when it fails.
fn time(cmd: &mut Command) -> Result<f64, BoxError> {
    let t = Instant::now();
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    let s = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(s)
}

fn run() -> Result<(), BoxError> {
    let gguf = find_gguf()?;
    let bin = rinseq_bin()?;
    let reps = common::reps(3);
    let python = std::env::var("RINSEQ_BENCH_PYTHON").ok();
    let dir = tempfile::tempdir()?;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("rinseq attribute-context vs inseq 0.7.1 attribute-context, SmolLM2-135M-Instruct f32, whole process, {reps} runs each (seconds: min / median)");
    println!(
        "{:<38} {:>15} {:>15} {:>9}",
        "case", "rinseq s", "inseq 0.7.1 s", "speed-up"
    );
    for (name, fields) in cases() {
        let out = dir.path().join("rinseq.json");
        let mut ours = Vec::new();
        for _ in 0..reps {
            ours.push(time(
                Command::new(&bin)
                    .current_dir(&repo)
                    .env("RINSEQ_SMOLLM2_GGUF", &gguf)
                    .args(["attribute-context", "-m", "smollm2-135m", "-o"])
                    .arg(&out)
                    .args(flags(&fields)),
            )?);
        }
        let mut theirs = Vec::new();
        if let Some(py) = &python {
            let out = dir.path().join("inseq.json");
            for _ in 0..reps {
                theirs.push(time(
                    Command::new(py)
                        .arg(bench_file("inseq_attribute_context.py"))
                        .arg(&gguf)
                        .arg(fields.to_string())
                        .arg(&out),
                )?);
            }
        }
        let cell = |v: &[f64]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                format!("{:.2} / {:.2}", min(v), median(v))
            }
        };
        let speed = if theirs.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1}x", median(&theirs) / median(&ours))
        };
        println!(
            "{name:<38} {:>15} {:>15} {speed:>9}",
            cell(&ours),
            cell(&theirs)
        );
    }
    Ok(())
}
