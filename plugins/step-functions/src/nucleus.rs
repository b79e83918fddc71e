//! `top_p_size`: the size of the top-p nucleus of the next-token distribution.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::common::{output, shape2};
use crate::filtering::{top_p_keep, validate_top_p};

/// Parameters of `top_p_size`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopPSizeParams {
    /// Cumulative probability threshold of the nucleus, in [0, 1].
    pub top_p: f64,
}

/// `top_p_size`: the number of vocabulary entries kept by the top-p nucleus mask of
/// `softmax(z)` (Inseq's `top_p_logits_mask(z, top_p, 1)`: sort ascending, drop entries whose
/// cumulative probability is `<= 1 - top_p`, always keep at least one). Span aggregation
/// `absmax`. Not differentiable ([`Flags::NOT_DIFFERENTIABLE`]): a step score only; asking for
/// its gradient is an `unsupported` error (in Inseq the integer result cannot be backpropagated
/// either).
///
/// Decision (divergence from Inseq 0.7.1): Inseq counts the kept entries over the **whole
/// batch** and returns a single value of shape `[1]` (the sum of the per-row counts), which is
/// only well-formed for a batch of one. rinseq counts **per row**, returning one score per row
/// as every step function does: for a batch of one both agree, and batching never changes a
/// sequence's score.
pub struct TopPSize {
    top_p: f64,
}

impl PluginInfo for TopPSize {
    const NAME: &'static str = "top_p_size";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Number of tokens in the top-p nucleus of the next-token distribution (per row).";
    type Params = TopPSizeParams;
    fn capabilities() -> Capabilities {
        Capabilities::step_function(Flags::NOT_DIFFERENTIABLE, "absmax")
    }
}

impl StepFunctionPlugin for TopPSize {
    fn new(p: TopPSizeParams) -> Result<Self, PluginError> {
        validate_top_p(p.top_p)?;
        Ok(Self { top_p: p.top_p })
    }

    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        if input.want_grad {
            return Err(PluginError::unsupported(
                "'top_p_size' is not differentiable (a token count): use it as a step score, not \
                 as the attributed function",
            ));
        }
        let (rows, vocab) = shape2("logits", &input.logits)?;
        let scores = (0..rows)
            .map(|r| {
                let z: Vec<f64> = input.logits.row(r).iter().map(|&v| f64::from(v)).collect();
                top_p_keep(&z, self.top_p, 1).iter().filter(|&&k| k).count() as f64
            })
            .collect();
        output(rows, vocab, scores, None, None)
    }
}
