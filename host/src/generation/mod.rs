//! Text generation on any [`Model`]: greedy search, sampling, beam search, and forced decoding,
//! with the semantics of HF transformers' `generate`.
//!
//! ```text
//! let cfg = GenerationConfig::from_model_dir(dir)?.merged_with(&GenerationConfig::from_kwargs_json(kwargs)?);
//! let params = GenerationParams::resolve(&cfg, model.spec())?;
//! let out = generate(model, &GenerationInput::decoder_only(prompt_ids), &params)?;
//! ```
//!
//! Files: [`config`] (the kwargs), [`params`] (resolved settings), [`processors`] (logits
//! processors and warpers), [`batch`] (padding, masks), [`search`] (greedy / sampling),
//! [`beam`] (beam search).

pub mod batch;
pub mod beam;
pub mod config;
pub mod params;
pub mod processors;
pub mod search;

pub use config::{EarlyStopping, GenerationConfig, TokenIds, SUPPORTED_KWARGS};
pub use params::GenerationParams;

use crate::models::{DecodeStart, Model, ModelKind};
use batch::Rows;
use processors::Processors;

/// Errors of generation (one line each).
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    /// A kwarg the generator does not know.
    #[error("unknown generation kwarg '{key}'; supported: {supported}")]
    UnknownKwarg {
        /// The offending key.
        key: String,
        /// The supported keys, comma-separated.
        supported: String,
    },
    /// The kwargs are not a JSON object of the right types.
    #[error("invalid generation kwargs: {0}")]
    BadKwargs(String),
    /// A kwarg has a value HF would reject.
    #[error("invalid generation kwarg '{key}': {reason}")]
    BadValue {
        /// The key.
        key: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The model's `generation_config.json` / `config.json` cannot be read.
    #[error("cannot read generation defaults from {path}: {reason}")]
    ModelConfig {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The input does not fit the model (e.g. no encoder input for an encoder-decoder model).
    #[error("invalid generation input: {0}")]
    BadInput(String),
    /// The model failed (shown without candle's backtrace, which `RUST_BACKTRACE` adds).
    #[error("model error during generation: {}", first_line(.0))]
    Model(#[from] candle_core::Error),
}

/// The first line of an error's message.
fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// What to generate from: one entry per sequence of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationInput {
    /// Encoder-decoder models: source token ids (unpadded). `None` for decoder-only models.
    pub encoder_ids: Option<Vec<Vec<u32>>>,
    /// Decoder prompts (unpadded): the prompt ids for decoder-only models; for encoder-decoder
    /// models empty (the decoder starts from `decoder_start_token_id`) or a target prefix.
    pub decoder_ids: Vec<Vec<u32>>,
}

impl GenerationInput {
    /// Prompts of a decoder-only model.
    pub fn decoder_only(prompts: Vec<Vec<u32>>) -> Self {
        GenerationInput {
            encoder_ids: None,
            decoder_ids: prompts,
        }
    }

    /// Sources of an encoder-decoder model (the decoder starts from `decoder_start_token_id`).
    pub fn encoder_decoder(sources: Vec<Vec<u32>>) -> Self {
        GenerationInput {
            decoder_ids: vec![Vec::new(); sources.len()],
            encoder_ids: Some(sources),
        }
    }
}

/// Generates a continuation for every input; returns the new token ids of each sequence (up to
/// and including the EOS token when one was generated; no padding).
pub fn generate(
    model: &dyn Model,
    input: &GenerationInput,
    params: &GenerationParams,
) -> Result<Vec<Vec<u32>>, GenerationError> {
    let spec = model.spec();
    let (start, prompts) = match (spec.kind, &input.encoder_ids) {
        (ModelKind::DecoderOnly, None) => {
            if input.decoder_ids.iter().any(Vec::is_empty) {
                return Err(GenerationError::BadInput(
                    "empty prompt (a decoder-only model needs at least one token)".into(),
                ));
            }
            let start = DecodeStart {
                encoder_ids: None,
                encoder_mask: None,
            };
            (start, input.decoder_ids.clone())
        }
        (ModelKind::EncoderDecoder, Some(src)) => {
            if src.len() != input.decoder_ids.len() {
                return Err(GenerationError::BadInput(
                    "as many decoder prompts as sources are needed".into(),
                ));
            }
            let dec_start = params.decoder_start_token_id.ok_or_else(|| {
                GenerationError::BadInput("the model has no decoder_start_token_id".into())
            })?;
            let prompts = input
                .decoder_ids
                .iter()
                .map(|d| {
                    let mut p = vec![dec_start];
                    p.extend(d.iter().skip(usize::from(d.first() == Some(&dec_start))));
                    p
                })
                .collect();
            (
                batch::encoder_start(src, params.pad_token_id, model.device())?,
                prompts,
            )
        }
        (ModelKind::DecoderOnly, Some(_)) => {
            return Err(GenerationError::BadInput(
                "encoder input given to a decoder-only model".into(),
            ))
        }
        (ModelKind::EncoderDecoder, None) => {
            return Err(GenerationError::BadInput(
                "an encoder-decoder model needs source ids".into(),
            ))
        }
    };
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let rows = Rows::left_padded(&prompts, params.pad_token_id, model.device());
    let procs = Processors {
        params,
        max_len: params.max_total_length(rows.len(), spec.max_positions),
        min_len: params.min_total_length(rows.len()),
    };
    let mut state = model.start_decoding(&start)?;
    let logits = batch::step(state.as_mut(), &rows, rows.len())?;
    if params.num_beams > 1 {
        beam::beam_search(state.as_mut(), rows, logits, &procs)
    } else {
        search::greedy_or_sample(state.as_mut(), rows, logits, &procs)
    }
}

/// Forced decoding: the "generated" targets are given. Returns them unchanged, after checking
/// that every target is non-empty; the attribution engine treats them like generated tokens.
pub fn forced_decoding(targets: Vec<Vec<u32>>) -> Result<Vec<Vec<u32>>, GenerationError> {
    if targets.iter().any(Vec::is_empty) {
        return Err(GenerationError::BadInput(
            "a forced target text encodes to no tokens".into(),
        ));
    }
    Ok(targets)
}
