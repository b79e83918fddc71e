//! The BART family's hand-written backward (see [`crate::models::backward`]).
//!
//! One forward per input point (the model's own forward, keeping what the backward reads) runs
//! the encoder over the whole source and the decoder over the longest target prefix. Each batch
//! of (point, step) streams then runs backward through its decoder prefix; the cross-attention
//! keys and values carry the gradient into the encoder output, and from there through the whole
//! encoder to the source embeddings.

use candle_core::{DType, Result, Tensor};

use super::layers::{Attention, FeedForward, Layer, LayerNorm, SavedLayer, SavedResidual};
use super::{Seq2Seq, Stack, StackOut};
use crate::models::backward::{self, PrefixBackward, PrefixGrads, SavedAttention, Streams};
use crate::models::causal::{merge_heads, split_heads, Pass};
use crate::models::{ops, Taps};

/// Which saved positions a backward reads: the decoder's first `span` positions
/// ([`Streams::gather`]) or the whole encoder ([`Streams::select`]).
type Cut<'a> = &'a dyn Fn(&Tensor) -> Result<Tensor>;

/// The input gradient of a residual sub-block; `f` is the sub-block's input gradient.
fn residual<T>(
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

/// Input gradients of an attention: `(d queries' input, d keys' and values' input)`.
pub(crate) fn attention(
    a: &Attention,
    s: &SavedAttention,
    streams: &Streams,
    d: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let d_out = split_heads(&a.o.input_grad(d)?, a.heads)?;
    let (dq, dk, dv) = s.backward(streams, a.scale, &d_out)?;
    let dh = a.q.input_grad(&merge_heads(&dq)?)?;
    let dkv = (a.k.input_grad(&merge_heads(&dk)?)? + a.v.input_grad(&merge_heads(&dv)?)?)?;
    Ok((dh, dkv))
}

fn ffn(f: &FeedForward, pre: &Tensor, cut: Cut<'_>, d: &Tensor) -> Result<Tensor> {
    let d_act = f.fc2.input_grad(d)?;
    f.fc1
        .input_grad(&backward::activation(&f.act, &cut(pre)?, &d_act)?)
}

/// The input gradient of one layer; cross-attention adds its encoder-side gradient to `d_enc`.
fn layer(
    l: &Layer,
    s: &SavedLayer,
    (streams, cut): (&Streams, Cut<'_>),
    dy: &Tensor,
    d_enc: &mut Option<Tensor>,
) -> Result<Tensor> {
    let pre = l.pre_norm;
    let dy = residual(&s.ffn, &l.final_ln, pre, cut, dy, |d| {
        ffn(&l.ffn, &s.ffn.inner, cut, d)
    })?;
    let dy = match (&l.cross_attn, &s.cross_attn) {
        (Some((a, ln)), Some(sc)) => residual(sc, ln, pre, cut, &dy, |d| {
            let (dh, dkv) = attention(a, &sc.inner, streams, d)?;
            *d_enc = Some(match d_enc.take() {
                Some(acc) => (acc + dkv)?,
                None => dkv,
            });
            Ok(dh)
        })?,
        _ => dy,
    };
    residual(&s.self_attn, &l.self_attn_ln, pre, cut, &dy, |d| {
        let (dh, dkv) = attention(&l.self_attn, &s.self_attn.inner, streams, d)?;
        dh + dkv
    })
}

/// What one stack's forward kept.
struct SavedStack {
    layers: Vec<SavedLayer>,
    /// Embeddings plus positions (`layernorm_embedding`'s input).
    embedded: Tensor,
    /// The final `layer_norm`'s input.
    last: Tensor,
}

impl SavedStack {
    fn new(out: StackOut, layers: Vec<SavedLayer>) -> Self {
        Self {
            layers,
            embedded: out.embedded,
            last: out.last,
        }
    }

    /// The input gradient of the final `layer_norm` at `last` (the picked or selected rows).
    fn output(stack: &Stack, last: &Tensor, d: &Tensor) -> Result<Tensor> {
        match &stack.layer_norm {
            Some(ln) => backward::layer_norm(last, &ln.w, ln.eps, d),
            None => Ok(d.clone()),
        }
    }

    /// From the gradient `dy` at the last layer's output back to the embeddings.
    fn backward(
        &self,
        stack: &Stack,
        at: (&Streams, Cut<'_>),
        mut dy: Tensor,
        d_enc: &mut Option<Tensor>,
    ) -> Result<Tensor> {
        for (l, s) in stack.layers.iter().zip(&self.layers).rev() {
            dy = layer(l, s, at, &dy, d_enc)?;
        }
        match &stack.layernorm_embedding {
            Some(ln) => backward::layer_norm(&(at.1)(&self.embedded)?, &ln.w, ln.eps, &dy),
            None => Ok(dy),
        }
    }
}

/// The shared forward of [`crate::models::Model::prefix_forward`] for the BART family.
pub struct Seq2SeqPrefix<'a> {
    model: &'a Seq2Seq,
    encoder: SavedStack,
    decoder: SavedStack,
    /// The decoder's output `(rows, len, hidden)`.
    output: Tensor,
}

impl<'a> Seq2SeqPrefix<'a> {
    /// Runs the model's forward on `source` and `target` (embeddings, no padding), keeping what
    /// the backward reads.
    pub fn new(model: &'a Seq2Seq, source: &Tensor, target: &Tensor) -> Result<Self> {
        let (rows, src_len, _) = source.dims3()?;
        let t = target.dim(1)?;
        let dev = target.device();
        let mut taps = Taps::none();
        let mut saved = Vec::with_capacity(model.encoder.layers.len());
        let src_mask = Tensor::ones((rows, src_len), DType::U8, dev)?;
        let enc = model.encode(
            &source.detach(),
            &src_mask,
            Pass::save(&mut taps, &mut saved),
        )?;
        let cross = model.cross(&enc.out, &src_mask, &mut taps)?;
        let encoder = SavedStack::new(enc, std::mem::take(&mut saved));
        let mask = Tensor::ones((rows, t), DType::U8, dev)?;
        let bias = ops::attention_bias(&mask, t, 0, true, target.dtype())?;
        let dec = (model.decoder).forward(
            &target.detach(),
            0,
            &bias,
            Some(&cross),
            Pass::save(&mut taps, &mut saved),
        )?;
        Ok(Self {
            model,
            encoder,
            output: dec.out.clone(),
            decoder: SavedStack::new(dec, saved),
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
        let dh = m
            .lm_head
            .input_grad(&grad_logits.to_dtype(self.output.dtype())?)?;
        let last = streams.pick(&self.decoder.last)?;
        let dy = streams.place(&SavedStack::output(&m.decoder, &last, &dh)?)?;
        let mut d_enc = None;
        let dec_cut = |x: &Tensor| streams.gather(x, 1);
        let target = (self.decoder).backward(&m.decoder, (streams, &dec_cut), dy, &mut d_enc)?;
        let source = match d_enc {
            None => None,
            Some(d) => {
                let last = streams.select(&self.encoder.last)?;
                let dy = SavedStack::output(&m.encoder, &last, &d)?;
                let enc_cut = |x: &Tensor| streams.select(x);
                let at = (streams, &enc_cut as Cut<'_>);
                Some(self.encoder.backward(&m.encoder, at, dy, &mut None)?)
            }
        };
        Ok(PrefixGrads { target, source })
    }
}
