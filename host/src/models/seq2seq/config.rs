//! The BART family's configs: the `config.json` fields BART, mBART and Marian share
//! ([`FamilyConfig`], read flattened into each HF config struct) and the architecture choices
//! that tell them apart ([`Seq2SeqConfig`]).

use serde::Deserialize;

use crate::models::{ModelKind, ModelSpec};

/// The architecture choices that tell BART, mBART and Marian apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Seq2SeqConfig {
    /// Width of the model (`d_model`).
    pub d_model: usize,
    /// Encoder heads (`encoder_attention_heads`).
    pub encoder_heads: usize,
    /// Decoder heads (`decoder_attention_heads`).
    pub decoder_heads: usize,
    /// HF activation name (`activation_function`).
    pub activation: String,
    /// Multiply token embeddings by `sqrt(d_model)` (`scale_embedding`).
    pub scale_embedding: bool,
    /// Sinusoidal positions (Marian) instead of learned ones with an offset of 2 (BART, mBART).
    pub sinusoidal_positions: bool,
    /// Longest sequence (`max_position_embeddings`).
    pub max_positions: usize,
    /// A LayerNorm right after the embeddings (`layernorm_embedding`; BART, mBART).
    pub layernorm_embedding: bool,
    /// Pre-norm blocks (mBART) instead of post-norm (BART, Marian).
    pub pre_norm: bool,
    /// A final LayerNorm after each stack (`model.encoder.layer_norm`; mBART).
    pub final_layer_norm: bool,
    /// LayerNorm epsilon (1e-5 in all three).
    pub layer_norm_eps: f64,
    /// Dropout probabilities (MC dropout only).
    pub dropout: Dropouts,
}

/// HF dropout probabilities of a BART-family model, applied only under MC dropout. BART's and
/// Marian's configs read them with `#[serde(flatten)]` from the same keys, with transformers'
/// defaults (`Default` is no dropout at all).
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
pub struct Dropouts {
    /// `dropout`: after the embeddings and on every sub-block output (default 0.1).
    #[serde(rename = "dropout", default = "d_dropout")]
    pub hidden: f64,
    /// `attention_dropout`: on the attention probabilities (default 0).
    #[serde(rename = "attention_dropout", default)]
    pub attention: f64,
    /// `activation_dropout`: after the feed-forward activation (default 0).
    #[serde(rename = "activation_dropout", default)]
    pub activation: f64,
}

fn d_dropout() -> f64 {
    0.1
}

impl Seq2SeqConfig {
    /// `sqrt(d_model)` when `scale_embedding`, else 1.
    pub fn embed_scale(&self) -> f64 {
        if self.scale_embedding {
            (self.d_model as f64).sqrt()
        } else {
            1.0
        }
    }
}

/// The `config.json` fields of HF `BartConfig`, `MBartConfig` and `MarianConfig` that share
/// names and transformers defaults (read with `#[serde(flatten)]`).
#[derive(Debug, Clone, Deserialize)]
pub struct FamilyConfig {
    /// Longest sequence.
    #[serde(default = "d_1024")]
    pub max_position_embeddings: usize,
    /// Encoder layers.
    #[serde(default = "d_12")]
    pub encoder_layers: usize,
    /// Encoder feed-forward width.
    #[serde(default = "d_4096")]
    pub encoder_ffn_dim: usize,
    /// Encoder heads.
    #[serde(default = "d_16")]
    pub encoder_attention_heads: usize,
    /// Decoder layers.
    #[serde(default = "d_12")]
    pub decoder_layers: usize,
    /// Decoder feed-forward width.
    #[serde(default = "d_4096")]
    pub decoder_ffn_dim: usize,
    /// Decoder heads.
    #[serde(default = "d_16")]
    pub decoder_attention_heads: usize,
    /// Activation (`swish` for opus-mt).
    #[serde(default = "d_gelu")]
    pub activation_function: String,
    /// Model width.
    #[serde(default = "d_1024")]
    pub d_model: usize,
    /// Multiply embeddings by `sqrt(d_model)`.
    #[serde(default)]
    pub scale_embedding: bool,
    /// `dropout`, `attention_dropout`, `activation_dropout` (MC dropout only).
    #[serde(flatten)]
    pub dropout: Dropouts,
}

fn d_1024() -> usize {
    1024
}
fn d_12() -> usize {
    12
}
fn d_16() -> usize {
    16
}
fn d_4096() -> usize {
    4096
}
fn d_gelu() -> String {
    "gelu".into()
}

impl FamilyConfig {
    /// BART's choices (learned positions, `layernorm_embedding`, post-norm); the others differ
    /// by struct update.
    pub fn seq2seq(&self) -> Seq2SeqConfig {
        Seq2SeqConfig {
            d_model: self.d_model,
            encoder_heads: self.encoder_attention_heads,
            decoder_heads: self.decoder_attention_heads,
            activation: self.activation_function.clone(),
            scale_embedding: self.scale_embedding,
            sinusoidal_positions: false,
            max_positions: self.max_position_embeddings,
            layernorm_embedding: true,
            pre_norm: false,
            final_layer_norm: false,
            layer_norm_eps: 1e-5,
            dropout: self.dropout,
        }
    }

    /// The engine's facts about the stacks; the special ids are the caller's.
    pub fn spec(&self, model_type: &str, vocab_size: usize) -> ModelSpec {
        ModelSpec {
            model_type: model_type.to_string(),
            kind: ModelKind::EncoderDecoder,
            vocab_size,
            hidden_size: self.d_model,
            num_layers: self.decoder_layers,
            encoder_layers: self.encoder_layers,
            num_heads: self.decoder_attention_heads,
            max_positions: self.max_position_embeddings,
            bos_token_id: None,
            eos_token_ids: Vec::new(),
            pad_token_id: None,
            decoder_start_token_id: None,
        }
    }
}

/// Reads `eos_token_id` given as one id or a list.
pub(crate) fn ids_of(v: &Option<serde_json::Value>, default: &[u32]) -> Vec<u32> {
    match v {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().map(|i| vec![i as u32]).unwrap_or_default()
        }
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64().map(|i| i as u32))
            .collect(),
        _ => default.to_vec(),
    }
}
