//! T5 blocks: unscaled attention with an additive bias (the BART family's [`Attention`] with
//! scale 1 and no projection biases), the relative position bias, gated or plain feed-forward,
//! and pre-RMSNorm residual sub-layers (composite ops only). With `save`, a block keeps what
//! `backward.rs` reads.

use candle_core::{Result, Tensor};

use super::T5Config;
use crate::models::backward::{AttentionKind, SavedAttention};
use crate::models::causal::{append_kv, Pass};
use crate::models::ops::{self, ConstLinear};
use crate::models::seq2seq::layers::{Attention, AttnNames};
use crate::models::weights::Weights;
use crate::models::{ModelError, Taps};

type LoadResult<T> = std::result::Result<T, ModelError>;

/// HF module paths of one block.
#[derive(Debug, Clone)]
pub struct T5Names {
    /// `encoder.block.N`.
    pub block: String,
    /// `...layer.0` (self-attention sub-layer), `...layer.1` (cross, decoder only), last: FF.
    pub sub: Vec<String>,
    /// `...layer.0.SelfAttention`, `...layer.1.EncDecAttention` and their `q`, `k`, `v`, `o`.
    pub attn: Vec<AttnNames>,
    /// `...layer.K.DenseReluDense`.
    pub ff: String,
}

impl T5Names {
    /// Names of block `i` of `stack` (`encoder` / `decoder`).
    pub fn new(stack: &str, i: usize, decoder: bool) -> Self {
        let block = format!("{stack}.block.{i}");
        let n = if decoder { 3 } else { 2 };
        let sub: Vec<String> = (0..n).map(|k| format!("{block}.layer.{k}")).collect();
        let attn = |m: String| AttnNames::with(m, ["q", "k", "v", "o"]);
        let mut attns = vec![attn(format!("{}.SelfAttention", sub[0]))];
        if decoder {
            attns.push(attn(format!("{}.EncDecAttention", sub[1])));
        }
        Self {
            ff: format!("{}.DenseReluDense", sub[n - 1]),
            block,
            sub,
            attn: attns,
        }
    }

    /// Every tap name of the block.
    pub fn all(&self) -> Vec<String> {
        let mut v = vec![self.block.clone()];
        for s in &self.sub {
            v.extend([s.clone(), format!("{s}.layer_norm")]);
        }
        for a in &self.attn {
            v.extend(a.all().map(String::clone));
        }
        v.push(self.ff.clone());
        v.extend(["wi", "wi_0", "wi_1", "act", "wo"].map(|p| format!("{}.{p}", self.ff)));
        v
    }
}

fn load_attention(w: &Weights, p: &str, heads: usize, dropout: f64) -> LoadResult<Attention> {
    let lin =
        |n: &str| Ok::<_, ModelError>(ConstLinear::new(w.get(&format!("{p}.{n}.weight"))?, None));
    Ok(Attention {
        q: lin("q")?,
        k: lin("k")?,
        v: lin("v")?,
        o: lin("o")?,
        heads,
        // T5 folds the score scaling into its initialisation.
        scale: 1.0,
        dropout,
    })
}

/// `DenseReluDense` / `DenseGatedActDense`.
#[derive(Debug, Clone)]
pub struct T5FeedForward {
    /// `[wi]`, or `[wi_0, wi_1]` when gated.
    pub wi: Vec<ConstLinear>,
    /// Output projection.
    pub wo: ConstLinear,
    /// HF activation name.
    pub act: String,
    dropout: f64,
}

impl T5FeedForward {
    /// The output and the `wi` outputs (`wi_0` before the activation, `wi_1`) for the backward.
    fn forward(&self, x: &Tensor, name: &str, taps: &mut Taps) -> Result<(Tensor, Vec<Tensor>)> {
        let (h, pre) = match self.wi.as_slice() {
            [wi] => {
                let h = taps.apply(&format!("{name}.wi"), wi.forward(x)?)?;
                let a = taps.activation(&format!("{name}.act"), &self.act, &h)?;
                (a, vec![h])
            }
            [w0, w1] => {
                let g = taps.apply(&format!("{name}.wi_0"), w0.forward(x)?)?;
                let a = taps.activation(&format!("{name}.act"), &self.act, &g)?;
                let u = taps.apply(&format!("{name}.wi_1"), w1.forward(x)?)?;
                ((a * &u)?, vec![g, u])
            }
            _ => candle_core::bail!("{name}: malformed feed-forward"),
        };
        let h = taps.dropout(h, self.dropout)?;
        let h = taps.input(&format!("{name}.wo"), h)?;
        let out = taps.apply(&format!("{name}.wo"), self.wo.forward(&h)?)?;
        Ok((taps.apply(name, out)?, pre))
    }
}

/// One T5 block: self-attention, cross-attention (decoder), feed-forward; each sub-layer is
/// `x + f(rms_norm(x))`.
#[derive(Debug, Clone)]
pub struct T5Block {
    /// Self-attention (causal in the decoder).
    pub self_attn: Attention,
    /// Cross-attention (`EncDecAttention`; decoder only).
    pub cross_attn: Option<Attention>,
    /// Feed-forward.
    pub ff: T5FeedForward,
    /// Each sub-layer's RMSNorm weight.
    pub norms: Vec<Tensor>,
    /// RMSNorm epsilon.
    pub eps: f64,
    dropout: f64,
    /// Tap names.
    pub names: T5Names,
}

/// What one block's backward reads (`(rows, len, ...)` tensors).
pub struct SavedT5Block {
    /// Each sub-layer's input (its RMSNorm's input), in order.
    pub ins: Vec<Tensor>,
    /// Self-attention.
    pub self_attn: SavedAttention,
    /// Cross-attention (decoder).
    pub cross_attn: Option<SavedAttention>,
    /// The feed-forward's `wi` outputs (see [`T5FeedForward`]).
    pub ff: Vec<Tensor>,
}

impl T5Block {
    /// Loads block `names` from HF weights.
    pub fn load(w: &Weights, cfg: &T5Config, names: T5Names) -> LoadResult<Self> {
        let norms = (names.sub.iter())
            .map(|s| w.get(&format!("{s}.layer_norm.weight")))
            .collect::<LoadResult<Vec<_>>>()?;
        let attn = |a: &AttnNames| load_attention(w, &a.module, cfg.num_heads, cfg.dropout_rate);
        let cross_attn = names.attn.get(1).map(attn).transpose()?;
        let (gated, act) = cfg.activation();
        let ff = &names.ff;
        let lin = |n: &str| {
            Ok::<_, ModelError>(ConstLinear::new(w.get(&format!("{ff}.{n}.weight"))?, None))
        };
        let wi = match gated {
            true => vec![lin("wi_0")?, lin("wi_1")?],
            false => vec![lin("wi")?],
        };
        Ok(Self {
            self_attn: attn(&names.attn[0])?,
            cross_attn,
            ff: T5FeedForward {
                wi,
                wo: lin("wo")?,
                act,
                dropout: cfg.dropout_rate,
            },
            norms,
            eps: cfg.layer_norm_epsilon,
            dropout: cfg.dropout_rate,
            names,
        })
    }

    /// Keys/values of the cross-attention over the encoder output.
    pub fn cross_kv(&self, enc: &Tensor, taps: &mut Taps) -> Result<(Tensor, Tensor)> {
        match (&self.cross_attn, self.names.attn.get(1)) {
            (Some(a), Some(names)) => a.kv(enc, names, taps),
            _ => candle_core::bail!("{}: no cross-attention", self.names.block),
        }
    }

    /// Sub-layer `k`: `x + dropout(f(rms_norm(x)))` with its taps; returns the output and what
    /// `f` keeps, and pushes `x` (the RMSNorm's input) to `ins`.
    fn sub<T>(
        &self,
        k: usize,
        x: Tensor,
        taps: &mut Taps,
        ins: &mut Vec<Tensor>,
        f: impl FnOnce(Tensor, &mut Taps) -> Result<(Tensor, T)>,
    ) -> Result<(Tensor, T)> {
        let name = &self.names.sub[k];
        let x = taps.input(name, x)?;
        ins.push(x.clone());
        let h = ops::rms_norm(&x, &self.norms[k], self.eps)?;
        let h = taps.apply(&format!("{name}.layer_norm"), h)?;
        let (out, kept) = f(h, taps)?;
        Ok((
            taps.apply(name, (x + taps.dropout(out, self.dropout)?)?)?,
            kept,
        ))
    }

    /// `x` `(b, t, d)`; `bias`: position bias plus mask; `cross`: projected encoder keys/values
    /// and their mask bias (decoder).
    pub fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        cross: Option<(&(Tensor, Tensor), &Tensor)>,
        pass: Pass<'_, '_, SavedT5Block>,
    ) -> Result<Tensor> {
        let Pass { taps, cache, save } = pass;
        let n = &self.names;
        let mut ins = Vec::with_capacity(n.sub.len());
        let x = taps.input(&n.block, x.clone())?;
        let (mut x, self_attn) = self.sub(0, x, taps, &mut ins, |h, t| {
            let h = t.input(&n.attn[0].module, h)?;
            let (k, v) = self.self_attn.kv(&h, &n.attn[0], t)?;
            let kv = match cache {
                Some(c) => append_kv(c, k, v)?,
                None => (k, v),
            };
            self.self_attn.attend(&h, kv, bias, &n.attn[0], t)
        })?;
        let mut cross_attn = None;
        if let (Some(a), Some((kv, cross_bias))) = (&self.cross_attn, cross) {
            let (y, parts) = self.sub(1, x, taps, &mut ins, |h, t| {
                let h = t.input(&n.attn[1].module, h)?;
                a.attend(&h, kv.clone(), cross_bias, &n.attn[1], t)
            })?;
            (x, cross_attn) = (y, Some(parts));
        }
        let last = n.sub.len() - 1;
        let (x, ff) = self.sub(last, x, taps, &mut ins, |h, t| {
            let h = t.input(&n.ff, h)?;
            self.ff.forward(&h, &n.ff, t)
        })?;
        if let Some(save) = save {
            let kind = match cross_attn {
                Some(_) => AttentionKind::Causal,
                None => AttentionKind::Full,
            };
            let keep = |[q, k, v, p]: &[Tensor; 4], kind| SavedAttention::new(kind, q, k, v, p);
            save.push(SavedT5Block {
                ins,
                self_attn: keep(&self_attn, kind)?,
                cross_attn: cross_attn
                    .map(|c| keep(&c, AttentionKind::Cross))
                    .transpose()?,
                ff,
            });
        }
        taps.apply(&n.block, x)
    }
}

/// T5's relative position bucket (Mesh TensorFlow), computed in f32 like PyTorch so that bucket
/// boundaries agree.
pub fn bucket(rel: i64, bidirectional: bool, num_buckets: usize, max_distance: usize) -> u32 {
    let mut nb = num_buckets as i64;
    let mut base = 0;
    let rp = if bidirectional {
        nb /= 2;
        if rel > 0 {
            base = nb;
        }
        rel.abs()
    } else {
        -rel.min(0)
    };
    let max_exact = nb / 2;
    if rp < max_exact {
        return (base + rp) as u32;
    }
    let ratio = (rp as f32 / max_exact as f32).ln();
    let span = (max_distance as f64 / max_exact as f64).ln() as f32;
    let large = max_exact + (ratio / span * (nb - max_exact) as f32) as i64;
    (base + large.min(nb - 1)) as u32
}

/// Position bias `(1, heads, q, k)` for queries at `offset..offset + q` and keys `0..k`, from the
/// `(buckets, heads)` table.
pub fn relative_bias(
    table: &Tensor,
    q: usize,
    k: usize,
    offset: usize,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> Result<Tensor> {
    let mut idx = Vec::with_capacity(q * k);
    for i in 0..q {
        for j in 0..k {
            let rel = j as i64 - (offset + i) as i64;
            idx.push(bucket(rel, bidirectional, num_buckets, max_distance));
        }
    }
    let idx = Tensor::from_vec(idx, q * k, table.device())?;
    let heads = table.dim(1)?;
    table
        .index_select(&idx, 0)?
        .reshape((q, k, heads))?
        .permute((2, 0, 1))?
        .unsqueeze(0)
}
