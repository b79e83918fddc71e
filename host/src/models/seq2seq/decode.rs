//! KV-cached incremental decoding for encoder-decoder models (the BART family, T5): the source is
//! encoded once, the cross-attention keys/values are projected once, and the self-attention
//! keys/values grow with every step (each model's own forward, with caches).

use candle_core::{DType, Result, Tensor};

use super::layers::Cross;
use crate::models::causal::{select_cache_rows, KvCache};
use crate::models::{DecodeStart, DecodingState, Model, ModelError};

/// What KV-cached decoding needs from an encoder-decoder model.
pub trait EncoderDecoder: Model {
    /// Number of decoder layers (one cache each).
    fn decoder_layers(&self) -> usize;

    /// Encodes `ids` `(b, s)` (mask `(b, s)`) and projects every cross-attention's keys/values.
    fn encode_source(&self, ids: &Tensor, mask: &Tensor) -> Result<Cross>;

    /// Logits `(b, vocab)` at the last of the new decoder tokens `ids` `(b, n)`, which follow
    /// `c.past` cached positions (`mask` is `(b, past + n)`); extends `c.caches`.
    fn decode_step(&self, ids: &Tensor, mask: &Tensor, c: &mut Cached) -> Result<Tensor>;
}

/// What a decoding session keeps between steps (one row per sequence or beam).
pub struct Cached {
    /// The encoder side.
    pub cross: Cross,
    /// One self-attention cache per decoder layer.
    pub caches: Vec<KvCache>,
    /// How many positions the caches hold.
    pub past: usize,
}

/// Starts decoding: encodes `start.encoder_ids` (mask: `start.encoder_mask`, all ones when
/// absent).
pub fn start<'a, M: EncoderDecoder>(
    model: &'a M,
    start: &DecodeStart,
) -> Result<Box<dyn DecodingState + 'a>> {
    let Some(ids) = &start.encoder_ids else {
        let msg = format!("{}: decoding needs encoder ids", model.spec().model_type);
        return Err(ModelError::BadInput(msg).into_candle());
    };
    let mask = match &start.encoder_mask {
        Some(m) => m.clone(),
        None => Tensor::ones(ids.dims2()?, DType::U8, ids.device())?,
    };
    let cached = Cached {
        cross: model.encode_source(ids, &mask)?,
        caches: vec![None; model.decoder_layers()],
        past: 0,
    };
    Ok(Box::new(Decoding { model, cached }))
}

/// A decoding session over a batch of encoded sources.
struct Decoding<'a, M> {
    model: &'a M,
    cached: Cached,
}

impl<M: EncoderDecoder> DecodingState for Decoding<'_, M> {
    fn step(&mut self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, n) = ids.dims2()?;
        let (_, total) = mask.dims2()?;
        let past = self.cached.past;
        if n == 0 || total != past + n {
            let msg =
                format!("decoding step: mask covers {total} positions, expected {past} + {n}");
            return Err(ModelError::BadInput(msg).into_candle());
        }
        let logits = self.model.decode_step(ids, mask, &mut self.cached)?;
        self.cached.past = total;
        Ok(logits)
    }

    fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let c = &mut self.cached;
        let idx = Tensor::from_vec(idx, rows.len(), c.cross.bias.device())?;
        let pick = |t: &Tensor| t.index_select(&idx, 0);
        for (k, v) in c.cross.kv.iter_mut() {
            *k = pick(k)?;
            *v = pick(v)?;
        }
        c.cross.bias = pick(&c.cross.bias)?;
        select_cache_rows(&mut c.caches, rows)
    }
}
