//! `layer_gradient_x_activation`: Captum `LayerGradientXActivation`: the activation of
//! `target_layer` at the actual input times the gradient of the attributed function with respect
//! to it, `a ⊙ ∂f/∂a` (no baseline).

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use rinseq_sdk::toolkit::{
    finish_sequence, Accumulator, Endpoints, GradientSweep, LayerTarget, Progress,
};

/// Parameters of `layer_gradient_x_activation`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct LayerGradientXActivationParams {
    /// HF module path of the attributed layer (e.g. `model.layers.15.mlp`); unset = the input
    /// embeddings (Inseq's default, the embedding layer).
    pub target_layer: Option<String>,
    /// Attribute the layer's input instead of its output.
    pub attribute_to_layer_input: bool,
    /// Multiply the gradient by the activation (default); `false` returns the layer gradient.
    pub multiply_by_inputs: bool,
}

impl Default for LayerGradientXActivationParams {
    fn default() -> Self {
        Self {
            target_layer: None,
            attribute_to_layer_input: false,
            multiply_by_inputs: true,
        }
    }
}

/// Layer activation times its gradient.
pub struct LayerGradientXActivation {
    layer: LayerTarget,
    multiply_by_inputs: bool,
}

impl PluginInfo for LayerGradientXActivation {
    const NAME: &'static str = "layer_gradient_x_activation";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "A layer's activation times its gradient (Captum LayerGradientXActivation).";
    type Params = LayerGradientXActivationParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(
            Flags::USES_GRADIENTS | Flags::LAYER_METHOD,
            OutputKind::Granular,
            &["vnorm"],
        )
    }
}

impl AttributionPlugin for LayerGradientXActivation {
    fn new(p: LayerGradientXActivationParams) -> Result<Self, PluginError> {
        Ok(Self {
            layer: LayerTarget {
                target_layer: p.target_layer,
                attribute_to_layer_input: p.attribute_to_layer_input,
            },
            multiply_by_inputs: p.multiply_by_inputs,
        })
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let (wrt, sides) = self.layer.resolve(host, request)?;
        let mut progress = Progress::new(request.sequences.len() as u64);
        let mut out = AttributionOutput::default();
        for (i, seq) in request.sequences.iter().enumerate() {
            let ends = Endpoints::load(host, i, &wrt, sides, false)?;
            let mut acc = Accumulator::new(&ends, seq.steps.len());
            let sweep = GradientSweep {
                sequence: i,
                steps: &seq.steps,
                wrt: &wrt,
                rule: GradientRule::Standard,
                chunk: 1,
            };
            sweep.run(
                host,
                1,
                &mut progress,
                |_| Ok(InputPoint::actual()),
                |_, g| acc.add(&ends, &g, 1.0),
            )?;
            let (src, tgt) = acc.finish(&ends, |e| {
                Ok(self.multiply_by_inputs.then(|| e.x.data.to_vec()))
            })?;
            out.sequences.push(finish_sequence(seq, src, tgt, None)?);
        }
        Ok(out)
    }
}
