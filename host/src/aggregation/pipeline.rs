//! Running a pipeline of aggregator plugins over every sequence of an output.

use serde_json::{json, Map, Value};

use super::paired::sequence_to_json;
use super::spec::{AggregationSpec, Step};
use super::{history, AggregationError};
use crate::output::{FeatureAttributionOutput, FeatureAttributionSequenceOutput, SequenceClass};
use crate::plugins::{PluginKind, PluginRegistry};

/// Aggregators whose end-of-pipeline check (Inseq's `SequenceAttributionAggregator
/// .end_aggregation_hook`) requires 2-D attributions.
const SCORES_FAMILY: [&str; 8] = [
    "scores", "mean", "max", "min", "sum", "prod", "absmax", "vnorm",
];

/// Aggregates every sequence of `out` with `spec` (Inseq's `FeatureAttributionOutput
/// .aggregate`). The result keeps `out`'s info, with the pipeline appended to
/// `info["aggregation"]`.
pub fn aggregate_output(
    reg: &PluginRegistry,
    out: &FeatureAttributionOutput,
    spec: &AggregationSpec,
) -> Result<FeatureAttributionOutput, AggregationError> {
    let mut kwargs = spec.kwargs.clone();
    let checks = match kwargs.remove("do_post_aggregation_checks") {
        None => true,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(AggregationError::BadKwargs(
                "do_post_aggregation_checks must be true or false".into(),
            ))
        }
    };
    // Inseq's pre-aggregation checks are the plugins' own parameter checks here.
    kwargs.remove("do_pre_aggregation_checks");
    let paired = match kwargs.get("paired_attr") {
        Some(Value::String(path)) => {
            let p = FeatureAttributionOutput::load(path)?;
            kwargs.remove("paired_attr");
            Some(p)
        }
        _ => None,
    };
    let mut sequences = Vec::with_capacity(out.len());
    let mut first_steps = None;
    for (i, seq) in out.sequence_attributions.iter().enumerate() {
        let steps = spec.steps_or_default(Some(seq))?;
        let mut kw = kwargs.clone();
        if let Some(p) = &paired {
            let other = p.sequence_attributions.get(i).ok_or_else(|| {
                AggregationError::Pair(format!(
                    "paired_attr has {} sequences, the output has {}",
                    p.len(),
                    out.len()
                ))
            })?;
            kw.insert("paired_attr".into(), sequence_to_json(other));
        }
        let new = aggregate_sequence(reg, seq, &steps, &kw, i)?;
        if checks
            && steps
                .iter()
                .any(|s| SCORES_FAMILY.contains(&s.aggregator.as_str()))
        {
            check_two_dimensional(&new, i)?;
        }
        sequences.push(new);
        first_steps.get_or_insert(steps);
    }
    let mut info = out.info.clone();
    history::record(&mut info, &first_steps.unwrap_or_default(), &spec.kwargs);
    Ok(FeatureAttributionOutput {
        sequence_attributions: sequences,
        step_attributions: out.step_attributions.clone(),
        info,
    })
}

/// Inseq's `a - b` for every sequence: the `pair` aggregator with `b` as `paired_attr`
/// (result = b − a elementwise, differing tokens shown as `"a → b"`), without the 2-D check.
pub fn diff(
    reg: &PluginRegistry,
    a: &FeatureAttributionOutput,
    b: &FeatureAttributionOutput,
) -> Result<FeatureAttributionOutput, AggregationError> {
    if a.len() != b.len() {
        return Err(AggregationError::Pair(format!(
            "the first output has {} sequences, the second {}",
            a.len(),
            b.len()
        )));
    }
    let steps = [Step {
        aggregator: "pair".into(),
        function: None,
    }];
    let mut sequences = Vec::with_capacity(a.len());
    for (i, (x, y)) in a
        .sequence_attributions
        .iter()
        .zip(&b.sequence_attributions)
        .enumerate()
    {
        if x.class != y.class {
            return Err(AggregationError::Pair(format!(
                "sequence {i} is a {} in the first output and a {} in the second",
                x.class.sequence_class_name(),
                y.class.sequence_class_name()
            )));
        }
        let mut kw = Map::new();
        kw.insert("paired_attr".into(), sequence_to_json(y));
        sequences.push(aggregate_sequence(reg, x, &steps, &kw, i)?);
    }
    let mut info = a.info.clone();
    let mut kwargs = Map::new();
    kwargs.insert("paired_attr".into(), json!("<second output>"));
    history::record(&mut info, &steps, &kwargs);
    Ok(FeatureAttributionOutput {
        sequence_attributions: sequences,
        step_attributions: None,
        info,
    })
}

/// Runs `steps` on one sequence, routing `kwargs` to the aggregators that take them.
pub fn aggregate_sequence(
    reg: &PluginRegistry,
    seq: &FeatureAttributionSequenceOutput,
    steps: &[Step],
    kwargs: &Map<String, Value>,
    index: usize,
) -> Result<FeatureAttributionSequenceOutput, AggregationError> {
    if steps.is_empty() {
        return Ok(seq.clone());
    }
    let params = route(reg, seq.class, steps, kwargs)?;
    let mut sdk = seq.to_sdk();
    for (step, p) in steps.iter().zip(&params) {
        let agg = reg.aggregator(&step.aggregator, p)?;
        sdk = agg.aggregate(sdk).map_err(|e| AggregationError::Failed {
            aggregator: step.aggregator.clone(),
            sequence: index,
            message: e.message.to_string(),
        })?;
    }
    let mut new = FeatureAttributionSequenceOutput::from_sdk(sdk, seq.class);
    if seq.sequence_scores.is_none() && new.sequence_scores.as_ref().is_some_and(|m| m.is_empty()) {
        new.sequence_scores = None;
    }
    Ok(new)
}

/// The parameters of each step: the keywords its schema names, plus its function.
fn route(
    reg: &PluginRegistry,
    class: SequenceClass,
    steps: &[Step],
    kwargs: &Map<String, Value>,
) -> Result<Vec<Value>, AggregationError> {
    let names = steps
        .iter()
        .map(|s| reg.param_names(PluginKind::Aggregator, &s.aggregator))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(key) = kwargs.keys().find(|k| !names.iter().any(|n| n.contains(k))) {
        let mut list: Vec<&str> = steps.iter().map(|s| s.aggregator.as_str()).collect();
        list.dedup();
        return Err(AggregationError::UnusedKwarg {
            key: key.clone(),
            aggregators: list.join(", "),
        });
    }
    steps
        .iter()
        .zip(&names)
        .map(|(step, names)| {
            let mut p: Map<String, Value> = kwargs
                .iter()
                .filter(|(k, _)| names.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let takes_fn = names.iter().any(|n| n == "aggregate_fn");
            match &step.function {
                Some(f) if !takes_fn => {
                    return Err(AggregationError::NoFunction {
                        aggregator: step.aggregator.clone(),
                        function: f.clone(),
                    })
                }
                Some(f) => {
                    p.insert("aggregate_fn".into(), Value::String(f.clone()));
                }
                // Inseq's Granular class aggregates its attributions with `vnorm` under
                // `scores` when no function is given (`_dict_aggregate_fn`).
                None if takes_fn
                    && step.aggregator == "scores"
                    && class == SequenceClass::Granular
                    && !p.contains_key("aggregate_fn") =>
                {
                    p.insert(
                        "aggregate_fn".into(),
                        json!({"source_attributions": "vnorm", "target_attributions": "vnorm"}),
                    );
                }
                None => {}
            }
            Ok(Value::Object(p))
        })
        .collect()
}

fn check_two_dimensional(
    seq: &FeatureAttributionSequenceOutput,
    sequence: usize,
) -> Result<(), AggregationError> {
    let sides = [
        ("source", &seq.source_attributions),
        ("target", &seq.target_attributions),
    ];
    for (side, t) in sides {
        if let Some(t) = t {
            if t.ndim() != 2 {
                return Err(AggregationError::NotTwoDimensional {
                    sequence,
                    side,
                    shape: t.shape.to_vec(),
                });
            }
        }
    }
    Ok(())
}

/// Applies a comma-separated list of aggregators with their default parameters to an SDK
/// sequence (a method's declared default aggregation, e.g. `"vnorm"`).
pub fn apply_named(
    reg: &PluginRegistry,
    aggregators: &str,
    mut seq: rinseq_sdk::SequenceAttribution,
) -> Result<rinseq_sdk::SequenceAttribution, AggregationError> {
    for name in aggregators
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let agg = reg.aggregator(name, &Value::Object(Map::new()))?;
        seq = agg.aggregate(seq).map_err(|e| AggregationError::Failed {
            aggregator: name.to_string(),
            sequence: 0,
            message: e.message.to_string(),
        })?;
    }
    Ok(seq)
}

/// Aggregates for a view: `spec`, then the class default aggregation of whatever is still more
/// than 2-D, as Inseq's `out.aggregate(x).show()` does (the aggregated object keeps its class's
/// default aggregator, which `show` applies).
pub fn aggregate_for_view(
    reg: &PluginRegistry,
    out: &FeatureAttributionOutput,
    spec: &AggregationSpec,
) -> Result<FeatureAttributionOutput, AggregationError> {
    let first = aggregate_output(reg, out, spec)?;
    if spec.is_default() {
        return Ok(first);
    }
    aggregate_output(reg, &first, &AggregationSpec::default())
}
