//! BART and mBART: BART-family models with learned positions (offset 2) and `layernorm_embedding`;
//! BART is post-norm, mBART pre-norm with a final LayerNorm per stack. The forward lives in
//! [`super`] (`seq2seq/`).

use serde::Deserialize;

use super::{build_from, ids_of, FamilyConfig, Seq2SeqConfig};
use crate::models::registry::{Architecture, BuildArgs};
use crate::models::{Model, ModelError, ModelKind, ModelSpec};

/// The fields of HF `BartConfig` / `MBartConfig` that the forward uses (transformers defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct BartConfig {
    /// `bart` or `mbart`.
    pub model_type: String,
    /// Vocabulary size.
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// The fields BART and Marian share.
    #[serde(flatten)]
    pub family: FamilyConfig,
    /// Padding id.
    #[serde(default = "d_pad")]
    pub pad_token_id: Option<u32>,
    /// Beginning-of-sequence id.
    #[serde(default = "d_bos")]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence id(s).
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    /// First decoder token (BART: `</s>`; mBART: none, the language code is forced).
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
}

fn d_vocab() -> usize {
    50265
}
fn d_pad() -> Option<u32> {
    Some(1)
}
fn d_bos() -> Option<u32> {
    Some(0)
}

impl BartConfig {
    /// Whether this is mBART (pre-norm, final LayerNorms).
    pub fn is_mbart(&self) -> bool {
        self.model_type == "mbart"
    }

    /// The architecture choices for the shared BART-family forward: mBART is pre-norm with
    /// final LayerNorms.
    pub fn seq2seq(&self) -> Seq2SeqConfig {
        let mbart = self.is_mbart();
        Seq2SeqConfig {
            pre_norm: mbart,
            final_layer_norm: mbart,
            ..self.family.seq2seq()
        }
    }

    /// Static facts for the engine.
    pub fn spec(&self) -> ModelSpec {
        let eos = ids_of(&self.eos_token_id, &[2]);
        ModelSpec {
            bos_token_id: self.bos_token_id,
            decoder_start_token_id: match self.is_mbart() {
                true => self.decoder_start_token_id,
                false => self.decoder_start_token_id.or(eos.first().copied()),
            },
            eos_token_ids: eos,
            pad_token_id: self.pad_token_id,
            ..self.family.spec(&self.model_type, self.vocab_size)
        }
    }
}

fn build(args: &BuildArgs<'_>) -> std::result::Result<Box<dyn Model>, ModelError> {
    build_from(args, |c: &BartConfig| (c.seq2seq(), c.spec()))
}

inventory::submit! { Architecture { model_type: "bart", kind: ModelKind::EncoderDecoder, build } }
inventory::submit! { Architecture { model_type: "mbart", kind: ModelKind::EncoderDecoder, build } }

#[cfg(test)]
mod tests {
    use super::super::marian::MarianConfig;
    use super::super::Dropouts;
    use super::*;
    use serde_json::json;

    /// The flattened dropouts read the HF keys, with transformers' defaults.
    #[test]
    fn dropouts_read_hf_keys_with_defaults() {
        let bart: BartConfig =
            serde_json::from_value(json!({"model_type": "bart", "attention_dropout": 0.2}))
                .unwrap();
        let want = Dropouts {
            hidden: 0.1,
            attention: 0.2,
            activation: 0.0,
        };
        assert_eq!(bart.seq2seq().dropout, want);
        let marian: MarianConfig =
            serde_json::from_value(json!({"dropout": 0, "activation_dropout": 0.3})).unwrap();
        let want = Dropouts {
            hidden: 0.0,
            attention: 0.0,
            activation: 0.3,
        };
        assert_eq!(marian.seq2seq().dropout, want);
    }
}
