//! Decoding the Inseq 0.7.1 JSON tree (see [`super::json`]) into the output model. Sequence
//! tensors are safetensors blobs (any of the three precisions, cast to `f32`); step tensors are
//! `__ndarray__` objects (or blobs, for leniency).

use rinseq_sdk::Tensor;
use serde_json::{Map, Value};

use super::error::OutputError;
use super::json::{unwrap_instance, OUTPUT_CLASS};
use super::model::{
    FeatureAttributionOutput, FeatureAttributionSequenceOutput, FeatureAttributionStepOutput,
    ScoreMap, SequenceClass, TokenWithId,
};
use super::pyjson::Json;
use super::{ndarray, safetensors_blob};

fn not_inseq(detail: String) -> OutputError {
    OutputError::not_inseq(detail)
}

fn token(v: &Json, where_: &str) -> Result<TokenWithId, OutputError> {
    let (_, attrs) = unwrap_instance(v, where_)?;
    match (attrs.get("token"), attrs.get("id")) {
        (Some(Json::Str(t)), Some(Json::Int(id))) => Ok(TokenWithId::new(t.clone(), *id)),
        _ => Err(not_inseq(format!(
            "{where_}: a token needs `token` and `id`"
        ))),
    }
}

fn tokens(v: Option<&Json>, where_: &str) -> Result<Vec<TokenWithId>, OutputError> {
    match v {
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, t)| token(t, &format!("{where_}[{i}]")))
            .collect(),
        Some(Json::Null) | None => Ok(Vec::new()),
        Some(_) => Err(not_inseq(format!("{where_}: expected a token list"))),
    }
}

/// Per-batch token lists; a flat list is taken as one row.
fn token_rows(
    v: Option<&Json>,
    where_: &str,
) -> Result<Option<Vec<Vec<TokenWithId>>>, OutputError> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Array(items)) if items.iter().all(|i| matches!(i, Json::Array(_))) => items
            .iter()
            .enumerate()
            .map(|(i, row)| tokens(Some(row), &format!("{where_}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(flat) => Ok(Some(vec![tokens(Some(flat), where_)?])),
    }
}

/// A tensor field: base64 safetensors string, `__ndarray__` object, or null.
fn tensor(v: Option<&Json>, field: &str) -> Result<Option<Tensor>, OutputError> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Str(b64)) => safetensors_blob::decode_b64(b64, field).map(Some),
        Some(obj) if ndarray::is_ndarray(obj) => ndarray::decode(obj, field).map(Some),
        Some(_) => Err(OutputError::bad_tensor(
            field,
            "expected a base64 string or an `__ndarray__` object",
        )),
    }
}

fn score_map(v: Option<&Json>, field: &str) -> Result<Option<ScoreMap>, OutputError> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Object(pairs)) => {
            let mut map = ScoreMap::new();
            for (k, t) in pairs {
                if let Some(t) = tensor(Some(t), &format!("{field}.{k}"))? {
                    map.insert(k.clone(), t);
                }
            }
            Ok(Some(map))
        }
        Some(_) => Err(not_inseq(format!("{field}: expected an object of scores"))),
    }
}

fn position(v: Option<&Json>, where_: &str) -> Result<Option<usize>, OutputError> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Int(i)) if *i >= 0 => Ok(Some(*i as usize)),
        Some(_) => Err(not_inseq(format!(
            "{where_}: expected a non-negative integer"
        ))),
    }
}

fn sequence(v: &Json, i: usize) -> Result<FeatureAttributionSequenceOutput, OutputError> {
    let where_ = format!("sequence_attributions[{i}]");
    let (class_name, a) = unwrap_instance(v, &where_)?;
    let class = SequenceClass::from_sequence_class_name(class_name)
        .ok_or_else(|| not_inseq(format!("{where_}: unknown class `{class_name}`")))?;
    let f = |name: &str| format!("{where_}.{name}");
    let target = tokens(a.get("target"), &f("target"))?;
    // As Inseq's `__post_init__`: a missing end (or one past the target) becomes len(target).
    let end = position(a.get("attr_pos_end"), &f("attr_pos_end"))?
        .filter(|e| *e <= target.len())
        .unwrap_or(target.len());
    Ok(FeatureAttributionSequenceOutput {
        source: tokens(a.get("source"), &f("source"))?,
        source_attributions: tensor(a.get("source_attributions"), &f("source_attributions"))?,
        target_attributions: tensor(a.get("target_attributions"), &f("target_attributions"))?,
        step_scores: score_map(a.get("step_scores"), &f("step_scores"))?.unwrap_or_default(),
        sequence_scores: score_map(a.get("sequence_scores"), &f("sequence_scores"))?,
        attr_pos_start: position(a.get("attr_pos_start"), &f("attr_pos_start"))?.unwrap_or(0),
        attr_pos_end: end,
        target,
        class,
    })
}

fn step(v: &Json, i: usize) -> Result<FeatureAttributionStepOutput, OutputError> {
    let where_ = format!("step_attributions[{i}]");
    let (class_name, a) = unwrap_instance(v, &where_)?;
    let class = SequenceClass::from_step_class_name(class_name)
        .ok_or_else(|| not_inseq(format!("{where_}: unknown class `{class_name}`")))?;
    let f = |name: &str| format!("{where_}.{name}");
    Ok(FeatureAttributionStepOutput {
        source_attributions: tensor(a.get("source_attributions"), &f("source_attributions"))?,
        target_attributions: tensor(a.get("target_attributions"), &f("target_attributions"))?,
        step_scores: score_map(a.get("step_scores"), &f("step_scores"))?.unwrap_or_default(),
        sequence_scores: score_map(a.get("sequence_scores"), &f("sequence_scores"))?
            .unwrap_or_default(),
        source: token_rows(a.get("source"), &f("source"))?,
        prefix: token_rows(a.get("prefix"), &f("prefix"))?,
        target: token_rows(a.get("target"), &f("target"))?,
        class,
    })
}

/// Decodes a parsed Inseq file into an output.
pub fn decode(root: &Json) -> Result<FeatureAttributionOutput, OutputError> {
    let (class, a) = unwrap_instance(root, "top level")?;
    if class != OUTPUT_CLASS {
        return Err(not_inseq(format!(
            "top level is `{class}`, not `{OUTPUT_CLASS}`"
        )));
    }
    let sequence_attributions = match a.get("sequence_attributions") {
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, s)| sequence(s, i))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(not_inseq("missing `sequence_attributions` list".into())),
    };
    let step_attributions = match a.get("step_attributions") {
        None | Some(Json::Null) => None,
        Some(Json::Array(items)) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, s)| step(s, i))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(not_inseq("`step_attributions` is not a list".into())),
    };
    let info = match a.get("info") {
        None | Some(Json::Null) => Map::new(),
        Some(obj @ Json::Object(_)) => match Value::from(obj) {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        Some(_) => return Err(not_inseq("`info` is not an object".into())),
    };
    Ok(FeatureAttributionOutput {
        sequence_attributions,
        step_attributions,
        info,
    })
}
