//! Small hand-made outputs for the views' unit tests.

use rinseq_sdk::Tensor;

use crate::output::{
    FeatureAttributionOutput, FeatureAttributionSequenceOutput, SequenceClass, TokenWithId,
};

const NAN: f32 = f32::NAN;

fn toks(tokens: &[&str]) -> Vec<TokenWithId> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| TokenWithId::new(*t, i as i64))
        .collect()
}

fn tensor(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
}

/// A decoder-only sequence: prompt `ĠHi`, generated `Ġthere !`, NaN above the diagonal, and a
/// `probability` step score.
pub(crate) fn decoder_only() -> FeatureAttributionSequenceOutput {
    let mut seq = FeatureAttributionSequenceOutput::new(
        SequenceClass::Granular,
        toks(&["ĠHi"]),
        toks(&["ĠHi", "Ġthere", "!"]),
        1,
        3,
    );
    seq.target_attributions = Some(tensor(&[3, 2], &[1.0, 0.25, NAN, 0.75, NAN, NAN]));
    seq.step_scores
        .insert("probability".into(), tensor(&[2], &[0.5, 0.125]));
    seq
}

/// An encoder-decoder sequence with signed source and target scores.
pub(crate) fn encoder_decoder() -> FeatureAttributionSequenceOutput {
    let mut seq = FeatureAttributionSequenceOutput::new(
        SequenceClass::Granular,
        toks(&["▁Hello", "▁world", "</s>"]),
        toks(&["<pad>", "▁Ciao", "▁mondo", "</s>"]),
        1,
        4,
    );
    seq.source_attributions = Some(tensor(
        &[3, 3],
        &[0.8, -0.4, 0.1, -0.9, 0.6, 0.2, 0.05, 0.0, -0.3],
    ));
    seq.target_attributions = Some(tensor(
        &[4, 3],
        &[0.3, 0.1, -0.2, NAN, 0.5, 0.4, NAN, NAN, -0.7, NAN, NAN, NAN],
    ));
    seq.step_scores
        .insert("probability".into(), tensor(&[3], &[0.9, 0.6, 0.95]));
    seq
}

/// Both sequences above, decoder-only first.
pub(crate) fn two_sequences() -> FeatureAttributionOutput {
    FeatureAttributionOutput::new(vec![decoder_only(), encoder_decoder()], Default::default())
}

/// Tokens full of markup and LaTeX specials.
pub(crate) fn special_tokens() -> FeatureAttributionOutput {
    let mut seq = FeatureAttributionSequenceOutput::new(
        SequenceClass::Base,
        toks(&["<b>", "a&b", "\"q\""]),
        toks(&["<b>", "a&b", "\"q\"", "50%_$#", "{x}~^\\"]),
        3,
        5,
    );
    seq.target_attributions = Some(tensor(
        &[5, 2],
        &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, NAN, 0.9],
    ));
    FeatureAttributionOutput::new(vec![seq], Default::default())
}

/// Scores around 1e-5 (a precision test).
pub(crate) fn tiny_scores() -> FeatureAttributionOutput {
    let mut seq = decoder_only();
    seq.target_attributions = Some(tensor(&[3, 2], &[1.5e-5, 2.5e-5, NAN, -3.0e-5, NAN, NAN]));
    seq.step_scores.clear();
    FeatureAttributionOutput::new(vec![seq], Default::default())
}

/// A `(2, 2, 3)` target tensor that was not aggregated.
pub(crate) fn unaggregated() -> FeatureAttributionOutput {
    let mut seq = FeatureAttributionSequenceOutput::new(
        SequenceClass::Granular,
        toks(&["ĠA"]),
        toks(&["ĠA", "ĠB"]),
        1,
        2,
    );
    seq.target_attributions = Some(tensor(&[2, 2, 3], &[0.1; 12]));
    FeatureAttributionOutput::new(vec![seq], Default::default())
}
