//! `mc_dropout_prob_avg`: the target probability z-scored against Monte Carlo dropout samples.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::common::{output, shape2, target, targets};
use rinseq_sdk::toolkit::softmax::Dist;

/// Parameters of `mc_dropout_prob_avg`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct McDropoutParams {
    /// Number of Monte Carlo dropout forwards the host runs (>= 2, for the sample std).
    pub n_mcd_steps: i64,
    /// Z-score the natural-log probability instead of the probability.
    pub logprob: bool,
}

impl Default for McDropoutParams {
    fn default() -> Self {
        Self {
            n_mcd_steps: 5,
            logprob: false,
        }
    }
}

/// `mc_dropout_prob_avg`: `(f(z) - mean_k f(d_k)) / std_k f(d_k)` with `f = softmax(.)[y]` (or
/// `log_softmax` with `logprob`), `z` the step's logits and `d_1..d_n` the logits of `n_mcd_steps`
/// noisy forwards with dropout on ([`StepInput::dropout_logits`]). A z-score, despite Inseq's name;
/// `std` is the unbiased sample standard deviation (torch's `Tensor.std` default, `n - 1`).
/// Span aggregation `prod`.
///
/// Host contract ([`Flags::NEEDS_DROPOUT_SAMPLES`]): [`StepFunctionPlugin::dropout_samples`]
/// answers `n_mcd_steps` (default 5); the host runs that many forwards of the same prefix with dropout
/// active, and passes their `(batch, vocab)` logits in `dropout_logits`; the plugin checks the
/// count. (Inseq 0.7.1 leaves the model in train mode afterwards, so dropout stays on for later
/// steps; that is a bug a host need not reproduce.)
///
/// Decisions: `n_mcd_steps < 2` is rejected (Inseq returns NaN for 1, the unbiased std of one
/// sample, and fails for 0). Gradients treat the dropout samples as constants: only
/// `grad_logits = f'(z) / std` is returned (the SDK has no slot for gradients w.r.t. the
/// samples; Inseq backpropagates through them only for encoder-decoder models, where its noisy
/// forwards run on the input embeddings). Identical samples (a model without dropout) give a
/// zero std and, as in torch, infinite or NaN scores.
pub struct McDropoutProbAvg(McDropoutParams);

impl PluginInfo for McDropoutProbAvg {
    const NAME: &'static str = "mc_dropout_prob_avg";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Target probability z-scored against Monte Carlo dropout samples: (p - mean) / std.";
    type Params = McDropoutParams;
    fn capabilities() -> Capabilities {
        Capabilities::step_function(Flags::NEEDS_DROPOUT_SAMPLES, "prod")
    }
}

impl StepFunctionPlugin for McDropoutProbAvg {
    fn dropout_samples(&self) -> usize {
        self.0.n_mcd_steps as usize
    }

    fn new(p: McDropoutParams) -> Result<Self, PluginError> {
        if p.n_mcd_steps < 2 {
            return Err(PluginError::invalid_params(format!(
                "`n_mcd_steps` has to be at least 2 (the z-score divides by the sample standard \
                 deviation of the dropout samples), but is {}",
                p.n_mcd_steps
            )));
        }
        Ok(Self(p))
    }

    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        let (rows, vocab) = shape2("logits", &input.logits)?;
        targets("target ids", input.target_ids, rows)?;
        let n = self.0.n_mcd_steps as usize;
        let samples = input.dropout_logits.as_slice();
        if samples.is_empty() {
            return Err(PluginError::unsupported(format!(
                "'{}' needs {n} Monte Carlo dropout forwards (`n_mcd_steps`), but the host passed \
                 no dropout logits",
                Self::NAME
            )));
        }
        if samples.len() != n {
            return Err(PluginError::new(
                ErrorCode::ShapeMismatch,
                format!(
                    "'{}' expects `n_mcd_steps` = {n} dropout forwards, got {}",
                    Self::NAME,
                    samples.len()
                ),
            ));
        }
        for s in samples {
            if shape2("dropout logits", s)? != (rows, vocab) {
                return Err(PluginError::new(
                    ErrorCode::ShapeMismatch,
                    format!(
                        "dropout logits must have the shape of the logits ({rows}, {vocab}), got \
                         {:?}",
                        s.shape
                    ),
                ));
            }
        }
        let logprob = self.0.logprob;
        let mut scores = Vec::with_capacity(rows);
        let mut grads = Vec::new();
        for r in 0..rows {
            let y = target("target id", input.target_ids[r], vocab)?;
            let (orig, g) = Dist::of(input.logits.row(r)).prob(y, logprob);
            let noisy: Vec<f64> = samples
                .iter()
                .map(|s| Dist::of(s.row(r)).prob(y, logprob).0)
                .collect();
            let mean = noisy.iter().sum::<f64>() / n as f64;
            let var = noisy.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let std = var.sqrt();
            scores.push((orig - mean) / std);
            if input.want_grad {
                grads.extend(g.into_iter().map(|v| v / std));
            }
        }
        output(rows, vocab, scores, input.want_grad.then_some(grads), None)
    }
}
