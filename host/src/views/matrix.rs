//! The checked, format-independent view of one sequence: its heatmaps (2-D score matrices with
//! their row and column tokens) and its step scores. Every format reads the output through
//! this, so the shape checks and the column ↔ token mapping live in one place.

use crate::output::{FeatureAttributionOutput, FeatureAttributionSequenceOutput, TokenWithId};

use super::ViewError;

/// Which tokens a heatmap's rows are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// Encoder tokens (encoder-decoder models).
    Source,
    /// Target tokens (the prompt and the generated prefix).
    Target,
}

impl Side {
    /// `Source` / `Target`, as Inseq titles its heatmaps.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Self::Source => "Source",
            Self::Target => "Target",
        }
    }

    /// `source` / `target`, the CSV's `attributed_side`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Target => "target",
        }
    }
}

/// One 2-D score matrix: `rows` attributed tokens × the sequence's generated tokens.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heatmap<'a> {
    /// Which tokens the rows are.
    pub side: Side,
    /// The attributed tokens, one per row.
    pub rows: &'a [TokenWithId],
    /// Row-major values, `rows.len() × n_cols`; NaN = not visible at that step.
    pub values: &'a [f32],
    /// Number of columns (generated steps).
    pub n_cols: usize,
}

impl Heatmap<'_> {
    /// The score of attributed token `row` for generated step `col`.
    pub(crate) fn get(&self, row: usize, col: usize) -> f32 {
        self.values[row * self.n_cols + col]
    }

    /// Row `row`'s scores, one per generated step.
    pub(crate) fn row(&self, row: usize) -> &[f32] {
        &self.values[row * self.n_cols..(row + 1) * self.n_cols]
    }
}

/// A named per-step score, one value per generated token.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepScore<'a> {
    /// The step function's name, e.g. `probability`.
    pub name: &'a str,
    /// One value per generated step.
    pub values: &'a [f32],
}

/// One sequence, checked: its generated tokens (the columns), heatmaps and step scores.
#[derive(Clone, Debug)]
pub(crate) struct SequenceView<'a> {
    /// Index of the sequence in the output.
    pub index: usize,
    /// `target[attr_pos_start..attr_pos_end]`: column `j` is `generated[j]`.
    pub generated: &'a [TokenWithId],
    /// `attr_pos_start`: column `j` is target position `first_step + j`.
    pub first_step: usize,
    /// The source heatmap (if any), then the target one (if any).
    pub heatmaps: Vec<Heatmap<'a>>,
    /// The step scores, in the output's order.
    pub step_scores: Vec<StepScore<'a>>,
}

impl SequenceView<'_> {
    /// Every finite score of the sequence's heatmaps.
    pub(crate) fn scores(&self) -> impl Iterator<Item = f32> + '_ {
        self.heatmaps
            .iter()
            .flat_map(|h| h.values.iter().copied())
            .filter(|v| v.is_finite())
    }
}

/// Checks and views every sequence of `out` (the first bad one is the error).
pub(crate) fn sequences(
    out: &FeatureAttributionOutput,
) -> Result<Vec<SequenceView<'_>>, ViewError> {
    out.sequence_attributions
        .iter()
        .enumerate()
        .map(|(i, seq)| sequence(i, seq))
        .collect()
}

/// Checks and views sequence number `index`.
pub(crate) fn sequence(
    index: usize,
    seq: &FeatureAttributionSequenceOutput,
) -> Result<SequenceView<'_>, ViewError> {
    let (start, end) = (seq.attr_pos_start, seq.attr_pos_end);
    let generated = seq
        .target
        .get(start..end.max(start))
        .ok_or(ViewError::Positions {
            sequence: index,
            start,
            end,
            len: seq.target.len(),
        })?;
    let steps = generated.len();
    let sides = [
        (Side::Source, seq.source_attributions.as_ref(), &seq.source),
        (Side::Target, seq.target_attributions.as_ref(), &seq.target),
    ];
    let mut heatmaps = Vec::new();
    for (side, tensor, tokens) in sides {
        let Some(t) = tensor else { continue };
        let shape = t.shape.to_vec();
        if shape.len() != 2 {
            return Err(ViewError::NotAggregated {
                sequence: index,
                side: side.title(),
                shape,
            });
        }
        if shape != [tokens.len(), steps] || t.data.len() != tokens.len() * steps {
            return Err(ViewError::ShapeMismatch {
                sequence: index,
                side: side.title(),
                shape,
                rows: tokens.len(),
                steps,
            });
        }
        heatmaps.push(Heatmap {
            side,
            rows: tokens,
            values: &t.data,
            n_cols: steps,
        });
    }
    let mut step_scores = Vec::new();
    for (name, t) in &seq.step_scores {
        if t.shape.as_slice() != [steps] || t.data.len() != steps {
            return Err(ViewError::StepScoreShape {
                sequence: index,
                name: name.clone(),
                shape: t.shape.to_vec(),
                steps,
            });
        }
        step_scores.push(StepScore {
            name,
            values: &t.data,
        });
    }
    Ok(SequenceView {
        index,
        generated,
        first_step: start,
        heatmaps,
        step_scores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::test_data;

    #[test]
    fn views_sides_in_order_and_checks_shapes() {
        let out = test_data::two_sequences();
        let views = sequences(&out).unwrap();
        assert_eq!(views.len(), 2);
        let enc = &views[1];
        assert_eq!(enc.heatmaps.len(), 2);
        assert_eq!(enc.heatmaps[0].side, Side::Source);
        assert_eq!(enc.heatmaps[1].side, Side::Target);
        assert_eq!(enc.generated.len(), enc.heatmaps[0].n_cols);

        let mut bad = test_data::two_sequences();
        bad.sequence_attributions[0].attr_pos_end = 99;
        let msg = sequences(&bad).unwrap_err().to_string();
        assert!(msg.contains("positions 1..99"), "{msg}");

        let mut bad = test_data::two_sequences();
        bad.sequence_attributions[1].source.pop();
        let msg = sequences(&bad).unwrap_err().to_string();
        assert!(
            msg.starts_with("sequence 1: Source scores have shape [3, 3] but there are 2"),
            "{msg}"
        );
    }
}
