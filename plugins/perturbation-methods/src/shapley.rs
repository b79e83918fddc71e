//! `shapley_value_sampling`: Captum `ShapleyValueSampling` over tokens or groups.

use rand::seq::SliceRandom;
use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::features::{rng, score_rows, Features, Granularity, Grouping};

/// Parameters of `shapley_value_sampling`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct ShapleyParams {
    /// Number of random feature permutations averaged (Captum's default 25).
    pub n_samples: usize,
    /// Seed of the permutations; unset = a fresh random seed at every call.
    pub seed: Option<u64>,
    /// Features: `token`, `word` or `sentence` (from the token texts).
    pub granularity: Granularity,
    /// Explicit features: `[start, end)` position spans of the source side (encoder-decoder)
    /// or of the sequence (decoder-only); other positions are features of their own.
    pub spans: Option<Vec<[usize; 2]>>,
    /// Explicit spans of the target side of encoder-decoder models (with `attribute_target`).
    pub target_spans: Option<Vec<[usize; 2]>>,
    /// Permutations per host request (each costs `features + 1` inputs); unset = all.
    pub internal_batch_size: Option<usize>,
}

impl Default for ShapleyParams {
    fn default() -> Self {
        Self {
            n_samples: 25,
            seed: None,
            granularity: Granularity::Token,
            spans: None,
            target_spans: None,
            internal_batch_size: None,
        }
    }
}

/// Shapley values by permutation sampling (Castro et al. 2009, Captum): for each random order
/// of the features, start from the baseline input (every feature replaced by UNK) and put the
/// features back one by one; a feature gets the score change it causes, averaged over orders.
/// The attributions of one order sum to `f(x) − f(baseline)` at every step.
pub struct ShapleyValueSampling(ShapleyParams);

impl PluginInfo for ShapleyValueSampling {
    const NAME: &'static str = "shapley_value_sampling";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Shapley values of tokens or groups by permutation sampling (Captum ShapleyValueSampling).";
    type Params = ShapleyParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(Flags::USES_BASELINES, OutputKind::Coarse, &[])
    }
}

/// Per-feature values `(features, steps)` of the permutations `orders` from the scores of
/// their points: point 0 is the baseline, then `features` points per order.
pub(crate) fn marginals(
    orders: &[Vec<usize>],
    scores: &[Vec<f32>],
    n: usize,
    ns: usize,
) -> Vec<Vec<f32>> {
    let mut sums = vec![vec![0f32; ns]; n];
    for (o, order) in orders.iter().enumerate() {
        let mut prev = &scores[0];
        for (r, &k) in order.iter().enumerate() {
            let cur = &scores[1 + o * n + r];
            for j in 0..ns {
                sums[k][j] += cur[j] - prev[j];
            }
            prev = cur;
        }
    }
    let m = orders.len().max(1) as f32;
    sums.iter_mut().flatten().for_each(|v| *v /= m);
    sums
}

impl AttributionPlugin for ShapleyValueSampling {
    fn new(p: ShapleyParams) -> Result<Self, PluginError> {
        if p.n_samples == 0 {
            return Err(PluginError::invalid_params(
                "n_samples must be at least 1, got 0",
            ));
        }
        rinseq_sdk::toolkit::check_batch_size(p.internal_batch_size)?;
        Ok(Self(p))
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let p = &self.0;
        let sides = AttributedSides::of(host, request);
        let grouping = Grouping {
            granularity: p.granularity,
            spans: p.spans.clone(),
            target_spans: p.target_spans.clone(),
        };
        let mut rng = rng(p.seed);
        let mut out = AttributionOutput::default();
        for (i, seq) in request.sequences.iter().enumerate() {
            let feats = Features::new(host, seq, sides, &grouping)?;
            let (n, ns) = (feats.len(), seq.steps.len());
            let orders: Vec<Vec<usize>> = (0..p.n_samples)
                .map(|_| {
                    let mut o: Vec<usize> = (0..n).collect();
                    o.shuffle(&mut rng);
                    o
                })
                .collect();
            let per_request = p.internal_batch_size.unwrap_or(p.n_samples).max(1);
            let mut baseline = None;
            let mut scores: Vec<Vec<f32>> = Vec::new();
            for chunk in orders.chunks(per_request) {
                let mut points = Vec::with_capacity(1 + chunk.len() * n);
                points.push(feats.baseline_point(seq, &vec![true; n]));
                for order in chunk {
                    let mut replaced = vec![true; n];
                    for &k in order {
                        replaced[k] = false;
                        points.push(feats.baseline_point(seq, &replaced));
                    }
                }
                let mut rows = score_rows(host, i, points, &seq.steps)?.into_iter();
                let b = rows.next().unwrap_or_default();
                if baseline.is_none() {
                    scores.push(b.clone());
                    baseline = Some(b);
                }
                scores.extend(rows);
            }
            out.sequences
                .push(feats.coarse(&marginals(&orders, &scores, n, ns))?);
        }
        Ok(out)
    }
}
