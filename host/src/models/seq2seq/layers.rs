//! Layers of the BART family (BART, mBART, Marian): attention, feed-forward, and one layer type
//! for both stacks (decoder layers add cross-attention).
//!
//! Every layer is built from the composite ops of [`crate::models::ops`], so the whole forward is
//! differentiable. The same forward serves hooks, KV-cached decoding and the shared forward of
//! the hand-written backward ([`Pass`]): with `save`, a layer keeps what `backward.rs` reads.
//! Tap names are precomputed HF module paths ([`LayerNames`]).

use candle_core::{Result, Tensor};

use crate::models::backward::{AttentionKind, SavedAttention};
use crate::models::causal::{append_kv, merge_heads, split_heads, Pass};
use crate::models::ops::{self, ConstLinear};
use crate::models::Taps;

/// A LayerNorm with weight and bias (`nn.LayerNorm`, eps 1e-5 in the BART family).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// `(d,)` weight.
    pub w: Tensor,
    /// `(d,)` bias.
    pub b: Tensor,
    /// Epsilon added to the variance.
    pub eps: f64,
}

impl LayerNorm {
    /// Normalises over the last dimension (differentiable).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::layer_norm(x, &self.w, Some(&self.b), self.eps)
    }
}

/// HF module paths of one layer, built once so that the forward does not format strings.
#[derive(Debug, Clone)]
pub struct LayerNames {
    /// The layer itself (`model.encoder.layers.N`).
    pub layer: String,
    /// Self-attention module and its projections.
    pub self_attn: AttnNames,
    /// `...self_attn_layer_norm`.
    pub self_attn_ln: String,
    /// Cross-attention module (`...encoder_attn`; decoder layers only).
    pub cross_attn: AttnNames,
    /// `...encoder_attn_layer_norm` (decoder layers only).
    pub cross_attn_ln: String,
    /// `...fc1`.
    pub fc1: String,
    /// `...activation_fn`.
    pub act: String,
    /// `...fc2`.
    pub fc2: String,
    /// `...final_layer_norm`.
    pub final_ln: String,
}

/// HF module paths of one attention module.
#[derive(Debug, Clone)]
pub struct AttnNames {
    /// The module (its output is the `out_proj` output).
    pub module: String,
    /// `q_proj`, `k_proj`, `v_proj`, `out_proj`.
    pub q: String,
    /// See [`AttnNames::q`].
    pub k: String,
    /// See [`AttnNames::q`].
    pub v: String,
    /// See [`AttnNames::q`].
    pub o: String,
}

impl AttnNames {
    /// BART's names: `{module}.{q,k,v}_proj`, `{module}.out_proj`.
    fn new(module: String) -> Self {
        Self::with(module, ["q_proj", "k_proj", "v_proj", "out_proj"])
    }

    /// `{module}.{q}`, ... for the projections' own names (T5: `q`, `k`, `v`, `o`).
    pub fn with(module: String, [q, k, v, o]: [&str; 4]) -> Self {
        Self {
            q: format!("{module}.{q}"),
            k: format!("{module}.{k}"),
            v: format!("{module}.{v}"),
            o: format!("{module}.{o}"),
            module,
        }
    }

    /// The module and its projections.
    pub fn all(&self) -> [&String; 5] {
        [&self.module, &self.q, &self.k, &self.v, &self.o]
    }
}

impl LayerNames {
    /// Names of layer `i` of `stack` (`model.encoder` or `model.decoder`).
    pub fn new(stack: &str, i: usize) -> Self {
        let layer = format!("{stack}.layers.{i}");
        Self {
            self_attn: AttnNames::new(format!("{layer}.self_attn")),
            self_attn_ln: format!("{layer}.self_attn_layer_norm"),
            cross_attn: AttnNames::new(format!("{layer}.encoder_attn")),
            cross_attn_ln: format!("{layer}.encoder_attn_layer_norm"),
            fc1: format!("{layer}.fc1"),
            act: format!("{layer}.activation_fn"),
            fc2: format!("{layer}.fc2"),
            final_ln: format!("{layer}.final_layer_norm"),
            layer,
        }
    }

    /// Every tap name of the layer (`cross` for decoder layers).
    pub fn all(&self, cross: bool) -> Vec<String> {
        let mut v = vec![self.layer.clone()];
        v.extend(self.self_attn.all().into_iter().cloned());
        v.push(self.self_attn_ln.clone());
        if cross {
            v.extend(self.cross_attn.all().into_iter().cloned());
            v.push(self.cross_attn_ln.clone());
        }
        v.extend([&self.fc1, &self.act, &self.fc2, &self.final_ln].map(String::clone));
        v
    }
}

/// Multi-head attention (`BartAttention`, with biased projections; also T5's, without biases and
/// score scaling).
#[derive(Debug, Clone)]
pub struct Attention {
    /// Projections `(d, d)` with biases.
    pub q: ConstLinear,
    /// See [`Attention::q`].
    pub k: ConstLinear,
    /// See [`Attention::q`].
    pub v: ConstLinear,
    /// See [`Attention::q`].
    pub o: ConstLinear,
    /// Number of heads.
    pub heads: usize,
    /// Score scale (`1 / sqrt(head_dim)`; 1 in T5).
    pub scale: f64,
    /// Dropout of the attention probabilities (MC dropout only).
    pub dropout: f64,
}

/// An attention's per-head `[q, k, v, probs]`, as [`SavedAttention::new`] takes them.
pub type AttnParts = [Tensor; 4];

impl Attention {
    /// Keys and values of `x`, split into heads.
    pub fn kv(&self, x: &Tensor, names: &AttnNames, taps: &mut Taps) -> Result<(Tensor, Tensor)> {
        let k = taps.apply(&names.k, self.k.forward(x)?)?;
        let v = taps.apply(&names.v, self.v.forward(x)?)?;
        Ok((
            split_heads(&k, self.heads)?.contiguous()?,
            split_heads(&v, self.heads)?.contiguous()?,
        ))
    }

    /// Attends from `x` `(b, q, d)` to the given keys/values; records the probabilities.
    pub fn attend(
        &self,
        x: &Tensor,
        (k, v): (Tensor, Tensor),
        bias: &Tensor,
        names: &AttnNames,
        taps: &mut Taps,
    ) -> Result<(Tensor, AttnParts)> {
        let q = taps.apply(&names.q, self.q.forward(x)?)?;
        let q = split_heads(&q, self.heads)?.contiguous()?;
        let (out, probs) = ops::attention(&q, &k, &v, bias, self.scale, (taps, self.dropout))?;
        taps.record_attention(&names.module, &probs);
        let out = taps.apply(&names.o, self.o.forward(&merge_heads(&out)?)?)?;
        Ok((taps.apply(&names.module, out)?, [q, k, v, probs]))
    }
}

/// Feed-forward block: `fc2(act(fc1(x)))`.
#[derive(Debug, Clone)]
pub struct FeedForward {
    /// `(ffn, d)` input projection.
    pub fc1: ConstLinear,
    /// `(d, ffn)` output projection.
    pub fc2: ConstLinear,
    /// HF activation name (`activation_function`).
    pub act: String,
    /// Dropout after the activation (MC dropout only).
    pub activation_dropout: f64,
}

impl FeedForward {
    /// The output and `fc1`'s output (the activation's input, for the backward).
    fn forward(&self, x: &Tensor, n: &LayerNames, taps: &mut Taps) -> Result<(Tensor, Tensor)> {
        let x = taps.input(&n.fc1, x.clone())?;
        let pre = taps.apply(&n.fc1, self.fc1.forward(&x)?)?;
        let h = taps.activation(&n.act, &self.act, &pre)?;
        let h = taps.dropout(h, self.activation_dropout)?;
        let h = taps.input(&n.fc2, h)?;
        Ok((taps.apply(&n.fc2, self.fc2.forward(&h)?)?, pre))
    }
}

/// What a residual sub-block keeps for the backward: its LayerNorm's input (pre-norm: the block
/// input; post-norm: the residual sum) and what the sub-block itself keeps.
pub struct SavedResidual<T> {
    /// The LayerNorm's input.
    pub ln_in: Tensor,
    /// The sub-block's own saved tensors.
    pub inner: T,
}

/// A residual sub-block with its LayerNorm: pre-norm (mBART) `x + f(ln(x))`, or post-norm
/// (BART, Marian) `ln(x + f(x))`.
fn residual<T>(
    x: &Tensor,
    (ln, ln_name): (&LayerNorm, &str),
    pre_norm: bool,
    dropout: f64,
    taps: &mut Taps,
    f: impl FnOnce(&Tensor, &mut Taps) -> Result<(Tensor, T)>,
) -> Result<(Tensor, SavedResidual<T>)> {
    if pre_norm {
        let h = taps.apply(ln_name, ln.forward(x)?)?;
        let (out, inner) = f(&h, taps)?;
        let ln_in = x.clone();
        Ok((
            (x + taps.dropout(out, dropout)?)?,
            SavedResidual { ln_in, inner },
        ))
    } else {
        let (out, inner) = f(x, taps)?;
        let ln_in = (x + taps.dropout(out, dropout)?)?;
        let h = taps.apply(ln_name, ln.forward(&ln_in)?)?;
        Ok((h, SavedResidual { ln_in, inner }))
    }
}

impl SavedResidual<AttnParts> {
    /// Keeps the attention's parts for its backward.
    fn attention(self, kind: AttentionKind) -> Result<SavedResidual<SavedAttention>> {
        let [q, k, v, probs] = &self.inner;
        Ok(SavedResidual {
            inner: SavedAttention::new(kind, q, k, v, probs)?,
            ln_in: self.ln_in,
        })
    }
}

/// The encoder output's keys/values for every decoder layer, and its attention bias.
#[derive(Debug, Clone)]
pub struct Cross {
    /// One `(k, v)` per decoder layer, `(b, heads, src_len, head_dim)` each.
    pub kv: Vec<(Tensor, Tensor)>,
    /// `(b, 1, 1, src_len)` padding bias.
    pub bias: Tensor,
}

/// An encoder or decoder layer: self-attention (causal in the decoder), cross-attention over
/// the encoder output (decoder only) and feed-forward, each a residual sub-block.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Self-attention.
    pub self_attn: Attention,
    /// Its LayerNorm.
    pub self_attn_ln: LayerNorm,
    /// Cross-attention (`encoder_attn`) and its LayerNorm; decoder layers only.
    pub cross_attn: Option<(Attention, LayerNorm)>,
    /// Feed-forward block.
    pub ffn: FeedForward,
    /// Its LayerNorm (`final_layer_norm`).
    pub final_ln: LayerNorm,
    /// Pre-norm (mBART) instead of post-norm.
    pub pre_norm: bool,
    /// Dropout of every sub-block output (MC dropout only).
    pub hidden_dropout: f64,
    /// Tap names.
    pub names: LayerNames,
}

/// What one layer's backward reads (`(rows, len, ...)` tensors).
pub struct SavedLayer {
    /// Self-attention.
    pub self_attn: SavedResidual<SavedAttention>,
    /// Cross-attention (decoder layers).
    pub cross_attn: Option<SavedResidual<SavedAttention>>,
    /// Feed-forward: `fc1`'s output.
    pub ffn: SavedResidual<Tensor>,
}

impl Layer {
    /// `x` `(b, t, d)`, `bias` `(b, 1, 1 | t, t)`; `cross`: the encoder side (decoder layers).
    pub fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        cross: Option<(&(Tensor, Tensor), &Tensor)>,
        pass: Pass<'_, '_, SavedLayer>,
    ) -> Result<Tensor> {
        let Pass { taps, cache, save } = pass;
        let n = &self.names;
        let (drop, pre) = (self.hidden_dropout, self.pre_norm);
        let x = &taps.input(&n.layer, x.clone())?;
        let ln = (&self.self_attn_ln, n.self_attn_ln.as_str());
        let (h, self_attn) = residual(x, ln, pre, drop, taps, |h, t| {
            let h = &t.input(&n.self_attn.module, h.clone())?;
            let (k, v) = self.self_attn.kv(h, &n.self_attn, t)?;
            let kv = match cache {
                Some(c) => append_kv(c, k, v)?,
                None => (k, v),
            };
            self.self_attn.attend(h, kv, bias, &n.self_attn, t)
        })?;
        let (h, cross_attn) = match (&self.cross_attn, cross) {
            (Some((a, ln)), Some((kv, bias))) => {
                let ln = (ln, n.cross_attn_ln.as_str());
                let (h, saved) = residual(&h, ln, pre, drop, taps, |h, t| {
                    let h = &t.input(&n.cross_attn.module, h.clone())?;
                    a.attend(h, kv.clone(), bias, &n.cross_attn, t)
                })?;
                (h, Some(saved))
            }
            (None, _) => (h, None),
            (Some(_), None) => candle_core::bail!("{}: no encoder output to attend to", n.layer),
        };
        let ln = (&self.final_ln, n.final_ln.as_str());
        let (h, ffn) = residual(&h, ln, pre, drop, taps, |h, t| self.ffn.forward(h, n, t))?;
        if let Some(save) = save {
            let kind = match cross_attn {
                Some(_) => AttentionKind::Causal,
                None => AttentionKind::Full,
            };
            save.push(SavedLayer {
                self_attn: self_attn.attention(kind)?,
                cross_attn: (cross_attn.map(|c| c.attention(AttentionKind::Cross))).transpose()?,
                ffn,
            });
        }
        taps.apply(&n.layer, h)
    }
}
