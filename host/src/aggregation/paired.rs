//! The JSON form of a sequence that the `pair` aggregator takes as `paired_attr` (Inseq passes
//! the other sequence object itself; across the plugin boundary it travels as JSON).
//!
//! ```json
//! {"source": [{"token": "▁Hi", "id": 5}], "target": [...], "attr_pos_start": 1,
//!  "attr_pos_end": 4, "source_attributions": {"shape": [3, 3], "data": [0.1, null, ...]},
//!  "target_attributions": null, "step_scores": {"probability": {"shape": [3], "data": [...]}},
//!  "sequence_scores": {}}
//! ```
//! Tensor data is row-major; `null` stands for NaN.

use rinseq_sdk::Tensor;
use serde_json::{json, Map, Value};

use crate::output::{FeatureAttributionSequenceOutput, ScoreMap, TokenWithId};

/// `seq` as the `paired_attr` JSON object.
pub fn sequence_to_json(seq: &FeatureAttributionSequenceOutput) -> Value {
    json!({
        "source": tokens(&seq.source),
        "target": tokens(&seq.target),
        "attr_pos_start": seq.attr_pos_start,
        "attr_pos_end": seq.attr_pos_end,
        "source_attributions": seq.source_attributions.as_ref().map(tensor),
        "target_attributions": seq.target_attributions.as_ref().map(tensor),
        "step_scores": scores(&seq.step_scores),
        "sequence_scores": seq.sequence_scores.as_ref().map(scores).unwrap_or_default(),
    })
}

fn tokens(ts: &[TokenWithId]) -> Value {
    ts.iter()
        .map(|t| json!({"token": t.token, "id": t.id}))
        .collect()
}

fn tensor(t: &Tensor) -> Value {
    let data: Vec<Value> = t
        .data
        .iter()
        .map(|v| if v.is_nan() { Value::Null } else { json!(v) })
        .collect();
    json!({"shape": t.shape.as_slice(), "data": data})
}

fn scores(map: &ScoreMap) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, t)| (k.clone(), tensor(t)))
            .collect::<Map<String, Value>>(),
    )
}
