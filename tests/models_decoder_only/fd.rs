//! f64 finite-difference checks of the differentiable ops and of whole tiny models.

use candle_core::{DType, Device, Tensor, Var};
use rinseq::models::gguf::{permute_rows, unpermute_rows};
use rinseq::models::ops::{self, ConstLinear, Rope};
use rinseq::models::registry::{self, BuildArgs};
use rinseq::models::tokenizer::SpecialTokens;
use rinseq::models::weights::{MemorySource, Weights};
use rinseq::models::{ForwardInput, LogitPositions, Model, Side, SideInput, Taps};
use serde_json::json;

use super::{max_abs, max_of, rand_tensor};

const F: DType = DType::F64;

/// Max relative error of autograd vs central differences of `sum(f(x) * w)` over every coordinate.
fn fd_check(x: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> f64 {
    let mut seed = 99;
    let w = rand_tensor(&mut seed, f(x).dims(), 1.0, F);
    let loss = |t: &Tensor| {
        (f(t) * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let var = Var::from_tensor(x).unwrap();
    let l = (f(var.as_tensor()) * &w).unwrap().sum_all().unwrap();
    let grads = l.backward().unwrap();
    let g = grads
        .get(var.as_tensor())
        .expect("graph was cut: no gradient for the input");
    let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
    let xv: Vec<f64> = x.flatten_all().unwrap().to_vec1().unwrap();
    let h = 1e-6;
    let mut worst: f64 = 0.0;
    let gmax = g.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    for i in 0..xv.len() {
        let mut p = xv.clone();
        p[i] += h;
        let mut m = xv.clone();
        m[i] -= h;
        let tp = Tensor::from_vec(p, x.shape(), &Device::Cpu).unwrap();
        let tm = Tensor::from_vec(m, x.shape(), &Device::Cpu).unwrap();
        let fd = (loss(&tp) - loss(&tm)) / (2.0 * h);
        worst = worst.max((fd - g[i]).abs() / gmax);
    }
    worst
}

#[test]
fn ops_match_finite_differences() {
    let mut s = 1;
    let x = rand_tensor(&mut s, &[2, 3, 8], 1.0, F);
    let w = (rand_tensor(&mut s, &[8], 0.1, F) + 1.0).unwrap();
    let b = rand_tensor(&mut s, &[8], 0.1, F);
    let checks: Vec<(&str, f64)> = vec![
        (
            "rms_norm",
            fd_check(&x, |t| ops::rms_norm(t, &w, 1e-6).unwrap()),
        ),
        (
            "layer_norm",
            fd_check(&x, |t| ops::layer_norm(t, &w, Some(&b), 1e-5).unwrap()),
        ),
        ("gelu_tanh", fd_check(&x, |t| ops::gelu_tanh(t).unwrap())),
        ("gelu_erf", fd_check(&x, |t| ops::gelu_erf(t).unwrap())),
        ("silu", fd_check(&x, |t| ops::silu(t).unwrap())),
        (
            "softmax",
            fd_check(&x, |t| (ops::softmax_last(t).unwrap() + t).unwrap()),
        ),
    ];
    for (name, err) in checks {
        assert!(err < 1e-7, "{name}: FD relative error {err}");
    }
}

#[test]
fn attention_rope_and_const_linear_match_finite_differences() {
    let mut s = 2;
    let (b, h, kv, t, d) = (2, 4, 2, 5, 8);
    let k = rand_tensor(&mut s, &[b, kv, t, d], 1.0, F);
    let v = rand_tensor(&mut s, &[b, kv, t, d], 1.0, F);
    let x = rand_tensor(&mut s, &[b, h, t, d], 1.0, F);
    // (No fully masked query row: there the bias rounds scores away, which FD cannot see.)
    let mask = Tensor::new(&[[1u8, 1, 0, 1, 1], [1, 1, 1, 1, 1]], &Device::Cpu).unwrap();
    let bias = ops::attention_bias(&mask, t, 0, true, F).unwrap();
    let pos = ops::positions_from_mask(&mask, t).unwrap();
    let (cos, sin) = Rope::new(d, 10000.0)
        .cos_sin(&pos, F, &Device::Cpu)
        .unwrap();
    let att = fd_check(&x, |q| {
        let q = ops::rope_half(q, &cos, &sin).unwrap();
        ops::attention(&q, &k, &v, &bias, 0.35, (&Taps::none(), 0.0))
            .unwrap()
            .0
    });
    assert!(att < 1e-7, "attention + rope_half: {att}");
    let ri = fd_check(&x, |q| ops::rope_interleaved(q, &cos, &sin).unwrap());
    assert!(ri < 1e-7, "rope_interleaved: {ri}");
    let lin = ConstLinear::new(
        rand_tensor(&mut s, &[6, d], 1.0, F),
        Some(rand_tensor(&mut s, &[6], 1.0, F)),
    );
    let cl = fd_check(&x, |t| lin.forward(t).unwrap());
    assert!(cl < 1e-7, "const linear: {cl}");
    assert!(max_abs(&lin.forward(&x).unwrap(), &lin.plain(&x).unwrap()) < 1e-12);
}

/// GGUF stores llama q/k rows permuted for interleaved RoPE: interleaved RoPE on permuted weights
/// gives the same attention scores as half-split RoPE on the HF (un-permuted) weights.
#[test]
fn gguf_permutation_matches_half_split_rope() {
    let mut s = 3;
    let (heads, hd, inp, t) = (3, 8, 12, 5);
    let w = rand_tensor(&mut s, &[heads * hd, inp], 1.0, F);
    let wp = permute_rows(&w, heads).unwrap();
    assert!(max_abs(&unpermute_rows(&wp, heads).unwrap(), &w) == 0.0);
    let x = rand_tensor(&mut s, &[1, t, inp], 1.0, F);
    let mask = Tensor::ones((1, t), DType::U8, &Device::Cpu).unwrap();
    let pos = ops::positions_from_mask(&mask, t).unwrap();
    let (cos, sin) = Rope::new(hd, 10000.0)
        .cos_sin(&pos, F, &Device::Cpu)
        .unwrap();
    let scores = |w: &Tensor, interleaved: bool| {
        let q = x.broadcast_matmul(&w.t().unwrap()).unwrap();
        let q = q
            .reshape((1, t, heads, hd))
            .unwrap()
            .transpose(1, 2)
            .unwrap();
        let q = if interleaved {
            ops::rope_interleaved(&q, &cos, &sin)
        } else {
            ops::rope_half(&q, &cos, &sin)
        };
        let q = q.unwrap().contiguous().unwrap();
        q.matmul(&q.t().unwrap()).unwrap()
    };
    let d = max_abs(&scores(&w, false), &scores(&wp, true));
    assert!(d < 1e-10, "score difference {d}");
}

/// A tiny random model of `model_type` in f64, through the public registry.
pub fn tiny(model_type: &str) -> Box<dyn Model> {
    let mut s = 7;
    let mut src = MemorySource::default();
    let mut put = |name: String, shape: &[usize], scale: f64, offset: f64| {
        let t = (rand_tensor(&mut s, shape, scale, F) + offset).unwrap();
        src.tensors.insert(name, t);
    };
    let (d, v, im, layers) = (16, 40, 24, 2);
    let config = if model_type == "gpt2" {
        put("transformer.wte.weight".into(), &[v, d], 0.3, 0.0);
        put("transformer.wpe.weight".into(), &[32, d], 0.3, 0.0);
        for i in 0..layers {
            let p = format!("transformer.h.{i}");
            for (n, shape) in [
                ("attn.c_attn", [d, 3 * d]),
                ("attn.c_proj", [d, d]),
                ("mlp.c_fc", [d, im]),
                ("mlp.c_proj", [im, d]),
            ] {
                put(format!("{p}.{n}.weight"), &shape, 0.3, 0.0);
                put(format!("{p}.{n}.bias"), &[shape[1]], 0.1, 0.0);
            }
            for n in ["ln_1", "ln_2"] {
                put(format!("{p}.{n}.weight"), &[d], 0.1, 1.0);
                put(format!("{p}.{n}.bias"), &[d], 0.1, 0.0);
            }
        }
        put("transformer.ln_f.weight".into(), &[d], 0.1, 1.0);
        put("transformer.ln_f.bias".into(), &[d], 0.1, 0.0);
        json!({"vocab_size": v, "n_positions": 32, "n_embd": d, "n_layer": layers, "n_head": 4, "n_inner": im})
    } else {
        let (h, kv, hd) = (4, 2, 4);
        put("model.embed_tokens.weight".into(), &[v, d], 0.3, 0.0);
        put("lm_head.weight".into(), &[v, d], 0.3, 0.0);
        put("model.norm.weight".into(), &[d], 0.1, 1.0);
        for i in 0..layers {
            let p = format!("model.layers.{i}");
            for (n, o, inp) in [
                ("q_proj", h * hd, d),
                ("k_proj", kv * hd, d),
                ("v_proj", kv * hd, d),
                ("o_proj", d, h * hd),
            ] {
                put(format!("{p}.self_attn.{n}.weight"), &[o, inp], 0.3, 0.0);
                if n != "o_proj" {
                    put(format!("{p}.self_attn.{n}.bias"), &[o], 0.1, 0.0);
                }
            }
            for (n, o, inp) in [
                ("gate_proj", im, d),
                ("up_proj", im, d),
                ("down_proj", d, im),
            ] {
                put(format!("{p}.mlp.{n}.weight"), &[o, inp], 0.3, 0.0);
            }
            put(format!("{p}.input_layernorm.weight"), &[d], 0.1, 1.0);
            put(
                format!("{p}.post_attention_layernorm.weight"),
                &[d],
                0.1,
                1.0,
            );
        }
        json!({"vocab_size": v, "hidden_size": d, "intermediate_size": im, "num_hidden_layers": layers,
               "num_attention_heads": h, "num_key_value_heads": kv, "max_position_embeddings": 32,
               "rms_norm_eps": 1e-6, "rope_theta": 10000.0})
    };
    let weights = Weights::new(Box::new(src), F, Device::Cpu);
    let arch = registry::find(model_type).unwrap();
    (arch.build)(&BuildArgs {
        model_type,
        config: &config,
        weights: &weights,
        special: &SpecialTokens::default(),
    })
    .unwrap()
}

/// log p(target | last position) for both rows of a left-padded batch, summed.
fn target_logprob(model: &dyn Model, embeds: &Tensor, mask: &Tensor) -> Tensor {
    let input = ForwardInput {
        encoder: None,
        decoder: SideInput {
            embeds: embeds.clone(),
            mask: mask.clone(),
        },
        logits_at: LogitPositions::Last,
    };
    let logits = model
        .forward(&input, &mut Taps::none())
        .unwrap()
        .logits
        .squeeze(1)
        .unwrap();
    let lp = ops::log_softmax_last(&logits).unwrap();
    let idx = Tensor::new(&[[3u32], [5]], &Device::Cpu).unwrap();
    lp.gather(&idx, 1).unwrap().sum_all().unwrap()
}

#[test]
fn tiny_models_input_gradients_match_finite_differences() {
    for mt in ["llama", "qwen2", "gpt2"] {
        let model = tiny(mt);
        let ids = Tensor::new(&[[0u32, 0, 4, 9, 2, 7], [1, 8, 3, 3, 6, 11]], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[[0u8, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], &Device::Cpu).unwrap();
        let emb = model.embed(Side::Decoder, &ids).unwrap();
        let var = Var::from_tensor(&emb).unwrap();
        let grads = target_logprob(&*model, var.as_tensor(), &mask)
            .backward()
            .unwrap();
        let g = grads.get(var.as_tensor()).expect("graph was cut");
        assert!(max_of(g) > 1e-3, "{mt}: zero gradient");
        // Directional and coordinate-wise central differences.
        let f = |e: &Tensor| {
            target_logprob(&*model, e, &mask)
                .to_scalar::<f64>()
                .unwrap()
        };
        let mut s = 5;
        let h = 1e-5;
        for _ in 0..3 {
            let dir = rand_tensor(&mut s, emb.dims(), 1.0, F);
            let fd = (f(&(&emb + (&dir * h).unwrap()).unwrap())
                - f(&(&emb - (&dir * h).unwrap()).unwrap()))
                / (2.0 * h);
            let an = (g * &dir)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!(
                (fd - an).abs() <= 1e-6 * an.abs().max(1.0),
                "{mt}: directional FD {fd} vs {an}"
            );
        }
        // Padding positions get no gradient.
        let pad = g.narrow(0, 0, 1).unwrap().narrow(1, 0, 2).unwrap();
        assert_eq!(max_of(&pad), 0.0, "{mt}: gradient leaked into padding");
    }
}
