//! `saliency`: the gradient of the attributed function w.r.t. the input embeddings (Captum
//! `Saliency`, absolute value by default).

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use rinseq_sdk::toolkit::{plain_gradients, to_sequence_scores};

/// Parameters of `saliency`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct SaliencyParams {
    /// Return |gradient| (Captum's default) rather than the signed gradient.
    pub abs: bool,
}

impl Default for SaliencyParams {
    fn default() -> Self {
        Self { abs: true }
    }
}

/// Gradient of the target w.r.t. the input embeddings.
pub struct Saliency(SaliencyParams);

impl PluginInfo for Saliency {
    const NAME: &'static str = "saliency";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Gradient of the target w.r.t. input embeddings (|grad| by default).";
    type Params = SaliencyParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(Flags::USES_GRADIENTS, OutputKind::Granular, &["vnorm"])
    }
}

impl AttributionPlugin for Saliency {
    fn new(p: SaliencyParams) -> Result<Self, PluginError> {
        Ok(Self(p))
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let mut out = AttributionOutput::default();
        for (i, seq) in request.sequences.iter().enumerate() {
            let (mut src, mut tgt) = plain_gradients(host, i, seq)?;
            if self.0.abs {
                for t in src.iter_mut().chain(tgt.iter_mut()) {
                    t.data.iter_mut().for_each(|v| *v = v.abs());
                }
            }
            out.sequences.push(to_sequence_scores(seq, src, tgt)?);
            host.progress(i as u64 + 1, request.sequences.len() as u64)?;
        }
        Ok(out)
    }
}
