//! MarianMTModel (Helsinki-NLP opus-mt): a post-norm BART-family model with sinusoidal positions,
//! usually `scale_embedding` and `swish` activations. The forward lives in [`super::seq2seq`].

use serde::Deserialize;

use super::{build_from, Dropouts, Seq2SeqConfig};
use crate::models::registry::{Architecture, BuildArgs};
use crate::models::{Model, ModelError, ModelKind, ModelSpec};

/// The fields of HF `MarianConfig` that the forward uses (defaults as in transformers).
#[derive(Debug, Clone, Deserialize)]
pub struct MarianConfig {
    /// Source (and shared) vocabulary size.
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// Target vocabulary size when embeddings are not shared (defaults to `vocab_size`).
    #[serde(default)]
    pub decoder_vocab_size: Option<usize>,
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
    /// Padding id (also the decoder start for Marian).
    #[serde(default = "d_pad")]
    pub pad_token_id: Option<u32>,
    /// End-of-sequence id(s).
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    /// Beginning-of-sequence id (unused by Marian itself).
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// First decoder token.
    #[serde(default = "d_pad")]
    pub decoder_start_token_id: Option<u32>,
    /// One embedding table for encoder, decoder and output projection.
    #[serde(default = "d_true")]
    pub share_encoder_decoder_embeddings: bool,
}

fn d_vocab() -> usize {
    58101
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
fn d_pad() -> Option<u32> {
    Some(58100)
}
fn d_true() -> bool {
    true
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

impl MarianConfig {
    /// The architecture choices for the shared BART-family forward.
    pub fn seq2seq(&self) -> Seq2SeqConfig {
        Seq2SeqConfig {
            d_model: self.d_model,
            encoder_heads: self.encoder_attention_heads,
            decoder_heads: self.decoder_attention_heads,
            activation: self.activation_function.clone(),
            scale_embedding: self.scale_embedding,
            sinusoidal_positions: true,
            max_positions: self.max_position_embeddings,
            layernorm_embedding: false,
            pre_norm: false,
            final_layer_norm: false,
            layer_norm_eps: 1e-5,
            dropout: self.dropout,
        }
    }

    /// Static facts for the engine.
    pub fn spec(&self) -> ModelSpec {
        ModelSpec {
            model_type: "marian".into(),
            kind: ModelKind::EncoderDecoder,
            vocab_size: self.decoder_vocab_size.unwrap_or(self.vocab_size),
            hidden_size: self.d_model,
            num_layers: self.decoder_layers,
            encoder_layers: self.encoder_layers,
            num_heads: self.decoder_attention_heads,
            max_positions: self.max_position_embeddings,
            bos_token_id: self.bos_token_id,
            eos_token_ids: ids_of(&self.eos_token_id, &[0]),
            pad_token_id: self.pad_token_id,
            decoder_start_token_id: self.decoder_start_token_id.or(self.pad_token_id),
        }
    }
}

fn build(args: &BuildArgs<'_>) -> std::result::Result<Box<dyn Model>, ModelError> {
    build_from(args, |c: &MarianConfig| (c.seq2seq(), c.spec()))
}

inventory::submit! { Architecture { model_type: "marian", kind: ModelKind::EncoderDecoder, build } }
