//! [`GenerationParams`]: a [`GenerationConfig`] resolved against HF's defaults and the model.

use super::config::{EarlyStopping, GenerationConfig};
use super::GenerationError;
use crate::models::ModelSpec;

/// Number of new tokens HF generates when neither `max_new_tokens` nor `max_length` is set.
pub const DEFAULT_NEW_TOKENS: usize = 20;

/// Fully resolved generation settings (HF defaults filled in, ids taken from the model).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationParams {
    /// New tokens at most (wins over `max_length`).
    pub max_new_tokens: Option<usize>,
    /// Total length at most (prompt included), when `max_new_tokens` is unset.
    pub max_length: Option<usize>,
    /// EOS suppressed until this many new tokens (wins over `min_length`).
    pub min_new_tokens: Option<usize>,
    /// EOS suppressed while the total length is below this.
    pub min_length: usize,
    /// Sample instead of argmax.
    pub do_sample: bool,
    /// Beam width.
    pub num_beams: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Top-k filter when sampling (0 = off).
    pub top_k: usize,
    /// Top-p filter when sampling (1.0 = off).
    pub top_p: f32,
    /// HF repetition penalty (1.0 = off).
    pub repetition_penalty: f32,
    /// Beam length penalty exponent.
    pub length_penalty: f32,
    /// Beam stopping rule.
    pub early_stopping: EarlyStopping,
    /// No-repeat n-gram size (0 = off).
    pub no_repeat_ngram_size: usize,
    /// Forbidden token sequences (EOS-only sequences removed, as HF does).
    pub bad_words_ids: Vec<Vec<u32>>,
    /// Sampler seed.
    pub seed: u64,
    /// Generation stops on any of these.
    pub eos_token_ids: Vec<u32>,
    /// Fills finished rows and left padding.
    pub pad_token_id: u32,
    /// First decoder token (encoder-decoder models).
    pub decoder_start_token_id: Option<u32>,
    /// Forced first generated token.
    pub forced_bos_token_id: Option<u32>,
    /// Forced at `max_length - 1`.
    pub forced_eos_token_ids: Vec<u32>,
    /// Log-softmax after all processors and warpers.
    pub renormalize_logits: bool,
}

impl GenerationParams {
    /// Resolves `cfg` (already merged over the model's defaults) with HF's global defaults and the
    /// ids of `spec`; checks the values as HF does.
    pub fn resolve(cfg: &GenerationConfig, spec: &ModelSpec) -> Result<Self, GenerationError> {
        let bad = |key: &str, why: &str| GenerationError::BadValue {
            key: key.to_string(),
            reason: why.to_string(),
        };
        let eos_token_ids = match &cfg.eos_token_id {
            Some(ids) => ids.to_vec(),
            None => spec.eos_token_ids.clone(),
        };
        let pad_token_id = cfg
            .pad_token_id
            .or(spec.pad_token_id)
            .or_else(|| eos_token_ids.first().copied())
            .unwrap_or(0);
        let p = GenerationParams {
            max_new_tokens: cfg.max_new_tokens,
            max_length: cfg.max_length,
            min_new_tokens: cfg.min_new_tokens,
            min_length: cfg.min_length.unwrap_or(0),
            do_sample: cfg.do_sample.unwrap_or(false),
            num_beams: cfg.num_beams.unwrap_or(1),
            temperature: cfg.temperature.unwrap_or(1.0),
            top_k: cfg.top_k.unwrap_or(50),
            top_p: cfg.top_p.unwrap_or(1.0),
            repetition_penalty: cfg.repetition_penalty.unwrap_or(1.0),
            length_penalty: cfg.length_penalty.unwrap_or(1.0),
            early_stopping: cfg.early_stopping.unwrap_or(EarlyStopping::Bool(false)),
            no_repeat_ngram_size: cfg.no_repeat_ngram_size.unwrap_or(0),
            bad_words_ids: cfg
                .bad_words_ids
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|seq| !(seq.len() == 1 && eos_token_ids.contains(&seq[0])))
                .collect(),
            seed: cfg.seed.unwrap_or(0),
            pad_token_id,
            decoder_start_token_id: cfg
                .decoder_start_token_id
                .or(spec.decoder_start_token_id)
                .or(cfg.bos_token_id)
                .or(spec.bos_token_id),
            forced_bos_token_id: cfg.forced_bos_token_id,
            forced_eos_token_ids: cfg
                .forced_eos_token_id
                .as_ref()
                .map(|t| t.to_vec())
                .unwrap_or_default(),
            renormalize_logits: cfg.renormalize_logits.unwrap_or(false),
            eos_token_ids,
        };
        if p.num_beams == 0 {
            return Err(bad("num_beams", "must be at least 1"));
        }
        if p.do_sample && (p.temperature.is_nan() || p.temperature <= 0.0) {
            return Err(bad(
                "temperature",
                "must be > 0 when do_sample is true (use do_sample=false for greedy)",
            ));
        }
        if !(0.0..=1.0).contains(&p.top_p) {
            return Err(bad("top_p", "must be between 0 and 1"));
        }
        if p.repetition_penalty.is_nan() || p.repetition_penalty <= 0.0 {
            return Err(bad("repetition_penalty", "must be > 0"));
        }
        if cfg.num_return_sequences.is_some_and(|n| n != 1) {
            return Err(bad("num_return_sequences", "only 1 is supported"));
        }
        if p.bad_words_ids.iter().any(|s| s.is_empty()) {
            return Err(bad("bad_words_ids", "sequences must not be empty"));
        }
        Ok(p)
    }

    /// The total length (prompt included) at which generation stops, for a (padded) prompt of
    /// `prompt_len` tokens, as HF computes it: `max_new_tokens` wins, then an explicit
    /// `max_length`, else prompt + 20 capped at the model's `max_positions`.
    pub fn max_total_length(&self, prompt_len: usize, max_positions: usize) -> usize {
        match (self.max_new_tokens, self.max_length) {
            (Some(n), _) => prompt_len + n,
            (None, Some(m)) => m,
            (None, None) => {
                let n = prompt_len + DEFAULT_NEW_TOKENS;
                if max_positions > 0 {
                    n.min(max_positions)
                } else {
                    n
                }
            }
        }
    }

    /// The total length below which EOS is suppressed (`min_new_tokens` wins over `min_length`).
    pub fn min_total_length(&self, prompt_len: usize) -> usize {
        match self.min_new_tokens {
            Some(n) => prompt_len + n,
            None => self.min_length,
        }
    }
}
