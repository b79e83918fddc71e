//! Context-sensitive token identification: the contrastive metric between the contextless
//! output (attributed sequence) and the contextual one (contrast), at every current output
//! token. Inseq runs its `dummy` method with `step_scores=[metric]`; rinseq records the step
//! score alone (the same forwards, no attribution).

use rinseq_sdk::abi::LoadedStepFunction;

use super::text::Texts;
use super::ContextError;
use crate::attribution::result::step_scores;
use crate::attribution::{encode_batch, AttributeOptions, EncodedSequence};
use crate::generation::GenerationParams;
use crate::models::load::LoadedModel;
use crate::plugins::Instance;

/// CTI's result.
#[derive(Debug, Clone)]
pub struct Cti {
    /// The scored current output tokens.
    pub tokens: Vec<String>,
    /// Their scores.
    pub scores: Vec<f32>,
    /// The encoded contextless sequence (for `--show-intermediate-outputs`).
    pub sequence: EncodedSequence,
    /// Every recorded step score (before the output prefix is cut).
    pub step_scores: Vec<f32>,
}

/// The texts CTI compares.
#[derive(Debug, Clone)]
pub struct CtiTexts<'a> {
    /// Contextless input (decoder-only: the prompt, trailing spaces stripped).
    pub contextless_input: &'a str,
    /// Contextless output (decoder-only: prompt included).
    pub contextless_output: &'a str,
    /// Full (contextual) input: the contrast source of encoder-decoder models.
    pub full_input: &'a str,
    /// Full (contextual) output: the contrast target (decoder-only: input included).
    pub full_output: &'a str,
    /// Tokens of the contextless output template's prefix (skipped).
    pub prefix_len: usize,
}

/// Scores every current output token with `metric` (one contrastive step function).
pub fn run(
    loaded: &LoadedModel,
    texts: &Texts<'_>,
    t: &CtiTexts<'_>,
    metric: &[(String, Instance<LoadedStepFunction>)],
    generation: &GenerationParams,
) -> Result<Cti, ContextError> {
    let enc_dec = texts.encoder_decoder();
    let opts = AttributeOptions {
        generated_texts: vec![t.contextless_output.to_string()],
        attribute_target: enc_dec,
        contrast_targets: vec![t.full_output.to_string()],
        contrast_sources: if enc_dec {
            vec![t.full_input.to_string()]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let seq = encode_batch(
        loaded,
        &[t.contextless_input.to_string()],
        &opts,
        generation,
    )?
    .pop()
    .ok_or_else(|| ContextError::bad("CTI encoded no sequence"))?;
    let recorded = step_scores::record(loaded.model.as_ref(), &seq, metric)?;
    let all: Vec<f32> = recorded
        .into_iter()
        .next()
        .map(|(_, v)| v)
        .unwrap_or_default();
    let first = seq.attr_pos.0;
    let mut scores: Vec<f32> = all.iter().skip(t.prefix_len).copied().collect();
    let mut tokens: Vec<String> = texts
        .named(true, &seq.target_ids)
        .into_iter()
        .skip(t.prefix_len + first)
        .map(|tok| tok.text)
        .collect();
    if enc_dec {
        // The final EOS is not part of the current output.
        scores.pop();
        tokens.pop();
    }
    if tokens.len() != scores.len() {
        return Err(ContextError::bad(format!(
            "CTI scored {} steps for {} current output tokens: check the contextless output template",
            scores.len(),
            tokens.len()
        )));
    }
    Ok(Cti {
        tokens,
        scores,
        sequence: seq,
        step_scores: all,
    })
}
