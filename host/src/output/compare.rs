//! Approximate equality as Inseq's `==` (`TensorWrapper._eq`): tensors equal under
//! `torch.allclose(a, b, rtol=1e-5, atol, equal_nan=True)`, everything else exactly.

use rinseq_sdk::Tensor;

use super::model::{
    FeatureAttributionOutput, FeatureAttributionSequenceOutput, FeatureAttributionStepOutput,
    ScoreMap,
};

/// `|a - b| <= atol + 1e-5 * |b|` element-wise with NaN equal to NaN, and equal shapes.
pub fn tensor_allclose(a: &Tensor, b: &Tensor, atol: f32) -> bool {
    a.shape == b.shape
        && a.data.len() == b.data.len()
        && a.data.iter().zip(b.data.iter()).all(|(x, y)| {
            (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= atol + 1e-5 * y.abs()
        })
}

fn opt_allclose(a: &Option<Tensor>, b: &Option<Tensor>, atol: f32) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => tensor_allclose(a, b, atol),
        (None, None) => true,
        _ => false,
    }
}

fn map_allclose(a: &ScoreMap, b: &ScoreMap, atol: f32) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, t)| b.get(k).is_some_and(|u| tensor_allclose(t, u, atol)))
}

impl FeatureAttributionSequenceOutput {
    /// Inseq's `==` with tensor tolerance `atol` (Inseq uses `1e-5`).
    pub fn allclose(&self, other: &Self, atol: f32) -> bool {
        self.class == other.class
            && self.source == other.source
            && self.target == other.target
            && self.attr_pos_start == other.attr_pos_start
            && self.attr_pos_end == other.attr_pos_end
            && opt_allclose(&self.source_attributions, &other.source_attributions, atol)
            && opt_allclose(&self.target_attributions, &other.target_attributions, atol)
            && map_allclose(&self.step_scores, &other.step_scores, atol)
            && match (&self.sequence_scores, &other.sequence_scores) {
                (Some(a), Some(b)) => map_allclose(a, b, atol),
                (a, b) => {
                    a.as_ref().is_none_or(|m| m.is_empty())
                        && b.as_ref().is_none_or(|m| m.is_empty())
                }
            }
    }
}

impl FeatureAttributionStepOutput {
    /// Inseq's `==` with tensor tolerance `atol`.
    pub fn allclose(&self, other: &Self, atol: f32) -> bool {
        self.class == other.class
            && self.source == other.source
            && self.prefix == other.prefix
            && self.target == other.target
            && opt_allclose(&self.source_attributions, &other.source_attributions, atol)
            && opt_allclose(&self.target_attributions, &other.target_attributions, atol)
            && map_allclose(&self.step_scores, &other.step_scores, atol)
            && map_allclose(&self.sequence_scores, &other.sequence_scores, atol)
    }
}

impl FeatureAttributionOutput {
    /// Inseq's `==` with tensor tolerance `atol`: same sequences, same step attributions (when
    /// both have them, as Inseq) and equal `info`.
    pub fn allclose(&self, other: &Self, atol: f32) -> bool {
        let steps = match (&self.step_attributions, &other.step_attributions) {
            (Some(a), Some(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.allclose(y, atol))
            }
            _ => true,
        };
        self.sequence_attributions.len() == other.sequence_attributions.len()
            && self
                .sequence_attributions
                .iter()
                .zip(&other.sequence_attributions)
                .all(|(a, b)| a.allclose(b, atol))
            && steps
            && self.info == other.info
    }
}
