//! `integrated_gradients`: Captum `IntegratedGradients`,
//! `(x − x′) ⊙ ∫₀¹ ∂f(x′ + α(x − x′))/∂x dα`, the integral approximated by a quadrature rule.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use rinseq_sdk::toolkit::{
    check_batch_size, AttributedSides, IntegrationMethod, PathRun, PointGrads, Quadrature,
};

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
            OutputKind::Granular,
            &["vnorm"],
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

/// Integrated gradients at `wrt` (input embeddings or a layer) for every sequence; deltas compare
/// against the model at the actual and baseline *inputs*, as Captum does for layer methods too.
pub fn run_integrated_gradients(
    host: &Host<'_>,
    request: &AttributionRequest,
    wrt: &Wrt,
    sides: AttributedSides,
    p: &IntegratedGradientsParams,
) -> Result<AttributionOutput, PluginError> {
    let Quadrature { weights, alphas } = p.method.quadrature(p.n_steps);
    let run = PathRun::new(host, request, wrt, sides, p.internal_batch_size, p.n_steps);
    run.run(|s, progress| {
        // Σ_k w_k ∂f(x′ + α_k (x − x′)) over the quadrature points.
        let mut acc = s.accum();
        let point = |k: usize| s.ends.lerp_point(alphas[k] as f32);
        let visit = |k: usize, g: PointGrads<'_>| acc.add(&s.ends, &g, weights[k]);
        s.for_each_point(p.n_steps, progress, point, visit)?;
        s.finish(acc, p.multiply_by_inputs, p.return_convergence_delta)
    })
}
