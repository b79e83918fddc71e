//! The plugin side of the boundary: adapters that turn an author's plain-Rust plugin into an
//! ABI-stable object, converting every value and guarding every entry point against panics.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RStr, RVec};

use super::traits::{
    Aggregator, AggregatorBox, Aggregator_TO, AttributionMethod, AttributionMethodBox,
    AttributionMethod_TO, HostModelRef, PluginDescriptor, PluginFactory, PluginLib, PluginLibRef,
    StepFunction, StepFunctionBox, StepFunction_TO,
};
use super::wire;
use crate::author::{
    params_schema, parse_params, AggregatorPlugin, AttributionPlugin, PluginInfo,
    StepFunctionPlugin,
};
use crate::error::{ErrorCode, PluginError};
use crate::host::Host;

/// Runs `f`, turning a panic into an [`ErrorCode::Panic`] error: no panic may unwind across the
/// boundary (abi_stable would end the process).
pub fn ffi_guard<R, W: From<R>>(
    what: &str,
    f: impl FnOnce() -> Result<R, PluginError>,
) -> RResult<W, wire::PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v.into()),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(payload) => RResult::RErr(
            PluginError::new(
                ErrorCode::Panic,
                format!("{what} panicked: {}", panic_message(&*payload)),
            )
            .into(),
        ),
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

struct AttributionAdapter<T>(T);
struct StepAdapter<T>(T);
struct AggregatorAdapter<T>(T);

/// [`ffi_guard`], then the context line `while` on any error, a caught panic included.
fn guard_with<R, W: From<R>>(
    name: &str,
    while_: impl FnOnce() -> String,
    f: impl FnOnce() -> Result<R, PluginError>,
) -> RResult<W, wire::PluginError> {
    match ffi_guard::<R, W>(name, f) {
        RResult::RErr(e) => RResult::RErr(PluginError::from(e).with_context(while_()).into()),
        ok => ok,
    }
}

impl<T: AttributionPlugin> AttributionMethod for AttributionAdapter<T> {
    fn attribute(
        &self,
        host: HostModelRef<'_>,
        request: wire::AttributionRequest,
    ) -> RResult<wire::AttributionOutput, wire::PluginError> {
        let ctx = || format!("running attribution method '{}'", T::NAME);
        guard_with(T::NAME, ctx, || {
            self.0.attribute(&Host::remote(host), &request.into())
        })
    }
}

impl<T: StepFunctionPlugin> StepFunction for StepAdapter<T> {
    fn dropout_samples(&self) -> u32 {
        catch_unwind(AssertUnwindSafe(|| self.0.dropout_samples() as u32)).unwrap_or(0)
    }

    fn compute(&self, input: wire::StepInput<'_>) -> RResult<wire::StepOutput, wire::PluginError> {
        let ctx = || format!("running step function '{}'", T::NAME);
        guard_with(T::NAME, ctx, || self.0.compute(&input.plain()))
    }
}

impl<T: AggregatorPlugin> Aggregator for AggregatorAdapter<T> {
    fn aggregate(
        &self,
        sequence: wire::SequenceAttribution,
    ) -> RResult<wire::SequenceAttribution, wire::PluginError> {
        let ctx = || format!("running aggregator '{}'", T::NAME);
        guard_with(T::NAME, ctx, || self.0.aggregate(sequence.into()))
    }
}

/// Makes `RResult<Box, _>` from a fallible constructor (boxes are already wire types).
fn build<B>(
    what: &str,
    f: impl FnOnce() -> Result<B, PluginError>,
) -> RResult<B, wire::PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(b)) => RResult::ROk(b),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(p) => RResult::RErr(
            PluginError::new(
                ErrorCode::Panic,
                format!("{what} panicked: {}", panic_message(&*p)),
            )
            .into(),
        ),
    }
}

extern "C" fn make_attribution<T: AttributionPlugin>(
    params: RStr<'_>,
) -> RResult<AttributionMethodBox, wire::PluginError> {
    build(T::NAME, || {
        let method = T::new(parse_params(T::NAME, params.as_str())?)?;
        Ok(AttributionMethod_TO::from_value(
            AttributionAdapter(method),
            TD_Opaque,
        ))
    })
}

extern "C" fn make_step<T: StepFunctionPlugin>(
    params: RStr<'_>,
) -> RResult<StepFunctionBox, wire::PluginError> {
    build(T::NAME, || {
        let f = T::new(parse_params(T::NAME, params.as_str())?)?;
        Ok(StepFunction_TO::from_value(StepAdapter(f), TD_Opaque))
    })
}

extern "C" fn make_aggregator<T: AggregatorPlugin>(
    params: RStr<'_>,
) -> RResult<AggregatorBox, wire::PluginError> {
    build(T::NAME, || {
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
        capabilities: T::capabilities().into(),
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
