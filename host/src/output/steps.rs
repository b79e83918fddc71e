//! Per-step outputs (`output_step_attributions`): Inseq's `FeatureAttributionStepOutput` list,
//! rebuilt from the per-sequence matrices (rinseq attributes all steps at once; Inseq stacks its
//! step outputs into those same matrices).
//!
//! Step `j` batches the `j`-th attributed step of every sequence. Rows of different lengths are
//! right-padded with NaN (Inseq pads its batch with the tokenizer's padding side); a sequence
//! with fewer steps gets an all-NaN row and NaN step scores.

use rinseq_sdk::Tensor;

use super::model::{
    FeatureAttributionSequenceOutput, FeatureAttributionStepOutput, ScoreMap, TokenWithId,
};

/// Rows `..rows` of column `j` of a `(len, steps, extra...)` matrix: `(rows, extra...)` values.
fn column(t: &Tensor, j: usize, rows: usize) -> Vec<f32> {
    let steps = t.shape.get(1).copied().unwrap_or(1);
    let extra: usize = t.shape.iter().skip(2).product();
    (0..rows.min(t.shape[0]))
        .flat_map(|r| {
            let at = (r * steps + j) * extra;
            t.data[at..at + extra].iter().copied()
        })
        .collect()
}

/// Stacks per-row `(len_i, extra...)` values into `(batch, max_len, extra...)`, NaN-padded.
fn batch(rows: Vec<(usize, Vec<f32>)>, extra_shape: &[usize]) -> Option<Tensor> {
    let extra: usize = extra_shape.iter().product();
    let len = rows.iter().map(|(l, _)| *l).max()?;
    let mut data = Vec::with_capacity(rows.len() * len * extra);
    for (l, v) in &rows {
        data.extend_from_slice(v);
        data.resize(data.len() + (len - l) * extra, f32::NAN);
    }
    let mut shape = vec![rows.len(), len];
    shape.extend_from_slice(extra_shape);
    Tensor::new(shape, data).ok()
}

/// One side of step `j` for every sequence: `(batch, len, extra...)`, or none without tensors.
fn side<'s>(
    seqs: &'s [FeatureAttributionSequenceOutput],
    j: usize,
    pick: impl Fn(usize, &'s FeatureAttributionSequenceOutput) -> Option<(&'s Tensor, usize)>,
) -> Option<Tensor> {
    let first = seqs.iter().enumerate().find_map(|(i, s)| pick(i, s))?;
    let extra_shape: Vec<usize> = first.0.shape.iter().skip(2).copied().collect();
    let extra: usize = extra_shape.iter().product();
    let rows = seqs
        .iter()
        .enumerate()
        .map(|(i, s)| match pick(i, s) {
            Some((t, rows)) if j < s.n_steps() => {
                let v = column(t, j, rows);
                (v.len() / extra.max(1), v)
            }
            _ => (0, Vec::new()),
        })
        .collect();
    batch(rows, &extra_shape)
}

/// [`step_outputs_with_prefixes`] with each sequence's own target tokens as prefixes.
pub fn step_outputs(
    seqs: &[FeatureAttributionSequenceOutput],
    positions: &[Vec<usize>],
) -> Vec<FeatureAttributionStepOutput> {
    let prefixes: Vec<Vec<TokenWithId>> = seqs.iter().map(|s| s.target.clone()).collect();
    step_outputs_with_prefixes(seqs, positions, &prefixes)
}

/// Inseq's `step_attributions` for `seqs`, one entry per step of the longest sequence;
/// `positions[i][j]` is the target position attributed at step `j` of sequence `i` (usually
/// `attr_pos_start + j`; one more with Inseq's inclusive encoder-decoder end, see
/// [`crate::attribution::Positions`]).
///
/// Each step's `prefix` is read from `prefixes` (the plain target tokens): in a contrastive run
/// Inseq shows the `"contrast → target"` renames in the step's own `target` only.
pub fn step_outputs_with_prefixes(
    seqs: &[FeatureAttributionSequenceOutput],
    positions: &[Vec<usize>],
    prefixes: &[Vec<TokenWithId>],
) -> Vec<FeatureAttributionStepOutput> {
    let n = seqs.iter().map(|s| s.n_steps()).max().unwrap_or(0);
    let Some(first) = seqs.first() else {
        return Vec::new();
    };
    let decoder_only = first.source_attributions.is_none();
    (0..n)
        .map(|j| {
            let pos = |i: usize| positions.get(i).and_then(|p| p.get(j)).copied();
            let mut step_scores = ScoreMap::new();
            for name in first.step_scores.keys() {
                let values = seqs
                    .iter()
                    .map(|s| {
                        s.step_scores
                            .get(name)
                            .and_then(|t| t.data.get(j).copied())
                            .unwrap_or(f32::NAN)
                    })
                    .collect::<Vec<_>>();
                if let Ok(t) = Tensor::new(vec![seqs.len()], values) {
                    step_scores.insert(name.clone(), t);
                }
            }
            FeatureAttributionStepOutput {
                source_attributions: side(seqs, j, |_, s| {
                    s.source_attributions.as_ref().map(|t| (t, t.shape[0]))
                }),
                target_attributions: side(seqs, j, |i, s| {
                    Some((s.target_attributions.as_ref()?, pos(i)?))
                }),
                step_scores,
                sequence_scores: ScoreMap::new(),
                source: (!decoder_only).then(|| seqs.iter().map(|s| s.source.clone()).collect()),
                prefix: Some(
                    (seqs.iter().enumerate())
                        .map(|(i, s)| match pos(i) {
                            Some(p) => {
                                let plain = prefixes.get(i).unwrap_or(&s.target);
                                plain[..p.min(plain.len())].to_vec()
                            }
                            None => Vec::new(),
                        })
                        .collect(),
                ),
                target: Some(
                    (seqs.iter().enumerate())
                        .map(|(i, s)| pos(i).and_then(|p| s.target.get(p)).cloned())
                        .map(|t| t.into_iter().collect())
                        .collect(),
                ),
                class: first.class,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::model::SequenceClass;

    fn seq(target_len: usize, start: usize, steps: usize) -> FeatureAttributionSequenceOutput {
        let tokens = (0..target_len)
            .map(|i| TokenWithId::new(format!("t{i}"), i as i64))
            .collect::<Vec<_>>();
        let mut s = FeatureAttributionSequenceOutput::new(
            SequenceClass::Granular,
            tokens[..start].to_vec(),
            tokens,
            start,
            start + steps,
        );
        let rows = start + steps;
        // value = 100 * row + step, hidden size 1.
        let data = (0..rows)
            .flat_map(|r| (0..steps).map(move |j| (100 * r + j) as f32))
            .collect();
        s.target_attributions = Some(Tensor::new(vec![rows, steps, 1], data).unwrap());
        s.step_scores.insert(
            "probability".into(),
            Tensor::new(vec![steps], (0..steps).map(|j| j as f32 / 10.0).collect()).unwrap(),
        );
        s
    }

    #[test]
    fn contrastive_renames_show_in_the_step_target_not_in_later_prefixes() {
        let mut s = seq(5, 2, 3);
        let plain = s.target.clone();
        s.target[2] = TokenWithId::new("c2 → t2", -1);
        s.target[3] = TokenWithId::new("c3 → t3", -1);
        let steps =
            step_outputs_with_prefixes(&[s], &[vec![2, 3, 4]], std::slice::from_ref(&plain));
        let target = |j: usize| steps[j].target.as_ref().unwrap()[0][0].clone();
        let prefix = |j: usize| steps[j].prefix.as_ref().unwrap()[0].clone();
        assert_eq!(target(0), TokenWithId::new("c2 → t2", -1));
        assert_eq!(target(1), TokenWithId::new("c3 → t3", -1));
        assert_eq!(prefix(1), plain[..3].to_vec());
        assert_eq!(prefix(2), plain[..4].to_vec());
    }

    #[test]
    fn steps_slice_the_visible_prefix_and_pad_the_batch() {
        let steps = step_outputs(&[seq(5, 2, 3), seq(4, 3, 1)], &[vec![2, 3, 4], vec![3]]);
        assert_eq!(steps.len(), 3);
        let t0 = steps[0].target_attributions.as_ref().unwrap();
        // Step 0: prefixes of 2 and 3 tokens, padded to 3.
        assert_eq!(t0.shape.to_vec(), vec![2, 3, 1]);
        assert_eq!(&t0.data[..2], &[0.0, 100.0]);
        assert!(t0.data[2].is_nan());
        assert_eq!(&t0.data[3..], &[0.0, 100.0, 200.0]);
        let t2 = steps[2].target_attributions.as_ref().unwrap();
        assert_eq!(t2.shape.to_vec(), vec![2, 4, 1]);
        assert_eq!(&t2.data[..4], &[2.0, 102.0, 202.0, 302.0]);
        assert!(t2.data[4..].iter().all(|v| v.is_nan()));
        let p = &steps[2].step_scores["probability"];
        assert!((p.data[0] - 0.2).abs() < 1e-6 && p.data[1].is_nan());
        assert_eq!(steps[1].target.as_ref().unwrap()[0][0].token, "t3");
        // The second sequence has no step 1: empty prefix and target.
        assert!(steps[1].prefix.as_ref().unwrap()[1].is_empty());
        assert!(steps[1].target.as_ref().unwrap()[1].is_empty());
        assert!(steps[0].source.is_none());
    }
}
