//! The plugin-author API: plain Rust traits, and the adapters that turn them into ABI-stable
//! objects with every entry point guarded against panics.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RStr, RVec};
use serde::de::DeserializeOwned;

use crate::abi::{
    Aggregator, AggregatorBox, Aggregator_TO, AttributionMethod, AttributionMethodBox,
    AttributionMethod_TO, HostModelRef, PluginDescriptor, PluginFactory, PluginLib, PluginLibRef,
    StepFunction, StepFunctionBox, StepFunction_TO,
};
use crate::capabilities::Capabilities;
use crate::data::{AttributionOutput, AttributionRequest, SequenceAttribution};
use crate::error::{ErrorCode, PluginError};
use crate::host::Host;
use crate::step::{StepInput, StepOutput};

/// Name, version, description, parameters and capabilities of a plugin.
pub trait PluginInfo: Sized + Send + Sync + 'static {
    /// Unique name within its kind (e.g. `saliency`).
    const NAME: &'static str;
    /// The plugin's version.
    const VERSION: &'static str;
    /// One line for `rinseq plugins list`.
    const DESCRIPTION: &'static str;
    /// Parameters, parsed from the JSON the host passes (use `#[serde(deny_unknown_fields)]` so
    /// that misspelled parameters are reported, and `#[serde(default)]` for optional ones).
    type Params: DeserializeOwned + schemars::JsonSchema;

    /// Capability flags and defaults (none by default).
    fn capabilities() -> Capabilities {
        Capabilities::default()
    }
}

/// An attribution method, written as ordinary Rust.
pub trait AttributionPlugin: PluginInfo {
    /// Builds the method from its parameters (validate them here).
    fn new(params: Self::Params) -> Result<Self, PluginError>;
    /// Attributes every sequence and step of `request`, asking `host` for gradients or scores.
    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError>;
}

/// A step function, written as ordinary Rust.
pub trait StepFunctionPlugin: PluginInfo {
    /// Builds the function from its parameters.
    fn new(params: Self::Params) -> Result<Self, PluginError>;
    /// Scores each row and, when `input.want_grad`, returns d score / d logits.
    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError>;
}

/// An aggregator, written as ordinary Rust.
pub trait AggregatorPlugin: PluginInfo {
    /// Builds the aggregator from its parameters.
    fn new(params: Self::Params) -> Result<Self, PluginError>;
    /// Aggregates one attributed sequence.
    fn aggregate(&self, sequence: SequenceAttribution) -> Result<SequenceAttribution, PluginError>;
}

/// Runs `f`, turning a panic into a [`ErrorCode::PANIC`] error: no panic may unwind across the
/// boundary (abi_stable would end the process).
pub fn ffi_guard<R>(
    what: &str,
    f: impl FnOnce() -> Result<R, PluginError>,
) -> RResult<R, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(e),
        Err(payload) => RResult::RErr(PluginError::new(
            ErrorCode::PANIC,
            format!("{what} panicked: {}", panic_message(&*payload)),
        )),
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Parses a plugin's JSON parameters (an empty string means `{}`).
pub fn parse_params<P: DeserializeOwned>(plugin: &str, json: &str) -> Result<P, PluginError> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    serde_json::from_str(json).map_err(|e| {
        PluginError::invalid_params(format!(
            "parameters {json} don't fit the schema of '{plugin}': {e}"
        ))
    })
}

/// The JSON Schema of a parameter type, as a string.
pub fn params_schema<P: schemars::JsonSchema>() -> String {
    serde_json::to_string(&schemars::schema_for!(P)).unwrap_or_else(|_| "{}".into())
}

struct AttributionAdapter<T>(T);
struct StepAdapter<T>(T);
struct AggregatorAdapter<T>(T);

impl<T: AttributionPlugin> AttributionMethod for AttributionAdapter<T> {
    fn attribute(
        &self,
        host: HostModelRef<'_>,
        request: &AttributionRequest,
    ) -> RResult<AttributionOutput, PluginError> {
        ffi_guard(T::NAME, || self.0.attribute(&Host::new(host), request))
            .map_err(|e| e.with_context(format!("running attribution method '{}'", T::NAME)))
    }
}

impl<T: StepFunctionPlugin> StepFunction for StepAdapter<T> {
    fn compute(&self, input: StepInput<'_>) -> RResult<StepOutput, PluginError> {
        ffi_guard(T::NAME, || self.0.compute(&input))
            .map_err(|e| e.with_context(format!("running step function '{}'", T::NAME)))
    }
}

impl<T: AggregatorPlugin> Aggregator for AggregatorAdapter<T> {
    fn aggregate(
        &self,
        sequence: SequenceAttribution,
    ) -> RResult<SequenceAttribution, PluginError> {
        ffi_guard(T::NAME, || self.0.aggregate(sequence))
            .map_err(|e| e.with_context(format!("running aggregator '{}'", T::NAME)))
    }
}

extern "C" fn make_attribution<T: AttributionPlugin>(
    params: RStr<'_>,
) -> RResult<AttributionMethodBox, PluginError> {
    ffi_guard(T::NAME, || {
        let method = T::new(parse_params(T::NAME, params.as_str())?)?;
        Ok(AttributionMethod_TO::from_value(
            AttributionAdapter(method),
            TD_Opaque,
        ))
    })
}

extern "C" fn make_step<T: StepFunctionPlugin>(
    params: RStr<'_>,
) -> RResult<StepFunctionBox, PluginError> {
    ffi_guard(T::NAME, || {
        let f = T::new(parse_params(T::NAME, params.as_str())?)?;
        Ok(StepFunction_TO::from_value(StepAdapter(f), TD_Opaque))
    })
}

extern "C" fn make_aggregator<T: AggregatorPlugin>(
    params: RStr<'_>,
) -> RResult<AggregatorBox, PluginError> {
    ffi_guard(T::NAME, || {
        let a = T::new(parse_params(T::NAME, params.as_str())?)?;
        Ok(Aggregator_TO::from_value(AggregatorAdapter(a), TD_Opaque))
    })
}

fn describe<T: PluginInfo>(factory: PluginFactory) -> PluginDescriptor {
    PluginDescriptor {
        name: T::NAME.into(),
        version: T::VERSION.into(),
        description: T::DESCRIPTION.into(),
        params_schema: params_schema::<T::Params>().into(),
        capabilities: T::capabilities(),
        factory,
    }
}

/// The descriptor of an attribution method (used by [`crate::export_plugins!`]).
pub fn attribution<T: AttributionPlugin>() -> PluginDescriptor {
    describe::<T>(PluginFactory::Attribution(make_attribution::<T>))
}

/// The descriptor of a step function (used by [`crate::export_plugins!`]).
pub fn step_function<T: StepFunctionPlugin>() -> PluginDescriptor {
    describe::<T>(PluginFactory::StepFunction(make_step::<T>))
}

/// The descriptor of an aggregator (used by [`crate::export_plugins!`]).
pub fn aggregator<T: AggregatorPlugin>() -> PluginDescriptor {
    describe::<T>(PluginFactory::Aggregator(make_aggregator::<T>))
}

/// Builds a library's root module (used by [`crate::export_plugins!`]).
pub fn root_module(
    crate_name: &'static str,
    crate_version: &'static str,
    plugins: extern "C" fn() -> RVec<PluginDescriptor>,
) -> PluginLibRef {
    use abi_stable::prefix_type::PrefixTypeTrait;
    PluginLib {
        crate_name: RStr::from_str(crate_name),
        crate_version: RStr::from_str(crate_version),
        sdk_version: RStr::from_str(crate::SDK_VERSION),
        rustc_version: RStr::from_str(env!("RINSEQ_SDK_RUSTC")),
        plugins,
    }
    .leak_into_prefix()
}
