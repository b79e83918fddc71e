//! Checks a method's result against its request before the host keeps it: one entry per
//! sequence, and every tensor `(tokens, steps, extra...)` as the declared output kind says. A
//! mismatch is an error naming the method, the expected and the actual shape. Target positions
//! a step cannot see are then set to NaN, so that methods need not do it.

use rinseq_sdk::layout::mask_future_positions;
use rinseq_sdk::{AttributionOutput, OutputKind, SequenceScores, Tensor};

use crate::attribution::sequence::EncodedSequence;
use crate::attribution::AttributionError;

/// What the host expects of one method's output.
pub struct Expected<'a> {
    /// The method's name, for messages.
    pub method: &'a str,
    /// Its declared output kind.
    pub kind: Option<OutputKind>,
    /// Encoder-decoder model (source attributions expected).
    pub encoder_decoder: bool,
    /// Target attributions expected.
    pub attribute_target: bool,
}

/// Checks `out` against the batch `chunk` and masks invisible target positions.
pub fn check_output(
    e: &Expected<'_>,
    chunk: &[EncodedSequence],
    out: &mut AttributionOutput,
) -> Result<(), AttributionError> {
    if out.sequences.len() != chunk.len() {
        return Err(bad(
            e,
            format!(
                "returned {} sequences for a batch of {}",
                out.sequences.len(),
                chunk.len()
            ),
        ));
    }
    for (i, (seq, scores)) in chunk.iter().zip(&mut out.sequences).enumerate() {
        check_sequence(e, i, seq, scores)?;
    }
    Ok(())
}

fn check_sequence(
    e: &Expected<'_>,
    i: usize,
    seq: &EncodedSequence,
    scores: &mut SequenceScores,
) -> Result<(), AttributionError> {
    let n_steps = seq.steps.len();
    let sides = [
        (
            "source",
            e.encoder_decoder,
            seq.source_ids.len(),
            &mut scores.source,
        ),
        (
            "target",
            e.attribute_target,
            seq.target_ids.len(),
            &mut scores.target,
        ),
    ];
    for (side, wanted, len, tensor) in sides {
        match (wanted, tensor.as_ref()) {
            (true, None) => {
                return Err(bad(
                    e,
                    format!("returned no {side} attributions for sequence {i}"),
                ))
            }
            (false, Some(t)) if !t.data.is_empty() => {
                return Err(bad(
                    e,
                    format!(
                        "returned {side} attributions for sequence {i}, which were not asked for"
                    ),
                ))
            }
            (false, Some(_)) => *tensor = None,
            (true, Some(t)) => check_shape(e, i, side, t, len, n_steps)?,
            (false, None) => {}
        }
    }
    if let Some(t) = scores.target.as_mut() {
        let steps: Vec<u32> = seq.steps.iter().map(|&s| s as u32).collect();
        mask_future_positions(t, &steps);
    }
    for named in &scores.step_scores {
        if named.tensor.shape != [n_steps] {
            return Err(bad(
                e,
                format!(
                    "step score '{}' of sequence {i} has shape {:?}, expected [{n_steps}] (one per step)",
                    named.name, named.tensor.shape
                ),
            ));
        }
    }
    Ok(())
}

fn check_shape(
    e: &Expected<'_>,
    i: usize,
    side: &str,
    t: &Tensor,
    len: usize,
    n_steps: usize,
) -> Result<(), AttributionError> {
    let extra = e
        .kind
        .map_or(t.ndim().saturating_sub(2), OutputKind::extra_dims);
    let fits = t.ndim() == 2 + extra
        && t.shape[0] == len
        && t.shape[1] == n_steps
        && t.data.len() == t.shape.iter().product::<usize>();
    if fits {
        return Ok(());
    }
    let tail = match e.kind {
        Some(OutputKind::Granular) => ", hidden".to_string(),
        Some(OutputKind::Coarse) | None => String::new(),
        Some(OutputKind::MultiDimensional { extra_dims }) => {
            format!(", +{extra_dims} dims")
        }
    };
    Err(bad(
        e,
        format!(
            "returned {side} attributions of shape {:?} for sequence {i}; expected \
             ({len} tokens, {n_steps} steps{tail}) for a {} method",
            t.shape,
            e.kind.map_or("-", OutputKind::name)
        ),
    ))
}

fn bad(e: &Expected<'_>, what: String) -> AttributionError {
    AttributionError::BadOutput(format!("attribution method '{}' {what}", e.method))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq() -> EncodedSequence {
        EncodedSequence {
            target_ids: vec![1, 2, 3, 4],
            steps: vec![2, 3],
            ..Default::default()
        }
    }

    fn expected() -> Expected<'static> {
        Expected {
            method: "m",
            kind: Some(OutputKind::Coarse),
            encoder_decoder: false,
            attribute_target: true,
        }
    }

    fn output(shape: Vec<usize>) -> AttributionOutput {
        let n = shape.iter().product();
        AttributionOutput {
            sequences: vec![SequenceScores {
                target: Some(Tensor::new(shape, vec![1.0; n]).unwrap()),
                ..Default::default()
            }],
        }
    }

    #[test]
    fn a_good_result_is_kept_and_masked() {
        let mut out = output(vec![4, 2]);
        check_output(&expected(), &[seq()], &mut out).unwrap();
        let t = out.sequences[0].target.as_ref().unwrap();
        // Position 2 is visible at step 3 only; positions 3 are never visible.
        assert!(t.data[4].is_nan() && t.data[5] == 1.0 && t.data[6].is_nan());
    }

    #[test]
    fn transposed_or_short_results_are_refused() {
        for shape in [vec![2, 4], vec![3, 2], vec![4, 2, 1]] {
            let e = check_output(&expected(), &[seq()], &mut output(shape.clone())).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("'m'")
                    && msg.contains(&format!("{shape:?}"))
                    && msg.contains("4 tokens, 2 steps"),
                "{msg}"
            );
        }
    }

    #[test]
    fn missing_sides_and_sequences_are_refused() {
        let mut none = AttributionOutput {
            sequences: vec![SequenceScores::default()],
        };
        assert!(check_output(&expected(), &[seq()], &mut none)
            .unwrap_err()
            .to_string()
            .contains("no target attributions"));
        let mut empty = AttributionOutput::default();
        assert!(check_output(&expected(), &[seq()], &mut empty)
            .unwrap_err()
            .to_string()
            .contains("0 sequences for a batch of 1"));
    }
}
