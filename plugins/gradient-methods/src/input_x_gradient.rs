//! `input_x_gradient`: input embeddings times the gradient (Captum `InputXGradient`).

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use rinseq_sdk::toolkit::{plain_gradients, times_input, to_sequence_scores};

/// `input_x_gradient` takes no parameters.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Input embeddings ⊙ gradient of the target.
pub struct InputXGradient;

impl PluginInfo for InputXGradient {
    const NAME: &'static str = "input_x_gradient";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Input embeddings times the gradient of the target.";
    type Params = NoParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(Flags::USES_GRADIENTS, OutputKind::Granular, &["vnorm"])
    }
}

impl AttributionPlugin for InputXGradient {
    fn new(_: NoParams) -> Result<Self, PluginError> {
        Ok(Self)
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let mut out = AttributionOutput::default();
        for (i, seq) in request.sequences.iter().enumerate() {
            let (mut src, mut tgt) = plain_gradients(host, i, seq)?;
            let x = host.inputs(i, &Wrt::InputEmbeddings)?;
            if let Some(g) = src.as_mut() {
                times_input(g, &x.source)?;
            }
            if let Some(g) = tgt.as_mut() {
                times_input(g, &x.target)?;
            }
            out.sequences.push(to_sequence_scores(seq, src, tgt)?);
            host.progress(i as u64 + 1, request.sequences.len() as u64)?;
        }
        Ok(out)
    }
}
