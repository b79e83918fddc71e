//! `pair` and its JSON form.

use rinseq_aggregators::paired::{from_json, to_json};
use rinseq_aggregators::Pair;
use rinseq_sdk::prelude::*;

use crate::common::*;

fn one(target: &[&str], vals: &[f32], prob: f32) -> SequenceAttribution {
    let s = t(&[2, 2], vals);
    let probs: &'static [f32] = Box::leak(vec![prob, prob].into_boxed_slice());
    seq(
        toks(&["▁a", "▁b"]),
        toks(target),
        (1, 3),
        Some(s),
        None,
        &[("probability", probs)],
    )
}

fn params(other: &SequenceAttribution) -> String {
    format!(r#"{{"paired_attr": {}}}"#, to_json(other))
}

#[test]
fn difference_is_paired_minus_self() {
    let a = one(&["<pad>", "▁x", "▁y"], &[1., NAN, 3., 4.], 0.5);
    let b = one(&["<pad>", "▁x", "▁z"], &[2., 2., 2., 2.], 0.2);
    let out = run::<Pair>(&params(&b), a).unwrap();
    tensor_is(src(&out), &[2, 2], &[1., NAN, -1., -2.]);
    close(step(&out, "probability"), &[-0.3, -0.3]);
    assert_eq!(texts(&out.target)[2], ("▁y → ▁z".into(), -1));
    assert_eq!(texts(&out.target)[1], ("▁x".into(), 1));
}

#[test]
fn json_round_trip_keeps_nan_and_order() {
    let mut a = one(&["<pad>", "▁x", "▁y"], &[1., NAN, 3., 4.], 0.5);
    a.scores
        .step_scores
        .push(NamedTensor::new("entropy", t(&[2], &[1., 2.])));
    let text = to_json(&a);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["source_attributions"]["data"][1], serde_json::Value::Null);
    assert_eq!(v["source"][0]["token"], "▁a");
    let back = from_json(&text).unwrap();
    assert_eq!(back.scores.step_scores[1].name.as_str(), "entropy");
    assert!(back.scores.source.as_ref().unwrap().data[1].is_nan());
    assert_eq!(back.target, a.target);
}

#[test]
fn mismatches_are_errors_naming_both_sides() {
    let a = one(&["<pad>", "▁x", "▁y"], &[1., 2., 3., 4.], 0.5);
    let mut b = a.clone();
    b.scores.source = Some(t(&[1, 4], &[1., 2., 3., 4.]));
    let msg = err(
        run::<Pair>(&params(&b), a.clone()),
        ErrorCode::ShapeMismatch,
    );
    assert!(msg.contains("[2, 2] here, [1, 4] in paired_attr"), "{msg}");
    let mut c = a.clone();
    c.scores.step_scores = Vec::new();
    let msg = err(
        run::<Pair>(&params(&c), a.clone()),
        ErrorCode::InvalidParams,
    );
    assert!(msg.contains("no step score 'probability'"), "{msg}");
    let mut d = a.clone();
    d.target.pop();
    d.attr_pos_end = 2;
    d.scores.source = Some(t(&[2, 1], &[1., 2.]));
    let msg = err(
        run::<Pair>(&params(&d), a.clone()),
        ErrorCode::ShapeMismatch,
    );
    assert!(msg.contains("3 tokens here, 2 in paired_attr"), "{msg}");
    err(build::<Pair>("{}"), ErrorCode::InvalidParams);
    let bad = r#"{"paired_attr": {"source": [], "target": [], "source_attributions": {"shape": [2], "data": [1]}}}"#;
    err(build::<Pair>(bad), ErrorCode::InvalidParams);
}
