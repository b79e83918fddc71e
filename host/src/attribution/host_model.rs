//! The host side of the SDK boundary for a real model: serves a method's requests (gradients,
//! scores, internals, embeddings) for one batch of encoded sequences.

use candle_core::{DType, Tensor};
use rinseq_sdk::abi::LoadedStepFunction;
use rinseq_sdk::{
    ErrorCode, Flags, GradientRequest, GradientResponse, GradientRule, HostApi,
    InternalsRequest, InternalsResponse, ModelInfo, PluginError, PointSide, ScoreRequest, Side,
    SidePair, Tensor as SdkTensor, TokenId, Wrt,
};

use super::evaluate::Ask;
use super::layer::{activation_at, LayerTap};
use super::sequence::EncodedSequence;
use crate::models::{Model, ModelKind, Side as ModelSide};

/// Tokens (rows × sequence length) per batched forward: bounds the activations kept for the
/// backward pass (about 2.4 MB per token for SmolLM2-135M in f32) while keeping matrix products
/// large enough to be efficient (`cargo bench -p rinseq --bench attribution`).
pub const DEFAULT_TOKENS_PER_FORWARD: usize = 64;

/// Serves one batch of sequences to a method.
pub struct ModelHost<'a> {
    /// The model.
    pub model: &'a dyn Model,
    /// The model's name as the user gave it.
    pub name: String,
    /// The sequences of this batch.
    pub sequences: &'a [EncodedSequence],
    /// The attributed function.
    pub target_fn: &'a LoadedStepFunction,
    /// Monte Carlo dropout forwards the attributed function needs (0: none).
    pub dropout_samples: usize,
    /// The tokenizers' special ids (reported in [`ModelInfo`]).
    pub special_ids: Vec<u32>,
    /// The method's capability flags: a callback it did not declare is refused.
    pub method_flags: Flags,
    /// Whether target-side attributions are wanted (always for decoder-only models).
    pub attribute_target: bool,
    /// Tokens (rows × length) per batched forward.
    pub tokens_per_forward: usize,
    /// Run the contrast input for a contrastive attributed function (else reuse the original
    /// forward and change only the target id).
    pub force_contrast_inputs: bool,
    /// Serve decoder-only gradient requests from one shared forward per input point where the
    /// model can (`shared.rs`); `false` runs one differentiable forward per (point, step).
    pub share_forward: bool,
}

pub(crate) fn host_err(e: impl std::fmt::Display) -> PluginError {
    PluginError::new(ErrorCode::Host, crate::cli::without_backtrace(&e.to_string()))
}

pub(super) fn to_sdk(t: &Tensor) -> Result<SdkTensor, PluginError> {
    let shape = t.dims().to_vec();
    let data: Vec<f32> = t
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .map_err(host_err)?;
    SdkTensor::new(shape, data)
}

impl<'a> ModelHost<'a> {
    pub(super) fn decoder_only(&self) -> bool {
        self.model.spec().kind == ModelKind::DecoderOnly
    }

    pub(super) fn seq(&self, i: usize) -> Result<&EncodedSequence, PluginError> {
        self.sequences.get(i).ok_or_else(|| {
            PluginError::new(
                ErrorCode::Host,
                format!(
                    "sequence {i} is out of range (batch of {})",
                    self.sequences.len()
                ),
            )
        })
    }

    /// Embeddings `(len, hidden)` of `ids` on `side`.
    pub(super) fn embed_ids(&self, side: ModelSide, ids: &[u32]) -> Result<Tensor, PluginError> {
        let device = candle_core::Device::Cpu;
        let t = Tensor::new(ids, &device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(host_err)?;
        self.model
            .embed(side, &t)
            .and_then(|e| e.squeeze(0))
            .map_err(host_err)
    }

    pub(super) fn point_side(
        &self,
        side: ModelSide,
        actual_ids: &[u32],
        p: &PointSide,
    ) -> Result<Tensor, PluginError> {
        match p {
            PointSide::Actual => self.embed_ids(side, actual_ids),
            PointSide::Ids(ids) => self.embed_ids(side, ids),
            PointSide::Values(t) => self.to_candle(t),
        }
    }

    /// An SDK tensor as a candle tensor in the model's dtype.
    pub(super) fn to_candle(&self, t: &SdkTensor) -> Result<Tensor, PluginError> {
        // The model's dtype is its embeddings' dtype.
        let dtype = self.embed_ids(ModelSide::Decoder, &[0])?.dtype();
        Tensor::from_slice(&t.data, t.shape.to_vec(), &candle_core::Device::Cpu)
            .and_then(|x| x.to_dtype(dtype))
            .map_err(host_err)
    }

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
        if self.dropout_samples == 0 {
            // One no-gradient forward per point for all its steps (`perturbed.rs`).
            return self.score_points(r.sequence, &r.points, &r.steps);
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
