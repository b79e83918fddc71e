//! T5 blocks: unscaled attention with an additive bias, the relative position bias, gated or
//! plain feed-forward, and pre-RMSNorm residual sub-layers (composite ops only).

use candle_core::{Result, Tensor};

use super::T5Config;
use crate::models::ops::{self, ConstLinear};
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
    /// `...layer.0.SelfAttention`, `...layer.1.EncDecAttention`.
    pub attn: Vec<String>,
    /// `...layer.K.DenseReluDense`.
    pub ff: String,
}

impl T5Names {
    /// Names of block `i` of `stack` (`encoder` / `decoder`).
    pub fn new(stack: &str, i: usize, decoder: bool) -> Self {
        let block = format!("{stack}.block.{i}");
        let n = if decoder { 3 } else { 2 };
        let sub: Vec<String> = (0..n).map(|k| format!("{block}.layer.{k}")).collect();
        let mut attn = vec![format!("{}.SelfAttention", sub[0])];
        if decoder {
            attn.push(format!("{}.EncDecAttention", sub[1]));
        }
        Self {
            ff: format!("{}.DenseReluDense", sub[n - 1]),
            block,
            sub,
            attn,
        }
    }

    /// Every tap name of the block.
    pub fn all(&self) -> Vec<String> {
        let mut v = vec![self.block.clone()];
        for s in &self.sub {
            v.extend([s.clone(), format!("{s}.layer_norm")]);
        }
        for a in &self.attn {
            v.push(a.clone());
            v.extend(["q", "k", "v", "o"].map(|p| format!("{a}.{p}")));
        }
        v.push(self.ff.clone());
        v.extend(["wi", "wi_0", "wi_1", "act", "wo"].map(|p| format!("{}.{p}", self.ff)));
        v
    }
}

/// T5 attention (no biases, no score scaling).
#[derive(Debug, Clone)]
struct T5Attention {
    q: ConstLinear,
    k: ConstLinear,
    v: ConstLinear,
    o: ConstLinear,
    heads: usize,
    dropout: f64,
}

impl T5Attention {
    fn load(w: &Weights, p: &str, heads: usize, dropout: f64) -> LoadResult<Self> {
        let lin = |n: &str| {
            Ok::<_, ModelError>(ConstLinear::new(w.get(&format!("{p}.{n}.weight"))?, None))
        };
        Ok(Self {
            q: lin("q")?,
            k: lin("k")?,
            v: lin("v")?,
            o: lin("o")?,
            heads,
            dropout,
        })
    }

    fn split(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, inner) = x.dims3()?;
        x.reshape((b, t, self.heads, inner / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn kv(&self, x: &Tensor, name: &str, taps: &mut Taps) -> Result<(Tensor, Tensor)> {
        let k = taps.apply(&format!("{name}.k"), self.k.forward(x)?)?;
        let v = taps.apply(&format!("{name}.v"), self.v.forward(x)?)?;
        Ok((self.split(&k)?, self.split(&v)?))
    }

    fn attend(
        &self,
        x: &Tensor,
        kv: &(Tensor, Tensor),
        bias: &Tensor,
        name: &str,
        taps: &mut Taps,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let q = self.split(&taps.apply(&format!("{name}.q"), self.q.forward(x)?)?)?;
        let (out, probs) = ops::attention(&q, &kv.0, &kv.1, bias, 1.0, (taps, self.dropout))?;
        taps.record_attention(name, &probs);
        let out = out.transpose(1, 2)?.reshape((b, t, ()))?;
        let out = taps.apply(&format!("{name}.o"), self.o.forward(&out)?)?;
        taps.apply(name, out)
    }
}

/// `DenseReluDense` / `DenseGatedActDense`.
#[derive(Debug, Clone)]
struct T5FeedForward {
    wi: Vec<ConstLinear>,
    wo: ConstLinear,
    act: String,
    dropout: f64,
}

impl T5FeedForward {
    fn forward(&self, x: &Tensor, name: &str, taps: &mut Taps) -> Result<Tensor> {
        let h = match self.wi.as_slice() {
            [wi] => {
                let h = taps.apply(&format!("{name}.wi"), wi.forward(x)?)?;
                taps.activation(&format!("{name}.act"), &self.act, &h)?
            }
            [w0, w1] => {
                let g = taps.apply(&format!("{name}.wi_0"), w0.forward(x)?)?;
                let g = taps.activation(&format!("{name}.act"), &self.act, &g)?;
                (g * taps.apply(&format!("{name}.wi_1"), w1.forward(x)?)?)?
            }
            _ => candle_core::bail!("{name}: malformed feed-forward"),
        };
        let h = taps.dropout(h, self.dropout)?;
        let h = taps.input(&format!("{name}.wo"), h)?;
        let out = taps.apply(&format!("{name}.wo"), self.wo.forward(&h)?)?;
        taps.apply(name, out)
    }
}

/// One T5 block: self-attention, cross-attention (decoder), feed-forward; each sub-layer is
/// `x + f(rms_norm(x))`.
#[derive(Debug, Clone)]
pub struct T5Block {
    self_attn: T5Attention,
    cross_attn: Option<T5Attention>,
    ff: T5FeedForward,
    norms: Vec<Tensor>,
    eps: f64,
    dropout: f64,
    /// Tap names.
    pub names: T5Names,
}

impl T5Block {
    /// Loads block `names` from HF weights.
    pub fn load(w: &Weights, cfg: &T5Config, names: T5Names) -> LoadResult<Self> {
        let norms = (names.sub.iter())
            .map(|s| w.get(&format!("{s}.layer_norm.weight")))
            .collect::<LoadResult<Vec<_>>>()?;
        let cross_attn = match names.attn.get(1) {
            Some(a) => Some(T5Attention::load(w, a, cfg.num_heads, cfg.dropout_rate)?),
            None => None,
        };
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
            self_attn: T5Attention::load(w, &names.attn[0], cfg.num_heads, cfg.dropout_rate)?,
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
            (Some(a), Some(name)) => a.kv(enc, name, taps),
            _ => candle_core::bail!("{}: no cross-attention", self.names.block),
        }
    }

    fn norm(&self, k: usize, x: &Tensor, taps: &mut Taps) -> Result<Tensor> {
        let name = format!("{}.layer_norm", self.names.sub[k]);
        taps.apply(&name, ops::rms_norm(x, &self.norms[k], self.eps)?)
    }

    /// `x` `(b, t, d)`; `bias`: position bias plus mask; `cross`: projected encoder keys/values
    /// and their mask bias; `cache`: self-attention keys/values of earlier positions.
    pub fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        cross: Option<(&(Tensor, Tensor), &Tensor)>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        taps: &mut Taps,
    ) -> Result<Tensor> {
        let n = &self.names;
        let x = &taps.input(&n.block, x.clone())?;
        let x = &taps.input(&n.sub[0], x.clone())?;
        let h = self.norm(0, x, taps)?;
        let h = taps.input(&n.attn[0], h)?;
        let (k, v) = self.self_attn.kv(&h, &n.attn[0], taps)?;
        let kv = match cache {
            Some(slot) => {
                let kv = match slot.take() {
                    Some((pk, pv)) => (Tensor::cat(&[pk, k], 2)?, Tensor::cat(&[pv, v], 2)?),
                    None => (k, v),
                };
                *slot = Some(kv.clone());
                kv
            }
            None => (k, v),
        };
        let a = self.self_attn.attend(&h, &kv, bias, &n.attn[0], taps)?;
        let mut x = taps.apply(&n.sub[0], (x + taps.dropout(a, self.dropout)?)?)?;
        if let (Some(attn), Some((kv, cross_bias))) = (&self.cross_attn, cross) {
            x = taps.input(&n.sub[1], x)?;
            let h = self.norm(1, &x, taps)?;
            let h = taps.input(&n.attn[1], h)?;
            let a = attn.attend(&h, kv, cross_bias, &n.attn[1], taps)?;
            x = taps.apply(&n.sub[1], (x + taps.dropout(a, self.dropout)?)?)?;
        }
        let last = n.sub.len() - 1;
        let x = taps.input(&n.sub[last], x)?;
        let h = self.norm(last, &x, taps)?;
        let h = taps.input(&n.ff, h)?;
        let f = self.ff.forward(&h, &n.ff, taps)?;
        let x = taps.apply(&n.sub[last], (x + taps.dropout(f, self.dropout)?)?)?;
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
