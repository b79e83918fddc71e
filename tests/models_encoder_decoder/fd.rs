//! f64 finite-difference checks: a tiny random mBART (pre-norm, final LayerNorms, learned
//! positions) built in memory, whose input-embedding gradients on both sides must match central
//! differences, and whose KV-cached decoding must match the forward.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use rinseq::models::registry::{self, BuildArgs};
use rinseq::models::tokenizer::SpecialTokens;
use rinseq::models::weights::{MemorySource, Weights};
use rinseq::models::{
    ops, DecodeStart, ForwardInput, LogitPositions, Model, ModelError, Side, SideInput, Taps,
};
use serde_json::json;

use super::{max_abs, rand_tensor};

const F: DType = DType::F64;
const D: usize = 8;
const FFN: usize = 12;
const V: usize = 20;

fn tiny_mbart() -> Box<dyn Model> {
    tiny_mbart_without("").unwrap()
}

/// The tiny mBART with the tensor `missing` left out of the checkpoint.
fn tiny_mbart_without(missing: &str) -> Result<Box<dyn Model>, ModelError> {
    let mut seed = 7;
    let mut t = HashMap::new();
    let mut put = |name: String, shape: &[usize], scale: f64, offset: f64| {
        let x = (rand_tensor(&mut seed, shape, scale, F) + offset).unwrap();
        t.insert(name, x);
    };
    put("model.shared.weight".into(), &[V, D], 1.0, 0.0);
    put("final_logits_bias".into(), &[1, V], 0.5, 0.0);
    for stack in ["encoder", "decoder"] {
        let p = format!("model.{stack}");
        put(
            format!("{p}.embed_positions.weight"),
            &[16 + 2, D],
            0.5,
            0.0,
        );
        for ln in ["layernorm_embedding", "layer_norm"] {
            put(format!("{p}.{ln}.weight"), &[D], 0.1, 1.0);
            put(format!("{p}.{ln}.bias"), &[D], 0.1, 0.0);
        }
        for i in 0..2 {
            let l = format!("{p}.layers.{i}");
            let mut attns = vec!["self_attn"];
            if stack == "decoder" {
                attns.push("encoder_attn");
            }
            for a in attns {
                for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                    put(format!("{l}.{a}.{proj}.weight"), &[D, D], 0.5, 0.0);
                    put(format!("{l}.{a}.{proj}.bias"), &[D], 0.1, 0.0);
                }
                put(format!("{l}.{a}_layer_norm.weight"), &[D], 0.1, 1.0);
                put(format!("{l}.{a}_layer_norm.bias"), &[D], 0.1, 0.0);
            }
            put(format!("{l}.fc1.weight"), &[FFN, D], 0.5, 0.0);
            put(format!("{l}.fc1.bias"), &[FFN], 0.1, 0.0);
            put(format!("{l}.fc2.weight"), &[D, FFN], 0.5, 0.0);
            put(format!("{l}.fc2.bias"), &[D], 0.1, 0.0);
            put(format!("{l}.final_layer_norm.weight"), &[D], 0.1, 1.0);
            put(format!("{l}.final_layer_norm.bias"), &[D], 0.1, 0.0);
        }
    }
    let config = json!({
        "model_type": "mbart", "vocab_size": V, "d_model": D, "max_position_embeddings": 16,
        "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 2,
        "decoder_attention_heads": 2, "encoder_ffn_dim": FFN, "decoder_ffn_dim": FFN,
        "activation_function": "gelu", "scale_embedding": true,
        "pad_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 2
    });
    t.remove(missing);
    let weights = Weights::new(Box::new(MemorySource { tensors: t }), F, Device::Cpu);
    let args = BuildArgs {
        model_type: "mbart",
        config: &config,
        weights: &weights,
        special: &SpecialTokens::default(),
    };
    (registry::find("mbart").unwrap().build)(&args)
}

fn ids(v: &[u32]) -> Tensor {
    Tensor::from_vec(v.to_vec(), (1, v.len()), &Device::Cpu).unwrap()
}

#[test]
fn mbart_input_gradients_match_finite_differences() {
    let m = tiny_mbart();
    assert_eq!(m.spec().model_type, "mbart");
    assert!(m
        .tap_names()
        .iter()
        .any(|n| n == "model.encoder.layer_norm"));
    let src_ids = ids(&[5, 9, 3, 2]);
    let tgt_ids = ids(&[2, 7, 11]);
    let src = m.embed(Side::Encoder, &src_ids).unwrap();
    let tgt = m.embed(Side::Decoder, &tgt_ids).unwrap();
    // Mask the third source token, as padding would be.
    let mask = Tensor::from_vec(vec![1u8, 1, 0, 1], (1, 4), &Device::Cpu).unwrap();
    let f = |s: &Tensor, t: &Tensor| -> Tensor {
        let input = ForwardInput {
            encoder: Some(SideInput {
                embeds: s.clone(),
                mask: mask.clone(),
            }),
            decoder: SideInput {
                embeds: t.clone(),
                mask: Tensor::ones((1, 3), DType::U8, &Device::Cpu).unwrap(),
            },
            logits_at: LogitPositions::Last,
        };
        let logits = m.forward(&input, &mut Taps::none()).unwrap().logits;
        ops::log_softmax_last(&logits.flatten_all().unwrap())
            .unwrap()
            .get(4)
            .unwrap()
    };
    let sv = Var::from_tensor(&src).unwrap();
    let tv = Var::from_tensor(&tgt).unwrap();
    let grads = f(sv.as_tensor(), tv.as_tensor()).backward().unwrap();
    let h = 1e-6;
    for (side, x, var) in [("encoder", &src, &sv), ("decoder", &tgt, &tv)] {
        let g: Vec<f64> = grads
            .get(var.as_tensor())
            .expect("graph was cut")
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let xv: Vec<f64> = x.flatten_all().unwrap().to_vec1().unwrap();
        let gmax = g.iter().fold(0f64, |a, v| a.max(v.abs()));
        let mut worst: f64 = 0.0;
        for i in 0..xv.len() {
            let shifted = |d: f64| {
                let mut p = xv.clone();
                p[i] += d;
                let p = Tensor::from_vec(p, x.shape(), &Device::Cpu).unwrap();
                let out = if side == "encoder" {
                    f(&p, &tgt)
                } else {
                    f(&src, &p)
                };
                out.to_scalar::<f64>().unwrap()
            };
            let fd = (shifted(h) - shifted(-h)) / (2.0 * h);
            worst = worst.max((fd - g[i]).abs() / gmax);
        }
        println!("mbart {side}: FD max rel. error {worst:.2e} (max |g| {gmax:.2e})");
        assert!(gmax > 1e-3, "{side}: vanishing gradient");
        assert!(worst < 1e-6, "{side}: FD relative error {worst}");
        if side == "encoder" {
            // The masked token gets no gradient.
            assert!(g[2 * D..3 * D].iter().all(|v| v.abs() < 1e-12));
        }
    }
}

#[test]
fn mbart_cached_decoding_matches_forward() {
    let m = tiny_mbart();
    let src_ids = ids(&[5, 9, 3, 2]);
    let tgt_ids = ids(&[2, 7, 11, 4, 6]);
    let input = ForwardInput {
        encoder: Some(SideInput {
            embeds: m.embed(Side::Encoder, &src_ids).unwrap(),
            mask: Tensor::ones((1, 4), DType::U8, &Device::Cpu).unwrap(),
        }),
        decoder: SideInput {
            embeds: m.embed(Side::Decoder, &tgt_ids).unwrap(),
            mask: Tensor::ones((1, 5), DType::U8, &Device::Cpu).unwrap(),
        },
        logits_at: LogitPositions::All,
    };
    let full = m.forward(&input, &mut Taps::none()).unwrap().logits;
    let mut state = m
        .start_decoding(&DecodeStart {
            encoder_ids: Some(src_ids),
            encoder_mask: None,
        })
        .unwrap();
    for pos in 0..5 {
        let step = tgt_ids.narrow(1, pos, 1).unwrap();
        let logits = state
            .step(
                &step,
                &Tensor::ones((1, pos + 1), DType::U8, &Device::Cpu).unwrap(),
            )
            .unwrap();
        let d = max_abs(
            &logits,
            &full.narrow(1, pos, 1).unwrap().squeeze(1).unwrap(),
        );
        assert!(d < 1e-10, "position {pos}: {d}");
    }
    // A mask that does not cover the cache is refused, not silently misread.
    let bad = state.step(
        &ids(&[3]),
        &Tensor::ones((1, 3), DType::U8, &Device::Cpu).unwrap(),
    );
    assert!(bad.is_err());
}

#[test]
fn missing_weights_and_long_inputs_are_reported() {
    for name in [
        "model.decoder.layers.1.encoder_attn.v_proj.weight",
        "model.encoder.layer_norm.bias",
        "model.decoder.embed_positions.weight",
    ] {
        let err = tiny_mbart_without(name)
            .err()
            .expect("load should fail")
            .to_string();
        assert!(err.contains(name), "{err}");
    }
    let err = tiny_mbart_without("model.shared.weight")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.shared.weight"), "{err}");
    // 17 source tokens for a model with 16 positions.
    let m = tiny_mbart();
    let long = Tensor::zeros((1, 17), DType::U32, &Device::Cpu).unwrap();
    let start = DecodeStart {
        encoder_ids: Some(long),
        encoder_mask: None,
    };
    let err = m
        .start_decoding(&start)
        .err()
        .expect("too long")
        .to_string();
    assert!(
        err.contains("longer than the model's context of 16"),
        "{err}"
    );
}
