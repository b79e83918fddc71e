//! The Llama family (`llama`, `mistral`, `qwen2`; SmolLM2 is `llama`): RMSNorm, RoPE (HF
//! half-split layout), grouped-query attention, SwiGLU MLP.
//!
//! Weight names mirror HF: `model.embed_tokens.weight`, `model.layers.N.self_attn.q_proj.weight`,
//! ..., `model.norm.weight`, `lm_head.weight` (absent when tied). Taps are the HF module paths:
//! `model.embed_tokens`, `model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj, self_attn,
//! post_attention_layernorm, mlp.{gate_proj, up_proj, act_fn, down_proj}, mlp}`,
//! `model.layers.N`, `model.norm`, `lm_head`. Hidden states follow HF `output_hidden_states`:
//! the embeddings (`model.embed_tokens`), the output of layers `0..L-1`, then the output of the
//! last layer after the final norm (`model.norm`).

mod backward;
mod config;

use candle_core::{DType, Device, Result, Tensor};

use super::causal::{
    self, append_kv, merge_heads, split_heads, CausalArch, CausalLm, Pass, SavedBlock,
};
use super::ops::{self, ConstLinear, Rope};
use super::registry::{Architecture, BuildArgs};
use super::taps::module_paths;
use super::{Model, ModelError, ModelKind, ModelSpec, Taps};
use backward::Rest;
pub use config::LlamaConfig;

module_paths! { Layer => Names:
    ln1 = "input_layernorm", q = "self_attn.q_proj", k = "self_attn.k_proj",
    v = "self_attn.v_proj", o = "self_attn.o_proj", attn = "self_attn",
    ln2 = "post_attention_layernorm", gate = "mlp.gate_proj", up = "mlp.up_proj",
    act = "mlp.act_fn", down = "mlp.down_proj", mlp = "mlp",
}

/// What a layer's backward keeps: the residuals, the attention and [`Rest`].
type Saved = SavedBlock<Rest>;

/// One decoder layer (`model.layers.N`).
pub struct Layer {
    ln1: Tensor,
    q: ConstLinear,
    k: ConstLinear,
    v: ConstLinear,
    o: ConstLinear,
    ln2: Tensor,
    gate: ConstLinear,
    up: ConstLinear,
    down: ConstLinear,
    window: Option<usize>,
    names: Names,
}

/// What is the Llama family's own in a [`CausalLm`]: the config, the rotary table, the final
/// norm and whether any layer has a sliding window.
pub struct Llama {
    cfg: LlamaConfig,
    rope: Rope,
    norm: Tensor,
    window: Option<usize>,
}

/// Per-forward tensors shared by all layers.
pub struct Ctx {
    cos: Tensor,
    sin: Tensor,
    bias_full: Tensor,
    bias_window: Option<Tensor>,
}

impl Llama {
    /// Builds the model from an HF config and weights.
    pub fn build(args: &BuildArgs<'_>) -> std::result::Result<CausalLm<Self>, ModelError> {
        let cfg: LlamaConfig = causal::parse_config(args.model_type, args.config)?;
        let w = args.weights;
        let (d, hd, h, kv) = (
            cfg.hidden_size,
            cfg.head_dim(),
            cfg.num_attention_heads,
            cfg.kv_heads(),
        );
        let qkv_bias = cfg.attention_bias || args.model_type == "qwen2";
        let lin = |name: &str,
                   out: usize,
                   inp: usize,
                   bias: bool|
         -> std::result::Result<ConstLinear, ModelError> {
            let wt = w.get_shaped(&format!("{name}.weight"), &[out, inp])?;
            let b = if bias {
                Some(w.get_shaped(&format!("{name}.bias"), &[out])?)
            } else {
                None
            };
            Ok(ConstLinear::new(wt, b))
        };
        let embed = w.get_shaped("model.embed_tokens.weight", &[cfg.vocab_size, d])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let window = match args.model_type {
                "qwen2" if cfg.use_sliding_window && i >= cfg.max_window_layers.unwrap_or(0) => {
                    cfg.sliding_window
                }
                "mistral" => cfg.sliding_window,
                _ => None,
            };
            let im = cfg.intermediate_size;
            layers.push(Layer {
                ln1: w.get_shaped(&format!("{p}.input_layernorm.weight"), &[d])?,
                q: lin(&format!("{p}.self_attn.q_proj"), h * hd, d, qkv_bias)?,
                k: lin(&format!("{p}.self_attn.k_proj"), kv * hd, d, qkv_bias)?,
                v: lin(&format!("{p}.self_attn.v_proj"), kv * hd, d, qkv_bias)?,
                o: lin(
                    &format!("{p}.self_attn.o_proj"),
                    d,
                    h * hd,
                    cfg.attention_bias,
                )?,
                ln2: w.get_shaped(&format!("{p}.post_attention_layernorm.weight"), &[d])?,
                gate: lin(&format!("{p}.mlp.gate_proj"), im, d, cfg.mlp_bias)?,
                up: lin(&format!("{p}.mlp.up_proj"), im, d, cfg.mlp_bias)?,
                down: lin(&format!("{p}.mlp.down_proj"), d, im, cfg.mlp_bias)?,
                window,
                names: Names::new(format!("model.layers.{i}")),
            });
        }
        let head_w = match w.get_opt("lm_head.weight")? {
            Some(t) if !cfg.tie_word_embeddings => t,
            _ if cfg.tie_word_embeddings => embed.clone(),
            _ => w.get("lm_head.weight")?,
        };
        let spec = ModelSpec {
            model_type: args.model_type.to_string(),
            kind: ModelKind::DecoderOnly,
            vocab_size: cfg.vocab_size,
            hidden_size: d,
            num_layers: cfg.num_hidden_layers,
            encoder_layers: 0,
            num_heads: h,
            max_positions: cfg.max_position_embeddings,
            bos_token_id: args.special.bos,
            eos_token_ids: args.special.eos.clone(),
            pad_token_id: args.special.pad,
            decoder_start_token_id: None,
        };
        let arch = Self {
            rope: cfg.rope()?,
            norm: w.get_shaped("model.norm.weight", &[d])?,
            window: layers.iter().find_map(|l| l.window),
            cfg,
        };
        Ok(CausalLm {
            spec,
            arch,
            embed_tokens: embed,
            blocks: layers,
            lm_head: ConstLinear::new(head_w, None),
        })
    }
}

impl CausalArch for Llama {
    type Block = Layer;
    type Saved = Saved;
    type Ctx = Ctx;

    const EMBED_TAPS: &'static [&'static str] = &["model.embed_tokens"];
    const NORM_TAP: &'static str = "model.norm";

    /// No position embeddings: RoPE acts inside attention.
    fn embed_input(&self, embeds: Tensor, _: &Tensor, taps: &mut Taps) -> Result<Tensor> {
        taps.apply("model.embed_tokens", embeds)
    }

    fn ctx(&self, mask: &Tensor, n: usize, past: usize, dtype: DType, dev: &Device) -> Result<Ctx> {
        let pos = ops::positions_from_mask(mask, n)?;
        let (cos, sin) = self.rope.cos_sin(&pos, dtype, dev)?;
        Ok(Ctx {
            cos,
            sin,
            bias_full: ops::attention_bias(mask, n, past, true, dtype)?,
            bias_window: match self.window {
                Some(w) => Some(ops::causal_bias_window(mask, n, past, Some(w), dtype)?),
                None => None,
            },
        })
    }

    fn block(&self, l: &Layer, x: &Tensor, ctx: &Ctx, p: Pass<Saved>) -> Result<Tensor> {
        let Pass { taps, cache, save } = p;
        let n = &l.names;
        let (h, kv) = (self.cfg.num_attention_heads, self.cfg.kv_heads());
        let x_in = &taps.input(&n.block, x.clone())?;
        let x = x_in;
        let xn = taps.apply(&n.ln1, ops::rms_norm(x, &l.ln1, self.cfg.rms_norm_eps)?)?;
        let xn = taps.input(&n.attn, xn)?;
        let q = taps.apply(&n.q, l.q.forward(&xn)?)?;
        let k = taps.apply(&n.k, l.k.forward(&xn)?)?;
        let v = taps.apply(&n.v, l.v.forward(&xn)?)?;
        let q = ops::rope_half(&split_heads(&q, h)?, &ctx.cos, &ctx.sin)?;
        let k = ops::rope_half(&split_heads(&k, kv)?, &ctx.cos, &ctx.sin)?;
        let v = split_heads(&v, kv)?;
        let (k, v) = match cache {
            Some(c) => append_kv(c, k, v)?,
            None => (k, v),
        };
        let bias = match (&l.window, &ctx.bias_window) {
            (Some(_), Some(b)) => b,
            _ => &ctx.bias_full,
        };
        let scale = 1.0 / (self.cfg.head_dim() as f64).sqrt();
        let (out, probs) =
            ops::attention(&q, &k, &v, bias, scale, (taps, self.cfg.attention_dropout))?;
        taps.record_attention(&n.attn, &probs);
        let out = taps.apply(&n.o, l.o.forward(&merge_heads(&out)?)?)?;
        let out = taps.apply(&n.attn, out)?;
        let x = (x + out)?;
        let xn = taps.apply(&n.ln2, ops::rms_norm(&x, &l.ln2, self.cfg.rms_norm_eps)?)?;
        let xn = taps.input(&n.mlp, xn)?;
        let xg = taps.input(&n.gate, xn.clone())?;
        let gate = taps.apply(&n.gate, l.gate.forward(&xg)?)?;
        let g = taps.activation(&n.act, &self.cfg.hidden_act, &gate)?;
        let xu = taps.input(&n.up, xn)?;
        let u = taps.apply(&n.up, l.up.forward(&xu)?)?;
        let gu = taps.input(&n.down, (g * &u)?)?;
        let m = taps.apply(&n.down, l.down.forward(&gu)?)?;
        let m = taps.apply(&n.mlp, m)?;
        let out = taps.apply(&n.block, (&x + m)?)?;
        if let Some(save) = save {
            let rest = Rest {
                gate,
                up: u,
                cos: ctx.cos.clone(),
                sin: ctx.sin.clone(),
            };
            save.push(SavedBlock::new(x_in, &x, [&q, &k, &v, &probs], rest)?);
        }
        Ok(out)
    }

    fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        ops::rms_norm(x, &self.norm, self.cfg.rms_norm_eps)
    }
}

fn build(args: &BuildArgs<'_>) -> std::result::Result<Box<dyn Model>, ModelError> {
    Ok(Box::new(Llama::build(args)?))
}

inventory::submit! { Architecture { model_type: "llama", kind: ModelKind::DecoderOnly, build } }
inventory::submit! { Architecture { model_type: "mistral", kind: ModelKind::DecoderOnly, build } }
inventory::submit! { Architecture { model_type: "qwen2", kind: ModelKind::DecoderOnly, build } }
