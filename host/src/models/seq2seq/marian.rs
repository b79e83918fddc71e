//! MarianMTModel (Helsinki-NLP opus-mt): a post-norm BART-family model with sinusoidal positions,
//! usually `scale_embedding` and `swish` activations. The forward lives in [`super`] (`seq2seq/`).

use serde::Deserialize;

use super::{build_from, ids_of, FamilyConfig, Seq2SeqConfig};
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
    /// The fields BART and Marian share.
    #[serde(flatten)]
    pub family: FamilyConfig,
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
fn d_pad() -> Option<u32> {
    Some(58100)
}
fn d_true() -> bool {
    true
}

impl MarianConfig {
    /// The architecture choices for the shared BART-family forward: sinusoidal positions, no
    /// `layernorm_embedding`.
    pub fn seq2seq(&self) -> Seq2SeqConfig {
        Seq2SeqConfig {
            sinusoidal_positions: true,
            layernorm_embedding: false,
            ..self.family.seq2seq()
        }
    }

    /// Static facts for the engine.
    pub fn spec(&self) -> ModelSpec {
        let vocab = self.decoder_vocab_size.unwrap_or(self.vocab_size);
        ModelSpec {
            bos_token_id: self.bos_token_id,
            eos_token_ids: ids_of(&self.eos_token_id, &[0]),
            pad_token_id: self.pad_token_id,
            decoder_start_token_id: self.decoder_start_token_id.or(self.pad_token_id),
            ..self.family.spec("marian", vocab)
        }
    }
}

fn build(args: &BuildArgs<'_>) -> std::result::Result<Box<dyn Model>, ModelError> {
    build_from(args, |c: &MarianConfig| (c.seq2seq(), c.spec()))
}

inventory::submit! { Architecture { model_type: "marian", kind: ModelKind::EncoderDecoder, build } }
