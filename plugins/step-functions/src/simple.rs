//! Step functions of the step's own logits.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use rinseq_sdk::toolkit::softmax::{log_softmax, softmax};

/// No parameters.
#[derive(Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Parameters of probability-like functions.
#[derive(Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ProbParams {
    /// Return the natural-log probability instead of the probability.
    pub logprob: bool,
}

/// Applies `row_fn(logits_row, target) -> (score, grad_row)` to every row.
fn per_row(
    input: &StepInput<'_>,
    row_fn: impl Fn(&[f32], usize) -> (f64, Vec<f64>),
) -> Result<StepOutput, PluginError> {
    let dims = input.logits.dims::<2>().ok();
    let Some([rows, vocab]) = dims.filter(|&[rows, _]| rows == input.target_ids.len()) else {
        return Err(PluginError::new(
            ErrorCode::ShapeMismatch,
            format!(
                "logits must be (batch, vocab) with one target per row, got {:?} and {} targets",
                input.logits.shape,
                input.target_ids.len()
            ),
        ));
    };
    let mut scores = Vec::with_capacity(rows);
    let mut grads = Vec::with_capacity(if input.want_grad { rows * vocab } else { 0 });
    for r in 0..rows {
        let target = input.target_ids[r] as usize;
        if target >= vocab {
            return Err(PluginError::new(
                ErrorCode::ShapeMismatch,
                format!("target id {target} is outside the vocabulary of {vocab}"),
            ));
        }
        let (score, grad) = row_fn(input.logits.row(r), target);
        scores.push(score as f32);
        if input.want_grad {
            grads.extend(grad.into_iter().map(|g| g as f32));
        }
    }
    let grad_logits = if input.want_grad {
        Some(Tensor::new(vec![rows, vocab], grads)?)
    } else {
        None
    };
    Ok(StepOutput {
        scores,
        grad_logits,
        grad_contrast_logits: None,
    })
}

fn one_hot_minus(p: &[f64], target: usize, scale: f64, sign: f64) -> Vec<f64> {
    // scale * sign * (e_target - p)
    p.iter()
        .enumerate()
        .map(|(j, &pj)| scale * sign * (f64::from(u8::from(j == target)) - pj))
        .collect()
}

/// `logit`: the raw logit of the target token, `z[y]`.
pub struct Logit;
impl PluginInfo for Logit {
    const NAME: &'static str = "logit";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Logit of the target token: z[y].";
    type Params = NoParams;
    fn capabilities() -> Capabilities {
        Capabilities::step_function(Flags::NONE, "absmax")
    }
}
impl StepFunctionPlugin for Logit {
    fn new(_: NoParams) -> Result<Self, PluginError> {
        Ok(Self)
    }
    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        per_row(input, |z, y| {
            let mut g = vec![0.0; z.len()];
            g[y] = 1.0;
            (z[y] as f64, g)
        })
    }
}

/// `probability`: `softmax(z)[y]`, or `log_softmax(z)[y]` with `logprob`.
pub struct Probability(ProbParams);
impl PluginInfo for Probability {
    const NAME: &'static str = "probability";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Probability of the target token: softmax(z)[y] (logprob: log).";
    type Params = ProbParams;
    fn capabilities() -> Capabilities {
        Capabilities::step_function(Flags::NONE, "prod")
    }
}
impl StepFunctionPlugin for Probability {
    fn new(p: ProbParams) -> Result<Self, PluginError> {
        Ok(Self(p))
    }
    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        let logprob = self.0.logprob;
        per_row(input, |z, y| {
            let lp = log_softmax(z);
            let p: Vec<f64> = lp.iter().map(|v| v.exp()).collect();
            if logprob {
                (lp[y], one_hot_minus(&p, y, 1.0, 1.0))
            } else {
                (p[y], one_hot_minus(&p, y, p[y], 1.0))
            }
        })
    }
}

/// `entropy`: `-Σ p ln p` of the next-token distribution.
pub struct Entropy;
impl PluginInfo for Entropy {
    const NAME: &'static str = "entropy";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Entropy (nats) of the next-token distribution.";
    type Params = NoParams;
    fn capabilities() -> Capabilities {
        Capabilities::step_function(Flags::NONE, "sum")
    }
}
impl StepFunctionPlugin for Entropy {
    fn new(_: NoParams) -> Result<Self, PluginError> {
        Ok(Self)
    }
    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        per_row(input, |z, _| {
            let lp = log_softmax(z);
            let p: Vec<f64> = lp.iter().map(|v| v.exp()).collect();
            // 0 * ln 0 = 0, as torch's Categorical does.
            let h: f64 = -p
                .iter()
                .zip(&lp)
                .map(|(pi, li)| if *pi > 0.0 { pi * li } else { 0.0 })
                .sum::<f64>();
            // dH/dz_j = -p_j (ln p_j + H)
            let g = p
                .iter()
                .zip(&lp)
                .map(|(pj, lj)| if *pj > 0.0 { -pj * (lj + h) } else { 0.0 })
                .collect();
            (h, g)
        })
    }
}

/// `crossentropy`: `-ln softmax(z)[y]`.
pub struct CrossEntropy;
impl PluginInfo for CrossEntropy {
    const NAME: &'static str = "crossentropy";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Cross-entropy of the target token: -ln softmax(z)[y].";
    type Params = NoParams;
    fn capabilities() -> Capabilities {
        Capabilities::step_function(Flags::NONE, "sum")
    }
}
impl StepFunctionPlugin for CrossEntropy {
    fn new(_: NoParams) -> Result<Self, PluginError> {
        Ok(Self)
    }
    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        per_row(input, |z, y| {
            let p = softmax(z);
            (-log_softmax(z)[y], one_hot_minus(&p, y, 1.0, -1.0))
        })
    }
}

/// `perplexity`: `2 ** crossentropy` (Inseq's base-2 quirk on a natural-log cross-entropy, kept
/// for parity).
pub struct Perplexity;
impl PluginInfo for Perplexity {
    const NAME: &'static str = "perplexity";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Perplexity of the target token: 2 ** crossentropy (as Inseq).";
    type Params = NoParams;
    fn capabilities() -> Capabilities {
        Capabilities::step_function(Flags::NONE, "prod")
    }
}
impl StepFunctionPlugin for Perplexity {
    fn new(_: NoParams) -> Result<Self, PluginError> {
        Ok(Self)
    }
    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        per_row(input, |z, y| {
            let p = softmax(z);
            let ce = -log_softmax(z)[y];
            let ppl = 2f64.powf(ce);
            (
                ppl,
                one_hot_minus(&p, y, ppl * std::f64::consts::LN_2, -1.0),
            )
        })
    }
}
