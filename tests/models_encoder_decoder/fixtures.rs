//! Marian, BART and mBART fixture models against transformers 5.24 / inseq 0.7.1 (tests/fixtures).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use rinseq::models::load::{load_model, ModelFiles};
use rinseq::models::registry::{self, BuildArgs};
use rinseq::models::spm_tokenizer::load_marian_text;
use rinseq::models::tokenizer::TextTokenizer;
use rinseq::models::weights::{SafetensorsSource, Weights};
use rinseq::models::{
    ops, DecodeStart, ForwardInput, LogitPositions, Model, Side, SideInput, Taps,
};

use super::{max_abs, max_of, root};

const ARCHS: [&str; 3] = ["marian", "bart", "mbart"];

struct Fixture {
    name: &'static str,
    model: Box<dyn Model>,
    source_tok: TextTokenizer,
    target_tok: TextTokenizer,
    reference: HashMap<String, Tensor>,
    json: serde_json::Value,
}

/// Loads a fixture in `dtype`. Marian folders have no tokenizer.json: the model comes from the
/// registry and the tokenizers from the .spm files.
fn fixture(name: &'static str, dtype: DType) -> Fixture {
    let dir = root().join("tests/fixtures");
    let mdir = dir.join("models").join(name);
    let (model, source_tok, target_tok) = if name == "marian" {
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(mdir.join("config.json")).unwrap())
                .unwrap();
        let (src, tgt) = load_marian_text(&mdir).unwrap();
        let src_w = SafetensorsSource::open_folder(&mdir).unwrap();
        let weights = Weights::new(Box::new(src_w), dtype, Device::Cpu);
        let args = BuildArgs {
            model_type: "marian",
            config: &config,
            weights: &weights,
            special: &src.special,
        };
        let model = (registry::find("marian").unwrap().build)(&args).unwrap();
        (model, src, tgt)
    } else {
        let loaded = load_model(&ModelFiles::HfFolder(mdir), dtype)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let tok = loaded.tokenizer.clone();
        (loaded.model, tok.clone(), tok)
    };
    let reference = candle_core::safetensors::load(
        dir.join(format!("reference/{name}.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    let text = std::fs::read_to_string(dir.join(format!("reference/{name}.json"))).unwrap();
    // Python's json writes Infinity/NaN (top-2 margins); they are not JSON.
    let text = text
        .replace("-Infinity", "null")
        .replace("Infinity", "null")
        .replace("NaN", "null");
    Fixture {
        name,
        model,
        source_tok,
        target_tok,
        reference,
        json: serde_json::from_str(&text).unwrap(),
    }
}

impl Fixture {
    fn r(&self, k: &str) -> &Tensor {
        self.reference
            .get(k)
            .unwrap_or_else(|| panic!("{}: no reference tensor {k}", self.name))
    }

    fn ids(&self, k: &str) -> Tensor {
        self.r(k).to_dtype(DType::U32).unwrap()
    }

    fn input(
        &self,
        src: &Tensor,
        src_mask: &Tensor,
        tgt: &Tensor,
        at: LogitPositions,
    ) -> ForwardInput {
        let (b, t, _) = tgt.dims3().unwrap();
        let ones = Tensor::ones((b, t), DType::U8, &Device::Cpu).unwrap();
        ForwardInput {
            encoder: Some(SideInput {
                embeds: src.clone(),
                mask: src_mask.clone(),
            }),
            decoder: SideInput {
                embeds: tgt.clone(),
                mask: ones,
            },
            logits_at: at,
        }
    }
}

fn ones_like_ids(ids: &Tensor) -> Tensor {
    Tensor::ones(ids.dims2().unwrap(), DType::U8, &Device::Cpu).unwrap()
}

#[test]
fn tokenizers_and_embeddings_match_reference() {
    for name in ARCHS {
        let f = fixture(name, DType::F32);
        for (i, t) in f.json["texts"].as_array().unwrap().iter().enumerate() {
            let src = f
                .source_tok
                .encode(t["source"].as_str().unwrap(), true)
                .unwrap();
            let want: Vec<u32> = serde_json::from_value(t["source_ids"].clone()).unwrap();
            assert_eq!(src, want, "{name} text{i} source ids");
            let tgt = f
                .target_tok
                .encode(t["target"].as_str().unwrap(), true)
                .unwrap();
            let want: Vec<u32> = serde_json::from_value(t["target_ids"].clone()).unwrap();
            let start = f.model.spec().decoder_start_token_id.unwrap();
            assert_eq!(
                [vec![start], tgt].concat(),
                want,
                "{name} text{i} target ids"
            );
            let toks: Vec<String> = serde_json::from_value(t["target_tokens"].clone()).unwrap();
            assert_eq!(
                f.target_tok.tokens(&want),
                toks,
                "{name} text{i} target tokens"
            );
            for side in ["encoder", "decoder"] {
                let s = if side == "encoder" {
                    Side::Encoder
                } else {
                    Side::Decoder
                };
                let ids = f.ids(&format!("text{i}.input_ids.{side}"));
                let emb = f.model.embed(s, &ids).unwrap();
                let d = max_abs(&emb, f.r(&format!("text{i}.inputs_embeds.{side}")));
                assert!(d < 1e-6, "{name} text{i} {side} embeddings: {d}");
            }
        }
        let ins = &f.json["inseq"];
        let sp = f.model.spec();
        let id = |k: &str| ins[k].as_u64().map(|x| x as u32);
        assert_eq!(sp.pad_token_id, id("pad_token_id"), "{name} pad");
        assert_eq!(
            sp.eos_token_ids,
            vec![id("eos_token_id").unwrap()],
            "{name} eos"
        );
        let start = id("bos_token_id (decoder start / prepended to targets)");
        assert_eq!(sp.decoder_start_token_id, start, "{name} decoder start");
        assert_eq!(
            f.source_tok.special.unk,
            id("unk_token_id (baseline id)"),
            "{name} unk"
        );
    }
}

/// HF `MarianTokenizer` (transformers 5.24, sentencepiece 0.2.3) on the fixture folder:
/// (text, source ids, `text_target=` ids, `decode(target ids, skip_special_tokens=True)`).
#[rustfmt::skip]
const MARIAN_CASES: &[(&str, &[u32], &[u32], &str)] = &[
    ("  Hello   world  ", &[66, 28, 40, 104, 8, 107, 0], &[2, 151, 239, 2, 44, 64, 48, 13, 0], "Hello world"),
    ("Zürich ☃ 東京 naïve", &[2, 1, 8, 45, 119, 2, 1, 2, 1, 2, 18, 25, 1, 106, 0], &[2, 1, 8, 254, 158, 2, 1, 2, 1, 178, 25, 1, 152, 4, 0], "rich   nave"),
    ("Hello </s> world <unk>", &[66, 28, 40, 0, 104, 8, 107, 1, 0], &[2, 151, 239, 0, 2, 44, 64, 48, 13, 1, 0], "Hello world"),
    ("Ａ ﬁne café", &[2, 250, 39, 27, 4, 54, 38, 1, 0], &[2, 250, 217, 163, 54, 38, 1, 0], "A fine caf"),
    ("", &[0], &[0], ""),
    ("tab\tand\nnewline", &[19, 25, 122, 31, 13, 100, 44, 48, 27, 4, 0], &[19, 25, 122, 2, 256, 2, 163, 44, 48, 27, 4, 0], "tab and newline"),
    ("Paris, Paris; PARIS!", &[68, 21, 68, 1, 2, 150, 250, 149, 154, 131, 1, 0], &[2, 150, 46, 45, 5, 21, 2, 150, 46, 45, 5, 1, 2, 150, 250, 149, 154, 131, 1, 0], "Paris, Paris PARIS"),
    ("It's 3.5 km - really?", &[113, 195, 5, 2, 1, 3, 1, 2, 41, 156, 2, 1, 2, 108, 25, 28, 7, 67, 0], &[50, 14, 195, 5, 2, 1, 3, 1, 2, 41, 156, 2, 1, 2, 108, 93, 48, 7, 67, 0], "It's . km  really?"),
    ("a  b", &[9, 42, 0], &[9, 42, 0], "a b"),
];

#[test]
fn marian_tokenizer_matches_hf_on_edge_cases() {
    let dir = root().join("tests/fixtures/models/marian");
    let (src, tgt) = load_marian_text(&dir).unwrap();
    for (text, s, t, decoded) in MARIAN_CASES {
        assert_eq!(
            src.encode(text, true).unwrap(),
            *s,
            "source ids of {text:?}"
        );
        assert_eq!(
            tgt.encode(text, true).unwrap(),
            *t,
            "target ids of {text:?}"
        );
        assert_eq!(
            tgt.decode(t, true).unwrap(),
            *decoded,
            "decoding of {text:?}"
        );
    }
}

#[test]
fn marian_decodes_target_text() {
    let f = fixture("marian", DType::F32);
    let t = &f.json["texts"][0];
    let ids: Vec<u32> = serde_json::from_value(t["target_ids"].clone()).unwrap();
    let text = f.target_tok.decode(&ids, true).unwrap();
    assert_eq!(text, t["target"].as_str().unwrap());
}

#[test]
fn logits_attention_hidden_states_and_gradients_match_reference() {
    for name in ARCHS {
        let f = fixture(name, DType::F32);
        let m = &f.model;
        for i in 0..2 {
            let src_ids = f.ids(&format!("text{i}.input_ids.encoder"));
            let tgt_ids = f.ids(&format!("text{i}.input_ids.decoder"));
            let src = m.embed(Side::Encoder, &src_ids).unwrap();
            let tgt = m.embed(Side::Decoder, &tgt_ids).unwrap();
            let mask = ones_like_ids(&src_ids);
            let mut taps = Taps::none();
            taps.record_attentions = true;
            taps.record_hidden_states = true;
            let out = m
                .forward(&f.input(&src, &mask, &tgt, LogitPositions::All), &mut taps)
                .unwrap();
            let d = max_abs(&out.logits, f.r(&format!("text{i}.logits")));
            println!("{name} text{i}: logits max |Δ| {d:.2e}");
            assert!(d < 1e-4, "{name} text{i} logits: {d}");
            assert_eq!(
                taps.attentions.len(),
                6,
                "{name}: 2 encoder + 2x2 decoder attentions"
            );
            for (path, probs) in &taps.attentions {
                let d = max_abs(probs, f.r(&format!("text{i}.attn.{path}")));
                assert!(d < 1e-5, "{name} text{i} attention {path}: {d}");
            }
            assert_eq!(
                taps.hidden_states.len(),
                6,
                "{name}: 3 encoder + 3 decoder hidden states"
            );
            for (k, (path, h)) in taps.hidden_states.iter().enumerate() {
                let key = format!(
                    "text{i}.hidden.{}.{}",
                    if k < 3 { "encoder" } else { "decoder" },
                    k % 3
                );
                let d = max_abs(h, f.r(&key));
                assert!(d < 1e-4, "{name} {key} ({path}): {d}");
            }
            // d log p(argmax at the last position) / d input embeddings, both sides.
            let sv = Var::from_tensor(&src).unwrap();
            let tv = Var::from_tensor(&tgt).unwrap();
            let input = f.input(sv.as_tensor(), &mask, tv.as_tensor(), LogitPositions::Last);
            let logits = m.forward(&input, &mut Taps::none()).unwrap().logits;
            let target = f.json["texts"][i]["grad_target_id"].as_u64().unwrap() as usize;
            let lp = ops::log_softmax_last(&logits.flatten_all().unwrap())
                .unwrap()
                .get(target)
                .unwrap();
            let want_lp = f.json["texts"][i]["grad_target_logprob"].as_f64().unwrap();
            assert!((lp.to_scalar::<f32>().unwrap() as f64 - want_lp).abs() < 1e-4);
            let grads = lp.backward().unwrap();
            for (side, var) in [("encoder", &sv), ("decoder", &tv)] {
                let g = grads.get(var.as_tensor()).expect("graph was cut");
                let want = f.r(&format!("text{i}.grad.{side}"));
                let rel = max_abs(g, want) / max_of(want);
                println!("{name} text{i}: {side} grad max |Δ| / max |g| = {rel:.2e}");
                assert!(
                    rel < 1e-4,
                    "{name} text{i} {side} gradient relative error {rel}"
                );
            }
        }
    }
}

#[test]
fn kv_cached_decoding_matches_forward_with_padding_and_beams() {
    for name in ARCHS {
        let f = fixture(name, DType::F32);
        let m = &f.model;
        // Both sources in one right-padded batch (the tokenizers pad on the right).
        let srcs: Vec<Vec<u32>> = (0..2)
            .map(|i| {
                f.ids(&format!("text{i}.input_ids.encoder"))
                    .squeeze(0)
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            })
            .collect();
        let tgts: Vec<Vec<u32>> = (0..2)
            .map(|i| {
                f.ids(&format!("text{i}.input_ids.decoder"))
                    .squeeze(0)
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            })
            .collect();
        let pad = m.spec().pad_token_id.unwrap();
        let s_len = srcs.iter().map(Vec::len).max().unwrap();
        let t_len = tgts.iter().map(Vec::len).min().unwrap();
        let mut ids = Vec::new();
        let mut mask = Vec::new();
        for s in &srcs {
            for j in 0..s_len {
                ids.push(*s.get(j).unwrap_or(&pad));
                mask.push(u8::from(j < s.len()));
            }
        }
        let src_ids = Tensor::from_vec(ids, (2, s_len), &Device::Cpu).unwrap();
        let src_mask = Tensor::from_vec(mask, (2, s_len), &Device::Cpu).unwrap();
        let tgt: Vec<u32> = tgts.iter().flat_map(|t| t[..t_len].to_vec()).collect();
        let tgt_ids = Tensor::from_vec(tgt, (2, t_len), &Device::Cpu).unwrap();

        // The padded batch forward equals the single-text references.
        let src = m.embed(Side::Encoder, &src_ids).unwrap();
        let tgt = m.embed(Side::Decoder, &tgt_ids).unwrap();
        let full = m
            .forward(
                &f.input(&src, &src_mask, &tgt, LogitPositions::All),
                &mut Taps::none(),
            )
            .unwrap()
            .logits;
        for i in 0..2 {
            let want = f.r(&format!("text{i}.logits")).narrow(1, 0, t_len).unwrap();
            let d = max_abs(&full.narrow(0, i, 1).unwrap(), &want);
            assert!(d < 1e-4, "{name} padded batch row {i}: {d}");
        }

        // Teacher-forced KV-cached decoding: the first step feeds two tokens, then one per step.
        let start = DecodeStart {
            encoder_ids: Some(src_ids.clone()),
            encoder_mask: Some(src_mask.clone()),
        };
        let mut state = m.start_decoding(&start).unwrap();
        let mut pos = 0;
        while pos < t_len {
            let n = if pos == 0 { 2 } else { 1 };
            let step_ids = tgt_ids.narrow(1, pos, n).unwrap();
            let step_mask = Tensor::ones((2, pos + n), DType::U8, &Device::Cpu).unwrap();
            let logits = state.step(&step_ids, &step_mask).unwrap();
            let want = full.narrow(1, pos + n - 1, 1).unwrap().squeeze(1).unwrap();
            let d = max_abs(&logits, &want);
            assert!(d < 1e-4, "{name} decoding position {}: {d}", pos + n - 1);
            pos += n;
            if pos == 4 {
                break;
            }
        }
        // Beam reordering: rows [1, 0, 1], then one more step.
        state.select_rows(&[1, 0, 1]).unwrap();
        let rows = Tensor::from_vec(vec![1u32, 0, 1], 3, &Device::Cpu).unwrap();
        let step_ids = tgt_ids
            .index_select(&rows, 0)
            .unwrap()
            .narrow(1, pos, 1)
            .unwrap();
        let logits = state
            .step(
                &step_ids,
                &Tensor::ones((3, pos + 1), DType::U8, &Device::Cpu).unwrap(),
            )
            .unwrap();
        let want = full
            .index_select(&rows, 0)
            .unwrap()
            .narrow(1, pos, 1)
            .unwrap()
            .squeeze(1)
            .unwrap();
        let d = max_abs(&logits, &want);
        assert!(d < 1e-4, "{name} decoding after select_rows: {d}");
    }
}

#[test]
fn tap_names_are_hf_module_paths_and_hooks_apply() {
    for name in ARCHS {
        let f = fixture(name, DType::F32);
        let names = f.model.tap_names();
        for want in [
            "model.encoder.layers.1",
            "model.encoder.layers.0.self_attn",
            "model.encoder.layers.0.self_attn.v_proj",
            "model.decoder.layers.1.encoder_attn",
            "model.decoder.layers.0.encoder_attn.k_proj",
            "model.decoder.layers.0.fc2",
            "model.decoder.layers.0.final_layer_norm",
            "lm_head",
        ] {
            assert!(names.iter().any(|n| n == want), "{name}: no tap {want}");
        }
        assert_eq!(
            names.iter().any(|n| n.ends_with("layernorm_embedding")),
            name != "marian"
        );
        // mBART (pre-norm) has a final LayerNorm per stack; BART and Marian do not.
        for stack in ["encoder", "decoder"] {
            assert_eq!(
                names
                    .iter()
                    .any(|n| n == &format!("model.{stack}.layer_norm")),
                name == "mbart",
                "{name}: model.{stack}.layer_norm"
            );
        }
        // Zeroing the cross-attention output changes the logits; a reading hook sees (b, t, d).
        let src_ids = f.ids("text0.input_ids.encoder");
        let tgt_ids = f.ids("text0.input_ids.decoder");
        let src = f.model.embed(Side::Encoder, &src_ids).unwrap();
        let tgt = f.model.embed(Side::Decoder, &tgt_ids).unwrap();
        let input = f.input(&src, &ones_like_ids(&src_ids), &tgt, LogitPositions::Last);
        let mut seen = Vec::new();
        let mut taps = Taps::none();
        taps.hook(
            "model.decoder.layers.1.encoder_attn",
            Box::new(|x: &Tensor| x.zeros_like()),
        );
        taps.hook(
            "model.encoder.layers.0.self_attn.v_proj",
            Box::new(|x: &Tensor| {
                seen.push(x.dims().to_vec());
                Ok(x.clone())
            }),
        );
        let patched = f.model.forward(&input, &mut taps).unwrap().logits;
        drop(taps);
        assert_eq!(seen, vec![vec![1, src_ids.dim(1).unwrap(), 32]]);
        let plain = f.model.forward(&input, &mut Taps::none()).unwrap().logits;
        assert!(
            max_abs(&patched, &plain) > 1e-3,
            "{name}: hook had no effect"
        );
    }
}
