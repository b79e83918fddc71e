//! `scores` and the function-named plugins.

use rinseq_aggregators::{AbsMax, Mean, Scores, VNorm};
use rinseq_sdk::prelude::*;

use crate::common::*;

/// Source (2 tokens, 2 steps, 2 dims) and target (2, 2, 2) with one NaN row-step.
fn granular() -> SequenceAttribution {
    let s = t(&[2, 2, 2], &[1., 3., 2., 2., -4., 0., 5., 1.]);
    let g = t(&[2, 2, 2], &[2., 2., 0., 4., NAN, NAN, 1., 1.]);
    seq(
        toks(&["a", "b"]),
        toks(&["x", "y"]),
        (0, 2),
        Some(s),
        Some(g),
        &[("probability", &[0.5, 0.2])],
    )
}

fn one_side(data: &[f32]) -> SequenceAttribution {
    let s = t(&[1, 1, data.len()], data);
    seq(toks(&["a"]), toks(&["x"]), (0, 1), Some(s), None, &[])
}

#[test]
fn mean_then_joint_l1_per_column_with_nan_kept() {
    // mean: source [[2, 2], [-2, 3]], target [[2, 2], [NaN, 1]]; column sums 6 and 8.
    let out = run::<Scores>("{}", granular()).unwrap();
    tensor_is(src(&out), &[2, 2], &[2. / 6., 2. / 8., -2. / 6., 3. / 8.]);
    tensor_is(tgt(&out), &[2, 2], &[2. / 6., 2. / 8., NAN, 1. / 8.]);
    // Step scores, tokens and positions are untouched.
    close(step(&out, "probability"), &[0.5, 0.2]);
    assert_eq!(out.target.len(), 2);
    same(&run::<Mean>("{}", granular()).unwrap(), &out);
}

#[test]
fn normalize_false_and_rescale() {
    let out = run::<Scores>(r#"{"normalize": false}"#, granular()).unwrap();
    tensor_is(src(&out), &[2, 2], &[2., 2., -2., 3.]);
    // rescale alone implies normalize=false (Inseq's None semantics): divide by max |x| = 3.
    let out = run::<Scores>(r#"{"rescale": true}"#, granular()).unwrap();
    tensor_is(src(&out), &[2, 2], &[2. / 3., 2. / 3., -2. / 3., 1.]);
    tensor_is(tgt(&out), &[2, 2], &[2. / 3., 2. / 3., NAN, 1. / 3.]);
    // All zeros: 0/0, as torch.
    let out = run::<Scores>(r#"{"rescale": true}"#, one_side(&[0., 0.])).unwrap();
    assert!(src(&out).data[0].is_nan());
}

#[test]
fn per_field_functions_normalise_with_their_own_reduction() {
    // Inseq computes each side with its field's function, normalising against the other side
    // reduced with that same function: source = 5 / (5 + √10), target = -1 / (3.5 + 1).
    let s = seq(
        toks(&["a"]),
        toks(&["x"]),
        (0, 1),
        Some(t(&[1, 1, 2], &[3., 4.])),
        Some(t(&[1, 1, 2], &[1., -3.])),
        &[],
    );
    let p = r#"{"aggregate_fn": {"source_attributions": "vnorm", "target_attributions": "mean"}}"#;
    let out = run::<Scores>(p, s).unwrap();
    close(&src(&out).data, &[5. / (5. + 10f32.sqrt())]);
    close(&tgt(&out).data, &[-1. / 4.5]);
}

#[test]
fn select_idx_int_selects_without_reducing_4d_to_3d() {
    // (1 token, 1 step, 2 layers, 2 heads): head 1 of each layer, normalised per layer column.
    let s = seq(
        toks(&["a"]),
        toks(&["x"]),
        (0, 1),
        Some(t(&[1, 1, 2, 2], &[1., 2., 3., 4.])),
        Some(t(&[1, 1, 2, 2], &[5., 6., 7., 8.])),
        &[],
    );
    let out = run::<Mean>(r#"{"select_idx": 1}"#, s.clone()).unwrap();
    tensor_is(src(&out), &[1, 1, 2], &[2. / 8., 4. / 12.]);
    tensor_is(tgt(&out), &[1, 1, 2], &[6. / 8., 8. / 12.]);
    // Negative indices count from the end.
    assert_eq!(
        run::<Mean>(r#"{"select_idx": -1}"#, s.clone()).unwrap(),
        out
    );
    // Without select_idx: mean over heads, (1, 1, 2).
    let out = run::<Mean>("{}", s).unwrap();
    tensor_is(src(&out), &[1, 1, 2], &[1.5 / 7., 3.5 / 11.]);
}

#[test]
fn select_idx_lists_ranges_and_indices() {
    let go = |p: &str| run::<Scores>(p, one_side(&[1., 2., 6.])).map(|o| src(&o).clone());
    let nn = |sel: &str| format!(r#"{{"normalize": false, "select_idx": {sel}}}"#);
    tensor_is(&go(&nn("[0, 2]")).unwrap(), &[1, 1], &[1.5]);
    tensor_is(&go(&nn(r#"{"indices": [0, 2]}"#)).unwrap(), &[1, 1], &[3.5]);
    tensor_is(&go(&nn("[0, 1, 2]")).unwrap(), &[1, 1], &[3.]);
    tensor_is(&go(&nn("[2]")).unwrap(), &[1, 1], &[6.]);
    tensor_is(&go(&nn("[-2, 3]")).unwrap(), &[1, 1], &[4.]);
    for bad in ["5", "[2, 1]", "[]", "[0, 0, 1]", "[0, 4]"] {
        let msg = err(go(&nn(bad)), ErrorCode::InvalidParams);
        assert!(msg.starts_with("select_idx:"), "{bad}: {msg}");
    }
}

#[test]
fn functions_and_orders() {
    let go = |p: &str, d: &[f32]| run::<Scores>(p, one_side(d)).map(|o| src(&o).data[0]);
    let p = |f: &str| format!(r#"{{"normalize": false, "aggregate_fn": "{f}"}}"#);
    assert_eq!(go(&p("absmax"), &[0.3, -0.7, 0.1]).unwrap(), -0.7);
    assert_eq!(go(&p("absmax"), &[NAN, -0.7, 0.7]).unwrap(), -0.7);
    assert!(go(&p("max"), &[1., NAN]).unwrap().is_nan());
    assert_eq!(go(&p("prod"), &[2., -3.]).unwrap(), -6.);
    assert_eq!(go(&p("sum"), &[2., -3.]).unwrap(), -1.);
    assert_eq!(go(&p("min"), &[2., -3.]).unwrap(), -3.);
    assert_eq!(go(&p("vnorm"), &[3., -4.]).unwrap(), 5.);
    let vn = |o: &str, d: &[f32]| {
        run::<VNorm>(
            &format!(r#"{{"normalize": false, "vnorm_ord": {o}}}"#),
            one_side(d),
        )
        .map(|o| src(&o).data[0])
    };
    assert_eq!(vn("\"inf\"", &[1., -5., 2.]).unwrap(), 5.);
    assert!(vn("\"inf\"", &[NAN, 1.]).unwrap().is_nan());
    assert_eq!(vn("1", &[1., -5., 2.]).unwrap(), 8.);
    assert_eq!(
        run::<AbsMax>(r#"{"normalize": false}"#, one_side(&[1., -2.]))
            .map(|o| src(&o).data[0])
            .unwrap(),
        -2.
    );
}

#[test]
fn sequence_scores_are_reduced_and_decoder_only_normalises_target_alone() {
    let mut s = seq(
        toks(&["p"]),
        toks(&["p", "x", "y"]),
        (1, 3),
        None,
        Some(t(
            &[3, 2, 2],
            &[1., 1., 2., 2., 3., 5., NAN, NAN, 0., 0., 4., 4.],
        )),
        &[],
    );
    s.scores.sequence_scores = vec![NamedTensor::new(
        "decoder_self_scores",
        t(&[2, 2, 2], &[1., 3., 0., 2., 5., 5., 1., 1.]),
    )];
    let out = run::<Scores>("{}", s).unwrap();
    // target mean [[1, 2], [4, NaN], [0, 4]]: column sums 5 and 6.
    tensor_is(tgt(&out), &[3, 2], &[0.2, 2. / 6., 0.8, NAN, 0., 4. / 6.]);
    // Sequence scores: reduced with the same default function, not normalised.
    tensor_is(
        &out.scores.sequence_scores[0].tensor,
        &[2, 2],
        &[2., 1., 5., 1.],
    );
}

#[test]
fn invalid_params_are_one_line_errors() {
    let msg = err(
        build::<Scores>(r#"{"aggregate_fn": "median"}"#),
        ErrorCode::InvalidParams,
    );
    assert!(
        msg.contains("mean, max, min, sum, prod, absmax, vnorm"),
        "{msg}"
    );
    let msg = err(
        build::<Scores>(r#"{"aggregate_fn": {"source_attributions": "l2"}}"#),
        ErrorCode::InvalidParams,
    );
    assert!(msg.contains("unknown aggregation function 'l2'"), "{msg}");
    let msg = err(
        build::<Scores>(r#"{"aggregate_fn": {"attributions": "mean"}}"#),
        ErrorCode::InvalidParams,
    );
    assert!(msg.contains("unknown field 'attributions'"), "{msg}");
    let msg = err(
        build::<Scores>(r#"{"normalize": true, "rescale": true}"#),
        ErrorCode::InvalidParams,
    );
    assert!(msg.contains("mutually exclusive"), "{msg}");
    err(
        build::<Mean>(r#"{"aggregate_fn": "sum"}"#),
        ErrorCode::InvalidParams,
    );
    err(
        build::<Scores>(r#"{"vnorm_ord": "big"}"#),
        ErrorCode::InvalidParams,
    );
    assert!(!msg.contains('\n'));
}

#[test]
fn two_dimensional_input_is_refused() {
    let s = seq(
        toks(&["a"]),
        toks(&["x"]),
        (0, 1),
        Some(t(&[1, 1], &[1.])),
        None,
        &[],
    );
    err(run::<Scores>("{}", s), ErrorCode::Unsupported);
}
