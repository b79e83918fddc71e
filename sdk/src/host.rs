//! [`Host`]: the plugin author's handle on the model, with `Result`-returning methods.

use abi_stable::std_types::{RResult, RStr};

use crate::abi::HostModelRef;
use crate::data::{ModelInfo, Side};
use crate::error::{ErrorCode, PluginError};
use crate::requests::{
    EmbedRequest, GradientRequest, GradientResponse, InternalsRequest, InternalsResponse,
    ScoreRequest, Wrt,
};
use crate::tensor::Tensor;

/// A sequence's inputs on both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct SidePair {
    /// Source side `(len, hidden)`; empty (`[0, hidden]`) for decoder-only models.
    pub source: Tensor,
    /// Target side `(len, hidden)`.
    pub target: Tensor,
}

/// The model, as an attribution method sees it.
pub struct Host<'a> {
    inner: HostModelRef<'a>,
}

fn ok<T>(r: RResult<T, PluginError>) -> Result<T, PluginError> {
    r.into_result()
}

fn pair(v: abi_stable::std_types::RVec<Tensor>) -> Result<SidePair, PluginError> {
    let mut it = v.into_iter();
    match (it.next(), it.next()) {
        (Some(source), Some(target)) => Ok(SidePair { source, target }),
        _ => Err(PluginError::new(
            ErrorCode::HOST,
            "host returned fewer than 2 sides",
        )),
    }
}

impl<'a> Host<'a> {
    /// Wraps the raw callback object.
    pub fn new(inner: HostModelRef<'a>) -> Self {
        Self { inner }
    }

    /// Facts about the model.
    pub fn info(&self) -> ModelInfo {
        self.inner.info()
    }

    /// Embeds `ids` on `side`: `(len, hidden)`.
    pub fn embed(&self, side: Side, ids: &[u32]) -> Result<Tensor, PluginError> {
        ok(self.inner.embed(&EmbedRequest {
            side,
            ids: ids.to_vec().into(),
        }))
    }

    /// The actual inputs (or layer activations for [`Wrt::Layer`]) of sequence `sequence`.
    pub fn inputs(&self, sequence: u32, wrt: &Wrt) -> Result<SidePair, PluginError> {
        pair(ok(self.inner.inputs(sequence, wrt))?)
    }

    /// The baseline inputs of sequence `sequence`.
    pub fn baselines(&self, sequence: u32, wrt: &Wrt) -> Result<SidePair, PluginError> {
        pair(ok(self.inner.baselines(sequence, wrt))?)
    }

    /// Gradients of the attributed function at many points and steps.
    pub fn gradients(&self, request: &GradientRequest) -> Result<GradientResponse, PluginError> {
        ok(self.inner.gradients(request))
    }

    /// Attributed-function scores `(points, steps)` of many points, without gradients.
    pub fn scores(&self, request: &ScoreRequest) -> Result<Tensor, PluginError> {
        ok(self.inner.scores(request))
    }

    /// One forward with recorded internals and interventions.
    pub fn internals(&self, request: &InternalsRequest) -> Result<InternalsResponse, PluginError> {
        ok(self.inner.internals(request))
    }

    /// Reports progress; `Err(CANCELLED)` when the user cancelled.
    pub fn progress(&self, done: u64, total: u64) -> Result<(), PluginError> {
        if self.inner.progress(done, total) {
            Ok(())
        } else {
            Err(PluginError::new(
                ErrorCode::CANCELLED,
                "cancelled by the host",
            ))
        }
    }

    /// A named extension request (JSON in, JSON out).
    pub fn extension(&self, name: &str, payload_json: &str) -> Result<String, PluginError> {
        ok(self
            .inner
            .extension(RStr::from_str(name), RStr::from_str(payload_json)))
        .map(|s| s.into_string())
    }
}
