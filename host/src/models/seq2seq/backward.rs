//! The BART family's shared forward and hand-written backward (see [`crate::models::backward`]).
//!
//! One forward per input point runs the encoder over the whole source and the decoder over the
//! longest target prefix, keeping what the backward needs. Each batch of (point, step) streams
//! then runs backward through its decoder prefix; the cross-attention keys and values carry the
//! gradient into the encoder output, and from there through the whole encoder to the source
//! embeddings. Pre-norm (mBART) and post-norm (BART, Marian) blocks, the embedding LayerNorm and
//! the stacks' final LayerNorms follow the forward in `layers.rs` / `mod.rs`.

use candle_core::{DType, Result, Tensor};

use super::layers::{Attention, FeedForward, LayerNorm};
use super::{Seq2Seq, Stack};
use crate::models::backward::{
    self, AttentionKind, PrefixBackward, PrefixGrads, SavedAttention, Streams,
};
use crate::models::causal::{merge_heads, split_heads};
use crate::models::{ops, Taps};

/// Which saved positions a backward reads: the decoder's first `span` positions
/// ([`Streams::gather`]) or the whole encoder ([`Streams::select`]).
type Cut<'a> = &'a dyn Fn(&Tensor) -> Result<Tensor>;

/// A residual sub-block: its LayerNorm's input (pre-norm: the block input; post-norm: the
/// residual sum) and what the sub-block itself keeps.
struct SavedResidual<T> {
    ln_in: Tensor,
    inner: T,
}

fn residual_forward<T>(
    x: &Tensor,
    ln: &LayerNorm,
    pre_norm: bool,
    f: impl FnOnce(&Tensor) -> Result<(Tensor, T)>,
) -> Result<(Tensor, SavedResidual<T>)> {
    if pre_norm {
        let (out, inner) = f(&ln.forward(x)?)?;
        let ln_in = x.clone();
        Ok(((x + out)?, SavedResidual { ln_in, inner }))
    } else {
        let (out, inner) = f(x)?;
        let sum = (x + out)?;
        Ok((ln.forward(&sum)?, SavedResidual { ln_in: sum, inner }))
    }
}

/// The input gradient of [`residual_forward`]; `f` is the sub-block's input gradient.
fn residual_backward<T>(
    s: &SavedResidual<T>,
    ln: &LayerNorm,
    pre_norm: bool,
    cut: Cut<'_>,
    dy: &Tensor,
    f: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let ln_in = cut(&s.ln_in)?;
    if pre_norm {
        dy + backward::layer_norm(&ln_in, &ln.w, ln.eps, &f(dy)?)?
    } else {
        let ds = backward::layer_norm(&ln_in, &ln.w, ln.eps, dy)?;
        &ds + f(&ds)?
    }
}

fn scale(a: &Attention) -> Result<f64> {
    let d = a.q.w.dim(1)?;
    Ok(1.0 / ((d / a.heads) as f64).sqrt())
}

/// Attention of `h` over `kv_in` (itself for self-attention), as `Attention::attend` computes it.
fn attention_forward(
    a: &Attention,
    kind: AttentionKind,
    h: &Tensor,
    kv_in: &Tensor,
    bias: &Tensor,
) -> Result<(Tensor, SavedAttention)> {
    let q = split_heads(&a.q.forward(h)?, a.heads)?.contiguous()?;
    let k = split_heads(&a.k.forward(kv_in)?, a.heads)?.contiguous()?;
    let v = split_heads(&a.v.forward(kv_in)?, a.heads)?.contiguous()?;
    let taps = Taps::none();
    let (out, probs) = ops::attention(&q, &k, &v, bias, scale(a)?, (&taps, 0.0))?;
    let out = a.o.forward(&merge_heads(&out)?)?;
    Ok((out, SavedAttention::new(kind, &q, &k, &v, &probs)?))
}

/// Input gradients of [`attention_forward`]: `(d h, d kv_in)`.
fn attention_backward(
    a: &Attention,
    s: &SavedAttention,
    streams: &Streams,
    d: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let d_out = split_heads(&a.o.input_grad(d)?, a.heads)?;
    let (dq, dk, dv) = s.backward(streams, scale(a)?, &d_out)?;
    let dh = a.q.input_grad(&merge_heads(&dq)?)?;
    let dkv = (a.k.input_grad(&merge_heads(&dk)?)? + a.v.input_grad(&merge_heads(&dv)?)?)?;
    Ok((dh, dkv))
}

fn ffn_forward(f: &FeedForward, x: &Tensor) -> Result<(Tensor, Tensor)> {
    let pre = f.fc1.forward(x)?;
    let out = f.fc2.forward(&ops::activation(&f.act, &pre)?)?;
    Ok((out, pre))
}

fn ffn_backward(f: &FeedForward, pre: &Tensor, cut: Cut<'_>, d: &Tensor) -> Result<Tensor> {
    let d_act = f.fc2.input_grad(d)?;
    f.fc1
        .input_grad(&backward::activation(&f.act, &cut(pre)?, &d_act)?)
}

struct EncoderSaved {
    attn: SavedResidual<SavedAttention>,
    ffn: SavedResidual<Tensor>,
}

struct DecoderSaved {
    self_attn: SavedResidual<SavedAttention>,
    cross_attn: SavedResidual<SavedAttention>,
    ffn: SavedResidual<Tensor>,
}

/// A stack's input (embeddings + positions, before the embedding LayerNorm) and the input of
/// its final LayerNorm.
struct StackSaved {
    embedded: Tensor,
    last: Tensor,
}

fn stack_input(stack: &Stack, embeds: &Tensor) -> Result<(Tensor, Tensor)> {
    let pos = stack.positions.forward(0, embeds.dim(1)?)?;
    let embedded = embeds.broadcast_add(&pos.to_dtype(embeds.dtype())?)?;
    let h = match &stack.layernorm_embedding {
        Some(ln) => ln.forward(&embedded)?,
        None => embedded.clone(),
    };
    Ok((h, embedded))
}

fn stack_input_backward(stack: &Stack, s: &StackSaved, cut: Cut<'_>, d: &Tensor) -> Result<Tensor> {
    match &stack.layernorm_embedding {
        Some(ln) => backward::layer_norm(&cut(&s.embedded)?, &ln.w, ln.eps, d),
        None => Ok(d.clone()),
    }
}

fn stack_output(stack: &Stack, h: &Tensor) -> Result<Tensor> {
    match &stack.layer_norm {
        Some(ln) => ln.forward(h),
        None => Ok(h.clone()),
    }
}

fn stack_output_backward(stack: &Stack, last: &Tensor, d: &Tensor) -> Result<Tensor> {
    match &stack.layer_norm {
        Some(ln) => backward::layer_norm(last, &ln.w, ln.eps, d),
        None => Ok(d.clone()),
    }
}

/// The shared forward of [`crate::models::Model::prefix_forward`] for the BART family.
pub struct Seq2SeqPrefix<'a> {
    model: &'a Seq2Seq,
    encoder: StackSaved,
    decoder: StackSaved,
    encoder_layers: Vec<EncoderSaved>,
    decoder_layers: Vec<DecoderSaved>,
    /// The decoder's output `(rows, len, hidden)`.
    output: Tensor,
}

impl<'a> Seq2SeqPrefix<'a> {
    /// Runs the encoder on `source` and the decoder on `target` (embeddings, no padding).
    pub fn new(model: &'a Seq2Seq, source: &Tensor, target: &Tensor) -> Result<Self> {
        let pre_norm = model.config.pre_norm;
        let (rows, src_len, _) = source.dims3()?;
        let t = target.dim(1)?;
        let dtype = target.dtype();
        let dev = target.device();
        let enc_bias = ops::attention_bias(
            &Tensor::ones((rows, src_len), DType::U8, dev)?,
            1,
            0,
            false,
            dtype,
        )?;
        let self_bias =
            ops::attention_bias(&Tensor::ones((rows, t), DType::U8, dev)?, t, 0, true, dtype)?;
        let (mut h, embedded) = stack_input(&model.encoder, &source.detach())?;
        let mut encoder_layers = Vec::with_capacity(model.encoder_layers.len());
        for l in &model.encoder_layers {
            let (x, attn) = residual_forward(&h, &l.self_attn_ln, pre_norm, |x| {
                attention_forward(&l.self_attn, AttentionKind::Full, x, x, &enc_bias)
            })?;
            let (x, ffn) = residual_forward(&x, &l.final_ln, pre_norm, |x| ffn_forward(&l.ffn, x))?;
            encoder_layers.push(EncoderSaved { attn, ffn });
            h = x;
        }
        let encoder = StackSaved {
            embedded,
            last: h.clone(),
        };
        let enc_out = stack_output(&model.encoder, &h)?;
        let (mut h, embedded) = stack_input(&model.decoder, &target.detach())?;
        let mut decoder_layers = Vec::with_capacity(model.decoder_layers.len());
        for l in &model.decoder_layers {
            let (x, self_attn) = residual_forward(&h, &l.self_attn_ln, pre_norm, |x| {
                attention_forward(&l.self_attn, AttentionKind::Causal, x, x, &self_bias)
            })?;
            let (x, cross_attn) = residual_forward(&x, &l.cross_attn_ln, pre_norm, |x| {
                attention_forward(&l.cross_attn, AttentionKind::Cross, x, &enc_out, &enc_bias)
            })?;
            let (x, ffn) = residual_forward(&x, &l.final_ln, pre_norm, |x| ffn_forward(&l.ffn, x))?;
            decoder_layers.push(DecoderSaved {
                self_attn,
                cross_attn,
                ffn,
            });
            h = x;
        }
        Ok(Self {
            output: stack_output(&model.decoder, &h)?,
            decoder: StackSaved { embedded, last: h },
            encoder,
            encoder_layers,
            decoder_layers,
            model,
        })
    }
}

impl PrefixBackward for Seq2SeqPrefix<'_> {
    fn logits_at(&self, streams: &Streams) -> Result<Tensor> {
        let mut taps = Taps::none();
        self.model.logits(&streams.pick(&self.output)?, &mut taps)
    }

    fn backward(&self, streams: &Streams, grad_logits: &Tensor) -> Result<PrefixGrads> {
        let m = self.model;
        let pre_norm = m.config.pre_norm;
        let dtype = self.output.dtype();
        let dh = m.lm_head.input_grad(&grad_logits.to_dtype(dtype)?)?;
        let last = streams.pick(&self.decoder.last)?;
        let mut dy = streams.place(&stack_output_backward(&m.decoder, &last, &dh)?)?;
        let dec_cut = |x: &Tensor| streams.gather(x, 1);
        let mut d_enc: Option<Tensor> = None;
        for (l, s) in m.decoder_layers.iter().zip(&self.decoder_layers).rev() {
            dy = residual_backward(&s.ffn, &l.final_ln, pre_norm, &dec_cut, &dy, |d| {
                ffn_backward(&l.ffn, &s.ffn.inner, &dec_cut, d)
            })?;
            dy = residual_backward(
                &s.cross_attn,
                &l.cross_attn_ln,
                pre_norm,
                &dec_cut,
                &dy,
                |d| {
                    let (dh, dkv) =
                        attention_backward(&l.cross_attn, &s.cross_attn.inner, streams, d)?;
                    d_enc = Some(match d_enc.take() {
                        Some(acc) => (acc + dkv)?,
                        None => dkv,
                    });
                    Ok(dh)
                },
            )?;
            dy = residual_backward(
                &s.self_attn,
                &l.self_attn_ln,
                pre_norm,
                &dec_cut,
                &dy,
                |d| {
                    let (dh, dkv) =
                        attention_backward(&l.self_attn, &s.self_attn.inner, streams, d)?;
                    dh + dkv
                },
            )?;
        }
        let target = stack_input_backward(&m.decoder, &self.decoder, &dec_cut, &dy)?;
        let enc_cut = |x: &Tensor| streams.select(x);
        let source = match d_enc {
            None => None,
            Some(d) => {
                let last = streams.select(&self.encoder.last)?;
                let mut dy = stack_output_backward(&m.encoder, &last, &d)?;
                for (l, s) in m.encoder_layers.iter().zip(&self.encoder_layers).rev() {
                    dy = residual_backward(&s.ffn, &l.final_ln, pre_norm, &enc_cut, &dy, |d| {
                        ffn_backward(&l.ffn, &s.ffn.inner, &enc_cut, d)
                    })?;
                    dy = residual_backward(
                        &s.attn,
                        &l.self_attn_ln,
                        pre_norm,
                        &enc_cut,
                        &dy,
                        |d| {
                            let (dh, dkv) =
                                attention_backward(&l.self_attn, &s.attn.inner, streams, d)?;
                            dh + dkv
                        },
                    )?;
                }
                Some(stack_input_backward(
                    &m.encoder,
                    &self.encoder,
                    &enc_cut,
                    &dy,
                )?)
            }
        };
        Ok(PrefixGrads { target, source })
    }
}
