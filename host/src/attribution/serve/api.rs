//! The SDK's host callbacks ([`HostApi`]) for a real model: each one checks the method's
//! declared capabilities and dispatches to the file that serves it (gradients, scores,
//! internals). The top of `serve/`: it depends on every other file there, none depends on it.

use rinseq_sdk::{
    Flags, GradientRequest, GradientResponse, GradientRule, HostApi, InternalsRequest,
    InternalsResponse, ModelInfo, PluginError, ScoreOutput, ScoreRequest, Side, SidePair,
    Tensor as SdkTensor, TokenId, Wrt,
};

use super::gradients::Ask;
use super::host::{to_sdk, ModelHost};
use super::layer::{activation_at, LayerTap};
use crate::models::Side as ModelSide;

impl ModelHost<'_> {
    /// The actual or baseline inputs (or layer activations) of a sequence on both sides.
    fn sides(&self, sequence: usize, baseline: bool, wrt: &Wrt) -> Result<SidePair, PluginError> {
        let seq = self.seq(sequence)?;
        let hidden = self.model.spec().hidden_size;
        if baseline && seq.target_baseline.len() != seq.target_ids.len() {
            return Err(PluginError::unsupported(
                "this model's tokenizer has neither an UNK nor a PAD token, so there is no \
                 baseline token: use a method without baselines",
            ));
        }
        let (src_ids, tgt_ids) = if baseline {
            (&seq.source_baseline, &seq.target_baseline)
        } else {
            (&seq.source_ids, &seq.target_ids)
        };
        if let Wrt::Layer { name, input } = wrt {
            let tap = LayerTap {
                name: name.as_str(),
                input: *input,
            };
            let source = (!self.decoder_only())
                .then(|| self.embed_ids(ModelSide::Encoder, src_ids))
                .transpose()?;
            // A layer baseline is the activation at the baseline *inputs* (Captum): the decoder
            // input of an encoder-decoder model is one only when the target is attributed.
            let tgt_ids = if self.decoder_only() || self.attribute_target {
                tgt_ids
            } else {
                &seq.target_ids
            };
            let target = self.embed_ids(ModelSide::Decoder, tgt_ids)?;
            let act = to_sdk(&activation_at(self.model, tap, source.as_ref(), &target)?)?;
            let empty = SdkTensor::zeros(vec![0, hidden]);
            return Ok(if tap.side() == Side::Source {
                SidePair {
                    source: act,
                    target: empty,
                }
            } else {
                SidePair {
                    source: empty,
                    target: act,
                }
            });
        }
        let source = if self.decoder_only() {
            SdkTensor::zeros(vec![0, hidden])
        } else {
            to_sdk(&self.embed_ids(ModelSide::Encoder, src_ids)?)?
        };
        let target = to_sdk(&self.embed_ids(ModelSide::Decoder, tgt_ids)?)?;
        Ok(SidePair { source, target })
    }

    /// Refuses a callback the method did not declare with `flag`.
    fn require(&self, flag: Flags, call: &str, flag_name: &str) -> Result<(), PluginError> {
        if self.method_flags.contains(flag) {
            return Ok(());
        }
        Err(PluginError::unsupported(format!(
            "the method called host.{call}() without declaring Flags::{flag_name} in its \
             capabilities: add the flag"
        )))
    }
}

impl HostApi for ModelHost<'_> {
    fn info(&self) -> ModelInfo {
        let s = self.model.spec();
        ModelInfo {
            name: self.name.clone(),
            model_type: s.model_type.clone(),
            kind: if self.decoder_only() {
                rinseq_sdk::ModelKind::DecoderOnly
            } else {
                rinseq_sdk::ModelKind::EncoderDecoder
            },
            vocab_size: s.vocab_size,
            hidden_size: s.hidden_size,
            num_layers: s.num_layers,
            encoder_layers: s.encoder_layers,
            num_heads: s.num_heads,
            tap_names: self.model.tap_names(),
            special_token_ids: self.special_ids.clone(),
        }
    }

    fn embed(&self, side: Side, ids: &[TokenId]) -> Result<SdkTensor, PluginError> {
        let side = match side {
            Side::Source => ModelSide::Encoder,
            Side::Target => ModelSide::Decoder,
        };
        to_sdk(&self.embed_ids(side, ids)?)
    }

    fn inputs(&self, sequence: usize, wrt: &Wrt) -> Result<SidePair, PluginError> {
        self.sides(sequence, false, wrt)
    }

    fn baselines(&self, sequence: usize, wrt: &Wrt) -> Result<SidePair, PluginError> {
        self.require(Flags::USES_BASELINES, "baselines", "USES_BASELINES")?;
        self.sides(sequence, true, wrt)
    }

    fn gradients(&self, r: GradientRequest) -> Result<GradientResponse, PluginError> {
        self.require(Flags::USES_GRADIENTS, "gradients", "USES_GRADIENTS")?;
        let ask = Ask {
            wrt: &r.wrt,
            grad: true,
            rule: r.rule,
        };
        self.evaluate(r.sequence, ask, &r.points, &r.steps)
    }

    fn scores(&self, r: ScoreRequest) -> Result<SdkTensor, PluginError> {
        if self.dropout_samples == 0 || r.output == ScoreOutput::TargetRank {
            // One no-gradient forward per point for all its steps (`perturbed.rs`); a rank needs
            // no dropout samples of the attributed function.
            return self.score_points(r.sequence, &r.points, &r.steps, r.output);
        }
        let ask = Ask {
            wrt: &Wrt::InputEmbeddings,
            grad: false,
            rule: GradientRule::Standard,
        };
        Ok(self.evaluate(r.sequence, ask, &r.points, &r.steps)?.scores)
    }

    fn internals(&self, r: InternalsRequest) -> Result<InternalsResponse, PluginError> {
        self.require(Flags::USES_INTERNALS, "internals", "USES_INTERNALS")?;
        self.run_internals(&r)
    }

    /// Forwards to the installed progress reporter; `false` (cancel) after Ctrl-C.
    fn progress(&self, done: u64, total: u64) -> bool {
        crate::progress::report(done, total)
    }
}
