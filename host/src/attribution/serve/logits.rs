//! Plain (no-gradient) logits of one forward at chosen positions: step scores, contrast
//! logits and Monte Carlo dropout samples.

use candle_core::{DType, Tensor};
use rinseq_sdk::PluginError;

use super::host::host_err;
use crate::models::{ForwardInput, LogitPositions, Model, Side, SideInput, Taps};

/// Logits `(positions, vocab)` of one forward of `(source, target)` at `positions`.
pub fn logits_at(
    model: &dyn Model,
    source: &[u32],
    target: &[u32],
    positions: Vec<usize>,
) -> Result<(Vec<f32>, usize), PluginError> {
    forward_at(model, source, target, positions, false)
}

/// [`logits_at`], with the model's dropout layers on when `dropout` (Monte Carlo dropout).
pub fn forward_at(
    model: &dyn Model,
    source: &[u32],
    target: &[u32],
    positions: Vec<usize>,
    dropout: bool,
) -> Result<(Vec<f32>, usize), PluginError> {
    let device = model.device().clone();
    let side = |side: Side, ids: &[u32]| -> Result<SideInput, PluginError> {
        let t = Tensor::new(ids, &device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(host_err)?;
        Ok(SideInput {
            embeds: model.embed(side, &t).map_err(host_err)?,
            mask: Tensor::ones((1, ids.len()), DType::U8, &device).map_err(host_err)?,
        })
    };
    let input = ForwardInput {
        encoder: if source.is_empty() {
            None
        } else {
            Some(side(Side::Encoder, source)?)
        },
        decoder: side(Side::Decoder, target)?,
        logits_at: LogitPositions::These(positions),
    };
    let mut taps = Taps::none();
    taps.dropout = dropout;
    let logits = model.forward(&input, &mut taps).map_err(host_err)?.logits;
    let vocab = logits.dim(2).map_err(host_err)?;
    let values = logits
        .to_dtype(DType::F32)
        .and_then(|l| l.flatten_all())
        .and_then(|l| l.to_vec1::<f32>())
        .map_err(host_err)?;
    Ok((values, vocab))
}
