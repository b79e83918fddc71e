//! Plugins that panic (for the boundary's panic tests).

use rinseq_sdk::prelude::*;

/// Parameters: panic in the factory instead of at run time.
#[derive(serde::Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Panic while being constructed.
    pub panic_in_new: bool,
}

/// An attribution method that panics.
pub struct PanickingMethod;

impl PluginInfo for PanickingMethod {
    const NAME: &'static str = "panicking_method";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "Panics (test fixture).";
    type Params = Params;
}

impl AttributionPlugin for PanickingMethod {
    fn new(p: Params) -> Result<Self, PluginError> {
        if p.panic_in_new {
            panic!("constructor exploded");
        }
        Ok(Self)
    }
    fn attribute(
        &self,
        _: &Host<'_>,
        r: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let empty: Vec<u32> = Vec::new();
        let i = r.sequences.len() + 3;
        let _ = empty[i]; // index out of bounds
        Ok(AttributionOutput::default())
    }
}

/// A step function that panics.
pub struct PanickingStep;

impl PluginInfo for PanickingStep {
    const NAME: &'static str = "panicking_step";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "Panics (test fixture).";
    type Params = Params;
}

impl StepFunctionPlugin for PanickingStep {
    fn new(_: Params) -> Result<Self, PluginError> {
        Ok(Self)
    }
    fn compute(&self, _: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        panic!("step function exploded")
    }
}

rinseq_sdk::export_plugins! {
    attribution: [PanickingMethod],
    step_functions: [PanickingStep],
}
