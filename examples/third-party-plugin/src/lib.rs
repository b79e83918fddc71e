//! An example third-party rinseq plugin library, built in its own workspace:
//!
//! - `token_gradient_norm`: an attribution method giving one score per token (coarse output),
//!   the p-norm of the gradient of the attributed function w.r.t. that token's embedding;
//! - `leave_one_out`: a perturbation method (coarse output, no gradients): the drop of the
//!   attributed score when one token is replaced by its baseline id;
//! - `log_odds`: a step function, `ln(p / (1 - p))` of the target token, usable both as a step
//!   score and as the attribution target (it returns its gradient w.r.t. the logits);
//! - `top_k`: an aggregator keeping the `k` largest-magnitude scores of each generated token
//!   (the others become 0), usable in any aggregation pipeline (`--aggregator top_k`).

use rinseq_sdk::prelude::*;
use rinseq_sdk::toolkit::softmax::{onehot_minus, softmax};

rinseq_sdk::export_plugins! {
    attribution: [TokenGradientNorm, LeaveOneOut],
    step_functions: [LogOdds],
    aggregators: [TopK],
}

/// Parameters of `token_gradient_norm`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NormParams {
    /// Order of the norm over the embedding dimension.
    pub ord: f32,
}

impl Default for NormParams {
    fn default() -> Self {
        Self { ord: 2.0 }
    }
}

/// One score per token: ‖∂f/∂x_token‖_ord.
pub struct TokenGradientNorm(NormParams);

impl PluginInfo for TokenGradientNorm {
    const NAME: &'static str = "token_gradient_norm";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Per-token norm of the gradient of the target (coarse).";
    type Params = NormParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(Flags::USES_GRADIENTS, OutputKind::Coarse, &[])
    }
}

impl AttributionPlugin for TokenGradientNorm {
    fn new(p: NormParams) -> Result<Self, PluginError> {
        if p.ord <= 0.0 {
            return Err(PluginError::invalid_params("ord must be > 0"));
        }
        Ok(Self(p))
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let ord = self.0.ord;
        let norm = |g: Tensor| -> Result<Tensor, PluginError> {
            // (steps, len, hidden) -> (steps, len): one norm per token.
            let [steps, len, _] = g.dims()?;
            let data = g
                .data
                .chunks(g.shape[2].max(1))
                .map(|row| {
                    row.iter()
                        .map(|v| v.abs().powf(ord))
                        .sum::<f32>()
                        .powf(1.0 / ord)
                })
                .collect();
            Tensor::new(vec![steps, len], data)
        };
        let mut out = AttributionOutput::default();
        for (i, seq) in request.sequences.iter().enumerate() {
            // Every step at once: `(steps, len, hidden)` per attributed side.
            let (source, target) = plain_gradients(host, i, seq)?;
            let (source, target) = (source.map(norm).transpose()?, target.map(norm).transpose()?);
            // Token-major `(len, steps)`; the host masks positions a step cannot see.
            out.sequences.push(to_sequence_scores(seq, source, target)?);
        }
        Ok(out)
    }
}

/// Leave-one-out occlusion: `f(x) − f(x with token i replaced by its baseline id)`.
pub struct LeaveOneOut;

impl PluginInfo for LeaveOneOut {
    const NAME: &'static str = "leave_one_out";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Drop of the target score when each token is replaced by its baseline (coarse).";
    type Params = NoParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(Flags::NONE, OutputKind::Coarse, &[])
    }
}

// author-code: leave_one_out
impl AttributionPlugin for LeaveOneOut {
    fn new(_: NoParams) -> Result<Self, PluginError> {
        Ok(Self)
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let sides = AttributedSides::of(host, request);
        let mut out = AttributionOutput::default();
        for (i, seq) in request.sequences.iter().enumerate() {
            // Point 0 is the input, then one point per token some step sees, that token replaced.
            let occ = Occlusion::leave_one_out(seq, sides)?;
            // All points and steps in one request: the host batches the forwards.
            let scores = host.scores(ScoreRequest {
                sequence: i,
                points: occ.points.clone(),
                steps: seq.steps.clone(),
                ..Default::default()
            })?;
            // (len, steps) per side: f(x) − f(x with the token replaced).
            out.sequences.push(occ.drops(&scores)?);
        }
        Ok(out)
    }
}
// end author-code

/// `log_odds` takes no parameters.
#[derive(serde::Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// `ln(p / (1 - p))` of the target token.
pub struct LogOdds;

impl PluginInfo for LogOdds {
    const NAME: &'static str = "log_odds";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Log-odds of the target token: ln(p / (1 - p)).";
    type Params = NoParams;
    fn capabilities() -> Capabilities {
        Capabilities::step_function(Flags::NONE, "sum")
    }
}

// author-code: log_odds
impl StepFunctionPlugin for LogOdds {
    fn new(_: NoParams) -> Result<Self, PluginError> {
        Ok(Self)
    }

    fn compute(&self, x: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        let mut out = StepOutput::default();
        let mut grads = Vec::new(); // gradient
        for (row, &y) in x.target_ids.iter().enumerate() {
            let p = softmax(x.logits.row(row));
            let p_y = p[y as usize];
            out.scores.push((p_y.ln() - (1.0 - p_y).ln()) as f32);
            // gradient: d/dz ln(p_y / (1 - p_y)) = (onehot(y) - p) / (1 - p_y)
            let g = onehot_minus(&p, y as usize, 1.0 / (1.0 - p_y)); // gradient
            grads.extend(g.iter().map(|&v| v as f32)); // gradient
        }
        let grads = Tensor::new(x.logits.shape.to_vec(), grads)?; // gradient
        out.grad_logits = x.want_grad.then_some(grads); // gradient
        Ok(out)
    }
}
// end author-code

/// Parameters of `top_k`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TopKParams {
    /// How many scores to keep per generated token (over source and target together).
    pub k: usize,
}

impl Default for TopKParams {
    fn default() -> Self {
        Self { k: 3 }
    }
}

/// Keeps the `k` largest |score| of each generated-token column of 2-D attributions.
pub struct TopK(TopKParams);

impl PluginInfo for TopK {
    const NAME: &'static str = "top_k";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Keep the k largest-magnitude scores per generated token.";
    type Params = TopKParams;
}

impl AggregatorPlugin for TopK {
    fn new(p: TopKParams) -> Result<Self, PluginError> {
        Ok(Self(p))
    }

    fn aggregate(&self, mut seq: SequenceAttribution) -> Result<SequenceAttribution, PluginError> {
        let mut parts: Vec<&mut Tensor> = Vec::new();
        if let Some(t) = seq.scores.source.as_mut() {
            parts.push(t);
        }
        if let Some(t) = seq.scores.target.as_mut() {
            parts.push(t);
        }
        if let Some(t) = parts.iter().find(|t| t.ndim() != 2) {
            return Err(PluginError::unsupported(format!(
                "top_k needs 2-D scores, got {:?}: aggregate first (e.g. --aggregator vnorm)",
                &t.shape[..]
            )));
        }
        let steps = parts.first().map_or(0, |t| t.shape[1]);
        for col in 0..steps {
            // Every (part, row) of this column, largest |score| first; NaN counts as 0.
            let mut cells: Vec<(usize, usize, f32)> = Vec::new();
            for (p, t) in parts.iter().enumerate() {
                for row in 0..t.shape[0] {
                    let v = t.at(&[row, col]);
                    cells.push((p, row, if v.is_nan() { 0.0 } else { v.abs() }));
                }
            }
            cells.sort_by(|a, b| b.2.total_cmp(&a.2));
            for &(p, row, _) in cells.iter().skip(self.0.k) {
                let v = parts[p].at_mut(&[row, col]);
                if !v.is_nan() {
                    *v = 0.0;
                }
            }
        }
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rinseq_sdk::testing::{check_step_gradient, StepInputs, ToyHost};

    #[test]
    fn leave_one_out_is_the_score_drop_of_each_token() {
        let toy = ToyHost::new(&[1, 2, 3, 4, 5], 2);
        let out = toy.attribute(&LeaveOneOut).unwrap();
        let attr = out.sequences[0].target.as_ref().unwrap();
        let seq = &toy.request().sequences[0];
        assert_eq!(attr.shape, vec![5, seq.steps.len()]);
        let host = toy.host();
        let score = |point: InputPoint| {
            let request = ScoreRequest {
                sequence: 0,
                points: vec![point],
                steps: seq.steps.clone(),
                ..Default::default()
            };
            host.scores(request).unwrap()
        };
        let f = score(InputPoint::actual());
        for i in 0..4 {
            let mut ids = target_ids(seq).unwrap();
            ids[i] = seq.target_baseline_ids[i];
            let g = score(InputPoint::with_ids(Side::Target, ids));
            for j in 0..seq.steps.len() {
                assert_eq!(
                    attr.at(&[i, j]),
                    f.at(&[0, j]) - g.at(&[0, j]),
                    "token {i}, step {j}"
                );
            }
        }
    }

    #[test]
    fn token_gradient_norm_is_the_norm_of_the_gradient() {
        let toy = ToyHost::new(&[1, 2, 3, 4], 1);
        let method = TokenGradientNorm::new(NormParams { ord: 1.0 }).unwrap();
        let out = toy.attribute(&method).unwrap();
        let norms = out.sequences[0].target.as_ref().unwrap();
        let seq = &toy.request().sequences[0];
        let (_, grads) = plain_gradients(&toy.host(), 0, seq).unwrap();
        let grads = grads.unwrap();
        let [_, len, hidden] = grads.dims().unwrap();
        assert_eq!(norms.shape, vec![len, seq.steps.len()]);
        let l1: f32 = (0..hidden).map(|h| grads.at(&[1, 0, h]).abs()).sum();
        assert!((norms.at(&[0, 1]) - l1).abs() < 1e-6);
        assert!(norms.at(&[len - 1, 0]).is_nan()); // not visible at the first step
    }

    #[test]
    fn log_odds_gradient_matches_finite_differences() {
        let inputs = StepInputs::random(3, 6, 11).targets(&[0, 2, 5]);
        check_step_gradient(&LogOdds, &inputs, 1e-3).unwrap();
    }

    #[test]
    fn top_k_keeps_the_largest_scores_per_column() {
        let mut seq = SequenceAttribution::default();
        let t = Tensor::new(vec![3, 2], vec![1.0, -3.0, 2.0, 0.5, f32::NAN, 0.25]).unwrap();
        seq.scores.target = Some(t);
        let out = TopK(TopKParams { k: 1 }).aggregate(seq).unwrap();
        let t = out.scores.target.unwrap();
        assert_eq!((t.at(&[0, 0]), t.at(&[1, 0])), (0.0, 2.0));
        assert_eq!(
            (t.at(&[0, 1]), t.at(&[1, 1]), t.at(&[2, 1])),
            (-3.0, 0.0, 0.0)
        );
        assert!(t.at(&[2, 0]).is_nan());
    }
}
