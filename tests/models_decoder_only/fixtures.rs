//! Outputs of the tiny fixture models against transformers (tests/fixtures/reference).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use rinseq::models::load::{load_model, LoadedModel, ModelFiles};
use rinseq::models::ops;
use rinseq::models::{DecodeStart, ForwardInput, LogitPositions, Side, SideInput, Taps};

use super::{max_abs, max_of, root};

const ARCHS: [&str; 4] = ["gpt2", "llama", "qwen2", "mistral"];

struct Fixture {
    name: &'static str,
    loaded: LoadedModel,
    reference: HashMap<String, Tensor>,
    json: serde_json::Value,
}

fn fixture(name: &'static str) -> Fixture {
    let dir = root().join("tests/fixtures");
    let loaded = load_model(
        &ModelFiles::HfFolder(dir.join("models").join(name)),
        DType::F32,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let reference = candle_core::safetensors::load(
        dir.join(format!("reference/{name}.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    let text = std::fs::read_to_string(dir.join(format!("reference/{name}.json"))).unwrap();
    Fixture {
        name,
        loaded,
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

    fn input(&self, embeds: &Tensor, mask: &Tensor, at: LogitPositions) -> ForwardInput {
        ForwardInput {
            encoder: None,
            decoder: SideInput {
                embeds: embeds.clone(),
                mask: mask.clone(),
            },
            logits_at: at,
        }
    }
}

#[test]
fn tokenizer_and_embeddings_match_reference() {
    for name in ARCHS {
        let f = fixture(name);
        for (i, t) in f.json["texts"].as_array().unwrap().iter().enumerate() {
            let ids = f
                .loaded
                .tokenizer
                .encode(t["text"].as_str().unwrap(), true)
                .unwrap();
            let want: Vec<u32> = serde_json::from_value(t["input_ids"].clone()).unwrap();
            assert_eq!(ids, want, "{name} text{i} ids");
            let emb = f
                .loaded
                .model
                .embed(Side::Decoder, &f.ids(&format!("text{i}.input_ids")))
                .unwrap();
            assert!(max_abs(&emb, f.r(&format!("text{i}.inputs_embeds"))) < 1e-7);
        }
        let sp = &f.loaded.spec;
        assert_eq!(
            sp.pad_token_id,
            f.json["batch"]["pad_token_id"].as_u64().map(|x| x as u32),
            "{name} pad"
        );
    }
}

#[test]
fn logits_attention_hidden_states_and_gradients_match_reference() {
    for name in ARCHS {
        let f = fixture(name);
        let m = &f.loaded.model;
        for i in 0..2 {
            let ids = f.ids(&format!("text{i}.input_ids"));
            let emb = m.embed(Side::Decoder, &ids).unwrap();
            let mask = Tensor::ones(ids.dims(), DType::U8, &Device::Cpu).unwrap();
            let mut taps = Taps::none();
            taps.record_attentions = true;
            taps.record_hidden_states = true;
            let out = m
                .forward(&f.input(&emb, &mask, LogitPositions::All), &mut taps)
                .unwrap();
            let d = max_abs(&out.logits, f.r(&format!("text{i}.logits")));
            println!("{name} text{i}: logits max |Δ| {d:.2e}");
            assert!(d < 1e-4, "{name} text{i} logits: {d}");
            assert_eq!(taps.attentions.len(), m.spec().num_layers);
            for (path, probs) in &taps.attentions {
                let d = max_abs(probs, f.r(&format!("text{i}.attn.{path}")));
                assert!(d < 1e-5, "{name} text{i} attention {path}: {d}");
            }
            assert_eq!(taps.hidden_states.len(), m.spec().num_layers + 1);
            for (k, (path, h)) in taps.hidden_states.iter().enumerate() {
                let d = max_abs(h, f.r(&format!("text{i}.hidden.{k}")));
                assert!(d < 1e-4, "{name} text{i} hidden {k} ({path}): {d}");
            }
            // d log p(argmax) / d input embeddings.
            let var = Var::from_tensor(&emb).unwrap();
            let logits = m
                .forward(
                    &f.input(var.as_tensor(), &mask, LogitPositions::Last),
                    &mut Taps::none(),
                )
                .unwrap()
                .logits;
            let target = f.json["texts"][i]["grad_target_id"].as_u64().unwrap() as usize;
            let lp = ops::log_softmax_last(&logits.flatten_all().unwrap())
                .unwrap()
                .get(target)
                .unwrap();
            let want_lp = f.json["texts"][i]["grad_target_logprob"].as_f64().unwrap();
            assert!((lp.to_scalar::<f32>().unwrap() as f64 - want_lp).abs() < 1e-4);
            let grads = lp.backward().unwrap();
            let g = grads.get(var.as_tensor()).expect("graph was cut");
            let want = f.r(&format!("text{i}.grad"));
            let rel = max_abs(g, want) / max_of(want);
            println!("{name} text{i}: grad max |Δ| / max |g| = {rel:.2e}");
            assert!(rel < 1e-4, "{name} text{i} gradient relative error {rel}");
        }
    }
}

#[test]
fn left_padded_batch_matches_reference_and_decoding() {
    for name in ARCHS {
        let f = fixture(name);
        let m = &f.loaded.model;
        let ids = f.ids("batch.input_ids");
        let mask = f.r("batch.attention_mask").to_dtype(DType::U8).unwrap();
        let emb = m.embed(Side::Decoder, &ids).unwrap();
        let out = m
            .forward(
                &f.input(&emb, &mask, LogitPositions::All),
                &mut Taps::none(),
            )
            .unwrap()
            .logits;
        // Positions follow the mask (HF generate's position_ids): compare the real tokens.
        let want = f.r("batch.logits_posids");
        let keep = f
            .r("batch.attention_mask")
            .to_dtype(DType::F32)
            .unwrap()
            .unsqueeze(2)
            .unwrap();
        let d = max_abs(
            &out.broadcast_mul(&keep).unwrap(),
            &want.broadcast_mul(&keep).unwrap(),
        );
        assert!(d < 1e-4, "{name} padded batch logits: {d}");

        // KV-cached greedy decoding reproduces HF generate, and its logits match the forward.
        let mut state = m
            .start_decoding(&DecodeStart {
                encoder_ids: None,
                encoder_mask: None,
            })
            .unwrap();
        let mut seq = ids.clone();
        let mut mask_all = mask.clone();
        let mut step_in = ids.clone();
        for step in 0..8 {
            let logits = state.step(&step_in, &mask_all).unwrap();
            if step < 2 {
                let emb = m.embed(Side::Decoder, &seq).unwrap();
                let full = m
                    .forward(
                        &f.input(&emb, &mask_all, LogitPositions::Last),
                        &mut Taps::none(),
                    )
                    .unwrap()
                    .logits;
                let d = max_abs(&logits, &full.squeeze(1).unwrap());
                assert!(d < 1e-4, "{name} decoding step {step}: {d}");
            }
            let next = logits
                .argmax_keepdim(1)
                .unwrap()
                .to_dtype(DType::U32)
                .unwrap();
            seq = Tensor::cat(&[&seq, &next], 1).unwrap();
            mask_all = Tensor::cat(
                &[
                    &mask_all,
                    &Tensor::ones((2, 1), DType::U8, &Device::Cpu).unwrap(),
                ],
                1,
            )
            .unwrap();
            step_in = next;
        }
        let want: Vec<Vec<u32>> =
            serde_json::from_value(f.json["batch"]["generate"]["greedy"]["sequences"].clone())
                .unwrap();
        assert_eq!(seq.to_vec2::<u32>().unwrap(), want, "{name} greedy batch");
    }
}

#[test]
fn f16_and_f64_models_run_close_to_reference() {
    for name in ["gpt2", "qwen2"] {
        let dir = root().join("tests/fixtures/models").join(name);
        let f = fixture(name);
        let want = f.r("text0.logits");
        for (dtype, tol) in [(DType::F16, 5e-2), (DType::F64, 1e-4)] {
            let loaded = load_model(&ModelFiles::HfFolder(dir.clone()), dtype).unwrap();
            let ids = f.ids("text0.input_ids");
            let emb = loaded.model.embed(Side::Decoder, &ids).unwrap();
            let mask = Tensor::ones(ids.dims(), DType::U8, &Device::Cpu).unwrap();
            let out = loaded
                .model
                .forward(
                    &f.input(&emb, &mask, LogitPositions::All),
                    &mut Taps::none(),
                )
                .unwrap();
            assert_eq!(out.logits.dtype(), dtype);
            let d = max_abs(&out.logits, want);
            println!(
                "{name} {dtype:?}: logits max |Δ| {d:.2e} (max |logit| {:.2})",
                max_of(want)
            );
            assert!(d < tol, "{name} {dtype:?}: {d}");
        }
    }
}

#[test]
fn every_tap_name_is_hit_once_and_hooks_can_replace_activations() {
    use std::cell::RefCell;
    for name in ARCHS {
        let f = fixture(name);
        let m = &f.loaded.model;
        let ids = f.ids("text0.input_ids");
        let emb = m.embed(Side::Decoder, &ids).unwrap();
        let mask = Tensor::ones(ids.dims(), DType::U8, &Device::Cpu).unwrap();
        let input = f.input(&emb, &mask, LogitPositions::Last);
        let names = m.tap_names();
        let hits = RefCell::new(vec![0usize; names.len()]);
        let mut taps = Taps::none();
        for (i, n) in names.iter().enumerate() {
            let hits = &hits;
            taps.hook(
                n.clone(),
                Box::new(move |x: &Tensor| {
                    hits.borrow_mut()[i] += 1;
                    Ok(x.clone())
                }),
            );
        }
        let plain = m.forward(&input, &mut taps).unwrap().logits;
        drop(taps);
        for (n, h) in names.iter().zip(hits.borrow().iter()) {
            assert_eq!(*h, 1, "{name}: tap {n} hit {h} times");
        }
        // Zeroing the last block's MLP output changes the logits.
        let last = m.spec().num_layers - 1;
        let mlp = if name == "gpt2" {
            format!("transformer.h.{last}.mlp")
        } else {
            format!("model.layers.{last}.mlp")
        };
        let mut taps = Taps::none();
        taps.hook(mlp, Box::new(|x: &Tensor| x.zeros_like()));
        let zeroed = m.forward(&input, &mut taps).unwrap().logits;
        assert!(
            max_abs(&plain, &zeroed) > 1e-3,
            "{name}: hook had no effect"
        );
    }
}
