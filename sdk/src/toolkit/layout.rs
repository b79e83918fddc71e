//! The shapes methods return: Inseq stores per-sequence attributions token-major,
//! `(len, n_steps, extra...)`, with NaN where a target position is not visible yet.
//!
//! Host gradients come step-major, `(points, steps, len, hidden)`: take one point with
//! [`point`], make it token-major with [`steps_to_token_major`], or do both sides at once with
//! [`to_sequence_scores`]. Masking future target positions is done *for* the method: the host
//! sets them to NaN (and checks every result's shape) after `attribute` returns, so methods need
//! not call [`mask_future_positions`]; it stays available for code that wants the final values
//! itself (tests on [`crate::testing::ToyHost`], which does not post-process).

use crate::data::{SequenceInput, SequenceScores};
use crate::error::{ErrorCode, PluginError};
use crate::tensor::{NamedTensor, Tensor};

/// `(steps, len, rest...)` -> `(len, steps, rest...)`.
pub fn steps_to_token_major(t: &Tensor) -> Result<Tensor, PluginError> {
    if t.ndim() < 2 {
        return Err(PluginError::new(
            ErrorCode::ShapeMismatch,
            format!("expected (steps, len, ...), got {:?}", t.shape.as_slice()),
        ));
    }
    let (steps, len) = (t.shape[0], t.shape[1]);
    let rest: usize = t.shape[2..].iter().product();
    let mut data = vec![0.0f32; t.data.len()];
    for s in 0..steps {
        for i in 0..len {
            let src = (s * len + i) * rest;
            let dst = (i * steps + s) * rest;
            data[dst..dst + rest].copy_from_slice(&t.data[src..src + rest]);
        }
    }
    let mut shape = vec![len, steps];
    shape.extend_from_slice(&t.shape[2..]);
    Tensor::new(shape, data)
}

/// In a token-major target tensor `(len, steps, rest...)`, sets to NaN every position at or
/// after the position of its step (`steps[j]` is the target position scored in column `j`).
///
/// The host already does this to every method's target scores (and checks their shapes), so a
/// method need not call it.
pub fn mask_future_positions(t: &mut Tensor, steps: &[u32]) {
    if t.ndim() < 2 {
        return;
    }
    let (len, n) = (t.shape[0], t.shape[1]);
    let rest: usize = t.shape[2..].iter().product();
    for i in 0..len {
        for (j, &pos) in steps.iter().enumerate().take(n) {
            if i >= pos as usize {
                let at = (i * n + j) * rest;
                t.data[at..at + rest].iter_mut().for_each(|v| *v = f32::NAN);
            }
        }
    }
}

/// Takes point `p` of a `(points, rest...)` tensor as a `(rest...)` tensor.
pub fn point(t: &Tensor, p: usize) -> Result<Tensor, PluginError> {
    if p >= t.shape.first().copied().unwrap_or(0) {
        return Err(PluginError::new(
            ErrorCode::ShapeMismatch,
            format!(
                "point {p} is out of range for shape {:?}",
                t.shape.as_slice()
            ),
        ));
    }
    let size: usize = t.shape[1..].iter().product();
    Tensor::new(
        t.shape[1..].to_vec(),
        t.data[p * size..(p + 1) * size].to_vec(),
    )
}

/// A sequence's scores from step-major `(steps, len, extra...)` attributions per side: made
/// token-major, future target positions NaN (as the host would make them).
pub fn to_sequence_scores(
    seq: &SequenceInput,
    source: Option<Tensor>,
    target: Option<Tensor>,
) -> Result<SequenceScores, PluginError> {
    let source = source.map(|t| steps_to_token_major(&t)).transpose()?;
    let target = target
        .map(|t| {
            let mut t = steps_to_token_major(&t)?;
            mask_future_positions(&mut t, &seq.steps);
            Ok::<_, PluginError>(t)
        })
        .transpose()?;
    Ok(SequenceScores {
        source,
        target,
        ..Default::default()
    })
}

/// [`to_sequence_scores`], with the `deltas` step score (see [`super::convergence_deltas`])
/// when given.
pub fn finish_sequence(
    seq: &SequenceInput,
    source: Option<Tensor>,
    target: Option<Tensor>,
    deltas: Option<Tensor>,
) -> Result<SequenceScores, PluginError> {
    let mut out = to_sequence_scores(seq, source, target)?;
    if let Some(d) = deltas {
        out.step_scores.push(NamedTensor::new("deltas", d));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_major_and_masked() {
        // 2 steps, 3 positions, 1 extra.
        let t = Tensor::new(vec![2, 3, 1], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let tm = steps_to_token_major(&t).unwrap();
        assert_eq!(tm.shape, vec![3, 2, 1]);
        assert_eq!(tm.data, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        let mut m = tm.clone();
        mask_future_positions(&mut m, &[1, 2]);
        // Position 1 is visible from step 2 only, position 2 from neither.
        assert_eq!((m.data[0], m.data[1], m.data[3]), (1.0, 4.0, 5.0));
        assert!([2, 4, 5].iter().all(|&i| m.data[i].is_nan()));
        assert!(steps_to_token_major(&Tensor::zeros(vec![3])).is_err());
    }

    #[test]
    fn points_and_sequence_scores() {
        let t = Tensor::new(vec![2, 1, 2, 1], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let p = point(&t, 1).unwrap();
        assert_eq!(
            (p.shape.clone(), p.data.clone()),
            (vec![1, 2, 1], vec![3.0, 4.0])
        );
        assert!(point(&t, 2).is_err());
        let seq = SequenceInput {
            steps: vec![1],
            ..Default::default()
        };
        let d = Tensor::new(vec![1], vec![0.5]).unwrap();
        let s = finish_sequence(&seq, Some(p.clone()), Some(p), Some(d)).unwrap();
        assert_eq!(s.source.unwrap().data, [3.0, 4.0]);
        let tgt = s.target.unwrap();
        assert_eq!(tgt.shape, vec![2, 1, 1]);
        assert_eq!(tgt.data[0], 3.0);
        assert!(tgt.data[1].is_nan());
        assert_eq!(s.step_scores[0].name, "deltas");
    }
}
