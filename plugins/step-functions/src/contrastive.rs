//! Contrastive step functions: scores that compare the step's prediction with a contrastive
//! alternative (Inseq 0.7.1, reference §2.1–2.2).
//!
//! Notation: `z`, `y` are the step's logits and target; `z'`, `y'` the contrast logits and the
//! aligned contrast target from [`StepInput::contrast_logits`] and
//! [`StepInput::contrast_target_ids`]; `p = softmax(z)`, `p' = softmax(z')`.
//!
//! The host builds the contrast inputs from the host-level arguments `contrast_targets`,
//! `contrast_sources`, `contrast_targets_alignments`, `contrast_force_inputs` and
//! `skip_special_tokens` and strips them before the parameters reach these plugins, whose own
//! parameters are only `logprob` / `top_k` / `top_p` / `min_tokens_to_keep`. When there are no
//! contrast logits, every function here fails with an `invalid-params` error; empty contrast
//! target ids fall back to the original ones (Inseq's behaviour with `contrast_sources` only).
//!
//! Gradients: every function returns both d score / d z (`grad_logits`, zeros where the score
//! does not depend on `z`) and d score / d z' (`grad_contrast_logits`). When the host reuses the
//! original forward as the contrast forward (Inseq's default for an attributed function without
//! `contrast_force_inputs`, so `z' = z`), it must add the two.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::common::{contrast_per_row, ContrastRow, RowOut};
use crate::filtering;
use crate::simple::{NoParams, ProbParams};
use rinseq_sdk::toolkit::softmax::{log_softmax_f64, Dist};

/// A vector of zeros as long as the vocabulary.
fn zeros(row: &ContrastRow<'_>) -> Vec<f64> {
    vec![0.0; row.z.len()]
}

/// The one-hot vector `scale * e_i`.
fn onehot(len: usize, i: usize, scale: f64) -> Vec<f64> {
    let mut v = vec![0.0; len];
    v[i] = scale;
    v
}

/// Negates every entry.
fn neg(mut v: Vec<f64>) -> Vec<f64> {
    v.iter_mut().for_each(|x| *x = -*x);
    v
}

/// Scales every entry.
fn scaled(mut v: Vec<f64>, s: f64) -> Vec<f64> {
    v.iter_mut().for_each(|x| *x *= s);
    v
}

/// Implements [`PluginInfo`] for a contrastive step function.
macro_rules! contrastive_info {
    ($ty:ty, $name:literal, $params:ty, $agg:literal, $desc:literal) => {
        contrastive_info!($ty, $name, $params, $agg, $desc, Flags::NEEDS_CONTRAST);
    };
    ($ty:ty, $name:literal, $params:ty, $agg:literal, $desc:literal, $flags:expr) => {
        impl PluginInfo for $ty {
            const NAME: &'static str = $name;
            const VERSION: &'static str = env!("CARGO_PKG_VERSION");
            const DESCRIPTION: &'static str = $desc;
            type Params = $params;
            fn capabilities() -> Capabilities {
                Capabilities::step_function($flags, $agg)
            }
        }
    };
}

/// `contrast_logits`: the logit of the contrast target given the contrast input, `z'[y']`.
/// Span aggregation `absmax`.
pub struct ContrastLogits;
contrastive_info!(
    ContrastLogits,
    "contrast_logits",
    NoParams,
    "absmax",
    "Logit of the contrast target given the contrast input: z'[y']."
);
impl StepFunctionPlugin for ContrastLogits {
    fn new(_: NoParams) -> Result<Self, PluginError> {
        Ok(Self)
    }
    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        contrast_per_row(Self::NAME, input, |r| {
            Ok((
                f64::from(r.zc[r.yc]),
                zeros(r),
                onehot(r.zc.len(), r.yc, 1.0),
            ))
        })
    }
}

/// `contrast_prob`: `softmax(z')[y']`, or `log_softmax(z')[y']` with `logprob`.
/// Span aggregation `prod`.
pub struct ContrastProb(ProbParams);
contrastive_info!(
    ContrastProb,
    "contrast_prob",
    ProbParams,
    "prod",
    "Probability of the contrast target given the contrast input: softmax(z')[y'] (logprob: log)."
);
impl StepFunctionPlugin for ContrastProb {
    fn new(p: ProbParams) -> Result<Self, PluginError> {
        Ok(Self(p))
    }
    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        contrast_per_row(Self::NAME, input, |r| {
            let (s, gc) = Dist::of(r.zc).prob(r.yc, self.0.logprob);
            Ok((s, zeros(r), gc))
        })
    }
}

/// `contrast_logits_diff`: `z[y] - z'[y']` (Yin & Neubig 2022's original target).
/// Span aggregation `absmax`.
pub struct ContrastLogitsDiff;
contrastive_info!(
    ContrastLogitsDiff,
    "contrast_logits_diff",
    NoParams,
    "absmax",
    "Logit difference between target and contrast target: z[y] - z'[y']."
);
impl StepFunctionPlugin for ContrastLogitsDiff {
    fn new(_: NoParams) -> Result<Self, PluginError> {
        Ok(Self)
    }
    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        contrast_per_row(Self::NAME, input, |r| {
            Ok((
                f64::from(r.z[r.y]) - f64::from(r.zc[r.yc]),
                onehot(r.z.len(), r.y, 1.0),
                onehot(r.zc.len(), r.yc, -1.0),
            ))
        })
    }
}

/// `contrast_prob_diff`: `p[y] - p'[y']`, or `ln p[y] - ln p'[y']` with `logprob`.
/// Span aggregation `prod` (as Inseq, although the score can be negative).
pub struct ContrastProbDiff(ProbParams);
contrastive_info!(
    ContrastProbDiff,
    "contrast_prob_diff",
    ProbParams,
    "prod",
    "Probability difference between target and contrast target: p(y) - p'(y') (logprob: logs)."
);
impl StepFunctionPlugin for ContrastProbDiff {
    fn new(p: ProbParams) -> Result<Self, PluginError> {
        Ok(Self(p))
    }
    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        contrast_per_row(Self::NAME, input, |r| {
            let (s, g) = Dist::of(r.z).prob(r.y, self.0.logprob);
            let (sc, gc) = Dist::of(r.zc).prob(r.yc, self.0.logprob);
            Ok((s - sc, g, neg(gc)))
        })
    }
}

/// `pcxmi`: pointwise conditional cross-mutual information (Yin et al. 2021),
/// `-log2(p[y] / p'[y'])`, computed as `(ln p'[y'] - ln p[y]) / ln 2`. Span aggregation `sum`.
pub struct Pcxmi;
contrastive_info!(
    Pcxmi,
    "pcxmi",
    NoParams,
    "sum",
    "Pointwise conditional cross-mutual information: -log2(p(y) / p'(y'))."
);
impl StepFunctionPlugin for Pcxmi {
    fn new(_: NoParams) -> Result<Self, PluginError> {
        Ok(Self)
    }
    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        let inv_ln2 = 1.0 / std::f64::consts::LN_2;
        contrast_per_row(Self::NAME, input, |r| {
            let (lp, g) = Dist::of(r.z).prob(r.y, true);
            let (lpc, gc) = Dist::of(r.zc).prob(r.yc, true);
            Ok((
                (lpc - lp) * inv_ln2,
                scaled(g, -inv_ln2),
                scaled(gc, inv_ln2),
            ))
        })
    }
}

/// `in_context_pvi`: in-context pointwise V-usable information (Lu et al. 2023),
/// `-ln p[y] + ln p'[y']` (natural log). Span aggregation `absmax`.
pub struct InContextPvi;
contrastive_info!(
    InContextPvi,
    "in_context_pvi",
    NoParams,
    "absmax",
    "In-context pointwise V-usable information: -ln p(y) + ln p'(y')."
);
impl StepFunctionPlugin for InContextPvi {
    fn new(_: NoParams) -> Result<Self, PluginError> {
        Ok(Self)
    }
    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        contrast_per_row(Self::NAME, input, |r| {
            let (lp, g) = Dist::of(r.z).prob(r.y, true);
            let (lpc, gc) = Dist::of(r.zc).prob(r.yc, true);
            Ok((lpc - lp, neg(g), gc))
        })
    }
}

/// Parameters of `kl_divergence`: optional top-k / top-p filtering of the vocabulary.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KlParams {
    /// Keep the `top_k` most likely tokens of the merged logits z + z' (0: off; <= vocab size).
    pub top_k: i64,
    /// Keep the top-p nucleus of the merged logits z + z', before top-k (1.0: off; in [0, 1]).
    pub top_p: f64,
    /// Minimum number of tokens kept by the filters (>= 1).
    pub min_tokens_to_keep: i64,
}

impl Default for KlParams {
    fn default() -> Self {
        Self {
            top_k: 0,
            top_p: 1.0,
            min_tokens_to_keep: 1,
        }
    }
}

/// `kl_divergence`: `KL(P || Q) = sum_v P_v (ln P_v - ln Q_v)` with `P = softmax(filter(z))`,
/// `Q = softmax(filter(z'))`. Span aggregation `sum`.
///
/// Filtering (`filter_logits`, see [`crate::filtering`]): the masks are computed on the merged
/// logits `z + z'`, top-p first (if `top_p < 1`), then top-k (if `top_k > 0`); masked entries
/// become `-inf` in both `z` and `z'` before the log-softmaxes. The contrast target ids are not
/// used.
///
/// Decision (divergence from Inseq 0.7.1): Inseq computes the sum with
/// `F.kl_div(ln Q, ln P, log_target=True)`, i.e. `exp(ln P) * (ln P - ln Q)` on every entry,
/// which is `0 * (-inf + inf) = NaN` on masked entries: with any filtering, Inseq returns NaN.
/// rinseq uses the intended convention `0 * ln 0 = 0` (entries with `P_v = 0` add nothing), so
/// filtered scores are the KL divergence of the renormalised kept distributions; unfiltered
/// scores equal Inseq's.
///
/// Gradients: `dKL/dz_j = P_j (ln P_j - ln Q_j - KL)` and `dKL/dz'_j = Q_j - P_j` on kept
/// entries, 0 on masked ones (the masks are piecewise constant). Inseq refuses this function as
/// an attribution target unless `contrast_force_inputs=True`: [`Flags::NEEDS_FORCED_CONTRAST`]
/// asks the host to do the same.
pub struct KlDivergence {
    top_k: usize,
    top_p: f64,
    min_tokens_to_keep: usize,
}
contrastive_info!(
    KlDivergence,
    "kl_divergence",
    KlParams,
    "sum",
    "KL divergence between the original and contrast next-token distributions (top-k/top-p filtered).",
    Flags::NEEDS_CONTRAST | Flags::NEEDS_FORCED_CONTRAST
);
impl StepFunctionPlugin for KlDivergence {
    fn new(p: KlParams) -> Result<Self, PluginError> {
        filtering::validate(p.top_k, p.top_p, p.min_tokens_to_keep)?;
        Ok(Self {
            top_k: p.top_k as usize,
            top_p: p.top_p,
            min_tokens_to_keep: p.min_tokens_to_keep as usize,
        })
    }
    fn compute(&self, input: &StepInput<'_>) -> Result<StepOutput, PluginError> {
        contrast_per_row(Self::NAME, input, |r| self.row(r))
    }
}

impl KlDivergence {
    fn row(&self, r: &ContrastRow<'_>) -> Result<RowOut, PluginError> {
        let keep = filtering::filter_keep(
            r.z,
            Some(r.zc),
            self.top_k,
            self.top_p,
            self.min_tokens_to_keep,
        )?;
        let masked = |z: &[f32]| -> Vec<f64> {
            z.iter()
                .zip(&keep)
                .map(|(&v, &k)| if k { f64::from(v) } else { f64::NEG_INFINITY })
                .collect()
        };
        let (lp, lq) = (
            log_softmax_f64(&masked(r.z)),
            log_softmax_f64(&masked(r.zc)),
        );
        let p: Vec<f64> = lp.iter().map(|v| v.exp()).collect();
        let q: Vec<f64> = lq.iter().map(|v| v.exp()).collect();
        let kl: f64 = (0..p.len())
            .filter(|&j| p[j] > 0.0)
            .map(|j| p[j] * (lp[j] - lq[j]))
            .sum();
        let g = (0..p.len())
            .map(|j| {
                if p[j] > 0.0 {
                    p[j] * (lp[j] - lq[j] - kl)
                } else {
                    0.0
                }
            })
            .collect();
        let gc = (0..p.len())
            .map(|j| if keep[j] { q[j] - p[j] } else { 0.0 })
            .collect();
        Ok((kl, g, gc))
    }
}
