//! The SDK test kit's toy model ([`rinseq_sdk::testing::ToyHost`]) attributing a step-function
//! plugin loaded from its library, so that methods run end to end across the real ABI boundary
//! (host → method plugin → host callbacks → step-function plugin).

use rinseq_sdk::abi::LoadedStepFunction;
use rinseq_sdk::{AttributionRequest, HostApi, PluginError};

/// Vocabulary size of the toy model.
pub const V: usize = rinseq_sdk::testing::TOY_VOCAB;
/// Hidden size of the toy model.
pub const D: usize = rinseq_sdk::testing::TOY_HIDDEN;

/// The toy model, one sequence, and the step-function plugin it attributes.
pub struct ToyHost {
    inner: rinseq_sdk::testing::ToyHost,
    /// The request being served.
    pub request: AttributionRequest,
}

impl ToyHost {
    /// A toy host for the target ids `ids` with a prompt of `prompt_len` tokens.
    pub fn new(ids: &[u32], prompt_len: usize, step: LoadedStepFunction) -> Self {
        let inner = rinseq_sdk::testing::ToyHost::new(ids, prompt_len)
            .with_scorer(move |x| step.compute(x));
        let request = inner.request().clone();
        Self { inner, request }
    }

    /// The host as loaded methods are served from it.
    pub fn as_ref(&self) -> &dyn HostApi {
        &self.inner
    }

    /// Embeddings of the target ids `(len, D)`.
    pub fn actual(&self) -> Vec<f32> {
        self.inner.actual()
    }

    /// The logits that predict position `p` from embeddings `x`.
    pub fn logits(&self, x: &[f32], p: usize) -> Vec<f32> {
        self.inner.logits(x, p)
    }

    /// The attributed score and d score / d logits at position `p`.
    pub fn score(
        &self,
        x: &[f32],
        p: usize,
        want_grad: bool,
    ) -> Result<(f32, Vec<f32>), PluginError> {
        self.inner.score(x, p, want_grad)
    }
}
