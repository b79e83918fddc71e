//! KV-cached incremental decoding for the BART family: the source is encoded once, the
//! cross-attention keys/values are projected once, and the self-attention keys/values grow by one
//! position per step (the forward of `layers.rs`, with caches).

use candle_core::{Result, Tensor};

use super::layers::Cross;
use super::Seq2Seq;
use crate::models::causal::{select_cache_rows, KvCache, Pass};
use crate::models::{ops, DecodeStart, DecodingState, Model, Side, Taps};

/// A decoding session over a batch of encoded sources (one row per sequence or beam).
pub struct Seq2SeqDecoding<'a> {
    model: &'a Seq2Seq,
    cross: Cross,
    caches: Vec<KvCache>,
    past: usize,
}

impl<'a> Seq2SeqDecoding<'a> {
    /// Encodes `start.encoder_ids` (mask: `start.encoder_mask`, all ones when absent).
    pub fn new(model: &'a Seq2Seq, start: &DecodeStart) -> Result<Self> {
        let Some(ids) = &start.encoder_ids else {
            candle_core::bail!("{}: decoding needs encoder ids", model.spec.model_type);
        };
        let mask = match &start.encoder_mask {
            Some(m) => m.clone(),
            None => Tensor::ones(ids.dims2()?, candle_core::DType::U8, ids.device())?,
        };
        let mut taps = Taps::none();
        let embeds = model.embed(Side::Encoder, ids)?;
        let enc = model.encode(&embeds, &mask, Pass::taps(&mut taps))?.out;
        Ok(Self {
            model,
            cross: model.cross(&enc, &mask, &mut taps)?,
            caches: vec![None; model.decoder.layers.len()],
            past: 0,
        })
    }
}

impl DecodingState for Seq2SeqDecoding<'_> {
    fn step(&mut self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, n) = ids.dims2()?;
        let (_, total) = mask.dims2()?;
        if n == 0 || total != self.past + n {
            candle_core::bail!(
                "decoding step: mask covers {total} positions, expected {} + {n}",
                self.past
            );
        }
        let x = self.model.embed(Side::Decoder, ids)?;
        let bias = ops::attention_bias(mask, n, self.past, true, x.dtype())?;
        let mut taps = Taps::none();
        let pass = Pass {
            taps: &mut taps,
            cache: Some(&mut self.caches[..]),
            save: None,
        };
        let h = (self.model.decoder)
            .forward(&x, self.past, &bias, Some(&self.cross), pass)?
            .out;
        self.past += n;
        let last = h.narrow(1, n - 1, 1)?;
        self.model.logits(&last, &mut taps)?.squeeze(1)
    }

    fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let idx = Tensor::from_vec(idx, rows.len(), self.cross.bias.device())?;
        let pick = |t: &Tensor| t.index_select(&idx, 0);
        for (k, v) in self.cross.kv.iter_mut() {
            *k = pick(k)?;
            *v = pick(v)?;
        }
        self.cross.bias = pick(&self.cross.bias)?;
        select_cache_rows(&mut self.caches, rows)
    }
}
