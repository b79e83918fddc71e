//! The host side of the boundary: a [`HostApi`] served to plugins as an ABI-stable object, and
//! loaded plugins called with plain Rust values.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RSlice, RStr};

use super::guest::ffi_guard;
use super::traits::{
    AggregatorBox, AttributionMethodBox, HostModel, HostModel_TO, PluginDescriptor, PluginFactory,
    StepFunctionBox,
};
use super::wire;
use crate::capabilities::Capabilities;
use crate::data::{AttributionOutput, AttributionRequest, SequenceAttribution, Side, TokenId};
use crate::error::PluginError;
use crate::host::HostApi;
use crate::step::{StepInput, StepOutput};

struct Served<'a>(&'a dyn HostApi);

// A host panic must not unwind into plugin frames: every callback is guarded.
impl HostModel for Served<'_> {
    fn info(&self) -> wire::ModelInfo {
        self.0.info().into()
    }

    fn embed(
        &self,
        side: Side,
        ids: RSlice<'_, TokenId>,
    ) -> RResult<wire::Tensor, wire::PluginError> {
        ffi_guard("the host", || self.0.embed(side, ids.as_slice()))
    }

    fn inputs(&self, sequence: u64, wrt: &wire::Wrt) -> RResult<wire::SidePair, wire::PluginError> {
        ffi_guard("the host", || {
            self.0.inputs(sequence as usize, &wrt.clone().into())
        })
    }

    fn baselines(
        &self,
        sequence: u64,
        wrt: &wire::Wrt,
    ) -> RResult<wire::SidePair, wire::PluginError> {
        ffi_guard("the host", || {
            self.0.baselines(sequence as usize, &wrt.clone().into())
        })
    }

    fn gradients(
        &self,
        request: wire::GradientRequest,
    ) -> RResult<wire::GradientResponse, wire::PluginError> {
        ffi_guard("the host", || self.0.gradients(request.into()))
    }

    fn scores(&self, request: wire::ScoreRequest) -> RResult<wire::Tensor, wire::PluginError> {
        ffi_guard("the host", || self.0.scores(request.into()))
    }

    fn internals(
        &self,
        request: wire::InternalsRequest,
    ) -> RResult<wire::InternalsResponse, wire::PluginError> {
        ffi_guard("the host", || self.0.internals(request.into()))
    }

    fn progress(&self, done: u64, total: u64) -> bool {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.0.progress(done, total)
        }))
        .unwrap_or(false)
    }
}

fn plain<T, W: Into<T>>(r: RResult<W, wire::PluginError>) -> Result<T, PluginError> {
    r.into_result().map(Into::into).map_err(Into::into)
}

/// A plugin's descriptor, as the host reads it from a library.
#[derive(Clone)]
pub struct Descriptor {
    /// Unique name within its kind.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// One line for listings.
    pub description: String,
    /// JSON Schema of the parameters.
    pub params_schema: String,
    /// Capability flags and defaults.
    pub capabilities: Capabilities,
    factory: PluginFactory,
}

/// The kind of a plugin.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum PluginKind {
    /// An attribution method.
    Attribution,
    /// A step function.
    StepFunction,
    /// An aggregator.
    Aggregator,
}

impl From<PluginDescriptor> for Descriptor {
    fn from(d: PluginDescriptor) -> Self {
        Self {
            name: d.name.into(),
            version: d.version.into(),
            description: d.description.into(),
            params_schema: d.params_schema.into(),
            capabilities: d.capabilities.into(),
            factory: d.factory,
        }
    }
}

impl Descriptor {
    /// The plugin's kind.
    pub fn kind(&self) -> PluginKind {
        match self.factory {
            PluginFactory::Attribution(_) => PluginKind::Attribution,
            PluginFactory::StepFunction(_) => PluginKind::StepFunction,
            PluginFactory::Aggregator(_) => PluginKind::Aggregator,
        }
    }

    /// Builds an attribution method from JSON parameters (`Ok(None)`: not a method).
    pub fn attribution(&self, params: &str) -> Result<Option<LoadedMethod>, PluginError> {
        match self.factory {
            PluginFactory::Attribution(f) => plain::<_, _>(f(RStr::from_str(params)))
                .map(|b: AttributionMethodBox| Some(LoadedMethod(b))),
            _ => Ok(None),
        }
    }

    /// Builds a step function from JSON parameters (`Ok(None)`: not a step function).
    pub fn step_function(&self, params: &str) -> Result<Option<LoadedStepFunction>, PluginError> {
        match self.factory {
            PluginFactory::StepFunction(f) => plain::<_, _>(f(RStr::from_str(params)))
                .map(|b: StepFunctionBox| Some(LoadedStepFunction(b))),
            _ => Ok(None),
        }
    }

    /// Builds an aggregator from JSON parameters (`Ok(None)`: not an aggregator).
    pub fn aggregator(&self, params: &str) -> Result<Option<LoadedAggregator>, PluginError> {
        match self.factory {
            PluginFactory::Aggregator(f) => plain::<_, _>(f(RStr::from_str(params)))
                .map(|b: AggregatorBox| Some(LoadedAggregator(b))),
            _ => Ok(None),
        }
    }
}

/// An instantiated attribution method from a plugin library.
pub struct LoadedMethod(AttributionMethodBox);

impl LoadedMethod {
    /// Runs the method on `request`, serving its callbacks from `host`.
    pub fn attribute(
        &self,
        host: &dyn HostApi,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let served = Served(host);
        let handle = HostModel_TO::from_ptr(&served, TD_Opaque);
        plain(self.0.attribute(handle, request.clone().into()))
    }
}

/// An instantiated step function from a plugin library.
pub struct LoadedStepFunction(StepFunctionBox);

impl LoadedStepFunction {
    /// Scores `input` (and its gradient when asked).
    pub fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        let dropout: Vec<wire::TensorView<'_>> =
            input.dropout_logits.iter().map(|&v| v.into()).collect();
        plain(self.0.compute(wire::StepInput::new(input, &dropout)))
    }

    /// How many Monte Carlo dropout forwards it needs.
    pub fn dropout_samples(&self) -> usize {
        self.0.dropout_samples() as usize
    }
}

/// An instantiated aggregator from a plugin library.
pub struct LoadedAggregator(AggregatorBox);

impl LoadedAggregator {
    /// Aggregates one sequence.
    pub fn aggregate(
        &self,
        sequence: SequenceAttribution,
    ) -> Result<SequenceAttribution, PluginError> {
        plain(self.0.aggregate(sequence.into()))
    }
}
