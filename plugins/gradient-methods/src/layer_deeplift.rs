//! `layer_deeplift`: Captum `LayerDeepLift` (rescale rule) at `target_layer`:
//! `(a − a′) ⊙ m`, with `a`/`a′` the layer's activations at the actual and baseline inputs and
//! `m` the DeepLIFT multipliers of the attributed function with respect to the layer.
//!
//! The plugin sends a [`GradientRule::DeepLiftRescale`] request whose first point is the baseline
//! *input* (token ids: the host runs it whole, so every non-linearity above the layer has its
//! baseline reference, as in Captum) and whose second point is the actual input, and reads the
//! multipliers at the layer for the second point.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::deeplift::{run_deeplift, DeepLiftParams};
use rinseq_sdk::toolkit::LayerTarget;

/// Parameters of `layer_deeplift`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct LayerDeepLiftParams {
    /// HF module path of the attributed layer (e.g. `model.layers.15.mlp`); unset = the input
    /// embeddings (Inseq's default, the embedding layer).
    pub target_layer: Option<String>,
    /// Attribute the layer's input instead of its output.
    pub attribute_to_layer_input: bool,
    /// Add the step score `deltas`: Σ attributions − (f(x) − f(x′)), f at the actual and baseline
    /// *inputs* (as Captum).
    pub return_convergence_delta: bool,
    /// Multiply the multipliers by `a − a′` (default).
    pub multiply_by_inputs: bool,
}

impl Default for LayerDeepLiftParams {
    fn default() -> Self {
        Self {
            target_layer: None,
            attribute_to_layer_input: false,
            return_convergence_delta: false,
            multiply_by_inputs: true,
        }
    }
}

/// DeepLIFT at a layer.
pub struct LayerDeepLift {
    layer: LayerTarget,
    dl: DeepLiftParams,
}

impl PluginInfo for LayerDeepLift {
    const NAME: &'static str = "layer_deeplift";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "DeepLIFT w.r.t. a layer's activation (Captum LayerDeepLift).";
    type Params = LayerDeepLiftParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(
            Flags::USES_GRADIENTS | Flags::USES_BASELINES | Flags::LAYER_METHOD,
            OutputKind::Granular,
            &["vnorm"],
        )
    }
}

impl AttributionPlugin for LayerDeepLift {
    fn new(p: LayerDeepLiftParams) -> Result<Self, PluginError> {
        Ok(Self {
            layer: LayerTarget {
                target_layer: p.target_layer,
                attribute_to_layer_input: p.attribute_to_layer_input,
            },
            dl: DeepLiftParams {
                return_convergence_delta: p.return_convergence_delta,
                multiply_by_inputs: p.multiply_by_inputs,
            },
        })
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let (wrt, sides) = self.layer.resolve(host, request)?;
        run_deeplift(host, request, &wrt, sides, &self.dl)
    }
}
