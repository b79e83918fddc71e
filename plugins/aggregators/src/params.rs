//! Parameter pieces shared by several aggregators: `vnorm_ord` and span lists.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Schema of `vnorm_ord`: a number, or `"inf"` / `"-inf"` (JSON has no infinities).
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Only describes the schema.
pub enum OrdSchema {
    /// The order p of the norm.
    Number(f64),
    /// `"inf"` (max |x|) or `"-inf"` (min |x|).
    Infinite(String),
}

/// Deserializes `vnorm_ord`.
pub fn vnorm_ord<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| serde::de::Error::custom("bad vnorm_ord")),
        Value::String(s) if s == "inf" => Ok(f64::INFINITY),
        Value::String(s) if s == "-inf" => Ok(f64::NEG_INFINITY),
        v => Err(serde::de::Error::custom(format!(
            "vnorm_ord must be a number, \"inf\" or \"-inf\", got {v}"
        ))),
    }
}

/// The default `vnorm_ord` (L2).
pub fn two() -> f64 {
    2.0
}

/// One `[start, end]` span (end exclusive) or a list of them, as Inseq's `IndexSpan`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Spans(pub Vec<(usize, usize)>);

impl schemars::JsonSchema for Spans {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Spans".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        SpansSchema::json_schema(generator)
    }
}

/// Schema of a span list.
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Only describes the schema.
enum SpansSchema {
    /// One `[start, end]` span (end exclusive).
    One([usize; 2]),
    /// Several ascending, non-overlapping `[start, end]` spans.
    Many(Vec<[usize; 2]>),
}

impl<'de> Deserialize<'de> for Spans {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "spans {v}: give one [start, end] (end exclusive) or a list of them, with \
                 non-negative integer indices"
            ))
        };
        let index = |x: &Value| x.as_u64().map(|u| u as usize);
        let pair = |x: &Value| match x.as_array().map(|a| a.as_slice()) {
            Some([s, e]) => Some((index(s)?, index(e)?)),
            _ => None,
        };
        let items = v.as_array().ok_or_else(bad)?;
        // An empty list merges nothing, as Inseq's `if not spans`.
        if items.is_empty() {
            return Ok(Spans(Vec::new()));
        }
        if items.iter().all(Value::is_number) {
            return pair(&v).map(|p| Spans(vec![p])).ok_or_else(bad);
        }
        items
            .iter()
            .map(pair)
            .collect::<Option<Vec<_>>>()
            .map(Spans)
            .ok_or_else(bad)
    }
}
