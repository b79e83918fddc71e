//! The parameter schemas: Inseq's kwarg names, each with a description for `plugins info`.

use rinseq_aggregators::{Mean, Pair, Scores, Slices, Spans, Split, Subwords};
use rinseq_sdk::author::params_schema;
use rinseq_sdk::PluginInfo;
use serde_json::Value;

fn props<P: PluginInfo>() -> Vec<(String, Value)> {
    let schema: Value = serde_json::from_str(&params_schema::<P::Params>()).unwrap();
    let props = schema["properties"]
        .as_object()
        .expect("properties")
        .clone();
    props.into_iter().collect()
}

fn check<P: PluginInfo>(names: &[&str]) {
    let props = props::<P>();
    let got: Vec<&str> = props.iter().map(|(k, _)| k.as_str()).collect();
    let mut want = names.to_vec();
    want.sort();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, want, "{}", P::NAME);
    for (k, v) in &props {
        assert!(
            v.get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.is_empty()),
            "{}.{k}: {v}",
            P::NAME
        );
    }
}

#[test]
fn every_param_is_named_as_in_inseq_and_described() {
    check::<Scores>(&[
        "aggregate_fn",
        "select_idx",
        "normalize",
        "rescale",
        "vnorm_ord",
    ]);
    check::<Mean>(&["select_idx", "normalize", "rescale", "vnorm_ord"]);
    check::<Spans>(&["source_spans", "target_spans", "aggregate_fn"]);
    check::<Subwords>(&[
        "special_chars",
        "is_suffix_symbol",
        "aggregate_source",
        "aggregate_target",
        "aggregate_fn",
    ]);
    check::<Split>(&[
        "split_pattern",
        "split_mode",
        "aggregate_source",
        "aggregate_target",
        "aggregate_fn",
    ]);
    check::<Slices>(&["source_spans", "target_spans"]);
    check::<Pair>(&["paired_attr"]);
}
