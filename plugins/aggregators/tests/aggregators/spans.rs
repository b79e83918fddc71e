//! `spans`: validation, token merging, step-score functions, positions.

use rinseq_aggregators::Spans;
use rinseq_sdk::prelude::*;

use crate::common::*;

/// Encoder-decoder: 4 source tokens, target "<pad> A B C" (attr_pos 1..4), 2-D scores.
fn base() -> SequenceAttribution {
    let s = t(
        &[4, 3],
        &[1., 2., 3., -4., 5., 6., 7., 8., -9., 0.5, 0.5, 0.5],
    );
    let g = t(
        &[4, 3],
        &[1., 1., 1., 2., 2., 2., NAN, 3., 3., NAN, NAN, 4.],
    );
    let steps: &[(&str, &[f32])] = &[
        ("probability", &[0.5, 0.5, 0.4]),
        ("entropy", &[1., 2., 3.]),
        ("custom", &[0.1, -0.9, 0.2]),
    ];
    seq(
        toks(&["s0", "s1", "s2", "s3"]),
        toks(&["<pad>", "A", "B", "C"]),
        (1, 4),
        Some(s),
        Some(g),
        steps,
    )
}

#[test]
fn source_span_absmax_keeps_sign_and_merges_tokens() {
    let out = run::<Spans>(r#"{"source_spans": [[0, 2], [3, 4]]}"#, base()).unwrap();
    assert_eq!(
        texts(&out.source),
        vec![("s0s1".into(), -1), ("s2".into(), 2), ("s3".into(), -1)]
    );
    tensor_is(
        src(&out),
        &[3, 3],
        &[-4., 5., 6., 7., 8., -9., 0.5, 0.5, 0.5],
    );
    // No target spans: target, steps and positions unchanged.
    same(tgt(&out), tgt(&base()));
    assert_eq!((out.attr_pos_start, out.attr_pos_end), (1, 4));
}

#[test]
fn generated_span_merges_columns_and_step_scores_by_name() {
    // Target span [2, 4] = generated steps 1..3 (relative to attr_pos_start 1).
    let out = run::<Spans>(r#"{"target_spans": [2, 4]}"#, base()).unwrap();
    assert_eq!((out.attr_pos_start, out.attr_pos_end), (1, 3));
    assert_eq!(texts(&out.target)[2], ("BC".into(), -1));
    // Columns first: [1, 1∪1], ..., then rows 2∪3 with absmax (NaN counts as 0).
    tensor_is(src(&out), &[4, 2], &[1., 3., -4., 6., 7., -9., 0.5, 0.5]);
    tensor_is(tgt(&out), &[3, 2], &[1., 1., 2., 2., NAN, 4.]);
    close(step(&out, "probability"), &[0.5, 0.2]);
    close(step(&out, "entropy"), &[1., 5.]);
    close(step(&out, "custom"), &[0.1, -0.9]);
    // One function for everything, step scores included (Inseq's aggregate_fn="sum").
    let out = run::<Spans>(r#"{"target_spans": [2, 4], "aggregate_fn": "sum"}"#, base()).unwrap();
    close(step(&out, "probability"), &[0.5, 0.9]);
    close(step(&out, "custom"), &[0.1, -0.7]);
    // Per field: named step scores override the table, the rest keep their defaults.
    let p = r#"{"target_spans": [2, 4], "aggregate_fn": {"step_scores": {"custom": "mean"}, "source_attributions": "max"}}"#;
    let out = run::<Spans>(p, base()).unwrap();
    close(step(&out, "probability"), &[0.5, 0.2]);
    close(step(&out, "custom"), &[0.1, -0.35]);
    tensor_is(src(&out), &[4, 2], &[1., 3., -4., 6., 7., 8., 0.5, 0.5]);
    tensor_is(tgt(&out), &[3, 2], &[1., 1., 2., 2., NAN, 4.]);
}

#[test]
fn spans_in_the_prefix_move_attr_pos_start() {
    // Decoder-only "p0 p1 p2 | g3 g4": merging the prompt [0, 2] shifts the positions by one.
    let g = t(&[5, 2], &[1., 2., 3., 4., 5., 6., NAN, 7., NAN, NAN]);
    let s = seq(
        toks(&["p0", "p1", "p2"]),
        toks(&["p0", "p1", "p2", "g3", "g4"]),
        (3, 5),
        None,
        Some(g),
        &[("probability", &[0.5, 0.5])],
    );
    let out = run::<Spans>(r#"{"target_spans": [0, 2]}"#, s.clone()).unwrap();
    assert_eq!((out.attr_pos_start, out.attr_pos_end), (2, 4));
    tensor_is(tgt(&out), &[4, 2], &[3., 4., 5., 6., NAN, 7., NAN, NAN]);
    // Source spans on a decoder-only sequence merge the prompt tokens only.
    let out = run::<Spans>(r#"{"source_spans": [1, 3]}"#, s).unwrap();
    assert_eq!(
        texts(&out.source),
        vec![("p0".into(), 0), ("p1p2".into(), -1)]
    );
    assert_eq!(out.target.len(), 5);
}

#[test]
fn validation_errors_name_the_span_and_the_fix() {
    let msg = err(
        build::<Spans>(r#"{"source_spans": [2, 2]}"#),
        ErrorCode::InvalidParams,
    );
    assert!(msg.contains("span [2, 2] is empty"), "{msg}");
    let msg = err(
        build::<Spans>(r#"{"target_spans": [[0, 2], [1, 3]]}"#),
        ErrorCode::InvalidParams,
    );
    assert!(
        msg.contains("[1, 3] starts before the previous span ends (2)"),
        "{msg}"
    );
    let msg = err(
        run::<Spans>(r#"{"source_spans": [2, 9]}"#, base()),
        ErrorCode::InvalidParams,
    );
    assert!(
        msg.contains("source_spans: span [2, 9] ends past the 4 tokens"),
        "{msg}"
    );
    for bad in ["[1, 2, 3]", "[[0, -1]]", "3", "[[0, 1, 2]]"] {
        let msg = err(
            build::<Spans>(&format!(r#"{{"source_spans": {bad}}}"#)),
            ErrorCode::InvalidParams,
        );
        assert!(msg.contains("give one [start, end]"), "{bad}: {msg}");
        assert!(!msg.contains('\n'));
    }
    err(
        build::<Spans>(r#"{"aggregate_fn": "median"}"#),
        ErrorCode::InvalidParams,
    );
}

#[test]
fn granular_3d_spans_keep_the_hidden_axis() {
    let s = seq(
        toks(&["a", "b"]),
        toks(&["x"]),
        (0, 1),
        Some(t(&[2, 1, 2], &[1., -5., 2., 3.])),
        None,
        &[],
    );
    let out = run::<Spans>(r#"{"source_spans": [0, 2], "aggregate_fn": "vnorm"}"#, s).unwrap();
    tensor_is(src(&out), &[1, 1, 2], &[5f32.sqrt(), 34f32.sqrt()]);
}
