//! `layer_integrated_gradients`: Captum `LayerIntegratedGradients`: integrated gradients with
//! respect to the output (or input) of `target_layer`, along the straight line from the layer's
//! activation at the baseline input `a′` to its activation at the actual input `a`:
//! `(a − a′) ⊙ ∫₀¹ ∂f/∂a (a′ + α(a − a′)) dα`, the model run on the actual input with the layer's
//! activation replaced. Scores land on the positions of the side the layer is on.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use rinseq_sdk::toolkit::{IntegrationMethod, LayerTarget};

use crate::integrated_gradients::{run_integrated_gradients, IntegratedGradientsParams};

/// Parameters of `layer_integrated_gradients`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct LayerIntegratedGradientsParams {
    /// HF module path of the attributed layer (e.g. `model.layers.15.mlp`); unset = the input
    /// embeddings (Inseq's default, the embedding layer).
    pub target_layer: Option<String>,
    /// Attribute the layer's input instead of its output.
    pub attribute_to_layer_input: bool,
    /// Number of points on the path (Captum `n_steps`).
    pub n_steps: usize,
    /// Integral approximation rule.
    pub method: IntegrationMethod,
    /// Path points per host request; unset = all `n_steps` at once.
    pub internal_batch_size: Option<usize>,
    /// Add the step score `deltas`: Σ attributions − (f(x) − f(x′)), f at the actual and baseline
    /// *inputs* (as Captum).
    pub return_convergence_delta: bool,
    /// Multiply the integrated gradient by `a − a′` (default).
    pub multiply_by_inputs: bool,
}

impl Default for LayerIntegratedGradientsParams {
    fn default() -> Self {
        let ig = IntegratedGradientsParams::default();
        Self {
            target_layer: None,
            attribute_to_layer_input: false,
            n_steps: ig.n_steps,
            method: ig.method,
            internal_batch_size: ig.internal_batch_size,
            return_convergence_delta: ig.return_convergence_delta,
            multiply_by_inputs: ig.multiply_by_inputs,
        }
    }
}

/// Integrated gradients at a layer.
pub struct LayerIntegratedGradients {
    layer: LayerTarget,
    ig: IntegratedGradientsParams,
}

impl PluginInfo for LayerIntegratedGradients {
    const NAME: &'static str = "layer_integrated_gradients";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Integrated gradients w.r.t. a layer's activation (Captum LayerIntegratedGradients).";
    type Params = LayerIntegratedGradientsParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(
            Flags::USES_GRADIENTS | Flags::USES_BASELINES | Flags::LAYER_METHOD,
            OutputKind::Granular,
            &["vnorm"],
        )
    }
}

impl AttributionPlugin for LayerIntegratedGradients {
    fn new(p: LayerIntegratedGradientsParams) -> Result<Self, PluginError> {
        let ig = IntegratedGradientsParams {
            n_steps: p.n_steps,
            method: p.method,
            internal_batch_size: p.internal_batch_size,
            return_convergence_delta: p.return_convergence_delta,
            multiply_by_inputs: p.multiply_by_inputs,
        };
        ig.validate()?;
        let layer = LayerTarget {
            target_layer: p.target_layer,
            attribute_to_layer_input: p.attribute_to_layer_input,
        };
        Ok(Self { layer, ig })
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let (wrt, sides) = self.layer.resolve(host, request)?;
        run_integrated_gradients(host, request, &wrt, sides, &self.ig)
    }
}
