//! `split`: spans from a regex.

use regex::Regex;
use rinseq_aggregators::{split_spans, Split, SplitMode};
use rinseq_sdk::prelude::*;

use crate::common::*;

fn spans(tokens: &[&str], pat: &str, mode: SplitMode) -> Vec<(usize, usize)> {
    split_spans(&toks(tokens), &Regex::new(pat).unwrap(), mode).unwrap()
}

#[test]
fn modes_follow_inseq_docstring_example() {
    // Inseq's comment: spans [(0,1),(1,2),(2,3),(3,4),(4,5),(5,9)], matches at 1, 2 and 4.
    let t = ["a", ",", ",", "b", ",", "c", "d", "e", "f"];
    assert_eq!(
        spans(&t, ",", SplitMode::Single),
        vec![(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 9)]
    );
    assert_eq!(
        spans(&t, ",", SplitMode::Start),
        vec![(0, 1), (1, 2), (2, 4), (4, 9)]
    );
    assert_eq!(
        spans(&t, ",", SplitMode::End),
        vec![(0, 2), (2, 3), (3, 5), (5, 9)]
    );
    // A match across tokens covers all of them; no match: nothing.
    assert_eq!(
        spans(&["x", "ab", "cd", "y"], "bc", SplitMode::Single),
        vec![(0, 1), (1, 3), (3, 4)]
    );
    assert_eq!(spans(&["x", "y"], ",", SplitMode::Single), vec![]);
}

#[test]
fn errors() {
    let msg = err(
        build::<Split>(r#"{"split_pattern": "(?<=a)b"}"#),
        ErrorCode::InvalidParams,
    );
    assert!(
        msg.starts_with("split_pattern '(?<=a)b' is not a valid regex"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
    err(build::<Split>("{}"), ErrorCode::InvalidParams);
    err(
        build::<Split>(r#"{"split_pattern": ",", "split_mode": "middle"}"#),
        ErrorCode::InvalidParams,
    );
    let s = seq(
        toks(&["a", "b"]),
        toks(&["x"]),
        (0, 1),
        Some(t(&[2, 1], &[1., 2.])),
        None,
        &[],
    );
    let msg = err(
        run::<Split>(r#"{"split_pattern": "z*"}"#, s),
        ErrorCode::InvalidParams,
    );
    assert!(msg.contains("matches the empty string"), "{msg}");
}
