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

use candle_core::{DType, Result, Tensor, D};
use serde::Deserialize;

use super::backward::{
    self, AttentionKind, DecoderBackward, PrefixBackward, SavedAttention, SharedForward, Streams,
};
use super::causal::{self, append_kv, merge_heads, split_heads};
use super::ops::{self, ConstLinear};
use super::registry::{Architecture, BuildArgs};
use super::{
    DecodeStart, DecodingState, ForwardInput, ForwardOutput, Model, ModelError, ModelKind,
    ModelSpec, Side, Taps,
};

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

struct Names {
    block: String,
    ln1: String,
    c_attn: String,
    c_proj: String,
    attn: String,
    ln2: String,
    c_fc: String,
    act: String,
    mlp_proj: String,
    mlp: String,
}

impl Names {
    fn new(i: usize) -> Self {
        let p = format!("transformer.h.{i}");
        let f = |s: &str| format!("{p}.{s}");
        Self {
            ln1: f("ln_1"),
            c_attn: f("attn.c_attn"),
            c_proj: f("attn.c_proj"),
            attn: f("attn"),
            ln2: f("ln_2"),
            c_fc: f("mlp.c_fc"),
            act: f("mlp.act"),
            mlp_proj: f("mlp.c_proj"),
            mlp: f("mlp"),
            block: p,
        }
    }

    fn all(&self) -> [&String; 10] {
        [
            &self.ln1,
            &self.c_attn,
            &self.c_proj,
            &self.attn,
            &self.ln2,
            &self.c_fc,
            &self.act,
            &self.mlp_proj,
            &self.mlp,
            &self.block,
        ]
    }
}

struct Norm {
    w: Tensor,
    b: Tensor,
}

struct Block {
    ln1: Norm,
    c_attn: ConstLinear,
    c_proj: ConstLinear,
    ln2: Norm,
    c_fc: ConstLinear,
    mlp_proj: ConstLinear,
    scale: f64,
    names: Names,
}

/// A GPT-2 causal LM.
pub struct Gpt2 {
    spec: ModelSpec,
    cfg: Gpt2Config,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: Norm,
    lm_head: ConstLinear,
}

impl Gpt2 {
    /// Builds the model from an HF config and weights.
    pub fn build(args: &BuildArgs<'_>) -> std::result::Result<Self, ModelError> {
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
                names: Names::new(i),
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
        Ok(Self {
            wpe: w.get_shaped(&format!("{pre}wpe.weight"), &[cfg.n_positions, d])?,
            ln_f: norm("ln_f")?,
            lm_head: ConstLinear::new(head, None),
            wte,
            blocks,
            spec,
            cfg,
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

    fn block(
        &self,
        blk: &Block,
        x: &Tensor,
        bias: &Tensor,
        taps: &mut Taps,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        save: Option<&mut Vec<BlockSaved>>,
    ) -> Result<Tensor> {
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
            save.push(BlockSaved {
                x_in: x_in.clone(),
                x_mid: x,
                attn: SavedAttention::new(AttentionKind::Causal, &q, &k, &v, &probs)?,
                fc,
            });
        }
        Ok(out)
    }
}

/// What one block's backward needs from the shared forward (`(rows, len, ...)` each).
pub struct BlockSaved {
    x_in: Tensor,
    x_mid: Tensor,
    attn: SavedAttention,
    /// The MLP's first projection, before the activation.
    fc: Tensor,
}

impl DecoderBackward for Gpt2 {
    type Saved = BlockSaved;

    fn head(&self) -> &ConstLinear {
        &self.lm_head
    }

    fn final_norm_backward(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        backward::layer_norm(x, &self.ln_f.w, self.cfg.layer_norm_epsilon, dy)
    }

    fn block_backward(
        &self,
        i: usize,
        s: &BlockSaved,
        streams: &Streams,
        dy: &Tensor,
    ) -> Result<Tensor> {
        let blk = &self.blocks[i];
        let eps = self.cfg.layer_norm_epsilon;
        let cut = |x: &Tensor, dim: usize| streams.gather(x, dim);
        let d_act = blk.mlp_proj.input_grad(dy)?;
        let d_fc = backward::activation(&self.cfg.activation_function, &cut(&s.fc, 1)?, &d_act)?;
        let dxn = blk.c_fc.input_grad(&d_fc)?;
        let dx_mid = (dy + backward::layer_norm(&cut(&s.x_mid, 1)?, &blk.ln2.w, eps, &dxn)?)?;
        let d_out = split_heads(&blk.c_proj.input_grad(&dx_mid)?, self.cfg.n_head)?;
        let (dq, dk, dv) = s.attn.backward(streams, blk.scale, &d_out)?;
        let dqkv = Tensor::cat(
            &[merge_heads(&dq)?, merge_heads(&dk)?, merge_heads(&dv)?],
            D::Minus1,
        )?;
        let dxn = blk.c_attn.input_grad(&dqkv)?;
        dx_mid + backward::layer_norm(&cut(&s.x_in, 1)?, &blk.ln1.w, eps, &dxn)?
    }
}

impl Model for Gpt2 {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn embed(&self, side: Side, ids: &Tensor) -> Result<Tensor> {
        causal::embed(&self.wte, side, ids)
    }

    fn forward(&self, input: &ForwardInput, taps: &mut Taps) -> Result<ForwardOutput> {
        let (_, t) = causal::check_input(&self.spec, input)?;
        let mask = &input.decoder.mask;
        let x = taps.apply("transformer.wte", input.decoder.embeds.clone())?;
        let pos = taps.apply(
            "transformer.wpe",
            self.positions(mask, t)?.to_dtype(x.dtype())?,
        )?;
        let mut x = taps.apply(
            "transformer.drop",
            taps.dropout((x + pos)?, self.cfg.embd_pdrop)?,
        )?;
        taps.record_hidden("transformer.drop", &x);
        let bias = ops::attention_bias(mask, t, 0, true, x.dtype())?;
        let last = self.blocks.len().saturating_sub(1);
        for (i, blk) in self.blocks.iter().enumerate() {
            x = self.block(blk, &x, &bias, taps, None, None)?;
            if i < last {
                taps.record_hidden(&blk.names.block, &x);
            }
        }
        let x = taps.apply("transformer.ln_f", self.ln(&x, &self.ln_f)?)?;
        taps.record_hidden("transformer.ln_f", &x);
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
        let run = || -> Result<Box<dyn PrefixBackward + '_>> {
            let (rows, t, _) = embeds.dims3()?;
            let mask = Tensor::ones((rows, t), DType::U8, embeds.device())?;
            let pos = self.positions(&mask, t)?.to_dtype(embeds.dtype())?;
            // The first block's input gradient is the embeddings' gradient (x = embeds + pos).
            let mut x = (embeds.detach() + pos)?;
            let bias = ops::attention_bias(&mask, t, 0, true, x.dtype())?;
            let mut saved = Vec::with_capacity(self.blocks.len());
            let mut taps = Taps::none();
            for blk in &self.blocks {
                x = self.block(blk, &x, &bias, &mut taps, None, Some(&mut saved))?;
            }
            let normed = self.ln(&x, &self.ln_f)?;
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
        let mut v: Vec<String> = ["transformer.wte", "transformer.wpe", "transformer.drop"]
            .map(String::from)
            .to_vec();
        for b in &self.blocks {
            v.extend(b.names.all().iter().map(|s| s.to_string()));
        }
        v.extend(["transformer.ln_f".to_string(), "lm_head".to_string()]);
        v
    }

    /// KV-cached decoding: the forward's ops on the new positions, no graph.
    fn start_decoding(&self, start: &DecodeStart) -> Result<Box<dyn DecodingState + '_>> {
        let n_layers = self.blocks.len();
        causal::start_decoding(&self.spec, n_layers, start, |ids, mask, past, caches| {
            let n = ids.dim(1)?;
            let x = causal::lookup(&self.wte, ids)?;
            let mut x = (&x + self.positions(mask, n)?)?;
            let bias = ops::attention_bias(mask, n, past, true, x.dtype())?;
            let mut taps = Taps::none();
            for (blk, c) in self.blocks.iter().zip(caches.iter_mut()) {
                x = self.block(blk, &x, &bias, &mut taps, Some(c), None)?;
            }
            let x = self.ln(&causal::last_position(&x)?, &self.ln_f)?;
            self.lm_head.forward(&x)?.to_dtype(DType::F32)
        })
    }
}

fn build(args: &BuildArgs<'_>) -> std::result::Result<Box<dyn Model>, ModelError> {
    Ok(Box::new(Gpt2::build(args)?))
}

inventory::submit! { Architecture { model_type: "gpt2", kind: ModelKind::DecoderOnly, build } }
