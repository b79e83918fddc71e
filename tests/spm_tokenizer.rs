//! Marian (SentencePiece unigram) tokenization against HF `MarianTokenizer` on texts with
//! out-of-vocabulary runs (tests/fixtures/spm/make_reference.py → reference.json).

use std::path::PathBuf;

use rinseq::models::spm_tokenizer::load_marian_text;
use rinseq::models::tokenizer::TextTokenizer;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn reference() -> Value {
    let path = root().join("tests/fixtures/spm/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tokenizers() -> (TextTokenizer, TextTokenizer) {
    load_marian_text(&root().join("tests/fixtures/models/marian")).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    let a = v.as_array().unwrap();
    a.iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn strings(v: &Value) -> Vec<String> {
    let a = v.as_array().unwrap();
    a.iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

/// Every text on both sides: the ids and the token strings of HF (`convert_ids_to_tokens`).
#[test]
fn oov_runs_match_marian_tokenizer() {
    let (src, tgt) = tokenizers();
    let r = reference();
    let cases = r["cases"].as_array().unwrap();
    assert!(cases.len() >= 40);
    let mut failures = vec![];
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let side = case["side"].as_str().unwrap();
        let tok = if side == "source" { &src } else { &tgt };
        let got = tok.encode(text, true).unwrap();
        let want = ids(&case["ids"]);
        let got_tokens = tok.tokens(&got);
        let want_tokens = strings(&case["tokens"]);
        if got != want || got_tokens != want_tokens {
            failures.push(format!(
                "{side} {text:?}: got {got:?} {got_tokens:?}, HF {want:?} {want_tokens:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Target decoding as Inseq does it (`skip_special_tokens=True`, so `<unk>` disappears).
#[test]
fn decoding_with_unk_matches_marian_tokenizer() {
    let (_, tgt) = tokenizers();
    let r = reference();
    for d in r["decodes"].as_array().unwrap() {
        let ids = ids(&d["ids"]);
        let got = tgt.decode(&ids, true).unwrap();
        assert_eq!(got, d["text_skip_special"].as_str().unwrap(), "{ids:?}");
    }
}

/// The end-to-end symptom: a generated target holding ids of source-side pieces that
/// target.spm lacks (`k`, `w`) decodes to `kw`, which Inseq re-encodes as `▁ <unk> </s>`.
#[test]
fn reencoded_generation_has_one_unk() {
    let (_, tgt) = tokenizers();
    let r = reference();
    for rt in r["roundtrips"].as_array().unwrap() {
        let generated = ids(&rt["generated_ids"]);
        let decoded = tgt.decode(&generated, true).unwrap();
        assert_eq!(decoded, rt["decoded"].as_str().unwrap(), "{generated:?}");
        let reencoded = tgt.encode(&decoded, true).unwrap();
        assert_eq!(reencoded, ids(&rt["reencoded_ids"]), "{decoded:?}");
        assert_eq!(
            tgt.tokens(&reencoded),
            strings(&rt["reencoded_tokens"]),
            "{decoded:?}"
        );
    }
}

/// Every id's token string and its decoding alone, on both sides: the other side's pieces
/// (which the lattice never picks) print under their own names.
#[test]
fn every_id_prints_as_in_marian_tokenizer() {
    let (src, tgt) = tokenizers();
    let r = reference();
    let want_tokens = strings(&r["id_tokens"]);
    let all: Vec<u32> = (0..want_tokens.len() as u32).collect();
    assert_eq!(src.tokens(&all), want_tokens);
    assert_eq!(tgt.tokens(&all), want_tokens);
    let want_text = strings(&r["decode_each"]);
    for (&i, want) in all.iter().zip(&want_text) {
        assert_eq!(&tgt.decode(&[i], true).unwrap(), want, "id {i}");
    }
}
