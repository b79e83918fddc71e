//! `cargo bench -p rinseq --bench model`: SmolLM2-135M (f32, dequantized Q4_1 GGUF) on CPU.
//!
//! Measures, with interleaved repetitions (min / median):
//! - forward + backward: the gradient of the last-position log-prob of the top-1 token with
//!   respect to the input embeddings of a 20-token input;
//! - greedy generation with the KV cache (`rinseq::generation`), in tokens per second.
//!
//! The GGUF is taken from `RINSEQ_SMOLLM2_GGUF`, else `<repo>/../shared/models/`, else the
//! rinseq cache (the `smollm2-135m` alias). When `RINSEQ_BENCH_PYTHON` names a Python with
//! torch + transformers + gguf, `benches/torch_model.py` is run on the same ids and both figures
//! are printed side by side. `RINSEQ_BENCH_REPS` sets the repetitions (default 10).
//!
//! Model load (`load_model` of the GGUF: header, tokenizer, dequantization, model build) is
//! timed first, `RINSEQ_BENCH_LOAD_REPS` times (default 10, min / median);
//! `RINSEQ_BENCH_LOAD_ONLY=1` stops after it.

mod common;

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use common::{find_gguf, max, median, min, BoxError};
use rinseq::generation::{generate, GenerationConfig, GenerationInput, GenerationParams};
use rinseq::models::load::{load_model, ModelFiles};
use rinseq::models::{ForwardInput, LogitPositions, Model, Side, SideInput, Taps};

const PROMPT: &str = "The capital of France is Paris. The capital of Germany is Berlin. The capital of Spain is Madrid. The capital of Italy is";
const INPUT_TOKENS: usize = 20;
const NEW_TOKENS: usize = 20;

fn main() -> Result<(), BoxError> {
    let reps = common::reps(10);
    let gguf = find_gguf()?;
    println!("model: {} (f32)", gguf.display());
    let files = ModelFiles::Gguf(gguf.clone());
    // The first load of the process pays for page-cache misses and thread start-up like a
    // `rinseq` process does; it is included.
    let mut load_ms = Vec::new();
    let mut loaded = None;
    for _ in 0..load_reps().max(1) {
        drop(loaded.take());
        let t = Instant::now();
        loaded = Some(load_model(&files, DType::F32)?);
        load_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let load_line = format!("{:.1} / {:.1}", min(&load_ms), median(&load_ms));
    println!(
        "model load ms (min / median of {}): {load_line}",
        load_ms.len()
    );
    if std::env::var_os("RINSEQ_BENCH_LOAD_ONLY").is_some() {
        return Ok(());
    }
    let loaded = loaded.ok_or("no model loaded")?;
    let model = loaded.model.as_ref();
    let mut ids = loaded.tokenizer.encode(PROMPT, true)?;
    if ids.len() < INPUT_TOKENS {
        return Err(format!("prompt has only {} tokens", ids.len()).into());
    }
    ids.truncate(INPUT_TOKENS);

    let cfg = GenerationConfig::from_kwargs_json(&format!(
        r#"{{"max_new_tokens": {NEW_TOKENS}, "min_new_tokens": {NEW_TOKENS}}}"#
    ))?;
    let params = GenerationParams::resolve(&cfg, model.spec())?;
    let input = GenerationInput::decoder_only(vec![ids.clone()]);

    // warm-up, then interleaved repetitions
    fwd_bwd(model, &ids)?;
    generate(model, &input, &params)?;
    let (mut fb, mut tok) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        fwd_bwd(model, &ids)?;
        fb.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let out = generate(model, &input, &params)?;
        tok.push(out[0].len() as f64 / t.elapsed().as_secs_f64());
    }
    let threads = candle_core::utils::get_num_threads();
    println!("threads: {threads}, repetitions: {reps}, input: {INPUT_TOKENS} tokens, generation: {NEW_TOKENS} new tokens (prompt prefill included)");
    let torch = run_torch(&gguf, &ids, reps);
    println!("{:<38} {:>22} {:>22}", "", "rinseq (candle)", "pytorch");
    let (tfb, ttok) = match &torch {
        Ok(v) => (
            format!(
                "{:.1} / {:.1}",
                v["fwd_bwd_ms"]["min"].as_f64().unwrap_or(f64::NAN),
                v["fwd_bwd_ms"]["median"].as_f64().unwrap_or(f64::NAN)
            ),
            format!(
                "{:.1} / {:.1}",
                v["gen_tok_s"]["max"].as_f64().unwrap_or(f64::NAN),
                v["gen_tok_s"]["median"].as_f64().unwrap_or(f64::NAN)
            ),
        ),
        Err(_) => ("-".into(), "-".into()),
    };
    println!(
        "{:<38} {:>22} {:>22}",
        "model load ms (min / median)", load_line, "-"
    );
    println!(
        "{:<38} {:>22} {:>22}",
        "forward+backward ms (min / median)",
        format!("{:.1} / {:.1}", min(&fb), median(&fb)),
        tfb
    );
    println!(
        "{:<38} {:>22} {:>22}",
        "greedy tokens/s (max / median)",
        format!("{:.1} / {:.1}", max(&tok), median(&tok)),
        ttok
    );
    match torch {
        Ok(v) => println!("pytorch: {}", v["versions"]),
        Err(why) => println!("pytorch: not measured ({why})"),
    }
    Ok(())
}

/// `RINSEQ_BENCH_LOAD_REPS`, else 10.
fn load_reps() -> usize {
    std::env::var("RINSEQ_BENCH_LOAD_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// d log p(top-1 | last position) / d input embeddings.
fn fwd_bwd(model: &dyn Model, ids: &[u32]) -> Result<Tensor, BoxError> {
    let ids_t = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
    let emb = Var::from_tensor(&model.embed(Side::Decoder, &ids_t)?)?;
    let mask = Tensor::ones((1, ids.len()), DType::U8, &Device::Cpu)?;
    let input = ForwardInput {
        encoder: None,
        decoder: SideInput {
            embeds: emb.as_tensor().clone(),
            mask,
        },
        logits_at: LogitPositions::Last,
    };
    let logits = model.forward(&input, &mut Taps::none())?.logits;
    let lp = candle_nn::ops::log_softmax(&logits.flatten_all()?, 0)?;
    let target = lp.argmax(0)?.to_scalar::<u32>()?;
    let grads = lp.get(target as usize)?.backward()?;
    grads
        .get(emb.as_tensor())
        .cloned()
        .ok_or_else(|| "the graph was cut: no input gradient".into())
}

/// Runs `benches/torch_model.py` with `RINSEQ_BENCH_PYTHON` and returns its JSON output.
fn run_torch(gguf: &Path, ids: &[u32], reps: usize) -> Result<serde_json::Value, String> {
    let python = common::python()?;
    let script = common::bench_file("torch_model.py");
    let out = std::env::temp_dir().join(format!("rinseq-bench-torch-{}.json", std::process::id()));
    let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
    let status = std::process::Command::new(&python)
        .arg(&script)
        .arg(gguf)
        .arg(&out)
        .arg("--ids")
        .arg(ids.join(","))
        .arg("--reps")
        .arg(reps.to_string())
        .arg("--new-tokens")
        .arg(NEW_TOKENS.to_string())
        .arg("--threads")
        .arg(candle_core::utils::get_num_threads().to_string())
        .env("TQDM_DISABLE", "1")
        .env("TRANSFORMERS_VERBOSITY", "error")
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !status.success() {
        return Err(format!("{} failed ({status})", script.display()));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&out);
    serde_json::from_str(&text).map_err(|e| e.to_string())
}
