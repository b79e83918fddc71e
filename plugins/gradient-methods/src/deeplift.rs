//! `deeplift`: Captum `DeepLift` (rescale rule) against the UNK baseline:
//! `(x − x′) ⊙ m`, where `m` are the DeepLIFT multipliers of the attributed function.
//!
//! The multipliers come from the host: a [`GradientRule::DeepLiftRescale`] request whose first
//! point is the baseline and whose second point is the actual input; the plugin reads the
//! multipliers at the second point and the scores of both points for the convergence delta.
//! As in Captum, only non-linearities HF builds as `nn.ReLU`/`nn.Tanh` modules are rescaled
//! (GELU/SiLU models get plain gradients, i.e. `(x − x′) ⊙ ∇f(x)`).

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use rinseq_sdk::toolkit::{
    convergence_deltas, finish_sequence, point_scores, AttributedSides, PathRun,
};

/// Parameters of `deeplift`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct DeepLiftParams {
    /// Add the step score `deltas`: Σ attributions − (f(x) − f(x′)) per step.
    pub return_convergence_delta: bool,
    /// Multiply the multipliers by `x − x′` (Captum's default); `false` returns the multipliers.
    pub multiply_by_inputs: bool,
}

impl Default for DeepLiftParams {
    fn default() -> Self {
        Self {
            return_convergence_delta: false,
            multiply_by_inputs: true,
        }
    }
}

/// DeepLIFT (rescale rule) from the baseline to the input embeddings.
pub struct DeepLift(DeepLiftParams);

impl PluginInfo for DeepLift {
    const NAME: &'static str = "deeplift";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "DeepLIFT rescale-rule multipliers times (input - baseline) (Captum DeepLift).";
    type Params = DeepLiftParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(
            Flags::USES_GRADIENTS | Flags::USES_BASELINES,
            OutputKind::Granular,
            &["vnorm"],
        )
    }
}

impl AttributionPlugin for DeepLift {
    fn new(p: DeepLiftParams) -> Result<Self, PluginError> {
        Ok(Self(p))
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let sides = AttributedSides::of(host, request);
        run_deeplift(host, request, &Wrt::InputEmbeddings, sides, &self.0)
    }
}

/// DeepLIFT at `wrt` (input embeddings or a layer) for every sequence. For a layer, the baseline
/// point is the baseline *input* (token ids), so that every non-linearity above the layer is
/// compared with its value in the baseline forward, and deltas compare the model at the actual
/// and baseline inputs (Captum `LayerDeepLift`).
pub fn run_deeplift(
    host: &Host<'_>,
    request: &AttributionRequest,
    wrt: &Wrt,
    sides: AttributedSides,
    p: &DeepLiftParams,
) -> Result<AttributionOutput, PluginError> {
    // The baseline point and the input, in one request per sequence.
    let run = PathRun::new(host, request, wrt, sides, Some(2), 2)
        .with_rule(GradientRule::DeepLiftRescale);
    run.run(|s, progress| {
        let (i, seq) = (s.i, s.seq);
        let mut acc = s.accum();
        let mut f = vec![Vec::new(), Vec::new()];
        s.for_each_point(
            2,
            progress,
            |k| {
                if k == 0 && *wrt != Wrt::InputEmbeddings {
                    Ok(baseline_input_ids(request, i))
                } else if k == 0 {
                    s.ends.baseline_point()
                } else {
                    Ok(InputPoint::actual())
                }
            },
            |k, g| {
                f[k] = g.scores.to_vec();
                if k == 1 {
                    acc.add(&s.ends, &g, 1.0)?;
                }
                Ok(())
            },
        )?;
        let (src, tgt) = acc.finish_by_inputs(&s.ends, p.multiply_by_inputs)?;
        let deltas = if p.return_convergence_delta {
            if *wrt != Wrt::InputEmbeddings {
                let baseline = s.input_baseline_point()?;
                f = point_scores(host, i, seq, vec![baseline, InputPoint::actual()])?;
            }
            Some(convergence_deltas(
                src.as_ref(),
                tgt.as_ref(),
                &f[1],
                &f[0],
            )?)
        } else {
            None
        };
        finish_sequence(seq, src, tgt, deltas)
    })
}

/// The baseline input of sequence `i` as token ids: the source always, the target when it is an
/// input (decoder-only models, or `attribute_target`), as Captum's baseline forward.
fn baseline_input_ids(request: &AttributionRequest, i: usize) -> InputPoint {
    let seq = &request.sequences[i];
    InputPoint {
        source: PointSide::Ids(seq.source_baseline_ids.clone()),
        target: if request.attribute_target {
            PointSide::Ids(seq.target_baseline_ids.clone())
        } else {
            PointSide::Actual
        },
    }
}
