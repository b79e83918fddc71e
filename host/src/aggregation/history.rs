//! The aggregation history kept in a saved output's `info` (`info["aggregation"]`, a list of
//! pipelines in the order they were applied), so that a file says how its scores were made.
//! Python inseq loads it as part of the plain `info` dict.

use serde_json::{json, Map, Value};

use super::Step;

/// Appends one pipeline run to `info["aggregation"]`.
pub fn record(info: &mut Map<String, Value>, steps: &[Step], kwargs: &Map<String, Value>) {
    if steps.is_empty() {
        return;
    }
    let entry = json!({
        "aggregators": steps.iter().map(|s| s.aggregator.clone()).collect::<Vec<_>>(),
        "aggregate_fn": steps.iter().map(|s| s.function.clone()).collect::<Vec<_>>(),
        "kwargs": kwargs,
    });
    match info.get_mut("aggregation") {
        Some(Value::Array(list)) => list.push(entry),
        _ => {
            info.insert("aggregation".into(), Value::Array(vec![entry]));
        }
    }
}
