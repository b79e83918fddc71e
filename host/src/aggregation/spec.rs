//! What to aggregate with: a pipeline of aggregators, their functions and keyword arguments,
//! and Inseq's default aggregation per output class.

use serde_json::{Map, Value};

use super::AggregationError;
use crate::output::{FeatureAttributionSequenceOutput, SequenceClass};

/// Inseq's `aggregate(aggregator=[…], aggregate_fn=[…], **kwargs)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggregationSpec {
    /// Aggregator plugin names, applied in order; empty = the class's default aggregation.
    pub aggregators: Vec<String>,
    /// One optional function per aggregator (or none at all); `None` = the aggregator's default.
    pub functions: Vec<Option<String>>,
    /// Keyword arguments, routed to every aggregator whose parameters have that name.
    pub kwargs: Map<String, Value>,
}

/// One aggregator of a resolved pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The aggregator plugin's name.
    pub aggregator: String,
    /// Its aggregation function, when one was given.
    pub function: Option<String>,
}

impl AggregationSpec {
    /// A spec from the CLI flags: `--aggregator` (repeatable), `--aggregate-fn` (repeatable,
    /// `none` keeps an aggregator's default) and `--aggregator-kwargs` (a JSON object).
    pub fn from_flags(
        aggregators: &[String],
        functions: &[String],
        kwargs_json: Option<&str>,
    ) -> Result<Self, AggregationError> {
        let kwargs = match kwargs_json {
            None => Map::new(),
            Some(s) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(AggregationError::BadKwargs(
                        "must be a JSON object, e.g. '{\"source_spans\": [[1, 3]]}'".into(),
                    ))
                }
                Err(e) => return Err(AggregationError::BadKwargs(format!("not valid JSON: {e}"))),
            },
        };
        let functions = functions
            .iter()
            .map(|f| match f.as_str() {
                "none" | "None" | "null" | "" => None,
                other => Some(other.to_string()),
            })
            .collect();
        let spec = Self {
            aggregators: aggregators.to_vec(),
            functions,
            kwargs,
        };
        spec.steps_or_default(None)?;
        Ok(spec)
    }

    /// Whether the spec asks for the class default (no aggregator named).
    pub fn is_default(&self) -> bool {
        self.aggregators.is_empty()
    }

    /// The pipeline for `seq`: the named aggregators, or the default one for `seq`'s class.
    /// `None` checks the flags only.
    pub fn steps_or_default(
        &self,
        seq: Option<&FeatureAttributionSequenceOutput>,
    ) -> Result<Vec<Step>, AggregationError> {
        if self.aggregators.is_empty() {
            if !self.functions.is_empty() {
                return Err(AggregationError::FunctionWithoutAggregator);
            }
            return Ok(seq.map(default_pipeline).unwrap_or_default());
        }
        if !self.functions.is_empty() && self.functions.len() != self.aggregators.len() {
            return Err(AggregationError::FunctionCount {
                functions: self.functions.len(),
                aggregators: self.aggregators.len(),
            });
        }
        Ok(self
            .aggregators
            .iter()
            .enumerate()
            .map(|(i, a)| Step {
                aggregator: a.clone(),
                function: self.functions.get(i).cloned().flatten(),
            })
            .collect())
    }
}

/// Inseq's default aggregation of a sequence class (`_aggregator`, reference §3.3): Granular
/// `vnorm`; Coarse nothing; MultiDimensional one `mean` per extra dimension; Base `scores`.
/// Nothing when the attributions are already 2-D (a file aggregated before).
///
/// Deliberate difference: Inseq sets a MultiDimensional output's `_num_dimensions` only when
/// it builds the output, so a *loaded* attention file has an empty default aggregation there;
/// rinseq uses the tensors' extra dimensions, as Inseq does in memory.
pub fn default_pipeline(seq: &FeatureAttributionSequenceOutput) -> Vec<Step> {
    let ndim = seq
        .source_attributions
        .as_ref()
        .or(seq.target_attributions.as_ref())
        .map_or(0, |t| t.ndim());
    if ndim <= 2 {
        return Vec::new();
    }
    let step = |name: &str| Step {
        aggregator: name.to_string(),
        function: None,
    };
    match seq.class {
        SequenceClass::Granular => vec![step("vnorm")],
        SequenceClass::Coarse => Vec::new(),
        SequenceClass::MultiDimensional => (2..ndim).map(|_| step("mean")).collect(),
        SequenceClass::Base => vec![step("scores")],
    }
}
