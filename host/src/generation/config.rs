//! [`GenerationConfig`]: the Hugging Face `generate` kwargs we support, merged over the model's
//! `generation_config.json` and HF's global defaults.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::GenerationError;

/// Every kwarg a user may pass (the fields of [`GenerationConfig`]), for error messages.
pub const SUPPORTED_KWARGS: &[&str] = &[
    "max_new_tokens",
    "max_length",
    "min_new_tokens",
    "min_length",
    "do_sample",
    "num_beams",
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "length_penalty",
    "early_stopping",
    "no_repeat_ngram_size",
    "bad_words_ids",
    "seed",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "decoder_start_token_id",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "renormalize_logits",
    "num_return_sequences",
    "use_cache",
];

/// One token id or several (HF accepts both for `eos_token_id` and `forced_eos_token_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// HF's `early_stopping`: `true`, `false` or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EarlyStopping {
    /// `true`: stop a beam search as soon as `num_beams` hypotheses are finished;
    /// `false`: stop when the heuristic says no better hypothesis is likely.
    Bool(bool),
    /// `"never"`: the canonical beam search stopping rule.
    Never(NeverLiteral),
}

/// The literal string `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NeverLiteral {
    /// `"never"`.
    #[serde(rename = "never")]
    Never,
}

/// Generation settings; `None` means "not set here" (a lower layer or HF's default applies).
///
/// The keys and their meaning follow HF `GenerationConfig`; `seed` is ours (seeds the sampler).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationConfig {
    /// Number of new tokens to generate at most (takes precedence over `max_length`).
    pub max_new_tokens: Option<usize>,
    /// Total length (prompt included) at most; default: prompt + 20.
    pub max_length: Option<usize>,
    /// EOS is suppressed until this many new tokens were generated.
    pub min_new_tokens: Option<usize>,
    /// EOS is suppressed while the total length is below this.
    pub min_length: Option<usize>,
    /// Sample instead of taking the argmax (default false).
    pub do_sample: Option<bool>,
    /// Beam width; 1 = greedy / plain sampling.
    pub num_beams: Option<usize>,
    /// Softmax temperature for sampling (default 1.0).
    pub temperature: Option<f32>,
    /// Keep only the `top_k` most likely tokens when sampling (default 50; 0 disables).
    pub top_k: Option<usize>,
    /// Nucleus sampling mass (default 1.0 = off).
    pub top_p: Option<f32>,
    /// HF repetition penalty (default 1.0 = off).
    pub repetition_penalty: Option<f32>,
    /// Beam score = sum log p / new_len^length_penalty (default 1.0).
    pub length_penalty: Option<f32>,
    /// Beam search stopping rule (default false).
    pub early_stopping: Option<EarlyStopping>,
    /// Forbid repeating any n-gram of this size (default 0 = off).
    pub no_repeat_ngram_size: Option<usize>,
    /// Token sequences that may never be generated.
    pub bad_words_ids: Option<Vec<Vec<u32>>>,
    /// Seed of the sampler (default 0); sampling is reproducible for a given seed.
    pub seed: Option<u64>,
    /// Beginning-of-sequence id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence id(s).
    pub eos_token_id: Option<TokenIds>,
    /// Padding id (default: the first EOS id).
    pub pad_token_id: Option<u32>,
    /// First decoder token of encoder-decoder models.
    pub decoder_start_token_id: Option<u32>,
    /// Token forced as the first generated token.
    pub forced_bos_token_id: Option<u32>,
    /// Token(s) forced when `max_length` is reached.
    pub forced_eos_token_id: Option<TokenIds>,
    /// Log-softmax the scores again after all processors (default false).
    pub renormalize_logits: Option<bool>,
    /// Only 1 is supported (attribution needs one target per input).
    pub num_return_sequences: Option<usize>,
    /// Accepted and ignored (the KV cache is always used).
    pub use_cache: Option<bool>,
}

impl GenerationConfig {
    /// Parses user kwargs (a JSON object); unknown keys give an error listing the supported ones.
    pub fn from_kwargs_json(json: &str) -> Result<Self, GenerationError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| GenerationError::BadKwargs(e.to_string()))?;
        Self::from_kwargs_value(value)
    }

    /// Like [`GenerationConfig::from_kwargs_json`], from a parsed JSON value.
    pub fn from_kwargs_value(value: serde_json::Value) -> Result<Self, GenerationError> {
        let serde_json::Value::Object(map) = value else {
            return Err(GenerationError::BadKwargs(
                "expected a JSON object such as {\"max_new_tokens\": 10}".into(),
            ));
        };
        if let Some(key) = map.keys().find(|k| !SUPPORTED_KWARGS.contains(&k.as_str())) {
            return Err(GenerationError::UnknownKwarg {
                key: key.clone(),
                supported: SUPPORTED_KWARGS.join(", "),
            });
        }
        serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| GenerationError::BadKwargs(e.to_string()))
    }

    /// Reads a model's defaults from an HF-format folder: `generation_config.json`, or else the
    /// generation keys of `config.json` (as HF does for older checkpoints). Keys we don't support
    /// (`transformers_version`, ...) are ignored. A folder with neither gives the empty config.
    pub fn from_model_dir(dir: &Path) -> Result<Self, GenerationError> {
        for name in ["generation_config.json", "config.json"] {
            let path = dir.join(name);
            if !path.is_file() {
                continue;
            }
            let read = |e: String| GenerationError::ModelConfig {
                path: path.display().to_string(),
                reason: e,
            };
            let text = std::fs::read_to_string(&path).map_err(|e| read(e.to_string()))?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| read(e.to_string()))?;
            let serde_json::Value::Object(mut map) = value else {
                return Err(read("not a JSON object".into()));
            };
            map.retain(|k, v| SUPPORTED_KWARGS.contains(&k.as_str()) && !v.is_null());
            return serde_json::from_value(serde_json::Value::Object(map))
                .map_err(|e| read(e.to_string()));
        }
        Ok(Self::default())
    }

    /// `self` with every field that `over` sets replaced by `over`'s value.
    pub fn merged_with(&self, over: &GenerationConfig) -> GenerationConfig {
        macro_rules! pick {
            ($($f:ident),*) => { GenerationConfig { $($f: over.$f.clone().or_else(|| self.$f.clone()),)* } };
        }
        pick!(
            max_new_tokens,
            max_length,
            min_new_tokens,
            min_length,
            do_sample,
            num_beams,
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            length_penalty,
            early_stopping,
            no_repeat_ngram_size,
            bad_words_ids,
            seed,
            bos_token_id,
            eos_token_id,
            pad_token_id,
            decoder_start_token_id,
            forced_bos_token_id,
            forced_eos_token_id,
            renormalize_logits,
            num_return_sequences,
            use_cache
        )
    }
}
