//! Step scores: step functions evaluated (without gradient) on the actual input at every step.

use candle_core::{DType, Device, Tensor};
use rinseq_sdk::abi_stable::std_types::ROption;
use rinseq_sdk::{StepFunctionBox, StepInput, TensorView};

use super::host_model::host_err;
use super::sequence::EncodedSequence;
use super::AttributionError;
use crate::models::{ForwardInput, LogitPositions, Model, Side, SideInput, Taps};

/// The step logits `(steps, vocab)` of `seq`: one forward, logits at every step's position - 1.
pub fn step_logits(
    model: &dyn Model,
    seq: &EncodedSequence,
) -> Result<(Vec<f32>, usize), AttributionError> {
    let device = Device::Cpu;
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
        encoder: if seq.source_ids.is_empty() {
            None
        } else {
            Some(side(Side::Encoder, &seq.source_ids)?)
        },
        decoder: side(Side::Decoder, &seq.target_ids)?,
        logits_at: LogitPositions::These(seq.steps.iter().map(|p| p - 1).collect()),
    };
    let logits = model
        .forward(&input, &mut Taps::none())
        .map_err(host_err)?
        .logits;
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
    fns: &[(String, StepFunctionBox)],
) -> Result<Vec<(String, Vec<f32>)>, AttributionError> {
    if fns.is_empty() {
        return Ok(Vec::new());
    }
    let (values, vocab) = step_logits(model, seq)?;
    let shape = [seq.steps.len(), vocab];
    let targets: Vec<u32> = seq.steps.iter().map(|&p| seq.target_ids[p]).collect();
    let mut out = Vec::new();
    for (name, f) in fns {
        let r = f
            .compute(StepInput {
                logits: TensorView::new(&shape, &values)?,
                target_ids: targets.as_slice().into(),
                contrast_logits: ROption::RNone,
                contrast_target_ids: [].as_slice().into(),
                dropout_logits: [].as_slice().into(),
                want_grad: false,
            })
            .into_result()?;
        out.push((name.clone(), r.scores.to_vec()));
    }
    Ok(out)
}
