//! Step scores: step functions evaluated (without gradient) on the actual input at every step,
//! with the contrast input's logits for contrastive functions.

use rinseq_sdk::{abi::LoadedStepFunction, StepInput, TensorView};

use crate::attribution::sequence::EncodedSequence;
use crate::attribution::serve::logits::{forward_at, logits_at};
use crate::attribution::AttributionError;
use crate::models::Model;
use crate::plugins::Instance;

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
        let samples = (0..crate::attribution::plan::dropout_samples(f))
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
        let r = f.compute(&StepInput {
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
