//! [`Host`]: the plugin author's handle on the model, and [`HostApi`], the plain-Rust trait a
//! host implements (the rinseq runtime, or the test kit's toy host).

use crate::abi::traits::HostModelRef;
use crate::abi::wire;
use crate::data::{ModelInfo, Side, TokenId};
use crate::error::{ErrorCode, PluginError};
use crate::requests::{
    GradientRequest, GradientResponse, InternalsRequest, InternalsResponse, ScoreRequest, Wrt,
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

impl SidePair {
    /// The tensor of `side`.
    pub fn side(&self, side: Side) -> &Tensor {
        match side {
            Side::Source => &self.source,
            Side::Target => &self.target,
        }
    }
}

/// What a host serves to attribution methods, in plain Rust. The rinseq runtime implements it
/// for real models; [`crate::testing::ToyHost`] for unit tests. The rules every request must
/// follow are in [`crate::requests`].
pub trait HostApi: Sync {
    /// Facts about the model.
    fn info(&self) -> ModelInfo;
    /// Embeds `ids` on `side`: `(len, hidden)`.
    fn embed(&self, side: Side, ids: &[TokenId]) -> Result<Tensor, PluginError>;
    /// The actual inputs (or layer activations for [`Wrt::Layer`]) of sequence `sequence`.
    fn inputs(&self, sequence: usize, wrt: &Wrt) -> Result<SidePair, PluginError>;
    /// The baseline inputs of sequence `sequence`.
    fn baselines(&self, sequence: usize, wrt: &Wrt) -> Result<SidePair, PluginError>;
    /// Gradients of the attributed function at many points and steps.
    fn gradients(&self, request: GradientRequest) -> Result<GradientResponse, PluginError>;
    /// Attributed-function scores `(points, steps)` of many points, without gradients.
    fn scores(&self, request: ScoreRequest) -> Result<Tensor, PluginError>;
    /// One forward with recorded internals and interventions.
    fn internals(&self, request: InternalsRequest) -> Result<InternalsResponse, PluginError>;
    /// Reports progress; returns `false` when the user cancelled.
    fn progress(&self, _done: u64, _total: u64) -> bool {
        true
    }
}

enum Inner<'a> {
    Remote(HostModelRef<'a>),
    Local(&'a dyn HostApi),
}

/// The model, as an attribution method sees it.
pub struct Host<'a> {
    inner: Inner<'a>,
}

fn ok<T, W: Into<T>>(
    r: abi_stable::std_types::RResult<W, wire::PluginError>,
) -> Result<T, PluginError> {
    r.into_result().map(Into::into).map_err(Into::into)
}

impl<'a> Host<'a> {
    /// The host behind the plugin boundary (used by the SDK's adapters).
    pub(crate) fn remote(inner: HostModelRef<'a>) -> Self {
        Self {
            inner: Inner::Remote(inner),
        }
    }

    /// A host in the same process (tests: [`crate::testing::ToyHost`]).
    pub fn local(api: &'a dyn HostApi) -> Self {
        Self {
            inner: Inner::Local(api),
        }
    }

    /// Facts about the model.
    pub fn info(&self) -> ModelInfo {
        match &self.inner {
            Inner::Remote(h) => h.info().into(),
            Inner::Local(h) => h.info(),
        }
    }

    /// Embeds `ids` on `side`: `(len, hidden)`.
    pub fn embed(&self, side: Side, ids: &[TokenId]) -> Result<Tensor, PluginError> {
        match &self.inner {
            Inner::Remote(h) => ok(h.embed(side, ids.into())),
            Inner::Local(h) => h.embed(side, ids),
        }
    }

    /// The actual inputs (or layer activations for [`Wrt::Layer`]) of sequence `sequence`.
    pub fn inputs(&self, sequence: usize, wrt: &Wrt) -> Result<SidePair, PluginError> {
        match &self.inner {
            Inner::Remote(h) => ok(h.inputs(sequence as u64, &wrt.clone().into())),
            Inner::Local(h) => h.inputs(sequence, wrt),
        }
    }

    /// The baseline inputs of sequence `sequence` (needs [`crate::Flags::USES_BASELINES`]).
    pub fn baselines(&self, sequence: usize, wrt: &Wrt) -> Result<SidePair, PluginError> {
        match &self.inner {
            Inner::Remote(h) => ok(h.baselines(sequence as u64, &wrt.clone().into())),
            Inner::Local(h) => h.baselines(sequence, wrt),
        }
    }

    /// Gradients of the attributed function at many points and steps (needs
    /// [`crate::Flags::USES_GRADIENTS`]).
    pub fn gradients(&self, request: GradientRequest) -> Result<GradientResponse, PluginError> {
        match &self.inner {
            Inner::Remote(h) => ok(h.gradients(request.into())),
            Inner::Local(h) => h.gradients(request),
        }
    }

    /// Attributed-function scores `(points, steps)` of many points, without gradients.
    pub fn scores(&self, request: ScoreRequest) -> Result<Tensor, PluginError> {
        match &self.inner {
            Inner::Remote(h) => ok(h.scores(request.into())),
            Inner::Local(h) => h.scores(request),
        }
    }

    /// One forward with recorded internals and interventions (needs
    /// [`crate::Flags::USES_INTERNALS`]).
    pub fn internals(&self, request: InternalsRequest) -> Result<InternalsResponse, PluginError> {
        match &self.inner {
            Inner::Remote(h) => ok(h.internals(request.into())),
            Inner::Local(h) => h.internals(request),
        }
    }

    /// Reports progress; `Err(Cancelled)` when the user cancelled.
    pub fn progress(&self, done: u64, total: u64) -> Result<(), PluginError> {
        let go_on = match &self.inner {
            Inner::Remote(h) => h.progress(done, total),
            Inner::Local(h) => h.progress(done, total),
        };
        if go_on {
            Ok(())
        } else {
            Err(PluginError::new(
                ErrorCode::Cancelled,
                "cancelled by the host",
            ))
        }
    }
}
