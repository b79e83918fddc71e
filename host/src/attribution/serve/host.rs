//! The host side of the SDK boundary for a real model: serves a method's requests (gradients,
//! scores, internals, embeddings) for one batch of encoded sequences.

use candle_core::{DType, Tensor};
use rinseq_sdk::abi::LoadedStepFunction;
use rinseq_sdk::{ErrorCode, Flags, PluginError, PointSide, Tensor as SdkTensor};

use super::prefix_cache::PrefixReuse;
use crate::attribution::sequence::EncodedSequence;
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
    /// The memory budget in bytes (`--max-memory`): caps what a shared forward keeps and
    /// whether autograd chunks run side by side (`attribution/memory.rs`).
    pub memory_budget: u64,
    /// Run the contrast input for a contrastive attributed function (else reuse the original
    /// forward and change only the target id).
    pub force_contrast_inputs: bool,
    /// Serve decoder-only gradient requests from one shared forward per input point where the
    /// model can (`shared.rs`); `false` runs one differentiable forward per (point, step).
    pub share_forward: bool,
    /// When decoder-only score requests reuse the unperturbed prefix's KV cache
    /// (`prefix_cache.rs`).
    pub prefix_reuse: PrefixReuse,
}

pub(crate) fn host_err(e: impl std::fmt::Display) -> PluginError {
    PluginError::new(
        ErrorCode::Host,
        crate::cli::without_backtrace(&e.to_string()),
    )
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
        let device = self.model.device();
        let t = Tensor::new(ids, device)
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
        Tensor::from_slice(&t.data, t.shape.to_vec(), self.model.device())
            .and_then(|x| x.to_dtype(self.model.dtype()))
            .map_err(host_err)
    }
}
