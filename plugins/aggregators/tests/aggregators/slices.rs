//! `slices`: generated tokens kept, decoder-only source derived from target spans.

use rinseq_aggregators::Slices;
use rinseq_sdk::prelude::*;

use crate::common::*;

fn dec() -> SequenceAttribution {
    let g = t(&[5, 2], &[1., 2., 3., 4., 5., 6., NAN, 7., NAN, NAN]);
    let tokens = toks(&["p0", "p1", "p2", "g3", "g4"]);
    seq(
        tokens[..3].to_vec(),
        tokens,
        (3, 5),
        None,
        Some(g),
        &[("probability", &[0.5, 0.4])],
    )
}

#[test]
fn prefix_ranges_plus_generation() {
    let out = run::<Slices>(r#"{"target_spans": [[0, 1], [2, 3]]}"#, dec()).unwrap();
    assert_eq!(
        texts(&out.target)
            .iter()
            .map(|t| t.0.as_str())
            .collect::<Vec<_>>(),
        ["p0", "p2", "g3", "g4"]
    );
    assert_eq!(
        texts(&out.source)
            .iter()
            .map(|t| t.0.as_str())
            .collect::<Vec<_>>(),
        ["p0", "p2"]
    );
    assert_eq!((out.attr_pos_start, out.attr_pos_end), (2, 4));
    tensor_is(tgt(&out), &[4, 2], &[1., 2., 5., 6., NAN, 7., NAN, NAN]);
    close(step(&out, "probability"), &[0.5, 0.4]);
    // A span reaching into the generation is extended to attr_pos_end.
    let out = run::<Slices>(r#"{"target_spans": [2, 4]}"#, dec()).unwrap();
    assert_eq!(out.target.len(), 3);
    assert_eq!((out.attr_pos_start, out.attr_pos_end), (1, 3));
}

#[test]
fn errors() {
    let msg = err(run::<Slices>("{}", dec()), ErrorCode::InvalidParams);
    assert!(msg.contains("give target_spans"), "{msg}");
    let msg = err(
        run::<Slices>(r#"{"target_spans": [4, 5]}"#, dec()),
        ErrorCode::InvalidParams,
    );
    assert!(
        msg.contains("starts after the first generated token"),
        "{msg}"
    );
    let msg = err(
        run::<Slices>(r#"{"target_spans": [[0, 2], [3, 5]]}"#, dec()),
        ErrorCode::InvalidParams,
    );
    assert!(msg.contains("derived from target_spans"), "{msg}");
}

#[test]
fn encoder_decoder_without_source_spans_keeps_the_source() {
    let s = seq(
        toks(&["a", "b"]),
        toks(&["<pad>", "x"]),
        (1, 2),
        Some(t(&[2, 1], &[1., 2.])),
        None,
        &[],
    );
    let out = run::<Slices>("{}", s).unwrap();
    assert_eq!(out.source.len(), 2);
    assert_eq!(texts(&out.target), vec![("x".into(), 1)]);
    assert_eq!((out.attr_pos_start, out.attr_pos_end), (0, 1));
}
