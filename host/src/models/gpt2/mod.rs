//! GPT-2 (`gpt2`): learned positions, pre-LayerNorm blocks, fused `c_attn`, gelu-tanh MLP, tied
//! head.
//!
//! Weight names mirror HF: `transformer.wte.weight`, `transformer.wpe.weight`,
//! `transformer.h.N.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}.{weight,bias}`,
//! `transformer.ln_f.*` (the `transformer.` prefix is optional, as in the original OpenAI
//! checkpoints). `Conv1D` weights are stored `(in, out)` and transposed once at load time.
//! Taps: `transformer.wte`, `transformer.wpe`, `transformer.drop` (their sum),
//! `transformer.h.N.{ln_1, attn.c_attn, attn.c_proj, attn, ln_2, mlp.c_fc, mlp.act, mlp.c_proj,
//! mlp}`, `transformer.h.N`, `transformer.ln_f`, `lm_head`. Hidden states: `transformer.drop`,
//! blocks `0..L-1`, then the last block after `transformer.ln_f`.

mod backward;

use candle_core::{DType, Device, Result, Tensor, D};
use serde::Deserialize;

use super::causal::{
    self, append_kv, merge_heads, split_heads, CausalArch, CausalLm, Pass, SavedBlock,
};
use super::ops::{self, ConstLinear};
use super::registry::{Architecture, BuildArgs};
use super::taps::module_paths;
use super::{Model, ModelError, ModelKind, ModelSpec, Taps};

fn default_act() -> String {
    "gelu_new".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

/// HF `GPT2Config` (the fields this model uses).
#[derive(Debug, Clone, Deserialize)]
pub struct Gpt2Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Context length (size of the position table).
    pub n_positions: usize,
    /// Model width.
    pub n_embd: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// MLP width (default `4 * n_embd`).
    pub n_inner: Option<usize>,
    /// MLP activation.
    #[serde(default = "default_act")]
    pub activation_function: String,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// Divide scores by `sqrt(head_dim)`.
    #[serde(default = "yes")]
    pub scale_attn_weights: bool,
    /// Also divide scores by `layer_index + 1`.
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// Dropout after the embeddings (MC dropout only).
    #[serde(default = "default_pdrop")]
    pub embd_pdrop: f64,
    /// Dropout of the attention probabilities (MC dropout only).
    #[serde(default = "default_pdrop")]
    pub attn_pdrop: f64,
    /// Dropout of the attention and MLP outputs (MC dropout only).
    #[serde(default = "default_pdrop")]
    pub resid_pdrop: f64,
}

fn default_pdrop() -> f64 {
    0.1
}

module_paths! { Block => Names:
    ln1 = "ln_1", c_attn = "attn.c_attn", c_proj = "attn.c_proj", attn = "attn", ln2 = "ln_2",
    c_fc = "mlp.c_fc", act = "mlp.act", mlp_proj = "mlp.c_proj", mlp = "mlp",
}

struct Norm {
    w: Tensor,
    b: Tensor,
}

/// What a block's backward keeps: the residuals, the attention and the MLP's first projection
/// (before the activation).
type Saved = SavedBlock<Tensor>;

/// One GPT-2 block (`transformer.h.N`).
pub struct Block {
    ln1: Norm,
    c_attn: ConstLinear,
    c_proj: ConstLinear,
    ln2: Norm,
    c_fc: ConstLinear,
    mlp_proj: ConstLinear,
    scale: f64,
    names: Names,
}

/// What is GPT-2's own in a [`CausalLm`]: the config, the position table and `ln_f`.
pub struct Gpt2 {
    cfg: Gpt2Config,
    wpe: Tensor,
    ln_f: Norm,
}

impl Gpt2 {
    /// Builds the model from an HF config and weights.
    pub fn build(args: &BuildArgs<'_>) -> std::result::Result<CausalLm<Self>, ModelError> {
        let cfg: Gpt2Config = causal::parse_config(args.model_type, args.config)?;
        let w = args.weights;
        let pre = if w.contains("transformer.wte.weight") {
            "transformer."
        } else {
            ""
        };
        let d = cfg.n_embd;
        let inner = cfg.n_inner.unwrap_or(4 * d);
        let conv =
            |name: &str, inp: usize, out: usize| -> std::result::Result<ConstLinear, ModelError> {
                let wt = w.get_shaped(&format!("{pre}{name}.weight"), &[inp, out])?;
                let b = w.get_shaped(&format!("{pre}{name}.bias"), &[out])?;
                Ok(ConstLinear::from_conv1d(&wt, Some(b))?)
            };
        let norm = |name: &str| -> std::result::Result<Norm, ModelError> {
            Ok(Norm {
                w: w.get_shaped(&format!("{pre}{name}.weight"), &[d])?,
                b: w.get_shaped(&format!("{pre}{name}.bias"), &[d])?,
            })
        };
        let head_dim = d / cfg.n_head.max(1);
        let mut blocks = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = format!("h.{i}");
            let mut scale = if cfg.scale_attn_weights {
                1.0 / (head_dim as f64).sqrt()
            } else {
                1.0
            };
            if cfg.scale_attn_by_inverse_layer_idx {
                scale /= (i + 1) as f64;
            }
            blocks.push(Block {
                ln1: norm(&format!("{p}.ln_1"))?,
                c_attn: conv(&format!("{p}.attn.c_attn"), d, 3 * d)?,
                c_proj: conv(&format!("{p}.attn.c_proj"), d, d)?,
                ln2: norm(&format!("{p}.ln_2"))?,
                c_fc: conv(&format!("{p}.mlp.c_fc"), d, inner)?,
                mlp_proj: conv(&format!("{p}.mlp.c_proj"), inner, d)?,
                scale,
                names: Names::new(format!("transformer.h.{i}")),
            });
        }
        let wte = w.get_shaped(&format!("{pre}wte.weight"), &[cfg.vocab_size, d])?;
        let head = w.get_opt("lm_head.weight")?.unwrap_or_else(|| wte.clone());
        let spec = ModelSpec {
            model_type: args.model_type.to_string(),
            kind: ModelKind::DecoderOnly,
            vocab_size: cfg.vocab_size,
            hidden_size: d,
            num_layers: cfg.n_layer,
            encoder_layers: 0,
            num_heads: cfg.n_head,
            max_positions: cfg.n_positions,
            bos_token_id: args.special.bos,
            eos_token_ids: args.special.eos.clone(),
            pad_token_id: args.special.pad,
            decoder_start_token_id: None,
        };
        let arch = Self {
            wpe: w.get_shaped(&format!("{pre}wpe.weight"), &[cfg.n_positions, d])?,
            ln_f: norm("ln_f")?,
            cfg,
        };
        Ok(CausalLm {
            spec,
            arch,
            embed_tokens: wte,
            blocks,
            lm_head: ConstLinear::new(head, None),
        })
    }

    fn ln(&self, x: &Tensor, n: &Norm) -> Result<Tensor> {
        ops::layer_norm(x, &n.w, Some(&n.b), self.cfg.layer_norm_epsilon)
    }

    /// Position embeddings `(b, n, d)` for the last `n` positions of `mask`.
    fn positions(&self, mask: &Tensor, n: usize) -> Result<Tensor> {
        let pos = ops::positions_from_mask(mask, n)?;
        let b = pos.len();
        let flat: Vec<u32> = pos.into_iter().flatten().collect();
        let idx = Tensor::from_vec(flat, (b, n), self.wpe.device())?;
        causal::lookup(&self.wpe, &idx)
    }
}

impl CausalArch for Gpt2 {
    type Block = Block;
    type Saved = Saved;
    /// The attention bias.
    type Ctx = Tensor;

    const EMBED_TAPS: &'static [&'static str] =
        &["transformer.wte", "transformer.wpe", "transformer.drop"];
    const NORM_TAP: &'static str = "transformer.ln_f";

    fn embed_input(&self, embeds: Tensor, mask: &Tensor, taps: &mut Taps) -> Result<Tensor> {
        let x = taps.apply("transformer.wte", embeds)?;
        let pos = self.positions(mask, x.dim(1)?)?.to_dtype(x.dtype())?;
        let pos = taps.apply("transformer.wpe", pos)?;
        let x = taps.dropout((x + pos)?, self.cfg.embd_pdrop)?;
        taps.apply("transformer.drop", x)
    }

    fn ctx(&self, mask: &Tensor, n: usize, past: usize, dt: DType, _: &Device) -> Result<Tensor> {
        ops::attention_bias(mask, n, past, true, dt)
    }

    fn block(&self, blk: &Block, x: &Tensor, bias: &Tensor, p: Pass<Saved>) -> Result<Tensor> {
        let Pass { taps, cache, save } = p;
        let n = &blk.names;
        let d = self.cfg.n_embd;
        let h = self.cfg.n_head;
        let x_in = &taps.input(&n.block, x.clone())?;
        let x = x_in;
        let xn = taps.apply(&n.ln1, self.ln(x, &blk.ln1)?)?;
        let xn = taps.input(&n.attn, xn)?;
        let qkv = taps.apply(&n.c_attn, blk.c_attn.forward(&xn)?)?;
        let q = split_heads(&qkv.narrow(D::Minus1, 0, d)?, h)?;
        let k = split_heads(&qkv.narrow(D::Minus1, d, d)?, h)?;
        let v = split_heads(&qkv.narrow(D::Minus1, 2 * d, d)?, h)?;
        let (k, v) = match cache {
            Some(c) => append_kv(c, k, v)?,
            None => (k, v),
        };
        let (out, probs) =
            ops::attention(&q, &k, &v, bias, blk.scale, (taps, self.cfg.attn_pdrop))?;
        taps.record_attention(&n.attn, &probs);
        let out = taps.apply(&n.c_proj, blk.c_proj.forward(&merge_heads(&out)?)?)?;
        let out = taps.apply(&n.attn, taps.dropout(out, self.cfg.resid_pdrop)?)?;
        let x = (x + out)?;
        let xn = taps.apply(&n.ln2, self.ln(&x, &blk.ln2)?)?;
        let xn = taps.input(&n.mlp, xn)?;
        let xn = taps.input(&n.c_fc, xn)?;
        let fc = taps.apply(&n.c_fc, blk.c_fc.forward(&xn)?)?;
        let m = taps.activation(&n.act, &self.cfg.activation_function, &fc)?;
        let m = taps.input(&n.mlp_proj, m)?;
        let m = taps.apply(&n.mlp_proj, blk.mlp_proj.forward(&m)?)?;
        let m = taps.apply(&n.mlp, taps.dropout(m, self.cfg.resid_pdrop)?)?;
        let out = taps.apply(&n.block, (&x + m)?)?;
        if let Some(save) = save {
            save.push(SavedBlock::new(x_in, &x, [&q, &k, &v, &probs], fc)?);
        }
        Ok(out)
    }

    fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        self.ln(x, &self.ln_f)
    }
}

fn build(args: &BuildArgs<'_>) -> std::result::Result<Box<dyn Model>, ModelError> {
    Ok(Box::new(Gpt2::build(args)?))
}

inventory::submit! { Architecture { model_type: "gpt2", kind: ModelKind::DecoderOnly, build } }
