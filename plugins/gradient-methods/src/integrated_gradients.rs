//! `integrated_gradients`: Captum `IntegratedGradients`,
//! `(x − x′) ⊙ ∫₀¹ ∂f(x′ + α(x − x′))/∂x dα`, the integral approximated by a quadrature rule.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::common::{
    accumulate, check_batch_size, convergence_deltas, finish_sequence, for_each_point, n_chunks,
    point_scores, points_per_request, Accum, AttributedSides, Endpoints, Progress,
};
use crate::quadrature::IntegrationMethod;

/// Parameters of `integrated_gradients`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct IntegratedGradientsParams {
    /// Number of points on the path from the baseline to the input (Captum `n_steps`).
    pub n_steps: usize,
    /// Integral approximation rule.
    pub method: IntegrationMethod,
    /// Path points per host request (Captum `internal_batch_size`); unset = all `n_steps` at once
    /// unless the returned gradients would exceed 256 MiB.
    pub internal_batch_size: Option<usize>,
    /// Add the step score `deltas`: Σ attributions − (f(x) − f(x′)) per step.
    pub return_convergence_delta: bool,
    /// Multiply the integrated gradient by `x − x′` (Captum's default); `false` returns the
    /// integrated gradient itself.
    pub multiply_by_inputs: bool,
}

impl Default for IntegratedGradientsParams {
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

impl IntegratedGradientsParams {
    /// Checks the parameters (shared with `layer_integrated_gradients`).
    pub fn validate(&self) -> Result<(), PluginError> {
        self.method.check_steps(self.n_steps)?;
        check_batch_size(self.internal_batch_size)
    }
}

/// Integrated gradients from the baseline (UNK embeddings) to the input embeddings.
pub struct IntegratedGradients(IntegratedGradientsParams);

impl PluginInfo for IntegratedGradients {
    const NAME: &'static str = "integrated_gradients";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Integrated gradients from the baseline to the input embeddings (Captum IntegratedGradients).";
    type Params = IntegratedGradientsParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(
            Flags::USES_GRADIENTS | Flags::USES_BASELINES,
            OutputKind::GRANULAR,
            "vnorm",
        )
    }
}

impl AttributionPlugin for IntegratedGradients {
    fn new(p: IntegratedGradientsParams) -> Result<Self, PluginError> {
        p.validate()?;
        Ok(Self(p))
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let sides = AttributedSides::of(host, request);
        run_integrated_gradients(host, request, &Wrt::InputEmbeddings, sides, &self.0)
    }
}

/// `Σ_k w_k ∂f(x′ + α_k (x − x′))` over the quadrature points, per attributed side, as
/// `(steps, len, hidden)` sums.
#[allow(clippy::too_many_arguments)]
pub fn integrate(
    host: &Host<'_>,
    i: usize,
    seq: &SequenceInput,
    wrt: &Wrt,
    ends: &Endpoints,
    p: &IntegratedGradientsParams,
    chunk: usize,
    progress: &mut Progress,
) -> Result<Accum, PluginError> {
    let (weights, alphas) = p.method.table(p.n_steps);
    let mut acc = Accum::new(ends, seq.steps.len());
    for_each_point(
        host,
        i,
        seq,
        wrt,
        GradientRule::STANDARD,
        p.n_steps,
        chunk,
        progress,
        |k| ends.point(|_, e| e.lerp(alphas[k] as f32)),
        |k, g| accumulate(&mut acc, ends, &g, weights[k]),
    )?;
    Ok(acc)
}

/// Integrated gradients at `wrt` (input embeddings or a layer) for every sequence; deltas compare
/// against the model at the actual and baseline *inputs*, as Captum does for layer methods too.
pub fn run_integrated_gradients(
    host: &Host<'_>,
    request: &AttributionRequest,
    wrt: &Wrt,
    sides: AttributedSides,
    p: &IntegratedGradientsParams,
) -> Result<AttributionOutput, PluginError> {
    let chunks: Vec<usize> = request
        .sequences
        .iter()
        .map(|seq| points_per_request(p.internal_batch_size, p.n_steps, host, seq, sides))
        .collect();
    let mut progress = Progress::new(chunks.iter().map(|&c| n_chunks(p.n_steps, c)).sum());
    let mut out = AttributionOutput::default();
    for (i, seq) in request.sequences.iter().enumerate() {
        let ends = Endpoints::load(host, i, wrt, sides, true)?;
        let acc = integrate(host, i, seq, wrt, &ends, p, chunks[i], &mut progress)?;
        let (src, tgt) = acc.finish(&ends, |e| {
            if p.multiply_by_inputs {
                e.diff().map(Some)
            } else {
                Ok(None)
            }
        })?;
        let deltas = if p.return_convergence_delta {
            let baseline = input_baseline_point(host, request, i, wrt, &ends)?;
            let f = point_scores(host, i, seq, vec![InputPoint::actual(), baseline])?;
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

/// The baseline *input* point of sequence `i` (baseline embeddings on the attributed input
/// sides), reusing `ends` when they already are input embeddings.
pub fn input_baseline_point(
    host: &Host<'_>,
    request: &AttributionRequest,
    i: usize,
    wrt: &Wrt,
    ends: &Endpoints,
) -> Result<InputPoint, PluginError> {
    if *wrt == Wrt::InputEmbeddings && ends.sides().all(|(_, e)| e.b.is_some()) {
        return ends.baseline_point();
    }
    let sides = AttributedSides::of(host, request);
    Endpoints::load(host, i, &Wrt::InputEmbeddings, sides, true)?.baseline_point()
}
