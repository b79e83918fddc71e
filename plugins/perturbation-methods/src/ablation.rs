//! `occlusion` (Captum `Occlusion` as Inseq 0.7.1 runs it) and `feature_ablation` (Captum
//! `FeatureAblation`: leave-one-out over tokens, words, sentences or explicit spans).
//!
//! Both replace tokens by their baseline ids (UNK; special tokens such as EOS kept, as Inseq's
//! baselines) and score every perturbed input of a sequence in **one** host request: the host
//! runs one forward per perturbed input for all the steps, where Inseq runs one per step.

use rinseq_sdk::prelude::*;
use rinseq_sdk::toolkit::baseline_ids;
use serde::Deserialize;
use serde_json::Value;

use crate::features::{score_rows, Features, Granularity, Grouping};

/// Parameters of `occlusion` (Inseq 0.7.1 / Captum names).
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OcclusionParams {
    /// Captum's window shape per input, `(tokens, embedding_dim)` (or one per input): the
    /// window covers whole tokens, so the second entry, when given, must be the embedding size.
    /// Default `(1, embedding_dim)`: one token at a time.
    pub sliding_window_shapes: Option<Value>,
    /// Captum's strides (an int, or a tuple whose first entry is the stride over tokens).
    /// Default 1.
    pub strides: Option<Value>,
    /// Accepted for compatibility; the host batches perturbed inputs itself.
    pub perturbations_per_eval: Option<usize>,
    /// Accepted for compatibility (the CLI shows progress).
    pub show_progress: Option<bool>,
}

/// The first number of a shape/stride given as an int, a list, or a list of lists.
fn first_number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::Array(a) => a.first().and_then(first_number),
        _ => None,
    }
}

/// The second entry of the (first) window shape, if any.
fn second_number(v: &Value) -> Option<u64> {
    match v {
        Value::Array(a) if a.first().is_some_and(Value::is_array) => {
            a.first().and_then(second_number)
        }
        Value::Array(a) => a.get(1).and_then(Value::as_u64),
        _ => None,
    }
}

/// Captum `Occlusion` with whole-token windows: at each step, every window of `width`
/// consecutive positions (start every `stride`) of the input that step sees is replaced by the
/// baseline; a token gets the mean score drop of the windows covering it, and Inseq returns its
/// absolute value.
pub struct Occlusion {
    width: usize,
    stride: usize,
    hidden_window: Option<u64>,
}

impl PluginInfo for Occlusion {
    const NAME: &'static str = "occlusion";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Absolute score drop when a window of tokens is replaced by UNK (Captum Occlusion).";
    type Params = OcclusionParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(Flags::USES_BASELINES, OutputKind::Coarse, &[])
    }
}

impl AttributionPlugin for Occlusion {
    fn new(p: OcclusionParams) -> Result<Self, PluginError> {
        let width = match &p.sliding_window_shapes {
            None => 1,
            Some(v) => first_number(v).filter(|&w| w >= 1).ok_or_else(|| {
                PluginError::invalid_params(format!(
                    "sliding_window_shapes {v} is not a shape (tokens, embedding_dim) with \
                     tokens >= 1: give e.g. [2, 576]"
                ))
            })? as usize,
        };
        let stride = match &p.strides {
            None => 1,
            Some(v) => first_number(v).filter(|&s| s >= 1).ok_or_else(|| {
                PluginError::invalid_params(format!(
                    "strides {v} is not a stride >= 1 over tokens: give e.g. 1"
                ))
            })? as usize,
        };
        let hidden_window = p.sliding_window_shapes.as_ref().and_then(second_number);
        Ok(Self {
            width,
            stride,
            hidden_window,
        })
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let hidden = host.info().hidden_size as u64;
        if let Some(h) = self.hidden_window.filter(|&h| h != hidden) {
            return Err(PluginError::unsupported(format!(
                "sliding_window_shapes covers {h} of the {hidden} embedding dimensions: rinseq \
                 occludes whole tokens, give ({}, {hidden}) or only the token window",
                self.width
            )));
        }
        let sides = AttributedSides::of(host, request);
        let mut out = AttributionOutput::default();
        for (i, seq) in request.sequences.iter().enumerate() {
            out.sequences
                .push(occlude(host, i, seq, sides, self.width, self.stride)?);
        }
        Ok(out)
    }
}

/// Windows `[start, start + width)` of an input of `len` tokens, Captum's way (every window
/// fits; none when `len < width`).
fn windows(len: usize, width: usize, stride: usize) -> impl Iterator<Item = usize> {
    (0..=len.saturating_sub(width))
        .step_by(stride)
        .filter(move |&s| s + width <= len)
}

fn occlude(
    host: &Host<'_>,
    sequence: usize,
    seq: &SequenceInput,
    sides: AttributedSides,
    width: usize,
    stride: usize,
) -> Result<SequenceScores, PluginError> {
    let ns = seq.steps.len();
    // Distinct windows over every step's input length: (side, start).
    let len_at = |side: Side, step: u32| match side {
        Side::Source => seq.source.len(),
        Side::Target => (step as usize).min(seq.target.len()),
    };
    let mut wins: Vec<(Side, usize)> = Vec::new();
    for side in [Side::Source, Side::Target] {
        if !sides.has(side) {
            continue;
        }
        let longest = seq
            .steps
            .iter()
            .map(|&s| len_at(side, s))
            .max()
            .unwrap_or(0);
        wins.extend(windows(longest, width, stride).map(|s| (side, s)));
    }
    let ids = |side: Side| rinseq_sdk::toolkit::perturb::ids(seq, side);
    let (src, tgt) = (ids(Side::Source)?, ids(Side::Target)?);
    let mut points = vec![InputPoint::actual()];
    for &(side, start) in &wins {
        let actual = if side == Side::Source { &src } else { &tgt };
        let replaced =
            rinseq_sdk::toolkit::replace(actual, start..start + width, baseline_ids(seq, side))?;
        points.push(InputPoint::with_ids(side, replaced));
    }
    let scores = score_rows(host, sequence, points, &seq.steps)?;
    let mut maps = [
        vec![0f32; seq.source.len() * ns],
        vec![0f32; seq.target.len() * ns],
    ];
    let mut counts = maps.clone();
    for (k, &(side, start)) in wins.iter().enumerate() {
        let s = usize::from(side == Side::Target);
        for (j, &step) in seq.steps.iter().enumerate() {
            // A window belongs to this step's input when Captum would have made it there.
            let len = len_at(side, step);
            if start + width > len || start % stride != 0 {
                continue;
            }
            let drop = scores[0][j] - scores[k + 1][j];
            for p in start..start + width {
                maps[s][p * ns + j] += drop;
                counts[s][p * ns + j] += 1.0;
            }
        }
    }
    let finish = |s: usize, len: usize, on: bool| -> Result<Option<Tensor>, PluginError> {
        if !on || len == 0 {
            return Ok(None);
        }
        let data = maps[s]
            .iter()
            .zip(&counts[s])
            .map(|(v, &c)| if c > 0.0 { (v / c).abs() } else { 0.0 })
            .collect();
        Tensor::new(vec![len, ns], data).map(Some)
    };
    Ok(SequenceScores {
        source: finish(0, seq.source.len(), sides.source)?,
        target: finish(1, seq.target.len(), sides.target)?,
        ..Default::default()
    })
}

/// Parameters of `feature_ablation`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureAblationParams {
    /// Features: `token` (leave-one-out), `word` or `sentence` (from the token texts).
    pub granularity: Granularity,
    /// Explicit features: `[start, end)` position spans of the source side (encoder-decoder)
    /// or of the sequence (decoder-only); other positions are features of their own. Overrides
    /// `granularity` on that side.
    pub spans: Option<Vec<[usize; 2]>>,
    /// Explicit spans of the target side of encoder-decoder models (with `attribute_target`).
    pub target_spans: Option<Vec<[usize; 2]>>,
}

impl FeatureAblationParams {
    pub(crate) fn grouping(&self) -> Grouping {
        Grouping {
            granularity: self.granularity,
            spans: self.spans.clone(),
            target_spans: self.target_spans.clone(),
        }
    }
}

/// Captum `FeatureAblation` with feature masks: each feature (token, word, sentence or span)
/// replaced by the baseline in turn; every position of the feature gets the signed score drop
/// `f(x) − f(x without the feature)`.
pub struct FeatureAblation(FeatureAblationParams);

impl PluginInfo for FeatureAblation {
    const NAME: &'static str = "feature_ablation";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Signed score drop when a token, word, sentence or span is replaced by UNK (Captum FeatureAblation).";
    type Params = FeatureAblationParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(Flags::USES_BASELINES, OutputKind::Coarse, &[])
    }
}

impl AttributionPlugin for FeatureAblation {
    fn new(p: FeatureAblationParams) -> Result<Self, PluginError> {
        Ok(Self(p))
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let sides = AttributedSides::of(host, request);
        let grouping = self.0.grouping();
        let mut out = AttributionOutput::default();
        for (i, seq) in request.sequences.iter().enumerate() {
            let feats = Features::new(host, seq, sides, &grouping)?;
            let n = feats.len();
            let mut points = vec![InputPoint::actual()];
            for k in 0..n {
                let mut replaced = vec![false; n];
                replaced[k] = true;
                points.push(feats.baseline_point(seq, &replaced));
            }
            let scores = score_rows(host, i, points, &seq.steps)?;
            let values: Vec<Vec<f32>> = (0..n)
                .map(|k| {
                    (0..seq.steps.len())
                        .map(|j| scores[0][j] - scores[k + 1][j])
                        .collect()
                })
                .collect();
            out.sequences.push(feats.coarse(&values)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captum_windows() {
        assert_eq!(windows(5, 1, 1).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert_eq!(windows(5, 2, 2).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(windows(5, 3, 1).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(windows(1, 2, 1).count(), 0);
    }

    #[test]
    fn window_shapes_parse() {
        let v: Value = serde_json::json!([2, 576]);
        assert_eq!((first_number(&v), second_number(&v)), (Some(2), Some(576)));
        let v: Value = serde_json::json!([[3, 8], [3, 8]]);
        assert_eq!((first_number(&v), second_number(&v)), (Some(3), Some(8)));
        assert_eq!(first_number(&serde_json::json!(4)), Some(4));
    }
}
