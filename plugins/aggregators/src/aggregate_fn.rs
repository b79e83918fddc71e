//! The `aggregate_fn` parameter: one function for every field, or one per field, resolved like
//! Inseq's `DictWithDefault` over `DEFAULT_ATTRIBUTION_AGGREGATE_DICT` for the aggregator's family.

use std::collections::BTreeMap;

use rinseq_sdk::PluginError;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::reduce::Reduction;

/// The function names of `DEFAULT_ATTRIBUTION_AGGREGATE_DICT["step_scores"]["spans"]`, plus the
/// `deltas` entry Inseq's granular outputs add. Other step scores take the family default.
pub const DEFAULT_STEP_FNS: [(&str, &str); 10] = [
    ("probability", "prod"),
    ("entropy", "sum"),
    ("crossentropy", "sum"),
    ("perplexity", "prod"),
    ("contrast_prob_diff", "prod"),
    ("contrast_prob", "prod"),
    ("pcxmi", "sum"),
    ("kl_divergence", "sum"),
    ("mc_dropout_prob_avg", "prod"),
    ("deltas", "absmax"),
];

/// One aggregation function name for every field (mean, max, min, sum, prod, absmax, vnorm), or
/// an object naming the function of each field; fields left out take the aggregator's default.
#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum AggregateFn {
    /// One function for every field, step scores included (Inseq's `aggregate_fn="mean"`).
    One(String),
    /// One function per field (Inseq's `_dict_aggregate_fn` for this aggregator's family).
    PerField(FieldFns),
}

/// Functions per field of the sequence attribution.
#[derive(Debug, Clone, PartialEq, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldFns {
    /// Function for `source_attributions`.
    pub source_attributions: Option<String>,
    /// Function for `target_attributions`.
    pub target_attributions: Option<String>,
    /// Function for every step score, or per step score name (e.g. `{"probability": "prod"}`);
    /// names left out take Inseq's defaults (probability→prod, entropy→sum, ..., else absmax).
    pub step_scores: Option<StepFns>,
    /// Function for every sequence score.
    pub sequence_scores: Option<String>,
}

/// Step-score functions: one for all, or per name.
#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum StepFns {
    /// One function for every step score.
    All(String),
    /// A function per step score name.
    PerName(BTreeMap<String, String>),
}

impl<'de> Deserialize<'de> for AggregateFn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_value(Value::deserialize(d)?).map_err(|e| serde::de::Error::custom(e.message))
    }
}

fn name(v: &Value, what: &str) -> Result<String, PluginError> {
    let s = v.as_str().ok_or_else(|| {
        PluginError::invalid_params(format!(
            "aggregate_fn: {what} must be a function name, got {v}"
        ))
    })?;
    Reduction::from_name(s, 2.0)?;
    Ok(s.to_string())
}

fn from_value(v: Value) -> Result<AggregateFn, PluginError> {
    let Value::Object(map) = v else {
        return Ok(AggregateFn::One(name(&v, "aggregate_fn")?));
    };
    let mut f = FieldFns::default();
    for (key, v) in &map {
        match key.as_str() {
            "source_attributions" => f.source_attributions = Some(name(v, key)?),
            "target_attributions" => f.target_attributions = Some(name(v, key)?),
            "sequence_scores" => f.sequence_scores = Some(name(v, key)?),
            "step_scores" => {
                f.step_scores = Some(match v {
                    Value::Object(m) => StepFns::PerName(
                        m.iter()
                            .map(|(k, v)| Ok((k.clone(), name(v, &format!("step_scores.{k}"))?)))
                            .collect::<Result<_, PluginError>>()?,
                    ),
                    _ => StepFns::All(name(v, key)?),
                })
            }
            other => {
                return Err(PluginError::invalid_params(format!(
                    "aggregate_fn: unknown field '{other}': use source_attributions, \
                     target_attributions, step_scores or sequence_scores"
                )))
            }
        }
    }
    Ok(AggregateFn::PerField(f))
}

/// The aggregator family, which decides the defaults (Inseq's `aggregator_family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `scores`: mean everywhere.
    Scores,
    /// `spans`, `subwords`, `split`: absmax, and the step-score table.
    Spans,
}

/// The resolved function of every field.
#[derive(Debug, Clone, PartialEq)]
pub struct Fns {
    /// For source attributions.
    pub source: Reduction,
    /// For target attributions.
    pub target: Reduction,
    /// For sequence scores.
    pub sequence: Reduction,
    step_all: Option<Reduction>,
    step_names: Vec<(String, Reduction)>,
    default: Reduction,
}

impl Fns {
    /// Resolves `aggregate_fn` (or its absence) for `family`; `vnorm_ord` is vnorm's order.
    pub fn resolve(
        af: Option<&AggregateFn>,
        family: Family,
        vnorm_ord: f64,
    ) -> Result<Self, PluginError> {
        let get = |n: &str| Reduction::from_name(n, vnorm_ord);
        let default = get(match family {
            Family::Scores => "mean",
            Family::Spans => "absmax",
        })?;
        let mut step_names = Vec::new();
        if family == Family::Spans {
            for (n, f) in DEFAULT_STEP_FNS {
                step_names.push((n.to_string(), get(f)?));
            }
        }
        let field = |f: &Option<String>| {
            f.as_deref()
                .map(get)
                .transpose()
                .map(|r| r.unwrap_or(default))
        };
        let fns = match af {
            None => Self {
                source: default,
                target: default,
                sequence: default,
                step_all: None,
                step_names,
                default,
            },
            Some(AggregateFn::One(n)) => {
                let r = get(n)?;
                Self {
                    source: r,
                    target: r,
                    sequence: r,
                    step_all: Some(r),
                    step_names,
                    default: r,
                }
            }
            Some(AggregateFn::PerField(f)) => {
                let mut step_all = None;
                match &f.step_scores {
                    Some(StepFns::All(n)) => step_all = Some(get(n)?),
                    Some(StepFns::PerName(m)) => {
                        // Given names come first, so they win over the defaults.
                        let given = m.iter().map(|(k, v)| Ok((k.clone(), get(v)?)));
                        let mut all = given.collect::<Result<Vec<_>, PluginError>>()?;
                        all.append(&mut step_names);
                        step_names = all;
                    }
                    None => {}
                }
                Self {
                    source: field(&f.source_attributions)?,
                    target: field(&f.target_attributions)?,
                    sequence: field(&f.sequence_scores)?,
                    step_all,
                    step_names,
                    default,
                }
            }
        };
        Ok(fns)
    }

    /// The function for the step score `name`.
    pub fn step(&self, name: &str) -> Reduction {
        self.step_all
            .or_else(|| {
                self.step_names
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, r)| *r)
            })
            .unwrap_or(self.default)
    }
}
