//! A small hand-made output shared by the views tests (`#[path]`-included, not a test target):
//! a decoder-only sequence and an encoder-decoder one, with signed scores, NaN cells, step
//! scores and a token that needs HTML escaping.

use rinseq::output::{
    FeatureAttributionOutput, FeatureAttributionSequenceOutput, SequenceClass, TokenWithId,
};
use rinseq_sdk::Tensor;

const NAN: f32 = f32::NAN;

fn toks(tokens: &[&str]) -> Vec<TokenWithId> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| TokenWithId::new(*t, 100 + i as i64))
        .collect()
}

fn tensor(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
}

/// Every token of [`output`] with the text the views show for it (markers made visible).
#[allow(dead_code)] // only the HTML test reads it
pub const SHOWN: [(&str, &str); 11] = [
    ("ĠThe", "␣The"),
    ("Ġcat", "␣cat"),
    ("Ġsat", "␣sat"),
    ("Ġdown", "␣down"),
    ("<eos>", "<eos>"),
    ("▁Le", "␣Le"),
    ("▁chat", "␣chat"),
    ("</s>", "</s>"),
    ("▁The", "␣The"),
    ("▁cat", "␣cat"),
    ("<pad>", "<pad>"),
];

/// Two sequences: decoder-only (`ĠThe Ġcat` → `Ġsat Ġdown <eos>`) and encoder-decoder
/// (`▁Le ▁chat </s>` → `▁The ▁cat </s>`), each with a `probability` step score.
pub fn output() -> FeatureAttributionOutput {
    let mut dec = FeatureAttributionSequenceOutput::new(
        SequenceClass::Granular,
        toks(&["ĠThe", "Ġcat"]),
        toks(&["ĠThe", "Ġcat", "Ġsat", "Ġdown", "<eos>"]),
        2,
        5,
    );
    dec.target_attributions = Some(tensor(
        &[5, 3],
        &[
            0.9, -0.2, 0.1, //
            -0.8, 0.6, 0.05, //
            NAN, 0.3, -0.4, //
            NAN, NAN, 1.0, //
            NAN, NAN, NAN,
        ],
    ));
    dec.step_scores
        .insert("probability".into(), tensor(&[3], &[0.62, 0.31, 0.88]));
    let mut enc = FeatureAttributionSequenceOutput::new(
        SequenceClass::Granular,
        toks(&["▁Le", "▁chat", "</s>"]),
        toks(&["<pad>", "▁The", "▁cat", "</s>"]),
        1,
        4,
    );
    enc.source_attributions = Some(tensor(
        &[3, 3],
        &[0.7, -0.1, 0.2, -0.3, 0.95, -0.05, 0.1, 0.2, 0.5],
    ));
    enc.target_attributions = Some(tensor(
        &[4, 3],
        &[
            0.2, 0.1, 0.05, //
            NAN, -0.6, 0.3, //
            NAN, NAN, 0.4, //
            NAN, NAN, NAN,
        ],
    ));
    enc.step_scores
        .insert("probability".into(), tensor(&[3], &[0.71, 0.93, 0.99]));
    FeatureAttributionOutput::new(vec![dec, enc], Default::default())
}
