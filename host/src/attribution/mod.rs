//! The attribution loop: encode the inputs, generate (or force) the targets, let the method
//! attribute every step of every sequence through the host callbacks, record step scores.
//!
//! The path of one attribution: `cli::attribute` parses the flags → [`attribute`] encodes and
//! generates → a plugin method's `attribute` is called once per batch with a [`ModelHost`]
//! (the SDK boundary), which answers its gradient / score / internals requests with batched
//! forwards ([`forward`]) that call the attributed step-function plugin for the target and its
//! gradient → step scores are recorded → the caller turns the result into Inseq's output model.

pub mod contrast;
pub mod memory;
pub mod plan;
pub mod result;
pub mod sequence;
pub mod serve;

use std::time::Instant;

use rinseq_sdk::{
    abi::LoadedMethod, abi::LoadedStepFunction, AttributionRequest, SequenceScores, Token,
};
use thiserror::Error;

pub use sequence::{baseline_ids, EncodedSequence};
pub use serve::ModelHost;

use crate::generation::{generate, GenerationError, GenerationInput, GenerationParams};
use crate::models::load::LoadedModel;
use crate::models::{ModelError, ModelKind};
use crate::plugins::Instance;

/// What can go wrong in the attribution loop (one line each).
#[derive(Debug, Error)]
pub enum AttributionError {
    /// Bad user input (texts, positions...).
    #[error("{0}")]
    BadInput(String),
    /// Tokenization or model failure.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Generation failure.
    #[error(transparent)]
    Generation(#[from] GenerationError),
    /// A plugin failed.
    #[error("{0}")]
    Plugin(#[from] rinseq_sdk::PluginError),
    /// A method's result does not fit its request.
    #[error("{0}")]
    BadOutput(String),
}

/// Options of one attribution run (Inseq's `model.attribute(...)` arguments).
#[derive(Debug, Clone, Default)]
pub struct AttributeOptions {
    /// Forced targets (`generated_texts`); generation when empty.
    pub generated_texts: Vec<String>,
    /// Attribute the target prefix too (encoder-decoder; always on for decoder-only).
    pub attribute_target: bool,
    /// First attributed target position (negative: from the end).
    pub attr_pos_start: Option<i64>,
    /// One past the last attributed target position (negative: from the end).
    pub attr_pos_end: Option<i64>,
    /// Keep EOS in baselines as UNK too.
    pub include_eos_baseline: bool,
    /// Sequences per method call (all at once when `None`).
    pub batch_size: Option<usize>,
    /// Contrastive targets, one per input (decoder-only: prompt included).
    pub contrast_targets: Vec<String>,
    /// Contrastive sources, one per input (encoder-decoder only).
    pub contrast_sources: Vec<String>,
    /// Explicit `(target position, contrast position)` pairs per input; the rest is right-aligned.
    pub contrast_targets_alignments: Vec<Vec<(usize, usize)>>,
    /// Run the contrast input when the attributed function is contrastive (otherwise the original
    /// forward is reused and only the target id changes, as in Inseq).
    pub contrast_force_inputs: bool,
    /// Tokens (rows × sequence length) per batched differentiable forward: bounds the
    /// activations kept for the backward pass (default [`serve::DEFAULT_TOKENS_PER_FORWARD`]).
    pub tokens_per_forward: Option<usize>,
    /// The memory budget in bytes (default: half of the machine's memory): lowers
    /// `tokens_per_forward` when needed and refuses a sequence too long for it.
    pub max_memory: Option<u64>,
    /// Serve gradient requests with one differentiable forward per (point, step) instead of one
    /// shared forward per point, and score requests with one whole forward per point instead of
    /// reusing the unperturbed prefix's KV cache (benchmarks, debugging; same numbers up to
    /// float order).
    pub per_row_forward: bool,
}

/// A method's result for one sequence, with its recorded step scores.
#[derive(Debug, Clone)]
pub struct AttributedSequence {
    /// The encoded sequence.
    pub sequence: EncodedSequence,
    /// The method's scores.
    pub scores: SequenceScores,
    /// Recorded step scores by name, one value per attributed step.
    pub step_scores: Vec<(String, Vec<f32>)>,
}

/// The loop's result.
#[derive(Debug, Clone)]
pub struct AttributionRun {
    /// One entry per input text.
    pub sequences: Vec<AttributedSequence>,
    /// Seconds spent in the attribution loop (Inseq's `exec_time`).
    pub exec_time: f64,
}

/// Encodes `inputs` and produces their targets (forced or generated).
pub fn encode_batch(
    loaded: &LoadedModel,
    inputs: &[String],
    opts: &AttributeOptions,
    generation: &GenerationParams,
) -> Result<Vec<EncodedSequence>, AttributionError> {
    if inputs.is_empty() {
        return Err(AttributionError::BadInput(
            "no input texts given (-i TEXT)".into(),
        ));
    }
    if !opts.generated_texts.is_empty() && opts.generated_texts.len() != inputs.len() {
        return Err(AttributionError::BadInput(format!(
            "{} input texts but {} generated texts: give one generated text per input",
            inputs.len(),
            opts.generated_texts.len()
        )));
    }
    let tok = &loaded.tokenizer;
    let target_tok = loaded.target_tokenizer.as_ref().unwrap_or(tok);
    let spec = &loaded.spec;
    let special = &tok.special;
    // No UNK and no PAD: no baseline token; methods that ask for baselines get a clear error.
    let unk = special.unk.or(special.pad);
    let encoded: Vec<Vec<u32>> = inputs
        .iter()
        .map(|t| tok.encode(t, true))
        .collect::<Result<_, _>>()?;
    let decoder_only = spec.kind == ModelKind::DecoderOnly;
    let targets: Vec<Vec<u32>> = if !opts.generated_texts.is_empty() {
        let mut out = Vec::new();
        for (i, g) in opts.generated_texts.iter().enumerate() {
            if decoder_only {
                let ids = tok.encode(g, true)?;
                if !ids.starts_with(&encoded[i]) {
                    return Err(AttributionError::BadInput(format!(
                        "generated text {i} must start with its input text (decoder-only models continue the prompt)"
                    )));
                }
                out.push(ids);
            } else {
                let start = spec.decoder_start_token_id.ok_or_else(|| {
                    AttributionError::BadInput("the model has no decoder_start_token_id".into())
                })?;
                let mut ids = vec![start];
                ids.extend(target_tok.encode(g, true)?);
                out.push(ids);
            }
        }
        out
    } else {
        // As Inseq does, the generation is decoded to text (special tokens skipped) and the
        // text re-encoded as a forced target, so ids can differ from the generated ones.
        let texts = generated_texts(loaded, &encoded, generation)?;
        let forced = AttributeOptions {
            generated_texts: texts,
            ..opts.clone()
        };
        return encode_batch(loaded, inputs, &forced, generation);
    };
    let mut seqs = Vec::new();
    for (src, tgt) in encoded.into_iter().zip(targets) {
        let pos = positions(tgt.len(), decoder_only.then_some(src.len()), opts)?;
        let tokens = |t: &crate::models::tokenizer::TextTokenizer, ids: &[u32]| -> Vec<Token> {
            t.tokens(ids)
                .into_iter()
                .zip(ids)
                .map(|(s, &i)| Token::new(s, i))
                .collect()
        };
        let (source_ids, source_tokens) = if decoder_only {
            (Vec::new(), Vec::new())
        } else {
            (src.clone(), tokens(tok, &src))
        };
        let contrast = contrast_for(loaded, seqs.len(), opts)?;
        seqs.push(EncodedSequence {
            source_baseline: baseline_ids(
                &source_ids,
                unk,
                &special.eos,
                opts.include_eos_baseline,
            ),
            target_baseline: {
                let mut b = baseline_ids(&tgt, unk, &special.eos, opts.include_eos_baseline);
                // Inseq prepends the decoder-start id to encoder-decoder target baselines
                // (`HuggingfaceModel.encode(as_targets=True)`): position 0 is never replaced
                // (Marian starts with PAD, which would otherwise become UNK).
                if !decoder_only {
                    if let (Some(b0), Some(&t0)) = (b.first_mut(), tgt.first()) {
                        *b0 = t0;
                    }
                }
                b
            },
            source_tokens,
            target_tokens: tokens(target_tok, &tgt),
            source_ids,
            target_ids: tgt,
            steps: pos.steps,
            attr_pos: (pos.start, pos.end),
            contrast: None,
        });
        if let Some((src, tgt)) = contrast {
            let last = seqs.len() - 1;
            let explicit = opts
                .contrast_targets_alignments
                .get(last)
                .cloned()
                .unwrap_or_default();
            let c = contrast::contrast_of(&seqs[last], src, tgt, &explicit, target_tok)?;
            seqs[last].contrast = Some(c);
        }
    }
    Ok(seqs)
}

/// Encoded contrast ids: the source (when `contrast_sources` replace it) and the target (empty
/// when only the source is contrasted).
type ContrastIds = (Option<Vec<u32>>, Vec<u32>);

/// Encoded contrast ids of input `i`, when contrast inputs were given.
fn contrast_for(
    loaded: &LoadedModel,
    i: usize,
    opts: &AttributeOptions,
) -> Result<Option<ContrastIds>, AttributionError> {
    let decoder_only = loaded.spec.kind == ModelKind::DecoderOnly;
    if decoder_only && !opts.contrast_sources.is_empty() {
        return Err(AttributionError::BadInput(
            "contrast_sources is for encoder-decoder models; use contrast_targets (prompt included) with a decoder-only model".into(),
        ));
    }
    for (name, list) in [
        ("contrast_targets", &opts.contrast_targets),
        ("contrast_sources", &opts.contrast_sources),
    ] {
        if !list.is_empty() && list.len() <= i {
            return Err(AttributionError::BadInput(format!(
                "{name} has {} entries: give one per input text",
                list.len()
            )));
        }
    }
    if opts.contrast_targets.is_empty() && opts.contrast_sources.is_empty() {
        return Ok(None);
    }
    let tok = &loaded.tokenizer;
    let target_tok = loaded.target_tokenizer.as_ref().unwrap_or(tok);
    let source = opts
        .contrast_sources
        .get(i)
        .map(|s| tok.encode(s, true))
        .transpose()?;
    let target = match opts.contrast_targets.get(i) {
        Some(t) if decoder_only => tok.encode(t, true)?,
        Some(t) => {
            let start = loaded.spec.decoder_start_token_id.ok_or_else(|| {
                AttributionError::BadInput("the model has no decoder_start_token_id".into())
            })?;
            [vec![start], target_tok.encode(t, true)?].concat()
        }
        // Only a contrast source: the original target is decoded on the contrast source.
        None => return Ok(Some((source, Vec::new()))),
    };
    Ok(Some((source, target)))
}

/// Generates continuations and returns Inseq's `generated_texts`: decoder-only texts include
/// the prompt.
fn generated_texts(
    loaded: &LoadedModel,
    encoded: &[Vec<u32>],
    generation: &GenerationParams,
) -> Result<Vec<String>, AttributionError> {
    let model = loaded.model.as_ref();
    let decoder_only = loaded.spec.kind == ModelKind::DecoderOnly;
    let input = if decoder_only {
        GenerationInput::decoder_only(encoded.to_vec())
    } else {
        GenerationInput::encoder_decoder(encoded.to_vec())
    };
    let new = generate(model, &input, generation)?;
    let tok = loaded
        .target_tokenizer
        .as_ref()
        .unwrap_or(&loaded.tokenizer);
    encoded
        .iter()
        .zip(new)
        .map(|(p, n)| {
            let ids = if decoder_only {
                [p.clone(), n].concat()
            } else {
                n
            };
            Ok(tok.decode(&ids, true)?)
        })
        .collect()
}

/// The attributed steps of one target and the positions Inseq reports for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Positions {
    /// Attributed target positions, ascending.
    pub steps: Vec<usize>,
    /// `attr_pos_start` as Inseq reports it: `attr_pos_end − steps` (one before the first step
    /// when an encoder-decoder end position is given: Inseq's loop includes that position).
    pub start: usize,
    /// `attr_pos_end` as Inseq reports it.
    pub end: usize,
}

/// Inseq's attributed positions of a target of `len` tokens (`check_attribute_positions`):
/// negative values count from the end; on decoder-only models (`prompt_len` given) a start
/// before the end of the prompt, negative ones included, becomes the prompt length; on
/// encoder-decoder models an explicit end position is attributed too.
pub fn positions(
    len: usize,
    prompt_len: Option<usize>,
    opts: &AttributeOptions,
) -> Result<Positions, AttributionError> {
    let n = len as i64;
    let bad = |m: String| Err(AttributionError::BadInput(m));
    let mut start = opts.attr_pos_start;
    if let Some(p) = prompt_len {
        if start.is_none_or(|s| s < p as i64) {
            start = Some(p as i64);
        }
    }
    let mut start = start.unwrap_or(1);
    let mut end = opts.attr_pos_end.filter(|&e| e <= n).unwrap_or(n);
    if start < -n || end < -n {
        return bad(format!(
            "attribution positions {start}..{end} are out of range for a target of {len} tokens"
        ));
    }
    if start < 0 {
        start += n;
    }
    if end < 0 {
        end += n;
    }
    let start = start.max(1) as usize;
    let end = end as usize;
    if start >= end {
        return bad(format!(
            "nothing to attribute: start position {start} is not before end position {end} (target of {len} tokens)"
        ));
    }
    let stop = match prompt_len {
        None => (end + 1).min(len),
        Some(_) => end,
    };
    let steps: Vec<usize> = (start..stop).collect();
    Ok(Positions {
        start: end.saturating_sub(steps.len()),
        end,
        steps,
    })
}

/// Special ids of the model's tokenizers (source and target).
fn special_ids(loaded: &LoadedModel) -> Vec<u32> {
    let mut ids = loaded.tokenizer.special_ids();
    if let Some(t) = &loaded.target_tokenizer {
        ids.extend(t.special_ids());
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Runs `method` over `sequences` in batches, recording `step_scores` for every step. The plan
/// is checked first ([`plan::check`]): a target that cannot be differentiated, a contrastive
/// function without contrast inputs... are refused with one clear line.
pub fn attribute(
    loaded: &LoadedModel,
    model_name: &str,
    sequences: Vec<EncodedSequence>,
    method: &Instance<LoadedMethod>,
    target_fn: &Instance<LoadedStepFunction>,
    step_scores: &[(String, Instance<LoadedStepFunction>)],
    opts: &AttributeOptions,
) -> Result<AttributionRun, AttributionError> {
    let start = Instant::now();
    let decoder_only = loaded.spec.kind == ModelKind::DecoderOnly;
    plan::check(method, target_fn, step_scores, opts, decoder_only)?;
    let batch = opts.batch_size.unwrap_or(sequences.len()).max(1);
    let mut out = Vec::with_capacity(sequences.len());
    let budget = opts.max_memory.unwrap_or_else(memory::default_budget);
    for chunk in sequences.chunks(batch) {
        let max_len = chunk
            .iter()
            .map(|s| s.source_ids.len() + s.target_ids.len())
            .max()
            .unwrap_or(1);
        let uses_gradients = method
            .capabilities
            .flags
            .contains(rinseq_sdk::Flags::USES_GRADIENTS);
        if uses_gradients {
            memory::row_fits(&loaded.spec, budget, max_len).map_err(AttributionError::BadInput)?;
        }
        let tokens_per_forward = opts.tokens_per_forward.unwrap_or_else(|| {
            let default = serve::DEFAULT_TOKENS_PER_FORWARD;
            memory::tokens_per_forward(&loaded.spec, budget, max_len, default)
        });
        let host = ModelHost {
            model: loaded.model.as_ref(),
            name: model_name.to_string(),
            sequences: chunk,
            target_fn: &target_fn.plugin,
            dropout_samples: plan::dropout_samples(target_fn),
            special_ids: special_ids(loaded),
            method_flags: method.capabilities.flags,
            attribute_target: opts.attribute_target || decoder_only,
            tokens_per_forward: tokens_per_forward.max(1),
            memory_budget: budget,
            force_contrast_inputs: opts.contrast_force_inputs,
            share_forward: !opts.per_row_forward,
            prefix_reuse: match opts.per_row_forward {
                true => serve::PrefixReuse::Never,
                false => serve::PrefixReuse::Auto,
            },
        };
        let request = AttributionRequest {
            sequences: chunk.iter().map(EncodedSequence::to_sdk).collect(),
            attribute_target: host.attribute_target,
        };
        let mut result = method.attribute(&host, &request)?;
        let expected = result::check::Expected {
            method: &method.name,
            kind: method.capabilities.output,
            encoder_decoder: !decoder_only,
            attribute_target: host.attribute_target,
        };
        result::check::check_output(&expected, chunk, &mut result)?;
        for (seq, scores) in chunk.iter().zip(result.sequences) {
            let recorded = result::step_scores::record(loaded.model.as_ref(), seq, step_scores)?;
            out.push(AttributedSequence {
                sequence: seq.clone(),
                scores,
                step_scores: recorded,
            });
        }
    }
    Ok(AttributionRun {
        sequences: out,
        exec_time: start.elapsed().as_secs_f64(),
    })
}
