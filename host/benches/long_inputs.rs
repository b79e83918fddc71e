//! Long inputs and memory (`cargo bench -p rinseq --bench long_inputs`): integrated gradients
//! (50 points) on SmolLM2-135M f32 with prompts of about 128, 512 and 1024 tokens and 8 greedy
//! tokens, rinseq as a whole process (`rinseq attribute`, model load included; wall time and
//! peak resident memory from `/usr/bin/time`) against Python inseq 0.7.1's warm
//! `model.attribute` call (peak memory of its whole process).
//!
//! - `RINSEQ_BENCH_LENGTHS`: prompt lengths, comma-separated (default `128,512,1024`);
//! - `RINSEQ_BENCH_PYTHON`: a Python with inseq 0.7.1 (else only rinseq is measured);
//! - `RINSEQ_BENCH_INSEQ_MAX_LEN`: the longest prompt given to inseq (default 128: inseq keeps
//!   50 × prefix-length activations per step, and at 512 and more tokens it needs more memory
//!   and time than a small machine has; longer prompts are reported as not run);
//! - `RINSEQ_BENCH_MAX_MEMORY`: passed to `rinseq attribute --max-memory` (e.g. `2G`).

mod common;

use std::path::Path;
use std::process::Command;

use common::{find_gguf, BoxError};
use serde_json::Value;

const NEW_TOKENS: usize = 8;
/// About ten SmolLM2 tokens.
const SENTENCE: &str = "The quick brown fox jumps over the lazy dog near the river. ";

fn main() {
    if let Err(e) = run() {
        eprintln!("long_inputs bench: {e}");
        std::process::exit(1);
    }
}

/// Wall seconds and peak resident MB of `cmd`, run under `/usr/bin/time`.
fn timed(cmd: &mut Command) -> Result<(f64, f64, String), BoxError> {
    let report = tempfile::NamedTempFile::new()?;
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .args(["-f", "%e %M", "-o"])
        .arg(report.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let out = wrapped.output()?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )
        .into());
    }
    let text = std::fs::read_to_string(report.path())?;
    let mut it = text.split_whitespace();
    let secs: f64 = it.next().ok_or("no time")?.parse()?;
    let kb: f64 = it.next().ok_or("no memory")?.parse()?;
    Ok((
        secs,
        kb / 1024.0,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

struct Row {
    tokens: usize,
    rinseq: (f64, f64),
    inseq: Option<Result<(f64, f64), String>>,
}

fn run() -> Result<(), BoxError> {
    let gguf = find_gguf()?;
    let lengths: Vec<usize> = std::env::var("RINSEQ_BENCH_LENGTHS")
        .unwrap_or_else(|_| "128,512,1024".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let inseq_max: usize = std::env::var("RINSEQ_BENCH_INSEQ_MAX_LEN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let python = common::python().ok();
    let dir = tempfile::tempdir()?;
    let mut rows = Vec::new();
    for &n in &lengths {
        let prompt = SENTENCE.repeat(n.div_ceil(12)).trim_end().to_string();
        let out = dir.path().join(format!("ig_{n}.json"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rinseq"));
        cmd.args(["attribute", "-m"])
            .arg(&gguf)
            .args(["-a", "integrated_gradients", "-i", &prompt, "--hide-attributions"])
            .args(["--generation-kwargs"])
            .arg(format!(
                r#"{{"max_new_tokens": {NEW_TOKENS}, "min_new_tokens": {NEW_TOKENS}, "do_sample": false}}"#
            ))
            .arg("-o")
            .arg(&out);
        if let Ok(m) = std::env::var("RINSEQ_BENCH_MAX_MEMORY") {
            cmd.args(["--max-memory", &m]);
        }
        eprintln!("rinseq, ~{n} tokens…");
        let (secs, mb, _) = timed(&mut cmd)?;
        let saved: Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
        let seq = &saved["attributes"]["sequence_attributions"][0]["attributes"];
        let tokens = seq["target"].as_array().map_or(0, Vec::len);
        let generated = generated_text(&saved)?;
        let inseq = match (&python, n <= inseq_max) {
            (Some(py), true) => {
                eprintln!("inseq, ~{n} tokens…");
                Some(inseq_run(py, &gguf, &prompt, &generated))
            }
            _ => None,
        };
        rows.push(Row {
            tokens,
            rinseq: (secs, mb),
            inseq,
        });
    }
    print_table(&rows);
    Ok(())
}

/// The forced text for inseq: the prompt and rinseq's greedy continuation, as saved.
fn generated_text(saved: &Value) -> Result<String, BoxError> {
    saved["attributes"]["info"]["generated_texts"][0]
        .as_str()
        .map(String::from)
        .ok_or_else(|| "the saved file has no info.generated_texts".into())
}

fn inseq_run(python: &str, gguf: &Path, text: &str, generated: &str) -> Result<(f64, f64), String> {
    let out = Command::new(python)
        .arg(common::bench_file("inseq_attribution.py"))
        .arg(gguf)
        .args([
            "--method",
            "integrated_gradients",
            "--text",
            text,
            "--generated",
            generated,
        ])
        .args(["--reps", "1"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok((
        v["median_s"].as_f64().unwrap_or(f64::NAN),
        v["peak_mb"].as_f64().unwrap_or(f64::NAN),
    ))
}

fn print_table(rows: &[Row]) {
    println!("integrated_gradients (50 points), SmolLM2-135M f32, {NEW_TOKENS} greedy tokens");
    println!(
        "{:>7} | {:>13} {:>11} | {:>13} {:>11} | {:>7} {:>7}",
        "tokens", "rinseq s", "rinseq MB", "inseq s", "inseq MB", "speed", "memory"
    );
    for r in rows {
        let (rs, rm) = r.rinseq;
        let inseq = match &r.inseq {
            Some(Ok((s, m))) => format!("{s:>13.2} {m:>11.0} | {:>6.1}x {:>6.2}x", s / rs, rm / m),
            Some(Err(e)) => format!("inseq failed: {e}"),
            None => "inseq not run (RINSEQ_BENCH_PYTHON / RINSEQ_BENCH_INSEQ_MAX_LEN)".into(),
        };
        println!("{:>7} | {rs:>13.2} {rm:>11.0} | {inseq}", r.tokens);
    }
    println!("speed = inseq time / rinseq time (rinseq includes its model load); memory = rinseq peak / inseq peak");
}
