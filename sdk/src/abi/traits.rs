//! The ABI-stable surface: plugin traits, the host callback trait, descriptors and the root
//! module, all over the [`super::wire`] types. Everything here is frozen within a `0.y` SDK
//! series (see the crate docs): any change is a minor-version bump, after which plugins must be
//! rebuilt.
#![allow(non_local_definitions)] // abi_stable 0.11's macro output trips this lint on new rustc

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, RResult, RStr, RString, RVec};
use abi_stable::{declare_root_module_statics, package_version_strings, sabi_trait, StableAbi};

use super::wire::{
    AttributionOutput, AttributionRequest, Capabilities, GradientRequest, GradientResponse,
    InternalsRequest, InternalsResponse, ModelInfo, PluginError, ScoreRequest, SequenceAttribution,
    SidePair, StepInput, StepOutput, Tensor, Wrt,
};
use crate::data::{Side, TokenId};

/// The host side of the boundary: what a method may ask of the model.
#[sabi_trait]
pub trait HostModel: Sync {
    /// Facts about the model.
    fn info(&self) -> ModelInfo;
    /// Embeds token ids on one side: `(len, hidden)`.
    fn embed(
        &self,
        side: Side,
        ids: abi_stable::std_types::RSlice<'_, TokenId>,
    ) -> RResult<Tensor, PluginError>;
    /// The sequence's actual inputs (or layer activations) on both sides.
    fn inputs(&self, sequence: u64, wrt: &Wrt) -> RResult<SidePair, PluginError>;
    /// Baseline inputs on both sides.
    fn baselines(&self, sequence: u64, wrt: &Wrt) -> RResult<SidePair, PluginError>;
    /// Gradients of the attributed function at many points and steps.
    fn gradients(&self, request: GradientRequest) -> RResult<GradientResponse, PluginError>;
    /// Attributed-function scores of many (perturbed) points and steps, `(points, steps)`.
    fn scores(&self, request: ScoreRequest) -> RResult<Tensor, PluginError>;
    /// One forward with recorded internals and optional interventions.
    fn internals(&self, request: InternalsRequest) -> RResult<InternalsResponse, PluginError>;
    /// Reports progress; returns `false` when the user cancelled.
    #[sabi(last_prefix_field)]
    fn progress(&self, done: u64, total: u64) -> bool;
}

/// A borrowed host handle, as passed to [`AttributionMethod::attribute`].
pub type HostModelRef<'a> = HostModel_TO<'a, abi_stable::sabi_types::RRef<'a, ()>>;

/// An attribution method (saliency, integrated gradients, attention...).
#[sabi_trait]
pub trait AttributionMethod: Send + Sync {
    /// Attributes a batch: every sequence, every step.
    #[sabi(last_prefix_field)]
    fn attribute(
        &self,
        host: HostModelRef<'_>,
        request: AttributionRequest,
    ) -> RResult<AttributionOutput, PluginError>;
}

/// A step function: a score per batch row, and its gradient with respect to the logits so that
/// the host can backpropagate it.
#[sabi_trait]
pub trait StepFunction: Send + Sync {
    /// How many Monte Carlo dropout forwards `compute` needs (0: none).
    fn dropout_samples(&self) -> u32;
    /// Scores (and, when `input.want_grad`, d score / d logits).
    #[sabi(last_prefix_field)]
    fn compute(&self, input: StepInput<'_>) -> RResult<StepOutput, PluginError>;
}

/// An aggregator: turns one attributed sequence into another.
#[sabi_trait]
pub trait Aggregator: Send + Sync {
    /// Aggregates `sequence`.
    #[sabi(last_prefix_field)]
    fn aggregate(&self, sequence: SequenceAttribution)
        -> RResult<SequenceAttribution, PluginError>;
}

/// An owned attribution method object.
pub type AttributionMethodBox = AttributionMethod_TO<'static, RBox<()>>;
/// An owned step function object.
pub type StepFunctionBox = StepFunction_TO<'static, RBox<()>>;
/// An owned aggregator object.
pub type AggregatorBox = Aggregator_TO<'static, RBox<()>>;

/// The kind-specific factory: builds a plugin instance from its parameters as JSON.
#[repr(u8)]
#[derive(StableAbi, Copy, Clone)]
pub enum PluginFactory {
    /// Builds an attribution method.
    Attribution(extern "C" fn(params_json: RStr<'_>) -> RResult<AttributionMethodBox, PluginError>),
    /// Builds a step function.
    StepFunction(extern "C" fn(params_json: RStr<'_>) -> RResult<StepFunctionBox, PluginError>),
    /// Builds an aggregator.
    Aggregator(extern "C" fn(params_json: RStr<'_>) -> RResult<AggregatorBox, PluginError>),
}

/// Everything the host knows about one plugin before instantiating it.
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct PluginDescriptor {
    /// Unique name within its kind, e.g. `integrated_gradients`.
    pub name: RString,
    /// The plugin's own version.
    pub version: RString,
    /// One line for `rinseq plugins list`.
    pub description: RString,
    /// JSON Schema of the parameters.
    pub params_schema: RString,
    /// Capability flags and defaults.
    pub capabilities: Capabilities,
    /// Builds an instance.
    pub factory: PluginFactory,
}

/// The root module every plugin library exports (via [`crate::export_plugins!`]).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginLibRef)))]
#[sabi(missing_field(panic))]
pub struct PluginLib {
    /// The library crate's name.
    pub crate_name: RStr<'static>,
    /// The library crate's version.
    pub crate_version: RStr<'static>,
    /// The SDK version the library was built with.
    pub sdk_version: RStr<'static>,
    /// `rustc --version` of the build (diagnostics only).
    pub rustc_version: RStr<'static>,
    /// Lists the plugins of this library.
    #[sabi(last_prefix_field)]
    pub plugins: extern "C" fn() -> RVec<PluginDescriptor>,
}

impl RootModule for PluginLibRef {
    declare_root_module_statics! {PluginLibRef}
    const BASE_NAME: &'static str = "rinseq_plugin";
    const NAME: &'static str = "rinseq_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
