//! The JSON form of a sequence attribution that `pair` takes as `paired_attr` (the host writes
//! it from the other attributed sequence):
//!
//! ```json
//! {"source": [{"token": "▁Hi", "id": 5}], "target": [...], "attr_pos_start": 1,
//!  "attr_pos_end": 4, "source_attributions": {"shape": [3, 3], "data": [0.1, null, ...]},
//!  "target_attributions": null, "step_scores": {"probability": {"shape": [3], "data": [...]}},
//!  "sequence_scores": {}}
//! ```
//!
//! Tensors are row-major; `null` stands for NaN (and non-finite values are written as `null`).
//! `attr_pos_end` may be left out (the target length), as may the score maps (empty).

use std::collections::BTreeMap;

use rinseq_sdk::{NamedTensor, PluginError, SequenceAttribution, SequenceScores, Tensor, Token};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A token: its text and id (Inseq's `TokenWithId`).
#[derive(Serialize, Deserialize, schemars::JsonSchema, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenJson {
    /// The token text.
    pub token: String,
    /// The vocabulary id (-1 for merged tokens).
    pub id: i64,
}

/// A row-major tensor; `null` values are NaN.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TensorJson {
    /// Size of each dimension.
    pub shape: Vec<usize>,
    /// The values, row-major, `null` for NaN.
    pub data: Vec<Option<f32>>,
}

/// Named tensors in their JSON order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamedTensors(pub Vec<(String, TensorJson)>);

/// A whole sequence attribution in JSON form.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SequenceJson {
    /// Source tokens (the prompt for decoder-only models).
    pub source: Vec<TokenJson>,
    /// Target tokens.
    pub target: Vec<TokenJson>,
    /// First attributed target position.
    #[serde(default)]
    pub attr_pos_start: usize,
    /// One past the last attributed target position (default: the target length).
    #[serde(default)]
    pub attr_pos_end: Option<usize>,
    /// `(source_len, steps, ...)` scores, or null.
    #[serde(default)]
    pub source_attributions: Option<TensorJson>,
    /// `(target_len, steps, ...)` scores, or null.
    #[serde(default)]
    pub target_attributions: Option<TensorJson>,
    /// `(steps,)` scores by name.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, TensorJson>")]
    pub step_scores: NamedTensors,
    /// Other score maps by name.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, TensorJson>")]
    pub sequence_scores: NamedTensors,
}

impl Serialize for NamedTensors {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for NamedTensors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NamedTensors;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of named tensors")
            }
            fn visit_unit<E>(self) -> Result<NamedTensors, E> {
                Ok(NamedTensors::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<NamedTensors, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry::<String, TensorJson>()? {
                    out.push(entry);
                }
                Ok(NamedTensors(out))
            }
        }
        d.deserialize_any(V)
    }
}

fn tensor_json(t: &Tensor) -> TensorJson {
    let data = t.data.iter().map(|v| v.is_finite().then_some(*v)).collect();
    TensorJson {
        shape: t.shape.to_vec(),
        data,
    }
}

fn tensor(t: &TensorJson, what: &str) -> Result<Tensor, PluginError> {
    let data = t.data.iter().map(|v| v.unwrap_or(f32::NAN)).collect();
    Tensor::new(t.shape.clone(), data)
        .map_err(|e| PluginError::invalid_params(format!("{what}: {}", e.message)))
}

fn named(list: &NamedTensors, what: &str) -> Result<Vec<NamedTensor>, PluginError> {
    list.0
        .iter()
        .map(|(k, t)| {
            Ok(NamedTensor::new(
                k.clone(),
                tensor(t, &format!("{what}.{k}"))?,
            ))
        })
        .collect()
}

impl SequenceJson {
    /// The JSON form of `seq`.
    pub fn from_sequence(seq: &SequenceAttribution) -> Self {
        let toks = |v: &[Token]| {
            v.iter()
                .map(|t| TokenJson {
                    token: t.text.to_string(),
                    id: t.id.map_or(-1, i64::from),
                })
                .collect()
        };
        let named = |v: &[NamedTensor]| {
            NamedTensors(
                v.iter()
                    .map(|n| (n.name.to_string(), tensor_json(&n.tensor)))
                    .collect(),
            )
        };
        Self {
            source: toks(&seq.source),
            target: toks(&seq.target),
            attr_pos_start: seq.attr_pos_start,
            attr_pos_end: Some(seq.attr_pos_end),
            source_attributions: seq.scores.source.as_ref().map(tensor_json),
            target_attributions: seq.scores.target.as_ref().map(tensor_json),
            step_scores: named(&seq.scores.step_scores),
            sequence_scores: named(&seq.scores.sequence_scores),
        }
    }

    /// The sequence attribution this JSON describes (tensor sizes checked).
    pub fn to_sequence(&self) -> Result<SequenceAttribution, PluginError> {
        let toks = |v: &[TokenJson]| {
            v.iter()
                .map(|t| Token {
                    text: t.token.clone(),
                    id: u32::try_from(t.id).ok(),
                })
                .collect::<Vec<_>>()
        };
        let opt = |t: &Option<TensorJson>, w: &str| t.as_ref().map(|t| tensor(t, w)).transpose();
        Ok(SequenceAttribution {
            source: toks(&self.source),
            target: toks(&self.target),
            attr_pos_start: self.attr_pos_start,
            attr_pos_end: self
                .attr_pos_end
                .unwrap_or(self.target.len())
                .min(self.target.len()),
            scores: SequenceScores {
                source: opt(&self.source_attributions, "source_attributions")?,
                target: opt(&self.target_attributions, "target_attributions")?,
                step_scores: named(&self.step_scores, "step_scores")?,
                sequence_scores: named(&self.sequence_scores, "sequence_scores")?,
            },
        })
    }
}

/// `seq` as JSON text in the form above (a string, so that score names keep their order).
pub fn to_json(seq: &SequenceAttribution) -> String {
    serde_json::to_string(&SequenceJson::from_sequence(seq)).unwrap_or_else(|_| "null".into())
}

/// Parses the form above into a sequence attribution.
pub fn from_json(text: &str) -> Result<SequenceAttribution, PluginError> {
    let j: SequenceJson = serde_json::from_str(text)
        .map_err(|e| PluginError::invalid_params(format!("paired_attr: {e}")))?;
    j.to_sequence()
}
