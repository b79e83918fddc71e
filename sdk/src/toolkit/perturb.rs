//! Perturbation methods: the token ids of a sequence, inputs with some tokens replaced by their
//! baseline ids, and per-token attributions from the scores of those inputs.
//!
//! A perturbation method asks the host for scores only ([`crate::Host::scores`], no gradients):
//! build every perturbed point of a sequence, score them all in **one** request (the host batches
//! them, one forward per point covers every step), then compare each with the unperturbed input.
//! [`Occlusion`] does the bookkeeping:
//!
//! ```
//! use rinseq_sdk::prelude::*;
//! use rinseq_sdk::testing::ToyHost;
//!
//! let toy = ToyHost::new(&[1, 2, 3, 4], 2);
//! let (host, seq) = (toy.host(), &toy.request().sequences[0]);
//! let sides = AttributedSides::of(&host, toy.request());
//! // Point 0 is the input; point 1 + k has position k replaced by its baseline id.
//! let occ = Occlusion::leave_one_out(seq, sides)?;
//! let scores = host.scores(ScoreRequest {
//!     sequence: 0,
//!     points: occ.points.clone(),
//!     steps: seq.steps.clone(),
//!     ..Default::default()
//! })?;
//! let out = occ.drops(&scores)?; // f(x) − f(x with the token replaced), (len, steps)
//! assert_eq!(out.target.unwrap().shape, vec![4, 2]);
//! # Ok::<(), PluginError>(())
//! ```

use std::ops::Range;

use crate::data::{SequenceInput, SequenceScores, Side, TokenId};
use crate::error::PluginError;
use crate::requests::InputPoint;
use crate::tensor::Tensor;

use super::endpoints::AttributedSides;
use super::index::TensorIndex;

/// The vocabulary ids of `side` of `seq`; an error names a token without one (merged tokens
/// never reach a method).
pub fn ids(seq: &SequenceInput, side: Side) -> Result<Vec<TokenId>, PluginError> {
    let tokens = match side {
        Side::Source => &seq.source,
        Side::Target => &seq.target,
    };
    tokens
        .iter()
        .map(|t| {
            t.id.ok_or_else(|| {
                PluginError::invalid_params(format!("token '{}' has no vocabulary id", t.text))
            })
        })
        .collect()
}

/// The source token ids of `seq` (empty for decoder-only models).
pub fn source_ids(seq: &SequenceInput) -> Result<Vec<TokenId>, PluginError> {
    ids(seq, Side::Source)
}

/// The target token ids of `seq` (prompt and generation, for decoder-only models).
pub fn target_ids(seq: &SequenceInput) -> Result<Vec<TokenId>, PluginError> {
    ids(seq, Side::Target)
}

/// The baseline ids of `side` (UNK, special tokens kept), one per token.
pub fn baseline_ids(seq: &SequenceInput, side: Side) -> &[TokenId] {
    match side {
        Side::Source => &seq.source_baseline_ids,
        Side::Target => &seq.target_baseline_ids,
    }
}

/// The positions of `side` that some step sees: every source position, and the target positions
/// before the last step (the model never sees the rest, so perturbing them changes nothing).
pub fn visible_positions(seq: &SequenceInput, side: Side) -> Range<usize> {
    match side {
        Side::Source => 0..seq.source.len(),
        Side::Target => {
            let last = seq.steps.iter().copied().max().unwrap_or(0) as usize;
            0..seq.target.len().min(last)
        }
    }
}

/// `ids` with every position of `positions` replaced by `by[position]` (e.g. the baseline ids).
pub fn replace(
    ids: &[TokenId],
    positions: impl IntoIterator<Item = usize>,
    by: &[TokenId],
) -> Result<Vec<TokenId>, PluginError> {
    let mut out = ids.to_vec();
    for p in positions {
        match (out.get_mut(p), by.get(p)) {
            (Some(v), Some(&b)) => *v = b,
            _ => {
                return Err(PluginError::shape(format!(
                    "position {p} is out of range for {} ids and {} replacements",
                    ids.len(),
                    by.len()
                )))
            }
        }
    }
    Ok(out)
}

/// The input with `positions` of `side` replaced by their baseline ids (the other side actual).
pub fn occluded(
    seq: &SequenceInput,
    side: Side,
    positions: impl IntoIterator<Item = usize>,
) -> Result<InputPoint, PluginError> {
    let ids = replace(&ids(seq, side)?, positions, baseline_ids(seq, side))?;
    Ok(InputPoint::with_ids(side, ids))
}

/// The perturbed inputs of one sequence and what each perturbed: score [`Occlusion::points`] in
/// one [`crate::ScoreRequest`], then [`Occlusion::drops`] turns the `(points, steps)` scores into
/// per-token attributions.
#[derive(Debug, Clone)]
pub struct Occlusion {
    /// The points to score: the unperturbed input first, then one per perturbation, in the
    /// order they were added.
    pub points: Vec<InputPoint>,
    groups: Vec<(Side, Vec<usize>)>,
    ids: [Vec<TokenId>; 2],
    baselines: [Vec<TokenId>; 2],
    sides: AttributedSides,
}

fn slot(side: Side) -> usize {
    match side {
        Side::Source => 0,
        Side::Target => 1,
    }
}

impl Occlusion {
    /// No perturbation yet: only the unperturbed input. `sides` are the sides the result
    /// attributes (see [`AttributedSides::of`]).
    pub fn new(seq: &SequenceInput, sides: AttributedSides) -> Result<Self, PluginError> {
        Ok(Self {
            points: vec![InputPoint::actual()],
            groups: Vec::new(),
            ids: [source_ids(seq)?, target_ids(seq)?],
            baselines: [
                baseline_ids(seq, Side::Source).to_vec(),
                baseline_ids(seq, Side::Target).to_vec(),
            ],
            sides,
        })
    }

    /// Adds the point with `positions` of `side` replaced by their baseline ids; every one of
    /// those positions is credited with its score drop.
    pub fn occlude(
        &mut self,
        side: Side,
        positions: impl IntoIterator<Item = usize>,
    ) -> Result<&mut Self, PluginError> {
        let positions: Vec<usize> = positions.into_iter().collect();
        let s = slot(side);
        let ids = replace(&self.ids[s], positions.iter().copied(), &self.baselines[s])?;
        self.points.push(InputPoint::with_ids(side, ids));
        self.groups.push((side, positions));
        Ok(self)
    }

    /// One point per visible position of every attributed side (leave-one-out occlusion).
    pub fn leave_one_out(seq: &SequenceInput, sides: AttributedSides) -> Result<Self, PluginError> {
        Self::windows(seq, sides, 1)
    }

    /// One point per window of `width` consecutive visible positions of every attributed side
    /// (the last window may be shorter): Captum's `Occlusion` with stride = width.
    pub fn windows(
        seq: &SequenceInput,
        sides: AttributedSides,
        width: usize,
    ) -> Result<Self, PluginError> {
        let width = width.max(1);
        let mut occ = Self::new(seq, sides)?;
        for side in [Side::Source, Side::Target] {
            if !sides.has(side) {
                continue;
            }
            let visible = visible_positions(seq, side);
            for start in visible.clone().step_by(width) {
                occ.occlude(side, start..(start + width).min(visible.end))?;
            }
        }
        Ok(occ)
    }

    /// Number of perturbations (points after the unperturbed input).
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether nothing is perturbed.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Per-token attributions from the `(points, steps)` scores of [`Occlusion::points`]: each
    /// perturbed position gets `f(x) − f(x perturbed)` per step (averaged when several
    /// perturbations cover it); others get 0. Attributed sides with tokens get a
    /// `(len, steps)` tensor (coarse output).
    pub fn drops(&self, scores: &Tensor) -> Result<SequenceScores, PluginError> {
        let [np, ns] = scores.dims()?;
        if np != self.points.len() {
            return Err(PluginError::shape(format!(
                "{np} rows of scores for {} points",
                self.points.len()
            )));
        }
        let mut sums = [Vec::new(), Vec::new()];
        let mut counts = [Vec::new(), Vec::new()];
        for s in 0..2 {
            sums[s] = vec![0f32; self.ids[s].len() * ns];
            counts[s] = vec![0u32; self.ids[s].len()];
        }
        for (k, (side, positions)) in self.groups.iter().enumerate() {
            let s = slot(*side);
            for &p in positions {
                counts[s][p] += 1;
                for j in 0..ns {
                    sums[s][p * ns + j] += scores.at(&[0, j]) - scores.at(&[k + 1, j]);
                }
            }
        }
        let side = |s: usize, on: bool| -> Result<Option<Tensor>, PluginError> {
            let len = self.ids[s].len();
            if !on || len == 0 {
                return Ok(None);
            }
            let data = (0..len * ns)
                .map(|at| match counts[s][at / ns.max(1)] {
                    0 => 0.0,
                    c => sums[s][at] / c as f32,
                })
                .collect();
            Tensor::new(vec![len, ns], data).map(Some)
        };
        Ok(SequenceScores {
            source: side(0, self.sides.source)?,
            target: side(1, self.sides.target)?,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Token;
    use crate::requests::{PointSide, ScoreRequest};
    use crate::testing::ToyHost;

    fn seq() -> SequenceInput {
        SequenceInput {
            source: vec![Token::new("a", 7), Token::new("b", 8)],
            target: (1..5).map(|i| Token::new("t", i)).collect(),
            steps: vec![2, 3],
            source_baseline_ids: vec![0, 0],
            target_baseline_ids: vec![0, 0, 0, 9],
        }
    }

    #[test]
    fn ids_and_replacements() {
        let s = seq();
        assert_eq!(source_ids(&s).unwrap(), [7, 8]);
        assert_eq!(target_ids(&s).unwrap(), [1, 2, 3, 4]);
        assert_eq!(baseline_ids(&s, Side::Target), [0, 0, 0, 9]);
        assert_eq!(visible_positions(&s, Side::Target), 0..3);
        assert_eq!(visible_positions(&s, Side::Source), 0..2);
        assert_eq!(replace(&[1, 2, 3], [0, 2], &[9, 9, 9]).unwrap(), [9, 2, 9]);
        assert!(replace(&[1, 2, 3], [3], &[9, 9, 9]).is_err());
        let p = occluded(&s, Side::Source, 1..2).unwrap();
        assert_eq!(p.source, PointSide::Ids(vec![7, 0]));
        assert_eq!(p.target, PointSide::Actual);
        let mut merged = s.clone();
        merged.target[0] = Token::merged("x y");
        assert!(target_ids(&merged).is_err());
    }

    #[test]
    fn windows_cover_visible_positions() {
        let s = seq();
        let occ = Occlusion::windows(&s, AttributedSides::both(), 2).unwrap();
        // source: [0, 1]; target: [0, 1], [2].
        assert_eq!(occ.len(), 3);
        assert_eq!(occ.points.len(), 4);
        assert_eq!(occ.points[3].target, PointSide::Ids(vec![1, 2, 0, 4]));
        let scores = Tensor::new(vec![4, 2], vec![1.0, 2.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0]).unwrap();
        let out = occ.drops(&scores).unwrap();
        assert_eq!(out.source.unwrap().data, [1.0, 2.0, 1.0, 2.0]);
        assert_eq!(
            out.target.unwrap().data,
            [0.5, 1.0, 0.5, 1.0, 0.0, 1.0, 0.0, 0.0]
        );
        assert!(occ.drops(&Tensor::zeros(vec![3, 2])).is_err());
    }

    #[test]
    fn leave_one_out_on_the_toy_host() {
        let toy = ToyHost::new(&[1, 2, 3, 4, 5], 2);
        let (host, s) = (toy.host(), &toy.request().sequences[0]);
        let sides = AttributedSides::of(&host, toy.request());
        let occ = Occlusion::leave_one_out(s, sides).unwrap();
        assert_eq!(occ.len(), 4); // target positions 0..4 (the last step is 4)
        let request = |points| ScoreRequest {
            sequence: 0,
            points,
            steps: s.steps.clone(),
            ..Default::default()
        };
        let scores = host.scores(request(occ.points.clone())).unwrap();
        let out = occ.drops(&scores).unwrap();
        assert!(out.source.is_none());
        let t = out.target.unwrap();
        assert_eq!(t.shape, vec![5, 3]);
        let f = host.scores(request(vec![InputPoint::actual()])).unwrap();
        let g = host
            .scores(request(vec![occluded(s, Side::Target, [1]).unwrap()]))
            .unwrap();
        for j in 0..3 {
            assert_eq!(t.at(&[1, j]), f.at(&[0, j]) - g.at(&[0, j]));
            assert_eq!(t.at(&[4, j]), 0.0);
        }
    }
}
