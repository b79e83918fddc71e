//! Step scores: step functions evaluated (without gradient) on the actual input at every step,
//! with the contrast input's logits for contrastive functions.

use candle_core::{DType, Tensor};
use rinseq_sdk::{abi::LoadedStepFunction, StepInput, TensorView};

use super::host_model::host_err;
use super::sequence::EncodedSequence;
use super::AttributionError;
use crate::models::{ForwardInput, LogitPositions, Model, Side, SideInput, Taps};
use crate::plugins::Instance;

/// Logits `(positions, vocab)` of one forward of `(source, target)` at `positions`.
pub fn logits_at(
    model: &dyn Model,
    source: &[u32],
    target: &[u32],
    positions: Vec<usize>,
) -> Result<(Vec<f32>, usize), AttributionError> {
    forward_at(model, source, target, positions, false)
}

/// [`logits_at`], with the model's dropout layers on when `dropout` (Monte Carlo dropout).
fn forward_at(
    model: &dyn Model,
    source: &[u32],
    target: &[u32],
    positions: Vec<usize>,
    dropout: bool,
) -> Result<(Vec<f32>, usize), AttributionError> {
    let device = model.device().clone();
    let side = |side: Side, ids: &[u32]| -> Result<SideInput, AttributionError> {
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

/// Evaluates every step function of `fns` at every step of `seq`.
pub fn record(
    model: &dyn Model,
    seq: &EncodedSequence,
    fns: &[(String, Instance<LoadedStepFunction>)],
) -> Result<Vec<(String, Vec<f32>)>, AttributionError> {
    if fns.is_empty() {
        return Ok(Vec::new());
    }
    let before = |p: &usize| p - 1;
    let (values, vocab) = logits_at(
        model,
        &seq.source_ids,
        &seq.target_ids,
        seq.steps.iter().map(before).collect(),
    )?;
    let shape = [seq.steps.len(), vocab];
    let targets: Vec<u32> = seq.steps.iter().map(|&p| seq.target_ids[p]).collect();
    // As step scores, Inseq always runs the contrast input.
    let contrast = match &seq.contrast {
        None => None,
        Some(c) => {
            let aligned: Vec<usize> = seq.steps.iter().map(|&p| c.position(p)).collect();
            let (v, _) = logits_at(
                model,
                &c.source_ids,
                &c.target_ids,
                aligned.iter().map(before).collect(),
            )?;
            let ids: Vec<u32> = aligned.iter().map(|&p| c.target_ids[p]).collect();
            Some((v, ids))
        }
    };
    let mut out = Vec::new();
    for (name, f) in fns {
        let positions = || seq.steps.iter().map(before).collect::<Vec<_>>();
        let samples = (0..super::plan::dropout_samples(f))
            .map(|_| forward_at(model, &seq.source_ids, &seq.target_ids, positions(), true))
            .map(|r| r.map(|(v, _)| v))
            .collect::<Result<Vec<_>, _>>()?;
        let sample_views = samples
            .iter()
            .map(|s| TensorView::new(&shape, s))
            .collect::<Result<Vec<_>, _>>()?;
        let (contrast_logits, contrast_ids) = match &contrast {
            Some((v, ids)) => (Some(TensorView::new(&shape, v)?), ids.as_slice()),
            None => (None, &[][..]),
        };
        let r = f
            .compute(&StepInput {
                logits: TensorView::new(&shape, &values)?,
                target_ids: targets.as_slice(),
                contrast_logits,
                contrast_target_ids: contrast_ids,
                dropout_logits: sample_views,
                want_grad: false,
            })?;
        out.push((name.clone(), r.scores.to_vec()));
    }
    Ok(out)
}
