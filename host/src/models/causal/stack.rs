//! One causal-LM skeleton for every decoder-only architecture.
//!
//! GPT-2 and the Llama family differ in their embeddings (learned positions or none), their
//! blocks and their norms, not in how a stack runs: embeddings -> blocks -> final norm -> head,
//! with the same taps, hidden states, KV-cached decoding and shared forward for the hand-written
//! backward. [`CausalLm`] runs that once; an architecture implements [`CausalArch`] (and
//! [`CausalBackward`] in its `backward.rs`).

use candle_core::{DType, Device, Result, Tensor};

use super::{check_input, check_len, last_position, lookup, select_cache_rows, KvCache, Pass};
use crate::models::backward::{
    shared, AttentionKind, PrefixBackward, PrefixGrads, SavedAttention, Shared, Streams,
};
use crate::models::ops::ConstLinear;
use crate::models::taps::BlockPaths;
use crate::models::{
    CachedPrefix, DecodeStart, DecodingState, ForwardInput, ForwardOutput, LogitPositions, Model,
    ModelError, ModelSpec, Side, Taps,
};

/// What one decoder-only architecture adds to the shared [`CausalLm`] stack.
pub trait CausalArch: Send + Sync + Sized {
    /// One block (HF "layer") of the stack.
    type Block: BlockPaths + Send + Sync;
    /// What one block's backward keeps from the forward (`(rows, len, ...)` tensors).
    type Saved: Send + Sync;
    /// Per-forward tensors every block reads (attention biases, rotary tables).
    type Ctx;

    /// Taps of the embedding stage, in forward order; the last one names the first hidden state.
    const EMBED_TAPS: &'static [&'static str];
    /// Tap (and last hidden state) of the final norm.
    const NORM_TAP: &'static str;

    /// The first block's input for token embeddings `(b, n, d)` at the last `n` positions of
    /// `mask` (adds position embeddings where the architecture has them; applies
    /// [`Self::EMBED_TAPS`]).
    fn embed_input(&self, embeds: Tensor, mask: &Tensor, taps: &mut Taps) -> Result<Tensor>;

    /// The shared per-forward tensors for `n` new positions after `past` cached ones.
    fn ctx(
        &self,
        mask: &Tensor,
        n: usize,
        past: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self::Ctx>;

    /// One block, run as `pass` says.
    fn block(
        &self,
        block: &Self::Block,
        x: &Tensor,
        ctx: &Self::Ctx,
        pass: Pass<'_, '_, Self::Saved>,
    ) -> Result<Tensor>;

    /// The final norm.
    fn final_norm(&self, x: &Tensor) -> Result<Tensor>;
}

/// What a pre-norm block (`x + attn(norm(x))`, then `x + mlp(norm(x))`) keeps for its backward
/// (`(rows, len, ...)` tensors); `E` is the rest its architecture's backward reads.
pub struct SavedBlock<E> {
    /// The block input (the first norm's input).
    pub x_in: Tensor,
    /// The residual after attention (the second norm's input).
    pub x_mid: Tensor,
    /// The causal self-attention.
    pub attn: SavedAttention,
    /// What else the architecture's backward reads.
    pub rest: E,
}

impl<E> SavedBlock<E> {
    /// Keeps the block's residuals, its attention's `[q, k, v, probs]` and `rest`.
    pub fn new(x_in: &Tensor, x_mid: &Tensor, attn: [&Tensor; 4], rest: E) -> Result<Self> {
        let [q, k, v, probs] = attn;
        Ok(Self {
            x_in: x_in.clone(),
            x_mid: x_mid.clone(),
            attn: SavedAttention::new(AttentionKind::Causal, q, k, v, probs)?,
            rest,
        })
    }
}

/// The hand-written backward of a [`CausalArch`] (see [`crate::models::backward`]): what the
/// shared forward of [`Model::prefix_forward`] runs, one batch of streams at a time.
pub trait CausalBackward: CausalArch {
    /// Whether the rules cover this configuration (else no shared forward).
    fn has_backward(&self) -> bool {
        true
    }

    /// The input gradient of the final norm at `x` `(streams, hidden)`.
    fn norm_backward(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor>;

    /// The input gradient of `block` for its output gradient `dy` `(streams, span, hidden)`.
    fn backward(
        &self,
        block: &Self::Block,
        saved: &Self::Saved,
        streams: &Streams,
        dy: &Tensor,
    ) -> Result<Tensor>;
}

/// A decoder-only causal LM: token embeddings, the architecture's blocks, its final norm and
/// the output projection.
pub struct CausalLm<A: CausalArch> {
    /// Static facts for the engine.
    pub spec: ModelSpec,
    /// What is specific to the architecture (config, positions, final norm).
    pub arch: A,
    /// `(vocab, hidden)` token embeddings.
    pub embed_tokens: Tensor,
    /// The blocks, first first.
    pub blocks: Vec<A::Block>,
    /// Output projection (`lm_head`, often tied to `embed_tokens`).
    pub lm_head: ConstLinear,
}

impl<A: CausalArch> CausalLm<A> {
    /// The stack from the first block's input `x` to the final norm's input, run as `pass`
    /// says (one cache per block).
    fn blocks(
        &self,
        mut x: Tensor,
        ctx: &A::Ctx,
        pass: Pass<'_, '_, A::Saved, [KvCache]>,
    ) -> Result<Tensor> {
        let Pass {
            taps,
            mut cache,
            mut save,
        } = pass;
        let last = self.blocks.len().saturating_sub(1);
        for (i, b) in self.blocks.iter().enumerate() {
            let pass = Pass {
                taps: &mut *taps,
                cache: cache.as_deref_mut().map(|c| &mut c[i]),
                save: save.as_deref_mut(),
            };
            x = self.arch.block(b, &x, ctx, pass)?;
            // HF's last hidden state is the final norm's output, recorded below.
            if i < last {
                taps.record_hidden(b.path(), &x);
            }
        }
        Ok(x)
    }
}

impl<A: CausalBackward> CausalLm<A> {
    /// One forward over `embeds` `(rows, len, hidden)` (no padding) that keeps what the
    /// backward needs.
    fn shared_forward(&self, embeds: &Tensor) -> Result<SharedForward<'_, A>> {
        let (rows, t, _) = embeds.dims3()?;
        let mask = Tensor::ones((rows, t), DType::U8, embeds.device())?;
        let ctx = self
            .arch
            .ctx(&mask, t, 0, embeds.dtype(), embeds.device())?;
        let mut taps = Taps::none();
        // Detached: the first block's input gradient is the embeddings' gradient.
        let x = self.arch.embed_input(embeds.detach(), &mask, &mut taps)?;
        let mut saved = Vec::with_capacity(self.blocks.len());
        let last = self.blocks(x, &ctx, Pass::save(&mut taps, &mut saved))?;
        let normed = self.arch.final_norm(&last)?;
        Ok(SharedForward {
            model: self,
            saved,
            last,
            normed,
        })
    }
}

impl<A: CausalBackward> Model for CausalLm<A> {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn device(&self) -> &candle_core::Device {
        self.lm_head.w.device()
    }

    fn dtype(&self) -> candle_core::DType {
        self.lm_head.w.dtype()
    }

    fn embed(&self, side: Side, ids: &Tensor) -> Result<Tensor> {
        if side == Side::Encoder {
            return Err(
                ModelError::BadInput("decoder-only models have no encoder".into()).into_candle(),
            );
        }
        lookup(&self.embed_tokens, ids)
    }

    fn forward(&self, input: &ForwardInput, taps: &mut Taps) -> Result<ForwardOutput> {
        let (_, t) = check_input(&self.spec, input)?;
        let (embeds, mask) = (&input.decoder.embeds, &input.decoder.mask);
        let ctx = self.arch.ctx(mask, t, 0, embeds.dtype(), embeds.device())?;
        let x = self.arch.embed_input(embeds.clone(), mask, taps)?;
        if let Some(name) = A::EMBED_TAPS.last() {
            taps.record_hidden(name, &x);
        }
        let x = self.blocks(x, &ctx, Pass::taps(&mut *taps))?;
        let x = taps.apply(A::NORM_TAP, self.arch.final_norm(&x)?)?;
        taps.record_hidden(A::NORM_TAP, &x);
        let x = input.logits_at.select(&x)?;
        let logits = taps.apply("lm_head", self.lm_head.forward(&x)?)?;
        Ok(ForwardOutput { logits })
    }

    fn tap_names(&self) -> Vec<String> {
        let mut v: Vec<String> = A::EMBED_TAPS.iter().map(|s| s.to_string()).collect();
        v.extend(self.blocks.iter().flat_map(BlockPaths::taps));
        v.extend([A::NORM_TAP.to_string(), "lm_head".to_string()]);
        v
    }

    /// KV-cached decoding: the forward's ops on the new positions, no graph.
    fn start_decoding(&self, start: &DecodeStart) -> Result<Box<dyn DecodingState + '_>> {
        if start.encoder_ids.is_some() {
            return Err(
                ModelError::BadInput("decoder-only models take no encoder input".into())
                    .into_candle(),
            );
        }
        Ok(Box::new(CausalDecoding {
            model: self,
            caches: vec![None; self.blocks.len()],
            past: 0,
        }))
    }

    fn prefix_forward(&self, source: Option<&Tensor>, embeds: &Tensor) -> Shared<'_> {
        if source.is_some() || !self.arch.has_backward() {
            return None;
        }
        shared(self.shared_forward(embeds))
    }

    fn cache_prefix(
        &self,
        embeds: &Tensor,
        logits_at: &LogitPositions,
    ) -> Option<Result<(Tensor, Box<dyn CachedPrefix + '_>)>> {
        let run = || -> Result<(Tensor, Box<dyn CachedPrefix + '_>)> {
            let (rows, len, _) = embeds.dims3()?;
            if rows != 1 {
                candle_core::bail!("a cached prefix is one sequence, got {rows} rows");
            }
            let mut caches = vec![None; self.blocks.len()];
            let mask = Tensor::ones((1, len), DType::U8, embeds.device())?;
            let logits = self.cached_run(embeds, &mask, 0, &mut caches, logits_at)?;
            let prefix = CausalPrefix {
                model: self,
                caches,
                len,
            };
            Ok((logits, Box::new(prefix)))
        };
        Some(run())
    }
}

impl<A: CausalArch> CausalLm<A> {
    /// The forward of `embeds` `(rows, n, hidden)` after `past` positions held in `caches`
    /// (extended in place), with logits at `logits_at` of the new positions.
    fn cached_run(
        &self,
        embeds: &Tensor,
        mask: &Tensor,
        past: usize,
        caches: &mut [KvCache],
        logits_at: &LogitPositions,
    ) -> Result<Tensor> {
        let n = embeds.dim(1)?;
        check_len(&self.spec, past + n)?;
        let ctx = self
            .arch
            .ctx(mask, n, past, embeds.dtype(), embeds.device())?;
        let mut taps = Taps::none();
        let x = self.arch.embed_input(embeds.clone(), mask, &mut taps)?;
        let pass = Pass {
            taps: &mut taps,
            cache: Some(caches),
            save: None,
        };
        let x = self.blocks(x, &ctx, pass)?;
        let x = logits_at.select(&self.arch.final_norm(&x)?)?;
        self.lm_head.forward(&x)
    }
}

/// The KV cache of one unperturbed input of a [`CausalLm`] (see [`Model::cache_prefix`]).
struct CausalPrefix<'a, A: CausalArch> {
    model: &'a CausalLm<A>,
    /// Each block's keys and values `(1, kv_heads, len, head_dim)`.
    caches: Vec<KvCache>,
    len: usize,
}

impl<A: CausalArch> CachedPrefix for CausalPrefix<'_, A> {
    fn len(&self) -> usize {
        self.len
    }

    fn logits_after(&self, past: usize, embeds: &Tensor, at: &[usize]) -> Result<Tensor> {
        if past > self.len {
            candle_core::bail!("{past} cached positions asked for, {} kept", self.len);
        }
        let rows = embeds.dim(0)?;
        // Every row starts with the same cached positions: a copy of the first `past` per row.
        let rows_of = |t: &Tensor| -> Result<Tensor> {
            let mut dims = t.dims().to_vec();
            dims[0] = rows;
            dims[2] = past;
            t.narrow(2, 0, past)?.broadcast_as(dims)?.contiguous()
        };
        let mut caches = self
            .caches
            .iter()
            .map(|c| match c {
                Some((k, v)) if past > 0 => Ok(Some((rows_of(k)?, rows_of(v)?))),
                _ => Ok(None),
            })
            .collect::<Result<Vec<KvCache>>>()?;
        let n = embeds.dim(1)?;
        let mask = Tensor::ones((rows, past + n), DType::U8, embeds.device())?;
        let at = LogitPositions::These(at.to_vec());
        self.model.cached_run(embeds, &mask, past, &mut caches, &at)
    }
}

/// A KV-cached decoding session of a [`CausalLm`].
struct CausalDecoding<'a, A: CausalArch> {
    model: &'a CausalLm<A>,
    caches: Vec<KvCache>,
    past: usize,
}

impl<A: CausalArch> DecodingState for CausalDecoding<'_, A> {
    fn step(&mut self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, n) = ids.dims2()?;
        let total = mask.dim(1)?;
        if total != self.past + n {
            candle_core::bail!(
                "decoding mask has {total} columns, expected {}",
                self.past + n
            );
        }
        let m = self.model;
        check_len(&m.spec, total)?;
        let x = lookup(&m.embed_tokens, ids)?;
        let ctx = m.arch.ctx(mask, n, self.past, x.dtype(), x.device())?;
        let mut taps = Taps::none();
        let x = m.arch.embed_input(x, mask, &mut taps)?;
        let pass = Pass {
            taps: &mut taps,
            cache: Some(&mut self.caches[..]),
            save: None,
        };
        let x = m.blocks(x, &ctx, pass)?;
        let x = m.arch.final_norm(&last_position(&x)?)?;
        self.past = total;
        m.lm_head.forward(&x)?.to_dtype(DType::F32)
    }

    fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        select_cache_rows(&mut self.caches, rows)
    }
}

/// One shared forward of a [`CausalLm`]: the [`PrefixBackward`] it serves.
struct SharedForward<'a, A: CausalBackward> {
    model: &'a CausalLm<A>,
    /// Each block's saved tensors, first block first.
    saved: Vec<A::Saved>,
    /// The input of the final norm `(rows, len, hidden)`.
    last: Tensor,
    /// Its output.
    normed: Tensor,
}

impl<A: CausalBackward> PrefixBackward for SharedForward<'_, A> {
    fn logits_at(&self, streams: &Streams) -> Result<Tensor> {
        self.model.lm_head.forward(&streams.pick(&self.normed)?)
    }

    fn backward(&self, streams: &Streams, grad_logits: &Tensor) -> Result<PrefixGrads> {
        let m = self.model;
        let dh = m
            .lm_head
            .input_grad(&grad_logits.to_dtype(self.last.dtype())?)?;
        let dx = m.arch.norm_backward(&streams.pick(&self.last)?, &dh)?;
        let mut dy = streams.place(&dx)?;
        for (b, saved) in m.blocks.iter().zip(&self.saved).rev() {
            dy = m.arch.backward(b, saved, streams, &dy)?;
        }
        Ok(PrefixGrads {
            target: dy,
            source: None,
        })
    }
}
