//! T5's hand-written backward (see [`crate::models::backward`]), as the BART family's
//! (`seq2seq/backward.rs`): one forward per input point (the model's own, keeping what the
//! backward reads), then per batch of streams back through the decoder prefix and, through the
//! cross-attention keys/values, the whole encoder. The relative position bias is a constant
//! (no gradient); sub-layers are pre-RMSNorm; the feed-forward is plain or gated.

use candle_core::{DType, Result, Tensor};

use super::layers::{SavedT5Block, T5Block, T5FeedForward};
use super::{T5Stack, T5};
use crate::models::backward::{self, PrefixBackward, PrefixGrads, Streams};
use crate::models::causal::Pass;
use crate::models::ops;
use crate::models::seq2seq::backward::attention;
use crate::models::Taps;

/// Which saved positions a backward reads: the decoder's first `span` positions
/// ([`Streams::gather`]) or the whole encoder ([`Streams::select`]).
type Cut<'a> = &'a dyn Fn(&Tensor) -> Result<Tensor>;

/// Input gradient of the feed-forward from its `wi` outputs `pre`.
fn feed_forward(f: &T5FeedForward, pre: &[Tensor], cut: Cut<'_>, d: &Tensor) -> Result<Tensor> {
    let dh = f.wo.input_grad(d)?;
    match (f.wi.as_slice(), pre) {
        ([wi], [h]) => wi.input_grad(&backward::activation(&f.act, &cut(h)?, &dh)?),
        ([w0, w1], [g, u]) => {
            let (g, u) = (cut(g)?, cut(u)?);
            let dg = backward::activation(&f.act, &g, &(&dh * &u)?)?;
            let du = (&dh * ops::activation(&f.act, &g)?)?;
            w0.input_grad(&dg)? + w1.input_grad(&du)?
        }
        _ => candle_core::bail!("malformed feed-forward"),
    }
}

/// The input gradient of one block; cross-attention adds its encoder-side gradient to `d_enc`.
fn block(
    b: &T5Block,
    s: &SavedT5Block,
    (streams, cut): (&Streams, Cut<'_>),
    dy: &Tensor,
    d_enc: &mut Option<Tensor>,
) -> Result<Tensor> {
    // Sub-layer k: x + f(rms_norm(x)).
    let sub = |k: usize, dy: &Tensor, df: Tensor| -> Result<Tensor> {
        dy + backward::rms_norm(&cut(&s.ins[k])?, &b.norms[k], b.eps, &df)?
    };
    let last = s.ins.len() - 1;
    let dy = sub(last, dy, feed_forward(&b.ff, &s.ff, cut, dy)?)?;
    let dy = match (&b.cross_attn, &s.cross_attn) {
        (Some(a), Some(sa)) => {
            let (dh, dkv) = attention(a, sa, streams, &dy)?;
            *d_enc = Some(match d_enc.take() {
                Some(acc) => (acc + dkv)?,
                None => dkv,
            });
            sub(1, &dy, dh)?
        }
        _ => dy,
    };
    let (dh, dkv) = attention(&b.self_attn, &s.self_attn, streams, &dy)?;
    sub(0, &dy, (dh + dkv)?)
}

/// What one stack's forward kept: each block's tensors and the final norm's input.
struct SavedStack {
    blocks: Vec<SavedT5Block>,
    last: Tensor,
}

impl SavedStack {
    /// From the gradient `dy` at the last block's output back to the embeddings.
    fn backward(
        &self,
        stack: &T5Stack,
        at: (&Streams, Cut<'_>),
        mut dy: Tensor,
        d_enc: &mut Option<Tensor>,
    ) -> Result<Tensor> {
        for (b, s) in stack.blocks.iter().zip(&self.blocks).rev() {
            dy = block(b, s, at, &dy, d_enc)?;
        }
        Ok(dy)
    }
}

/// T5's shared forward for [`crate::models::Model::prefix_forward`].
pub struct T5Prefix<'a> {
    model: &'a T5,
    encoder: SavedStack,
    decoder: SavedStack,
    /// The decoder's output `(rows, len, hidden)`.
    output: Tensor,
}

impl<'a> T5Prefix<'a> {
    /// Runs the model's forward on `source` and `target` (embeddings, no padding), keeping what
    /// the backward reads.
    pub fn new(model: &'a T5, source: &Tensor, target: &Tensor) -> Result<Self> {
        let (rows, src_len, _) = source.dims3()?;
        let dev = source.device();
        let mut taps = Taps::none();
        let mut saved = Vec::with_capacity(model.encoder.blocks.len());
        let src_mask = Tensor::ones((rows, src_len), DType::U8, dev)?;
        let pass = Pass::save(&mut taps, &mut saved);
        let (enc, last) = model.encode(&source.detach(), &src_mask, pass)?;
        let cross = model.cross(&enc, &src_mask, &mut taps)?;
        let encoder = SavedStack {
            blocks: std::mem::take(&mut saved),
            last,
        };
        let mask = Tensor::ones((rows, target.dim(1)?), DType::U8, dev)?;
        let pass = Pass::save(&mut taps, &mut saved);
        let (output, last) = model.decode(&target.detach(), (0, &mask), &cross, pass)?;
        Ok(Self {
            model,
            encoder,
            decoder: SavedStack {
                blocks: saved,
                last,
            },
            output,
        })
    }
}

impl PrefixBackward for T5Prefix<'_> {
    fn logits_at(&self, streams: &Streams) -> Result<Tensor> {
        (self.model).logits(&streams.pick(&self.output)?, &mut Taps::none())
    }

    fn backward(&self, streams: &Streams, grad_logits: &Tensor) -> Result<PrefixGrads> {
        let m = self.model;
        let eps = m.cfg.layer_norm_epsilon;
        let mut dh = m
            .lm_head
            .input_grad(&grad_logits.to_dtype(self.output.dtype())?)?;
        if m.scale_output {
            dh = (dh * m.output_scale())?;
        }
        let last = streams.pick(&self.decoder.last)?;
        let dy = streams.place(&backward::rms_norm(&last, &m.decoder.norm, eps, &dh)?)?;
        let dec_cut = |x: &Tensor| streams.gather(x, 1);
        let mut d_enc = None;
        let target = (self.decoder).backward(&m.decoder, (streams, &dec_cut), dy, &mut d_enc)?;
        let source = match d_enc {
            None => None,
            Some(d) => {
                let last = streams.select(&self.encoder.last)?;
                let dy = backward::rms_norm(&last, &m.encoder.norm, eps, &d)?;
                let enc_cut = |x: &Tensor| streams.select(x);
                let at = (streams, &enc_cut as Cut<'_>);
                Some(self.encoder.backward(&m.encoder, at, dy, &mut None)?)
            }
        };
        Ok(PrefixGrads { target, source })
    }
}
