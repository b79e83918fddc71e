//! Prompt batching: left-padded decoder rows, right-padded encoder rows, masks, and the calls to
//! [`DecodingState::step`].

use candle_core::{DType, Device, Tensor};

use super::GenerationError;
use crate::models::{DecodeStart, DecodingState};

/// Decoder rows of a batch (HF's `input_ids`, left padding included) and their padding lengths.
#[derive(Debug, Clone)]
pub struct Rows {
    /// One row per sequence: `pad_len` padding ids, the prompt, then generated tokens.
    pub rows: Vec<Vec<u32>>,
    /// Left padding of each row.
    pub pad_lens: Vec<usize>,
    /// The model's device, where ids and masks are built.
    pub device: Device,
}

impl Rows {
    /// Left-pads `prompts` with `pad` to a common length (tensors on `device`).
    pub fn left_padded(prompts: &[Vec<u32>], pad: u32, device: &Device) -> Self {
        let len = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let mut rows = Vec::with_capacity(prompts.len());
        let mut pad_lens = Vec::with_capacity(prompts.len());
        for p in prompts {
            let n = len - p.len();
            let mut row = vec![pad; n];
            row.extend_from_slice(p);
            rows.push(row);
            pad_lens.push(n);
        }
        Rows {
            rows,
            pad_lens,
            device: device.clone(),
        }
    }

    /// Current (common) row length.
    pub fn len(&self) -> usize {
        self.rows.first().map_or(0, Vec::len)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// `(batch, len)` mask: 0 on left padding, 1 elsewhere.
    pub fn mask(&self) -> Result<Tensor, GenerationError> {
        let len = self.len();
        let data: Vec<u8> = self
            .pad_lens
            .iter()
            .flat_map(|&p| (0..len).map(move |j| u8::from(j >= p)))
            .collect();
        Ok(Tensor::from_vec(
            data,
            (self.rows.len(), len),
            &self.device,
        )?)
    }

    /// `(batch, n)` ids of the last `n` positions.
    pub fn tail_ids(&self, n: usize) -> Result<Tensor, GenerationError> {
        let len = self.len();
        let data: Vec<u32> = self
            .rows
            .iter()
            .flat_map(|r| r[len - n..].iter().copied())
            .collect();
        Ok(Tensor::from_vec(data, (self.rows.len(), n), &self.device)?)
    }
}

/// `(batch, len)` right-padded ids and mask for an encoder input, on `device`.
pub fn encoder_start(
    sources: &[Vec<u32>],
    pad: u32,
    device: &Device,
) -> Result<DecodeStart, GenerationError> {
    let len = sources.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(sources.len() * len);
    let mut mask = Vec::with_capacity(sources.len() * len);
    for s in sources {
        ids.extend_from_slice(s);
        ids.extend(std::iter::repeat_n(pad, len - s.len()));
        mask.extend(std::iter::repeat_n(1u8, s.len()));
        mask.extend(std::iter::repeat_n(0u8, len - s.len()));
    }
    let shape = (sources.len(), len);
    Ok(DecodeStart {
        encoder_ids: Some(Tensor::from_vec(ids, shape, device)?),
        encoder_mask: Some(Tensor::from_vec(mask, shape, device)?),
    })
}

/// Feeds the last `n` tokens of `rows` and returns the last-position logits as f32 rows.
pub fn step(
    state: &mut dyn DecodingState,
    rows: &Rows,
    n: usize,
) -> Result<Vec<Vec<f32>>, GenerationError> {
    let logits = state.step(&rows.tail_ids(n)?, &rows.mask()?)?;
    Ok(logits.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}
