//! The plugin-author API: plain Rust traits. [`crate::export_plugins!`] turns implementations
//! into ABI-stable objects (see [`crate::abi`]); authors never touch those.

use serde::de::DeserializeOwned;

use crate::capabilities::Capabilities;
use crate::data::{AttributionOutput, AttributionRequest, SequenceAttribution};
use crate::error::PluginError;
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
    /// The host checks the result's shapes against the request and the declared
    /// [`crate::OutputKind`], and sets target positions a step cannot see to NaN.
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
    /// How many Monte Carlo dropout forwards the host must pass in
    /// [`StepInput::dropout_logits`] (declare [`crate::Flags::NEEDS_DROPOUT_SAMPLES`] too).
    fn dropout_samples(&self) -> usize {
        0
    }
}

/// An aggregator, written as ordinary Rust.
pub trait AggregatorPlugin: PluginInfo {
    /// Builds the aggregator from its parameters.
    fn new(params: Self::Params) -> Result<Self, PluginError>;
    /// Aggregates one attributed sequence.
    fn aggregate(&self, sequence: SequenceAttribution) -> Result<SequenceAttribution, PluginError>;
}

/// Parses a plugin's JSON parameters (an empty string means `{}`; `{}` also fits a plugin whose
/// `Params` is `()`).
pub fn parse_params<P: DeserializeOwned>(plugin: &str, json: &str) -> Result<P, PluginError> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    serde_json::from_str(json)
        .or_else(|e| match serde_json::from_str::<serde_json::Value>(json) {
            // `()` parameters: `{}` means none (the original error if that does not fit either).
            Ok(serde_json::Value::Object(m)) if m.is_empty() => {
                serde_json::from_str("null").map_err(|_| e)
            }
            _ => Err(e),
        })
        .map_err(|e| {
            PluginError::invalid_params(format!(
                "parameters {json} don't fit the schema of '{plugin}': {e}"
            ))
        })
}

/// The JSON Schema of a parameter type, as a string.
pub fn params_schema<P: schemars::JsonSchema>() -> String {
    serde_json::to_string(&schemars::schema_for!(P)).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::parse_params;

    #[test]
    fn unit_params_accept_an_empty_object_and_refuse_keys() {
        parse_params::<()>("p", "{}").unwrap();
        parse_params::<()>("p", "").unwrap();
        let e = parse_params::<()>("p", r#"{"x": 1}"#).unwrap_err();
        assert!(e.message.contains("don't fit the schema of 'p'"), "{e}");
    }
}
