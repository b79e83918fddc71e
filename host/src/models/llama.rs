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

use candle_core::{DType, Device, Result, Tensor};
use serde::Deserialize;

use super::backward::{
    self, AttentionKind, DecoderBackward, PrefixBackward, SavedAttention, SharedForward, Streams,
};
use super::causal::{self, append_kv, merge_heads, split_heads};
use super::ops::{self, ConstLinear, Rope};
use super::registry::{Architecture, BuildArgs};
use super::{
    DecodeStart, DecodingState, ForwardInput, ForwardOutput, Model, ModelError, ModelKind,
    ModelSpec, Side, Taps,
};

fn default_act() -> String {
    "silu".into()
}
fn default_max_pos() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10000.0
}

/// HF `LlamaConfig` / `MistralConfig` / `Qwen2Config` (the fields this model uses).
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (GQA); defaults to the query heads.
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    pub head_dim: Option<usize>,
    /// MLP activation (`silu`).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Context length.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base (transformers v5 configs keep it in `rope_parameters` instead).
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// RoPE scaling (`linear`, `llama3`), if any.
    pub rope_scaling: Option<serde_json::Value>,
    /// transformers v5 RoPE parameters (`rope_theta`, `rope_type`, ...), if any.
    pub rope_parameters: Option<serde_json::Value>,
    /// Biases on q/k/v/o (Llama); Qwen2 always has q/k/v biases.
    #[serde(default)]
    pub attention_bias: bool,
    /// Dropout of the attention probabilities (MC dropout only).
    #[serde(default)]
    pub attention_dropout: f64,
    /// Biases on the MLP projections.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Whether `lm_head` shares the embedding table.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Sliding attention window (Mistral; Qwen2 when `use_sliding_window`).
    pub sliding_window: Option<usize>,
    /// Qwen2: whether the sliding window is on.
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Qwen2: layers below this index use full attention.
    pub max_window_layers: Option<usize>,
}

impl LlamaConfig {
    fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The rotary table (plain, `linear` or `llama3` scaling).
    fn rope(&self) -> std::result::Result<Rope, ModelError> {
        let bad = |msg: String| ModelError::BadConfig {
            path: "config.json".into(),
            msg,
        };
        let params = self.rope_parameters.as_ref().or(self.rope_scaling.as_ref());
        let theta = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta")?.as_f64())
            .unwrap_or(self.rope_theta);
        let base = Rope::new(self.head_dim(), theta);
        let Some(p) = params else { return Ok(base) };
        let kind = p
            .get("rope_type")
            .or_else(|| p.get("type"))
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let num = |k: &str| p.get(k).and_then(|v| v.as_f64());
        match kind {
            "default" => Ok(base),
            "linear" => {
                let f = num("factor")
                    .ok_or_else(|| bad("rope linear scaling without factor".into()))?;
                Ok(Rope::from_inv_freq(
                    base.inv_freq().iter().map(|x| x / f).collect(),
                ))
            }
            "llama3" => {
                let get =
                    |k: &str| num(k).ok_or_else(|| bad(format!("llama3 rope scaling without {k}")));
                let (f, lo, hi, orig) = (
                    get("factor")?,
                    get("low_freq_factor")?,
                    get("high_freq_factor")?,
                    get("original_max_position_embeddings")?,
                );
                let (lo_wl, hi_wl) = (orig / lo, orig / hi);
                let inv = base
                    .inv_freq()
                    .iter()
                    .map(|&x| {
                        let wl = 2.0 * std::f64::consts::PI / x;
                        if wl < hi_wl {
                            x
                        } else if wl > lo_wl {
                            x / f
                        } else {
                            let s = (orig / wl - lo) / (hi - lo);
                            (1.0 - s) * x / f + s * x
                        }
                    })
                    .collect();
                Ok(Rope::from_inv_freq(inv))
            }
            other => Err(bad(format!(
                "rope scaling type \"{other}\" is not supported"
            ))),
        }
    }
}

struct Names {
    block: String,
    ln1: String,
    q: String,
    k: String,
    v: String,
    o: String,
    attn: String,
    ln2: String,
    gate: String,
    up: String,
    act: String,
    down: String,
    mlp: String,
}

impl Names {
    fn new(i: usize) -> Self {
        let p = format!("model.layers.{i}");
        let f = |s: &str| format!("{p}.{s}");
        Self {
            ln1: f("input_layernorm"),
            q: f("self_attn.q_proj"),
            k: f("self_attn.k_proj"),
            v: f("self_attn.v_proj"),
            o: f("self_attn.o_proj"),
            attn: f("self_attn"),
            ln2: f("post_attention_layernorm"),
            gate: f("mlp.gate_proj"),
            up: f("mlp.up_proj"),
            act: f("mlp.act_fn"),
            down: f("mlp.down_proj"),
            mlp: f("mlp"),
            block: p,
        }
    }

    fn all(&self) -> [&String; 13] {
        [
            &self.ln1,
            &self.q,
            &self.k,
            &self.v,
            &self.o,
            &self.attn,
            &self.ln2,
            &self.gate,
            &self.up,
            &self.act,
            &self.down,
            &self.mlp,
            &self.block,
        ]
    }
}

struct Layer {
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

/// A Llama-family causal LM.
pub struct Llama {
    spec: ModelSpec,
    cfg: LlamaConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: ConstLinear,
    rope: Rope,
}

/// Per-forward tensors shared by all layers.
struct Ctx {
    cos: Tensor,
    sin: Tensor,
    bias_full: Tensor,
    bias_window: Option<Tensor>,
}

impl Llama {
    /// Builds the model from an HF config and weights.
    pub fn build(args: &BuildArgs<'_>) -> std::result::Result<Self, ModelError> {
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
                names: Names::new(i),
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
        Ok(Self {
            rope: cfg.rope()?,
            norm: w.get_shaped("model.norm.weight", &[d])?,
            lm_head: ConstLinear::new(head_w, None),
            embed,
            layers,
            spec,
            cfg,
        })
    }

    fn ctx(
        &self,
        mask: &Tensor,
        n: usize,
        offset: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<Ctx> {
        let pos = ops::positions_from_mask(mask, n)?;
        let (cos, sin) = self.rope.cos_sin(&pos, dtype, dev)?;
        let window = self.layers.iter().find_map(|l| l.window);
        Ok(Ctx {
            cos,
            sin,
            bias_full: ops::attention_bias(mask, n, offset, true, dtype)?,
            bias_window: match window {
                Some(w) => Some(ops::causal_bias_window(mask, n, offset, Some(w), dtype)?),
                None => None,
            },
        })
    }

    /// One decoder layer; `cache` holds past keys/values when decoding.
    fn layer(
        &self,
        l: &Layer,
        x: &Tensor,
        ctx: &Ctx,
        taps: &mut Taps,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        save: Option<&mut Vec<LayerSaved>>,
    ) -> Result<Tensor> {
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
            save.push(LayerSaved {
                x_in: x_in.clone(),
                x_mid: x,
                attn: SavedAttention::new(AttentionKind::Causal, &q, &k, &v, &probs)?,
                gate,
                up: u,
                cos: ctx.cos.clone(),
                sin: ctx.sin.clone(),
            });
        }
        Ok(out)
    }
}

/// What one layer's backward needs from the shared forward (`(rows, len, ...)` each).
pub struct LayerSaved {
    x_in: Tensor,
    x_mid: Tensor,
    attn: SavedAttention,
    /// MLP gate before the activation, and the up projection.
    gate: Tensor,
    up: Tensor,
    /// The rotary table `(rows, 1, len, head_dim / 2)`.
    cos: Tensor,
    sin: Tensor,
}

impl DecoderBackward for Llama {
    type Saved = LayerSaved;

    fn head(&self) -> &ConstLinear {
        &self.lm_head
    }

    fn final_norm_backward(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        backward::rms_norm(x, &self.norm, self.cfg.rms_norm_eps, dy)
    }

    fn block_backward(
        &self,
        i: usize,
        s: &LayerSaved,
        streams: &Streams,
        dy: &Tensor,
    ) -> Result<Tensor> {
        let l = &self.layers[i];
        let eps = self.cfg.rms_norm_eps;
        let cut = |x: &Tensor, dim: usize| streams.gather(x, dim);
        let dgu = l.down.input_grad(dy)?;
        let (dg, du) = backward::swiglu(&cut(&s.gate, 1)?, &cut(&s.up, 1)?, &dgu)?;
        let dxn = (l.gate.input_grad(&dg)? + l.up.input_grad(&du)?)?;
        let dx_mid = (dy + backward::rms_norm(&cut(&s.x_mid, 1)?, &l.ln2, eps, &dxn)?)?;
        let d_out = split_heads(&l.o.input_grad(&dx_mid)?, self.cfg.num_attention_heads)?;
        let scale = 1.0 / (self.cfg.head_dim() as f64).sqrt();
        let (dq, dk, dv) = s.attn.backward(streams, scale, &d_out)?;
        let (cos, sin) = (cut(&s.cos, 2)?, cut(&s.sin, 2)?);
        let dq = merge_heads(&backward::rope_half(&dq, &cos, &sin)?)?;
        let dk = merge_heads(&backward::rope_half(&dk, &cos, &sin)?)?;
        let dxn = ((l.q.input_grad(&dq)? + l.k.input_grad(&dk)?)?
            + l.v.input_grad(&merge_heads(&dv)?)?)?;
        dx_mid + backward::rms_norm(&cut(&s.x_in, 1)?, &l.ln1, eps, &dxn)?
    }
}

impl Model for Llama {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn embed(&self, side: Side, ids: &Tensor) -> Result<Tensor> {
        causal::embed(&self.embed, side, ids)
    }

    fn forward(&self, input: &ForwardInput, taps: &mut Taps) -> Result<ForwardOutput> {
        let (_, t) = causal::check_input(&self.spec, input)?;
        let x = &input.decoder.embeds;
        let ctx = self.ctx(&input.decoder.mask, t, 0, x.dtype(), x.device())?;
        let mut x = taps.apply("model.embed_tokens", x.clone())?;
        taps.record_hidden("model.embed_tokens", &x);
        let last = self.layers.len().saturating_sub(1);
        for (i, l) in self.layers.iter().enumerate() {
            x = self.layer(l, &x, &ctx, taps, None, None)?;
            if i < last {
                taps.record_hidden(&l.names.block, &x);
            }
        }
        let x = taps.apply(
            "model.norm",
            ops::rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)?,
        )?;
        taps.record_hidden("model.norm", &x);
        let x = causal::select_positions(&x, &input.logits_at)?;
        let logits = taps.apply("lm_head", self.lm_head.forward(&x)?)?;
        Ok(ForwardOutput { logits })
    }

    fn prefix_forward(
        &self,
        source: Option<&Tensor>,
        embeds: &Tensor,
    ) -> Option<Result<Box<dyn PrefixBackward + '_>>> {
        if source.is_some() {
            return None;
        }
        // The backward knows SiLU only (every Llama / Qwen2 / Mistral checkpoint).
        if !matches!(self.cfg.hidden_act.as_str(), "silu" | "swish") {
            return None;
        }
        let run = || -> Result<Box<dyn PrefixBackward + '_>> {
            let (rows, t, _) = embeds.dims3()?;
            let mask = Tensor::ones((rows, t), DType::U8, embeds.device())?;
            let ctx = self.ctx(&mask, t, 0, embeds.dtype(), embeds.device())?;
            let mut saved = Vec::with_capacity(self.layers.len());
            let mut taps = Taps::none();
            let mut x = embeds.detach();
            for l in &self.layers {
                x = self.layer(l, &x, &ctx, &mut taps, None, Some(&mut saved))?;
            }
            let normed = ops::rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)?;
            Ok(Box::new(SharedForward {
                model: self,
                blocks: saved,
                last: x,
                normed,
            }))
        };
        Some(run())
    }

    fn tap_names(&self) -> Vec<String> {
        let mut v = vec!["model.embed_tokens".to_string()];
        for l in &self.layers {
            v.extend(l.names.all().iter().map(|s| s.to_string()));
        }
        v.extend(["model.norm".to_string(), "lm_head".to_string()]);
        v
    }

    /// KV-cached decoding: the forward's ops on the new positions, no graph.
    fn start_decoding(&self, start: &DecodeStart) -> Result<Box<dyn DecodingState + '_>> {
        let n_layers = self.layers.len();
        causal::start_decoding(&self.spec, n_layers, start, |ids, mask, past, caches| {
            let mut x = causal::lookup(&self.embed, ids)?.to_dtype(self.embed.dtype())?;
            let ctx = self.ctx(mask, ids.dim(1)?, past, x.dtype(), x.device())?;
            let mut taps = Taps::none();
            for (l, c) in self.layers.iter().zip(caches.iter_mut()) {
                x = self.layer(l, &x, &ctx, &mut taps, Some(c), None)?;
            }
            let x = causal::last_position(&x)?;
            let x = ops::rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)?;
            self.lm_head.forward(&x)?.to_dtype(DType::F32)
        })
    }
}

fn build(args: &BuildArgs<'_>) -> std::result::Result<Box<dyn Model>, ModelError> {
    Ok(Box::new(Llama::build(args)?))
}

inventory::submit! { Architecture { model_type: "llama", kind: ModelKind::DecoderOnly, build } }
inventory::submit! { Architecture { model_type: "mistral", kind: ModelKind::DecoderOnly, build } }
inventory::submit! { Architecture { model_type: "qwen2", kind: ModelKind::DecoderOnly, build } }
