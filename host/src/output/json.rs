//! The Inseq 0.7.1 JSON schema (json-tricks style, `inseq/utils/serialization.py`): every object
//! is `{"__instance_type__": [module, class], "attributes": {...}}`; sequence tensors are base64
//! safetensors blobs, step tensors `__ndarray__` objects. Private `_…` fields are not saved.

use rinseq_sdk::Tensor;

use super::error::OutputError;
use super::model::{
    FeatureAttributionOutput, FeatureAttributionSequenceOutput, FeatureAttributionStepOutput,
    ScoreMap, TokenWithId,
};
use super::options::ScorePrecision;
use super::pyjson::Json;
use super::{ndarray, safetensors_blob};

/// Module of every output class.
pub const ATTRIBUTION_MODULE: &str = "inseq.data.attribution";
/// Module of `TokenWithId`.
pub const TYPING_MODULE: &str = "inseq.utils.typing";
/// Class name of the top-level object.
pub const OUTPUT_CLASS: &str = "FeatureAttributionOutput";

/// How tensors are encoded.
#[derive(Clone, Copy, Debug)]
pub struct EncodeOptions {
    /// Sequence tensor dtype.
    pub precision: ScorePrecision,
    /// Step arrays as base64 (else number lists).
    pub ndarray_compact: bool,
    /// Whether the whole file is gzipped (then step arrays are not gzipped one by one).
    pub compressed_file: bool,
}

fn instance(module: &str, class: &str, attributes: Vec<(&str, Json)>) -> Json {
    let type_pair = Json::Array(vec![Json::Str(module.into()), Json::Str(class.into())]);
    let attrs = attributes
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    Json::Object(vec![
        ("__instance_type__".into(), type_pair),
        ("attributes".into(), Json::Object(attrs)),
    ])
}

fn token(t: &TokenWithId) -> Json {
    instance(
        TYPING_MODULE,
        "TokenWithId",
        vec![
            ("id", Json::Int(t.id)),
            ("token", Json::Str(t.token.clone())),
        ],
    )
}

fn tokens(ts: &[TokenWithId]) -> Json {
    Json::Array(ts.iter().map(token).collect())
}

fn token_rows(rows: &Option<Vec<Vec<TokenWithId>>>) -> Json {
    rows.as_ref().map_or(Json::Null, |r| {
        Json::Array(r.iter().map(|t| tokens(t)).collect())
    })
}

type Enc<'a> = &'a dyn Fn(&Tensor, &str) -> Result<Json, OutputError>;

fn opt_tensor(t: &Option<Tensor>, field: &str, enc: Enc) -> Result<Json, OutputError> {
    t.as_ref().map_or(Ok(Json::Null), |t| enc(t, field))
}

fn score_map(m: &ScoreMap, field: &str, enc: Enc) -> Result<Json, OutputError> {
    let pairs = m
        .iter()
        .map(|(k, t)| Ok((k.clone(), enc(t, &format!("{field}.{k}"))?)))
        .collect::<Result<_, OutputError>>()?;
    Ok(Json::Object(pairs))
}

fn sequence(s: &FeatureAttributionSequenceOutput, i: usize, enc: Enc) -> Result<Json, OutputError> {
    let f = |name: &str| format!("sequence_attributions[{i}].{name}");
    let sequence_scores = match &s.sequence_scores {
        Some(m) => score_map(m, &f("sequence_scores"), enc)?,
        None => Json::Null,
    };
    let attrs = vec![
        ("attr_pos_end", Json::Int(s.attr_pos_end as i64)),
        ("attr_pos_start", Json::Int(s.attr_pos_start as i64)),
        ("sequence_scores", sequence_scores),
        ("source", tokens(&s.source)),
        (
            "source_attributions",
            opt_tensor(&s.source_attributions, &f("source_attributions"), enc)?,
        ),
        (
            "step_scores",
            score_map(&s.step_scores, &f("step_scores"), enc)?,
        ),
        ("target", tokens(&s.target)),
        (
            "target_attributions",
            opt_tensor(&s.target_attributions, &f("target_attributions"), enc)?,
        ),
    ];
    Ok(instance(
        ATTRIBUTION_MODULE,
        &s.class.sequence_class_name(),
        attrs,
    ))
}

fn step(s: &FeatureAttributionStepOutput, i: usize, enc: Enc) -> Result<Json, OutputError> {
    let f = |name: &str| format!("step_attributions[{i}].{name}");
    let attrs = vec![
        ("prefix", token_rows(&s.prefix)),
        (
            "sequence_scores",
            score_map(&s.sequence_scores, &f("sequence_scores"), enc)?,
        ),
        ("source", token_rows(&s.source)),
        (
            "source_attributions",
            opt_tensor(&s.source_attributions, &f("source_attributions"), enc)?,
        ),
        (
            "step_scores",
            score_map(&s.step_scores, &f("step_scores"), enc)?,
        ),
        ("target", token_rows(&s.target)),
        (
            "target_attributions",
            opt_tensor(&s.target_attributions, &f("target_attributions"), enc)?,
        ),
    ];
    Ok(instance(
        ATTRIBUTION_MODULE,
        &s.class.step_class_name(),
        attrs,
    ))
}

/// Encodes an output as the JSON tree Inseq's `save` writes.
pub fn encode(out: &FeatureAttributionOutput, opts: EncodeOptions) -> Result<Json, OutputError> {
    let blob = |t: &Tensor, field: &str| -> Result<Json, OutputError> {
        Ok(Json::Str(safetensors_blob::encode_b64(
            t,
            opts.precision,
            field,
        )?))
    };
    let array = |t: &Tensor, _field: &str| -> Result<Json, OutputError> {
        Ok(ndarray::encode(
            t,
            opts.ndarray_compact,
            !opts.compressed_file,
        ))
    };
    let sequences = out
        .sequence_attributions
        .iter()
        .enumerate()
        .map(|(i, s)| sequence(s, i, &blob))
        .collect::<Result<Vec<_>, _>>()?;
    let steps = match &out.step_attributions {
        None => Json::Null,
        Some(steps) => Json::Array(
            steps
                .iter()
                .enumerate()
                .map(|(i, s)| step(s, i, &array))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let info = Json::from(&serde_json::Value::Object(out.info.clone()));
    Ok(instance(
        ATTRIBUTION_MODULE,
        OUTPUT_CLASS,
        vec![
            ("info", info),
            ("sequence_attributions", Json::Array(sequences)),
            ("step_attributions", steps),
        ],
    ))
}

/// Splits `{"__instance_type__": [module, class], "attributes": {...}}` into the class name and
/// the attributes (`where_` names the object in errors).
pub(crate) fn unwrap_instance<'a>(
    v: &'a Json,
    where_: &str,
) -> Result<(&'a str, &'a Json), OutputError> {
    let class = match v.get("__instance_type__") {
        Some(Json::Array(parts)) if parts.len() == 2 => match &parts[1] {
            Json::Str(name) => name.as_str(),
            _ => {
                return Err(OutputError::not_inseq(format!(
                    "{where_}: bad `__instance_type__`"
                )))
            }
        },
        Some(_) => {
            return Err(OutputError::not_inseq(format!(
                "{where_}: bad `__instance_type__`"
            )))
        }
        None => {
            return Err(OutputError::not_inseq(format!(
                "{where_}: missing `__instance_type__`"
            )))
        }
    };
    match v.get("attributes") {
        Some(attrs @ Json::Object(_)) => Ok((class, attrs)),
        _ => Err(OutputError::not_inseq(format!(
            "{where_}: missing `attributes`"
        ))),
    }
}
