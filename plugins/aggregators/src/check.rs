//! What Inseq re-checks after every aggregation: `__post_init__` clamps `attr_pos_end` to the
//! target length, and `is_compatible` asserts that shapes match the tokens and positions.

use rinseq_sdk::{ErrorCode, PluginError, SequenceAttribution};

/// Clamps `attr_pos_end` to the target length, then checks shapes against tokens and positions.
pub fn finish(mut seq: SequenceAttribution) -> Result<SequenceAttribution, PluginError> {
    seq.attr_pos_end = seq.attr_pos_end.min(seq.target.len());
    let steps = seq
        .attr_pos_end
        .checked_sub(seq.attr_pos_start)
        .ok_or_else(|| {
            mismatch(format!(
                "attr_pos_start {} is past attr_pos_end {}",
                seq.attr_pos_start, seq.attr_pos_end
            ))
        })?;
    let s = &seq.scores;
    let dims = |t: &rinseq_sdk::Tensor| (t.shape.first().copied(), t.shape.get(1).copied());
    if let Some(t) = s.source.as_ref() {
        if dims(t) != (Some(seq.source.len()), Some(steps)) {
            return Err(mismatch(format!(
                "source attributions of shape {:?} don't fit {} source tokens × {steps} steps",
                &t.shape[..],
                seq.source.len()
            )));
        }
    }
    if let Some(t) = s.target.as_ref() {
        let rows = seq.target.len().min(seq.attr_pos_end);
        if dims(t) != (Some(rows), Some(steps)) {
            return Err(mismatch(format!(
                "target attributions of shape {:?} don't fit {rows} target tokens × {steps} steps",
                &t.shape[..]
            )));
        }
    }
    if let Some(bad) = s
        .step_scores
        .iter()
        .find(|n| n.tensor.shape.first() != Some(&steps))
    {
        return Err(mismatch(format!(
            "step score '{}' of shape {:?} doesn't have {steps} steps",
            bad.name,
            &bad.tensor.shape[..]
        )));
    }
    Ok(seq)
}

fn mismatch(msg: String) -> PluginError {
    PluginError::new(ErrorCode::ShapeMismatch, msg)
}
