//! `gradient_shap`: Captum `GradientShap` (expected gradients): `n_samples` times, add Gaussian
//! noise to the input, draw a baseline from the baseline set (here the single UNK baseline) and a
//! point `α ~ U(0, 1)` between them, and average `(x̃ − x′) ⊙ ∂f(x′ + α(x̃ − x′))`.
//!
//! Sampling uses a seeded `StdRng` (ChaCha12): Captum draws noise from torch's generator and
//! `α` from numpy's, so no seed reproduces Captum's samples bit for bit; the estimator and its
//! distribution are the same. Samples are shared by all the steps of a sequence (one host request
//! covers every step), whereas Inseq draws fresh ones at every step: each step's estimate has the
//! same distribution, only the correlation between steps differs.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rinseq_sdk::prelude::*;
use serde::Deserialize;

use rinseq_sdk::toolkit::{
    check_batch_size, convergence_deltas, finish_sequence, point_scores, PathRun,
};

/// Parameters of `gradient_shap`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct GradientShapParams {
    /// Number of random samples (noisy input, baseline, α) averaged.
    pub n_samples: usize,
    /// Standard deviation of the Gaussian noise added to every input value (0 = no noise).
    pub stdevs: f64,
    /// Seed of the random generator; unset = a fresh random seed at every call (as Captum,
    /// whose torch/numpy streams cannot be reproduced here anyway).
    pub seed: Option<u64>,
    /// Samples per host request; unset = all `n_samples` at once unless the returned gradients
    /// would exceed 256 MiB.
    pub internal_batch_size: Option<usize>,
    /// Add the step score `deltas`: the mean over samples of
    /// Σ attributionsₛ − (f(x̃ₛ) − f(x′)) (Captum returns one delta per sample).
    pub return_convergence_delta: bool,
    /// Multiply the gradients by `x̃ − x′` (Captum's default); `false` averages the gradients.
    pub multiply_by_inputs: bool,
}

impl Default for GradientShapParams {
    fn default() -> Self {
        Self {
            n_samples: 5,
            stdevs: 0.0,
            seed: None,
            internal_batch_size: None,
            return_convergence_delta: false,
            multiply_by_inputs: true,
        }
    }
}

/// Expected gradients between the UNK baseline and noisy copies of the input embeddings.
pub struct GradientShap(GradientShapParams);

impl PluginInfo for GradientShap {
    const NAME: &'static str = "gradient_shap";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Expected gradients between the baseline and noisy inputs (Captum GradientShap).";
    type Params = GradientShapParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(
            Flags::USES_GRADIENTS | Flags::USES_BASELINES,
            OutputKind::Granular,
            &["vnorm"],
        )
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// One sample: the noisy input of each attributed side and its α.
struct Sample {
    source: Option<Tensor>,
    target: Option<Tensor>,
    alpha: f32,
}

impl AttributionPlugin for GradientShap {
    fn new(p: GradientShapParams) -> Result<Self, PluginError> {
        if p.n_samples == 0 {
            return Err(PluginError::invalid_params(
                "n_samples must be at least 1, got 0",
            ));
        }
        if !(p.stdevs.is_finite() && p.stdevs >= 0.0) {
            return Err(PluginError::invalid_params(format!(
                "stdevs must be a finite number >= 0, got {}",
                p.stdevs
            )));
        }
        check_batch_size(p.internal_batch_size)?;
        Ok(Self(p))
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let p = &self.0;
        let mut rng = match p.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let run = PathRun::on_inputs(host, request, p.internal_batch_size, p.n_samples);
        run.run(|one, progress| {
            let (i, seq, ends) = (one.i, one.seq, &one.ends);
            let noisy = |x: &Tensor, rng: &mut StdRng| {
                let data = x
                    .data
                    .iter()
                    .map(|v| {
                        if p.stdevs > 0.0 {
                            (*v as f64 + p.stdevs * normal(rng)) as f32
                        } else {
                            *v
                        }
                    })
                    .collect();
                Tensor::new(x.shape.to_vec(), data)
            };
            let mut samples = Vec::with_capacity(p.n_samples);
            for _ in 0..p.n_samples {
                let source = ends
                    .source
                    .as_ref()
                    .map(|e| noisy(&e.x, &mut rng))
                    .transpose()?;
                let target = ends
                    .target
                    .as_ref()
                    .map(|e| noisy(&e.x, &mut rng))
                    .transpose()?;
                let alpha = rng.random::<f64>() as f32;
                samples.push(Sample {
                    source,
                    target,
                    alpha,
                });
            }
            let noisy_of = |s: &Sample, side: Side| {
                if side == Side::Source {
                    s.source.clone()
                } else {
                    s.target.clone()
                }
                .expect("a noisy input per attributed side")
            };
            // The point of sample k: x′ + α (x̃ − x′).
            let make_point = |k: usize| {
                let s = &samples[k];
                ends.point(|side, e| {
                    let xt = noisy_of(s, side);
                    let b = e.baseline()?;
                    let data = xt
                        .data
                        .iter()
                        .zip(b.data.iter())
                        .map(|(x, b)| b + s.alpha * (x - b))
                        .collect();
                    Tensor::new(xt.shape.to_vec(), data)
                })
            };
            let mut acc = one.accum();
            let w = 1.0 / p.n_samples as f64;
            one.for_each_point(p.n_samples, progress, make_point, |k, g| {
                if !p.multiply_by_inputs {
                    return acc.add(ends, &g, w);
                }
                // (x̃ₖ − x′) ⊙ gₖ differs per sample: multiply before accumulating.
                for (side, e) in ends.sides() {
                    let (a, gs) = acc.with_grads(side, &g)?;
                    let xt = noisy_of(&samples[k], side);
                    let b = e.baseline()?;
                    let n = xt.data.len();
                    for (j, (a, g)) in a.iter_mut().zip(gs).enumerate() {
                        let d = xt.data[j % n] - b.data[j % n];
                        *a += w * (*g as f64) * d as f64;
                    }
                }
                Ok(())
            })?;
            let (src, tgt) = acc.finish(ends, |_| Ok(None))?;
            let deltas = if p.return_convergence_delta {
                // f at every noisy input, then f at the baseline.
                let mut points = samples
                    .iter()
                    .map(|s| ends.point(|side, _| Ok(noisy_of(s, side))))
                    .collect::<Result<Vec<_>, _>>()?;
                points.push(ends.baseline_point()?);
                let f = point_scores(host, i, seq, points)?;
                let ns = seq.steps.len();
                let f_base = &f[p.n_samples];
                let mean_end: Vec<f32> = (0..ns)
                    .map(|s| (f[..p.n_samples].iter().map(|r| r[s] as f64).sum::<f64>() * w) as f32)
                    .collect();
                // mean over samples of Σ attrₛ − (f(x̃ₛ) − f(x′)) = Σ mean attr − (mean f(x̃) − f(x′)).
                Some(convergence_deltas(
                    src.as_ref(),
                    tgt.as_ref(),
                    &mean_end,
                    f_base,
                )?)
            } else {
                None
            };
            finish_sequence(seq, src, tgt, deltas)
        })
    }
}
