//! Blocks of the BART family (BART, mBART, Marian): attention, encoder and decoder layers.
//!
//! Every block is built from the composite ops of [`crate::models::ops`], so the whole forward is
//! differentiable. Tap names are precomputed HF module paths ([`LayerNames`]).

use candle_core::{Result, Tensor};

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
    fn new(module: String) -> Self {
        Self {
            q: format!("{module}.q_proj"),
            k: format!("{module}.k_proj"),
            v: format!("{module}.v_proj"),
            o: format!("{module}.out_proj"),
            module,
        }
    }

    fn all(&self) -> [&String; 5] {
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

/// Multi-head attention with biased q/k/v/out projections (`BartAttention`).
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
    /// Dropout of the attention probabilities (MC dropout only).
    pub dropout: f64,
}

impl Attention {
    /// `(b, t, d)` -> `(b, heads, t, d / heads)`.
    fn split(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        x.reshape((b, t, self.heads, d / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Keys and values of `x`, split into heads.
    pub fn kv(&self, x: &Tensor, names: &AttnNames, taps: &mut Taps) -> Result<(Tensor, Tensor)> {
        let k = taps.apply(&names.k, self.k.forward(x)?)?;
        let v = taps.apply(&names.v, self.v.forward(x)?)?;
        Ok((self.split(&k)?, self.split(&v)?))
    }

    /// Attends from `x` `(b, q, d)` to the given keys/values; records the probabilities.
    pub fn attend(
        &self,
        x: &Tensor,
        kv: &(Tensor, Tensor),
        bias: &Tensor,
        names: &AttnNames,
        taps: &mut Taps,
    ) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let q = self.split(&taps.apply(&names.q, self.q.forward(x)?)?)?;
        let scale = 1.0 / ((d / self.heads) as f64).sqrt();
        let (out, probs) = ops::attention(&q, &kv.0, &kv.1, bias, scale, (taps, self.dropout))?;
        taps.record_attention(&names.module, &probs);
        let out = out.transpose(1, 2)?.reshape((b, t, d))?;
        let out = taps.apply(&names.o, self.o.forward(&out)?)?;
        taps.apply(&names.module, out)
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
    fn forward(&self, x: &Tensor, n: &LayerNames, taps: &mut Taps) -> Result<Tensor> {
        let x = taps.input(&n.fc1, x.clone())?;
        let h = taps.apply(&n.fc1, self.fc1.forward(&x)?)?;
        let h = taps.activation(&n.act, &self.act, &h)?;
        let h = taps.dropout(h, self.activation_dropout)?;
        let h = taps.input(&n.fc2, h)?;
        taps.apply(&n.fc2, self.fc2.forward(&h)?)
    }
}

/// A residual sub-block with its LayerNorm: pre-norm (mBART) `x + f(ln(x))`, or post-norm
/// (BART, Marian) `ln(x + f(x))`.
fn residual(
    x: &Tensor,
    (ln, ln_name): (&LayerNorm, &str),
    pre_norm: bool,
    dropout: f64,
    taps: &mut Taps,
    f: impl FnOnce(&Tensor, &mut Taps) -> Result<Tensor>,
) -> Result<Tensor> {
    if pre_norm {
        let h = taps.apply(ln_name, ln.forward(x)?)?;
        let out = f(&h, taps)?;
        x + taps.dropout(out, dropout)?
    } else {
        let out = f(x, taps)?;
        let h = (x + taps.dropout(out, dropout)?)?;
        taps.apply(ln_name, ln.forward(&h)?)
    }
}

/// An encoder layer: self-attention and feed-forward.
#[derive(Debug, Clone)]
pub struct EncoderLayer {
    /// Self-attention.
    pub self_attn: Attention,
    /// Its LayerNorm.
    pub self_attn_ln: LayerNorm,
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

impl EncoderLayer {
    /// `x` `(b, t, d)`, `bias` `(b, 1, 1 | t, t)`.
    pub fn forward(&self, x: &Tensor, bias: &Tensor, taps: &mut Taps) -> Result<Tensor> {
        let n = &self.names;
        let x = &taps.input(&n.layer, x.clone())?;
        let h = residual(
            x,
            (&self.self_attn_ln, &n.self_attn_ln),
            self.pre_norm,
            self.hidden_dropout,
            taps,
            |h, t| {
                let h = &t.input(&n.self_attn.module, h.clone())?;
                let kv = self.self_attn.kv(h, &n.self_attn, t)?;
                self.self_attn.attend(h, &kv, bias, &n.self_attn, t)
            },
        )?;
        let h = residual(
            &h,
            (&self.final_ln, &n.final_ln),
            self.pre_norm,
            self.hidden_dropout,
            taps,
            |h, t| self.ffn.forward(h, n, t),
        )?;
        taps.apply(&n.layer, h)
    }
}

/// A decoder layer: causal self-attention, cross-attention and feed-forward.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    /// Causal self-attention.
    pub self_attn: Attention,
    /// Its LayerNorm.
    pub self_attn_ln: LayerNorm,
    /// Cross-attention over the encoder output (`encoder_attn`).
    pub cross_attn: Attention,
    /// Its LayerNorm.
    pub cross_attn_ln: LayerNorm,
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

impl DecoderLayer {
    /// `x` `(b, t, d)`; `cross_kv`: the projected encoder keys/values; `cache`: the self-attention
    /// keys/values of earlier positions, extended in place (incremental decoding).
    pub fn forward(
        &self,
        x: &Tensor,
        self_bias: &Tensor,
        cross_kv: &(Tensor, Tensor),
        cross_bias: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        taps: &mut Taps,
    ) -> Result<Tensor> {
        let n = &self.names;
        let x = &taps.input(&n.layer, x.clone())?;
        let h = residual(
            x,
            (&self.self_attn_ln, &n.self_attn_ln),
            self.pre_norm,
            self.hidden_dropout,
            taps,
            |h, t| {
                let h = &t.input(&n.self_attn.module, h.clone())?;
                let (k, v) = self.self_attn.kv(h, &n.self_attn, t)?;
                let kv = match cache {
                    Some(slot) => {
                        let kv = match slot.take() {
                            Some((pk, pv)) => {
                                (Tensor::cat(&[pk, k], 2)?, Tensor::cat(&[pv, v], 2)?)
                            }
                            None => (k, v),
                        };
                        *slot = Some(kv.clone());
                        kv
                    }
                    None => (k, v),
                };
                self.self_attn.attend(h, &kv, self_bias, &n.self_attn, t)
            },
        )?;
        let h = residual(
            &h,
            (&self.cross_attn_ln, &n.cross_attn_ln),
            self.pre_norm,
            self.hidden_dropout,
            taps,
            |h, t| {
                let h = &t.input(&n.cross_attn.module, h.clone())?;
                self.cross_attn
                    .attend(h, cross_kv, cross_bias, &n.cross_attn, t)
            },
        )?;
        let h = residual(
            &h,
            (&self.final_ln, &n.final_ln),
            self.pre_norm,
            self.hidden_dropout,
            taps,
            |h, t| self.ffn.forward(h, n, t),
        )?;
        taps.apply(&n.layer, h)
    }
}
