//! Generation on real models against HF transformers: the greedy and beam outputs stored in
//! tests/fixtures/reference/<name>.json for every fixture model (single texts and the
//! left-padded batch), and the SmolLM2-135M greedy text through the `rinseq generate` code path.

use std::path::{Path, PathBuf};

use candle_core::DType;
use rinseq::cli::generate::{generate_texts, DtypeArg, GenerateArgs};
use rinseq::generation::{generate, GenerationConfig, GenerationInput, GenerationParams};
use rinseq::models::load::{load_model, LoadedModel, ModelFiles};
use rinseq::source::SourceConfig;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id list")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// HF kwargs of a fixture entry, without the output-format flags.
fn kwargs(entry: &Value) -> GenerationConfig {
    let mut kw = entry["kwargs"].as_object().expect("kwargs").clone();
    kw.remove("return_dict_in_generate");
    kw.remove("output_scores");
    GenerationConfig::from_kwargs_value(Value::Object(kw)).expect("fixture kwargs")
}

/// New tokens of an HF output row: after `skip` tokens, cut after the first EOS (what follows
/// is padding).
fn expected_new(seq: &[u32], skip: usize, eos: &[u32]) -> Vec<u32> {
    let new = &seq[skip..];
    match new.iter().position(|t| eos.contains(t)) {
        Some(i) => new[..=i].to_vec(),
        None => new.to_vec(),
    }
}

struct Case {
    label: String,
    input: GenerationInput,
    skip: Vec<usize>,
    entry: Value,
}

fn cases(meta: &Value) -> Vec<Case> {
    let enc_dec = meta["kind"] == "encoder-decoder";
    let mut out = Vec::new();
    for (ti, t) in meta["texts"].as_array().expect("texts").iter().enumerate() {
        for label in ["greedy", "beam"] {
            let (input, skip) = if enc_dec {
                (
                    GenerationInput::encoder_decoder(vec![ids(&t["source_ids"])]),
                    1,
                )
            } else {
                let p = ids(&t["input_ids"]);
                let n = p.len();
                (GenerationInput::decoder_only(vec![p]), n)
            };
            out.push(Case {
                label: format!("text{ti} {label}"),
                input,
                skip: vec![skip],
                entry: t["generate"][label].clone(),
            });
        }
    }
    if let Some(b) = meta.get("batch").filter(|b| b.get("generate").is_some()) {
        let mask: Vec<Vec<u32>> = b["attention_mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect();
        let prompts: Vec<Vec<u32>> = b["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&mask)
            .map(|(row, m)| {
                ids(row)
                    .into_iter()
                    .zip(m)
                    .filter(|(_, &m)| m == 1)
                    .map(|(t, _)| t)
                    .collect()
            })
            .collect();
        let width = mask[0].len();
        for label in ["greedy", "beam"] {
            out.push(Case {
                label: format!("batch {label}"),
                input: GenerationInput::decoder_only(prompts.clone()),
                skip: vec![width; prompts.len()],
                entry: b["generate"][label].clone(),
            });
        }
    }
    out
}

fn check_model(name: &str, meta: &Value) -> Vec<String> {
    let dir = root().join("tests/fixtures/models").join(name);
    let loaded: LoadedModel = match load_model(&ModelFiles::HfFolder(dir.clone()), DType::F32) {
        Ok(m) => m,
        Err(e) => return vec![format!("{name}: cannot load: {e}")],
    };
    let model = loaded.model.as_ref();
    let defaults = GenerationConfig::from_model_dir(&dir).expect("generation_config.json");
    let mut failures = Vec::new();
    for case in cases(meta) {
        let cfg = defaults.merged_with(&kwargs(&case.entry));
        let params = GenerationParams::resolve(&cfg, model.spec()).expect("params");
        let got = match generate(model, &case.input, &params) {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{name} {}: {e}", case.label));
                continue;
            }
        };
        for (row, seq) in case.entry["sequences"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let want = expected_new(&ids(seq), case.skip[row], &params.eos_token_ids);
            if got[row] != want {
                // A near-tie in HF's own scores may legitimately flip: report it separately.
                let margins = &case.entry["step_top2_margins"][row];
                let step = got[row]
                    .iter()
                    .zip(&want)
                    .take_while(|(a, b)| a == b)
                    .count();
                let margin = margins.get(step).and_then(Value::as_f64);
                let msg = format!(
                    "{name} {} row {row}: got {:?}, HF {:?} (first difference at step {step}, HF top-2 margin {margin:?})",
                    case.label, got[row], want
                );
                if margin.is_some_and(|m| m < 1e-4) {
                    eprintln!("near-tie, not counted: {msg}");
                } else {
                    failures.push(msg);
                }
            }
        }
    }
    failures
}

#[test]
fn fixture_models_match_transformers_generate() {
    let dir = root().join("tests/fixtures/reference");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut checked = 0;
    let mut failures = Vec::new();
    for name in names {
        // Python's json writes Infinity / NaN (e.g. top-2 margins next to -inf logits).
        let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
        let text = text
            .replace("-Infinity", "null")
            .replace("Infinity", "null")
            .replace("NaN", "null");
        let meta: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}.json: {e}"));
        let has_gen = meta["texts"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t.get("generate").is_some()));
        if !has_gen
            || !root()
                .join("tests/fixtures/models")
                .join(&name)
                .join("config.json")
                .is_file()
        {
            continue;
        }
        failures.extend(check_model(&name, &meta));
        eprintln!("checked generation of fixture model {name}");
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    if checked == 0 {
        eprintln!("skipped: no fixture model with generation references");
    }
}

fn smollm2_gguf() -> Option<PathBuf> {
    let p = std::env::var_os("RINSEQ_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    p.is_file().then_some(p)
}

#[test]
fn smollm2_greedy_text_through_the_cli_path() {
    let Some(gguf) = smollm2_gguf() else {
        eprintln!("skipped: SmolLM2 GGUF not found (set RINSEQ_SMOLLM2_GGUF or provide ../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut sources = SourceConfig::new(tmp.path().join("hub"), tmp.path().join("rinseq"));
    sources.smollm2_gguf = Some(gguf);
    sources.offline = true;
    let args = GenerateArgs {
        model: "smollm2-135m".into(),
        input_texts: vec!["The capital of France is".into()],
        generation_kwargs: Some(r#"{"max_new_tokens": 10}"#.into()),
        dtype: DtypeArg::F32,
    };
    let texts = generate_texts(&args, &sources).expect("generate");
    assert_eq!(texts, vec![" Paris.\n\nThe answer is: 2".to_string()]);
}
