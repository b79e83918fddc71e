//! `subwords`: Inseq's span rules and the marker detection beyond Inseq.

use rinseq_aggregators::{detect, word_spans, Markers, Subwords};
use rinseq_sdk::prelude::*;

use crate::common::*;

fn markers(chars: &[&str], per_char: bool, is_suffix: bool) -> Markers {
    Markers {
        chars: chars.iter().map(|s| s.to_string()).collect(),
        per_char,
        is_suffix,
    }
}

fn spans_of(tokens: &[&str], m: &Markers) -> Vec<(usize, usize)> {
    word_spans(&toks(tokens), m)
}

#[test]
fn inseq_word_spans_with_the_end_quirk() {
    let sp = markers(&["▁"], true, false);
    assert_eq!(spans_of(&["▁a", "b", "c", "▁d", "e"], &sp), vec![(0, 3)]);
    // A last word of three tokens loses its final token; of two, it is not merged.
    assert_eq!(spans_of(&["▁a", "▁d", "e", "f"], &sp), vec![(1, 3)]);
    // No marker anywhere: nothing merged (Inseq only warns).
    assert_eq!(spans_of(&["Ġa", "b", "Ġc"], &sp), vec![]);
    // WordPiece: "##" starts continuations.
    let wp = markers(&["##"], false, true);
    assert_eq!(
        spans_of(&["[CLS]", "phen", "##omen", "##al", "day", "[SEP]"], &wp),
        vec![(1, 4)]
    );
}

#[test]
fn detection_picks_sentencepiece_then_byte_level_then_wordpiece() {
    let d = |t: &[&str]| detect(&toks(t).iter().collect::<Vec<_>>());
    assert_eq!(d(&["▁Hi", "Ġx"]), markers(&["▁"], false, false));
    assert_eq!(
        d(&["Hello", "Ġwor", "ld", "Ċ"]),
        markers(&["Ġ", "Ċ"], false, false)
    );
    assert_eq!(
        d(&["[CLS]", "un", "##believ"]),
        markers(&["##"], false, true)
    );
    assert_eq!(d(&["a", "b"]), markers(&["▁"], false, false));
}

fn gpt2() -> SequenceAttribution {
    let g = t(&[4, 2], &[1., 1., 2., -3., NAN, 5., NAN, NAN]);
    let tokens = toks(&["ĠThe", "Ġcap", "ital", "Ġis"]);
    seq(
        tokens[..2].to_vec(),
        tokens,
        (2, 4),
        None,
        Some(g),
        &[("probability", &[0.5, 0.4])],
    )
}

#[test]
fn byte_level_tokens_merge_only_with_detection_or_explicit_markers() {
    // Inseq's default "▁" merges nothing on GPT-2 tokens.
    let out = run::<Subwords>(r#"{"special_chars": "▁"}"#, gpt2()).unwrap();
    assert_eq!(out.target, gpt2().target);
    // Detected Ġ: "Ġcap ital" merges across attr_pos_start (2), as a spans [1, 3] would.
    let out = run::<Subwords>("{}", gpt2()).unwrap();
    assert_eq!(
        texts(&out.target),
        vec![
            ("ĠThe".into(), 0),
            ("Ġcapital".into(), -1),
            ("Ġis".into(), 3)
        ]
    );
    assert_eq!((out.attr_pos_start, out.attr_pos_end), (1, 3));
    tensor_is(tgt(&out), &[3, 2], &[1., 1., 2., 5., NAN, NAN]);
    same(
        &run::<Subwords>(r#"{"special_chars": ["Ġ", "Ċ"]}"#, gpt2()).unwrap(),
        &out,
    );
    // aggregate_target=false leaves the target alone.
    let out = run::<Subwords>(r#"{"aggregate_target": false}"#, gpt2()).unwrap();
    assert_eq!(out.target, gpt2().target);
}

#[test]
fn bad_params() {
    err(
        build::<Subwords>(r#"{"special_chars": ""}"#),
        ErrorCode::InvalidParams,
    );
    err(
        build::<Subwords>(r#"{"special_chars": []}"#),
        ErrorCode::InvalidParams,
    );
    err(
        build::<Subwords>(r#"{"special_char": "▁"}"#),
        ErrorCode::InvalidParams,
    );
}
