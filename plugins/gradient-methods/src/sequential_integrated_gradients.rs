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

use crate::common::{
    check_batch_size, convergence_deltas, finish_sequence, for_each_point, missing_side, n_chunks,
    point_scores, points_per_request, Accum, AttributedSides, Endpoints, Progress,
};
use crate::quadrature::IntegrationMethod;

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
            OutputKind::GRANULAR,
            "vnorm",
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
        let sides = AttributedSides::of(host, request);
        let chunks: Vec<usize> = request
            .sequences
            .iter()
            .map(|seq| points_per_request(p.internal_batch_size, p.n_steps, host, seq, sides))
            .collect();
        let total: u64 = request
            .sequences
            .iter()
            .zip(&chunks)
            .map(|(s, &c)| n_chunks(n_positions(s, sides) * p.n_steps, c))
            .sum();
        let mut progress = Progress::new(total);
        let (weights, alphas) = p.method.table(p.n_steps);
        let wrt = Wrt::InputEmbeddings;
        let mut out = AttributionOutput::default();
        for (i, seq) in request.sequences.iter().enumerate() {
            let ends = Endpoints::load(host, i, &wrt, sides, true)?;
            let pos = positions(seq, &ends);
            let n_steps = seq.steps.len();
            let mut acc = Accum::new(&ends, n_steps);
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
            for_each_point(
                host,
                i,
                seq,
                &wrt,
                GradientRule::STANDARD,
                pos.len() * p.n_steps,
                chunks[i],
                &mut progress,
                make_point,
                |k, g| {
                    let (idx, w) = (pos[k / p.n_steps], weights[k % p.n_steps]);
                    for (side, e) in ends.sides() {
                        if idx >= e.len() {
                            continue;
                        }
                        let gs = g.side(side).ok_or_else(|| missing_side(side))?;
                        let (len, h) = (e.len(), e.hidden());
                        let a = acc.side_mut(side).expect("accumulator per attributed side");
                        if gs.len() != a.len() {
                            return Err(PluginError::new(
                                ErrorCode::SHAPE_MISMATCH,
                                format!(
                                    "host gradients of {} values, expected {}",
                                    gs.len(),
                                    a.len()
                                ),
                            ));
                        }
                        // Only token idx's own row: (steps, len, hidden).
                        for s in 0..n_steps {
                            let at = (s * len + idx) * h;
                            for j in at..at + h {
                                a[j] += w * gs[j] as f64;
                            }
                        }
                    }
                    Ok(())
                },
            )?;
            let (src, tgt) = acc.finish(&ends, |e| {
                if p.multiply_by_inputs {
                    e.diff().map(Some)
                } else {
                    Ok(None)
                }
            })?;
            let deltas = if p.return_convergence_delta {
                let f = point_scores(
                    host,
                    i,
                    seq,
                    vec![InputPoint::actual(), ends.baseline_point()?],
                )?;
                Some(convergence_deltas(
                    src.as_ref(),
                    tgt.as_ref(),
                    &f[0],
                    &f[1],
                )?)
            } else {
                None
            };
            out.sequences.push(finish_sequence(seq, src, tgt, deltas)?);
        }
        Ok(out)
    }
}
