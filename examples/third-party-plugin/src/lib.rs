//! An example third-party rinseq plugin library, built in its own workspace:
//!
//! - `token_gradient_norm`: an attribution method giving one score per token (coarse output),
//!   the p-norm of the gradient of the attributed function w.r.t. that token's embedding;
//! - `log_odds`: a step function, `ln(p / (1 - p))` of the target token, usable both as a step
//!   score and as the attribution target (it returns its gradient w.r.t. the logits);
//! - `top_k`: an aggregator keeping the `k` largest-magnitude scores of each generated token
//!   (the others become 0), usable in any aggregation pipeline (`--aggregator top_k`).

use rinseq_sdk::prelude::*;

rinseq_sdk::export_plugins! {
    attribution: [TokenGradientNorm],
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
        Capabilities::method(Flags::USES_GRADIENTS, OutputKind::COARSE, "")
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
        let mut out = AttributionOutput::default();
        for (i, seq) in request.sequences.iter().enumerate() {
            let g = host.gradients(&GradientRequest {
                sequence: i as u32,
                wrt: Wrt::InputEmbeddings,
                points: vec![InputPoint::actual()].into(),
                steps: seq.steps.clone(),
                rule: GradientRule::STANDARD,
            })?;
            let norm = |t: Tensor| -> Result<Tensor, PluginError> {
                // (1, steps, len, hidden) -> (len, steps)
                let (steps, len, hidden) = (t.shape[1], t.shape[2], t.shape[3]);
                let mut data = vec![0.0; len * steps];
                for s in 0..steps {
                    for tok in 0..len {
                        let row = &t.data[(s * len + tok) * hidden..(s * len + tok + 1) * hidden];
                        let n: f32 = row.iter().map(|v| v.abs().powf(self.0.ord)).sum();
                        data[tok * steps + s] = n.powf(1.0 / self.0.ord);
                    }
                }
                Tensor::new(vec![len, steps], data)
            };
            let source = g.source.into_option().map(norm).transpose()?;
            let mut target = g.target.into_option().map(norm).transpose()?;
            if let Some(t) = target.as_mut() {
                rinseq_sdk::layout::mask_future_positions(t, &seq.steps);
            }
            out.sequences.push(SequenceScores {
                source: source.into(),
                target: target.into(),
                ..Default::default()
            });
        }
        Ok(out)
    }
}

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

impl StepFunctionPlugin for LogOdds {
    fn new(_: NoParams) -> Result<Self, PluginError> {
        Ok(Self)
    }

    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        let (rows, vocab) = (input.logits.shape[0], input.logits.shape[1]);
        let mut out = StepOutput::default();
        let mut grads = Vec::new();
        for r in 0..rows {
            let z = input.logits.row(r);
            let y = input.target_ids[r] as usize;
            let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let exp: Vec<f64> = z.iter().map(|&v| (v as f64 - max).exp()).collect();
            let sum: f64 = exp.iter().sum();
            let p: Vec<f64> = exp.iter().map(|e| e / sum).collect();
            out.scores.push((p[y].ln() - (1.0 - p[y]).ln()) as f32);
            if input.want_grad {
                // d/dz ln(p/(1-p)) = (e_y - p) / (1 - p_y)
                grads.extend((0..vocab).map(|j| {
                    ((f64::from(u8::from(j == y)) - p[j]) / (1.0 - p[y])) as f32
                }));
            }
        }
        if input.want_grad {
            out.grad_logits = Some(Tensor::new(vec![rows, vocab], grads)?).into();
        }
        Ok(out)
    }
}

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
        if let Some(t) = seq.scores.source.as_mut().into_option() {
            parts.push(t);
        }
        if let Some(t) = seq.scores.target.as_mut().into_option() {
            parts.push(t);
        }
        if let Some(t) = parts.iter().find(|t| t.ndim() != 2) {
            return Err(PluginError::unsupported(format!(
                "top_k needs 2-D scores, got {:?}: aggregate first (e.g. --aggregator vnorm)",
                t.shape.as_slice()
            )));
        }
        let steps = parts.first().map_or(0, |t| t.shape[1]);
        for col in 0..steps {
            // Every (part, row) of this column, largest |score| first; NaN counts as 0.
            let mut cells: Vec<(usize, usize, f32)> = Vec::new();
            for (p, t) in parts.iter().enumerate() {
                for row in 0..t.shape[0] {
                    let v = t.data[row * steps + col];
                    cells.push((p, row, if v.is_nan() { 0.0 } else { v.abs() }));
                }
            }
            cells.sort_by(|a, b| b.2.total_cmp(&a.2));
            for &(p, row, _) in cells.iter().skip(self.0.k) {
                let v = &mut parts[p].data[row * steps + col];
                if !v.is_nan() {
                    *v = 0.0;
                }
            }
        }
        Ok(seq)
    }
}
