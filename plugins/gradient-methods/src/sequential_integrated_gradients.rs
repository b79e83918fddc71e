//! `sequential_integrated_gradients` (SIG, Enguehard 2023; Inseq's
//! `ops/sequential_integrated_gradients.py`): for each token position `i` separately, integrated
//! gradients along the path where only token `i` moves from its baseline to its value and every
//! other token keeps its actual value; the attribution of token `i` comes from its own path.
//!
//! As in Inseq, position `i` is interpolated on every attributed side at once (encoder-decoder
//! with `attribute_target`: source token `i` and target token `i` together). Inseq requires both
//! sides to have the same length; here a side shorter than `i` simply keeps its actual values.
//! Target positions no step can see (at or after the last step) get zero without being run.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use rinseq_sdk::toolkit::{
    add_at_position, check_batch_size, AttributedSides, Endpoints, IntegrationMethod, PathRun,
    PointGrads, Quadrature,
};

/// Parameters of `sequential_integrated_gradients`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct SigParams {
    /// Number of points on each token's path (Captum `n_steps`).
    pub n_steps: usize,
    /// Integral approximation rule.
    pub method: IntegrationMethod,
    /// Path points per host request; unset = one token's `n_steps` points per request (fewer if
    /// the returned gradients would exceed 256 MiB).
    pub internal_batch_size: Option<usize>,
    /// Add the step score `deltas`: Σ attributions − (f(x) − f(x′)) per step (SIG is not complete,
    /// so this is not expected to vanish).
    pub return_convergence_delta: bool,
    /// Multiply each token's integrated gradient by `xᵢ − x′ᵢ` (default).
    pub multiply_by_inputs: bool,
}

impl Default for SigParams {
    fn default() -> Self {
        Self {
            n_steps: 50,
            method: IntegrationMethod::Gausslegendre,
            internal_batch_size: None,
            return_convergence_delta: false,
            multiply_by_inputs: true,
        }
    }
}

/// Sequential integrated gradients: one integrated-gradients path per token.
pub struct SequentialIntegratedGradients(SigParams);

impl PluginInfo for SequentialIntegratedGradients {
    const NAME: &'static str = "sequential_integrated_gradients";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Integrated gradients of each token along its own path, the others fixed (SIG).";
    type Params = SigParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(
            Flags::USES_GRADIENTS | Flags::USES_BASELINES,
            OutputKind::Granular,
            &["vnorm"],
        )
    }
}

/// Positions to run: those where some attributed side has a token that some step can see.
fn positions(seq: &SequenceInput, ends: &Endpoints) -> Vec<usize> {
    let last_step = seq.steps.iter().copied().max().unwrap_or(0) as usize;
    let src = ends.source.as_ref().map_or(0, |e| e.len());
    let tgt = ends.target.as_ref().map_or(0, |e| e.len().min(last_step));
    (0..src.max(tgt)).collect()
}

/// Same, sized from the request alone (for progress totals).
fn n_positions(seq: &SequenceInput, sides: AttributedSides) -> usize {
    let last_step = seq.steps.iter().copied().max().unwrap_or(0) as usize;
    let src = if sides.source { seq.source.len() } else { 0 };
    let tgt = if sides.target {
        seq.target.len().min(last_step)
    } else {
        0
    };
    src.max(tgt)
}

impl AttributionPlugin for SequentialIntegratedGradients {
    fn new(p: SigParams) -> Result<Self, PluginError> {
        p.method.check_steps(p.n_steps)?;
        check_batch_size(p.internal_batch_size)?;
        Ok(Self(p))
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let p = &self.0;
        let Quadrature { weights, alphas } = p.method.quadrature(p.n_steps);
        // One token's n_steps points per request by default.
        let run = PathRun::on_inputs(host, request, p.internal_batch_size, p.n_steps)
            .points_per_sequence(|seq, sides| n_positions(seq, sides) * p.n_steps);
        run.run(|s, progress| {
            let ends = &s.ends;
            let pos = positions(s.seq, ends);
            let mut acc = s.accum();
            // Point k: token pos[k / n] on the path at alphas[k % n], everything else actual.
            let make_point = |k: usize| {
                let (idx, alpha) = (pos[k / p.n_steps], alphas[k % p.n_steps] as f32);
                ends.point(|_, e| {
                    let mut t = e.x.clone();
                    if idx < e.len() {
                        let h = e.hidden();
                        let b = e.baseline()?;
                        for j in idx * h..(idx + 1) * h {
                            t.data[j] = b.data[j] + alpha * (e.x.data[j] - b.data[j]);
                        }
                    }
                    Ok(t)
                })
            };
            let visit = |k: usize, g: PointGrads<'_>| {
                let (idx, w) = (pos[k / p.n_steps], weights[k % p.n_steps]);
                for (side, e) in ends.sides() {
                    // Only token idx's own row.
                    if idx < e.len() {
                        let (a, gs) = acc.with_grads(side, &g)?;
                        add_at_position(a, gs, e, idx, |_| w);
                    }
                }
                Ok(())
            };
            let n_points = pos.len() * p.n_steps;
            s.for_each_point(n_points, progress, make_point, visit)?;
            s.finish(acc, p.multiply_by_inputs, p.return_convergence_delta)
        })
    }
}
