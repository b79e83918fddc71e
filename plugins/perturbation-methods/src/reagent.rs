//! `reagent`: ReAGent (Zhao & Shan 2024) as in Inseq 0.7.1 (`ops/reagent.py`,
//! `reagent_core/`), with Inseq's parameters and defaults.
//!
//! For each step, `num_probes` probes each keep random importance logits (`U(0, 1)` at the
//! start) and repeat: replace each token with probability `replacing_ratio` by a random token,
//! `Δ = f(x) − f(x̃)`, add `logit(0.5 · (±Δ) + 0.5)` to the logits of the replaced (`+Δ`) and
//! kept (`−Δ`) tokens; then check the stopping condition with only the `keep_top_n` (or
//! `keep_ratio`) most important tokens kept (the others replaced; `invert_keep` swaps them). A
//! probe stops when the condition holds; after `max_probe_steps` or when every probe stopped,
//! the attribution is the mean softmax importance of the stopped probes (all probes when none
//! stopped, where Inseq divides by zero), repeated along the hidden dimension (Granular).
//!
//! The stopping check asks the host for the target's rank ([`ScoreOutput::TargetRank`]): a probe
//! stops when the target is among the model's top `stopping_condition_top_k` predictions, as in
//! Inseq.
//!
//! Deviations from Inseq 0.7.1:
//! - replacement tokens are drawn uniformly from the vocabulary (special tokens excluded), not
//!   among the tokens with the same POS tag (Inseq's sampler needs nltk's tagger); special
//!   tokens (BOS, EOS...) are never replaced;
//! - the probes of every step advance together (one host request per step and probing phase,
//!   on that step's prefix), with Inseq's per-step semantics (each step has its own probes and
//!   stops alone);
//! - `Δ` uses the attributed function (the target's probability by default, as Inseq's
//!   `reagent`, which ignores custom attributed functions), clamped into (−1, 1) so that the
//!   logit stays finite.
//!
//! Cost: up to `2 · num_probes · max_probe_steps` forwards per step, as Inseq; a step whose
//! probes never meet the stopping condition runs all `max_probe_steps` (Inseq's defaults:
//! 96 000 forwards), so on CPU lower `max_probe_steps` / `num_probes` for long generations.

use rand::Rng;
use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::features::{granular, rng, score_rows, values_of, Features};

/// Parameters of `reagent` (Inseq 0.7.1 names and defaults).
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct ReagentParams {
    /// Tokens kept (by importance) in the stopping check; 0 = use `keep_ratio`.
    pub keep_top_n: usize,
    /// With `keep_top_n = 0`: the share of tokens kept (rounded up).
    pub keep_ratio: Option<f64>,
    /// Replace the top tokens instead of keeping them in the stopping check.
    pub invert_keep: bool,
    /// A probe stops when the target is among the model's top k predictions with only its most
    /// important tokens kept.
    pub stopping_condition_top_k: usize,
    /// Share of tokens replaced in each probing step.
    pub replacing_ratio: f64,
    /// Most probing steps per attributed step.
    pub max_probe_steps: usize,
    /// Probes run in parallel (averaged).
    pub num_probes: usize,
    /// Seed; unset = a fresh random seed at every call.
    pub seed: Option<u64>,
}

impl Default for ReagentParams {
    fn default() -> Self {
        Self {
            keep_top_n: 5,
            keep_ratio: None,
            invert_keep: false,
            stopping_condition_top_k: 3,
            replacing_ratio: 0.3,
            max_probe_steps: 3000,
            num_probes: 16,
            seed: None,
        }
    }
}

/// ReAGent: importance from iterative random replacement (see the module docs).
pub struct Reagent(ReagentParams);

impl PluginInfo for Reagent {
    const NAME: &'static str = "reagent";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Importance from iterative random token replacement (ReAGent, Zhao & Shan 2024).";
    type Params = ReagentParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(Flags::NONE, OutputKind::Granular, &["vnorm"])
    }
}

/// The probes of one attributed step.
struct StepProbes {
    /// The score of the unperturbed input.
    f0: f64,
    /// Tokens kept in the stopping check.
    top_n: usize,
    /// Importance logits `(probes, seen)`.
    logits: Vec<Vec<f64>>,
    /// Which probes stopped.
    stopped: Vec<bool>,
    /// The features this step sees.
    seen: Vec<usize>,
    /// Which of them are special tokens (never replaced).
    fixed: Vec<bool>,
}

fn softmax(v: &[f64]) -> Vec<f64> {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

impl AttributionPlugin for Reagent {
    fn new(p: ReagentParams) -> Result<Self, PluginError> {
        if p.num_probes == 0 || p.max_probe_steps == 0 || p.stopping_condition_top_k == 0 {
            return Err(PluginError::invalid_params(
                "num_probes, max_probe_steps and stopping_condition_top_k must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&p.replacing_ratio) {
            return Err(PluginError::invalid_params(format!(
                "replacing_ratio must be within [0, 1], got {}",
                p.replacing_ratio
            )));
        }
        if p.keep_top_n == 0 && !p.keep_ratio.is_some_and(|r| (0.0..=1.0).contains(&r)) {
            return Err(PluginError::invalid_params(
                "keep_top_n = 0 needs keep_ratio within [0, 1]",
            ));
        }
        Ok(Self(p))
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let p = &self.0;
        let info = host.info();
        let sides = AttributedSides::of(host, request);
        let replacements: Vec<TokenId> = (0..info.vocab_size as TokenId)
            .filter(|id| !info.special_token_ids.contains(id))
            .collect();
        if replacements.is_empty() {
            return Err(PluginError::unsupported(
                "the vocabulary has no non-special token",
            ));
        }
        let mut rng = rng(p.seed);
        let mut out = AttributionOutput::default();
        for (i, seq) in request.sequences.iter().enumerate() {
            let feats = Features::tokens(host, seq, sides)?;
            let (n, ns) = (feats.len(), seq.steps.len());
            let original = score_rows(host, i, vec![InputPoint::actual()], &seq.steps)?;
            let top_k = p.stopping_condition_top_k as f64;
            let mut probes: Vec<StepProbes> = seq
                .steps
                .iter()
                .enumerate()
                .map(|(j, &step)| {
                    let seen: Vec<usize> = (0..n).filter(|&c| feats.visible_at(c, step)).collect();
                    let m = seen.len();
                    let fixed = seen
                        .iter()
                        .map(|&c| {
                            let f = &feats.features[c];
                            info.special_token_ids
                                .contains(&feats.ids(f.side)[f.positions[0]])
                        })
                        .collect();
                    StepProbes {
                        f0: original[0][j] as f64,
                        top_n: if p.keep_top_n > 0 {
                            p.keep_top_n
                        } else {
                            (p.keep_ratio.unwrap_or(0.0) * m as f64).ceil() as usize
                        },
                        logits: (0..p.num_probes)
                            .map(|_| (0..m).map(|_| rng.random::<f64>()).collect())
                            .collect(),
                        stopped: vec![m == 0; p.num_probes],
                        seen,
                        fixed,
                    }
                })
                .collect();
            // The point of step `j` with `replace[c]` positions (of its `seen`) replaced by
            // random tokens.
            let point = |sp: &StepProbes, replace: &[bool], rng: &mut rand::rngs::StdRng| {
                let mut mask = vec![false; n];
                for (c, &k) in sp.seen.iter().enumerate() {
                    mask[k] = replace[c] && !sp.fixed[c];
                }
                feats.point(&mask, |_, _| {
                    replacements[rng.random_range(0..replacements.len())]
                })
            };
            // The `output` values of the points of active (step, probe) pairs: one request per
            // step, so that each runs on the prefix its step needs.
            let ask = |pairs: &[(usize, usize)], points: Vec<InputPoint>, output: ScoreOutput| {
                let mut by_step: Vec<(usize, Vec<usize>)> = Vec::new();
                for (r, &(j, _)) in pairs.iter().enumerate() {
                    match by_step.iter_mut().find(|(s, _)| *s == j) {
                        Some((_, rows)) => rows.push(r),
                        None => by_step.push((j, vec![r])),
                    }
                }
                let mut out = vec![0f64; pairs.len()];
                let mut points: Vec<Option<InputPoint>> = points.into_iter().map(Some).collect();
                for (j, rows) in by_step {
                    let these = rows.iter().filter_map(|&r| points[r].take()).collect();
                    let scores = values_of(host, i, these, &[seq.steps[j]], output)?;
                    for (&r, s) in rows.iter().zip(scores) {
                        out[r] = s[0] as f64;
                    }
                }
                Ok::<Vec<f64>, PluginError>(out)
            };
            for iteration in 0..p.max_probe_steps {
                let active: Vec<(usize, usize)> = (0..ns)
                    .flat_map(|j| (0..p.num_probes).map(move |b| (j, b)))
                    .filter(|&(j, b)| !probes[j].stopped[b])
                    .collect();
                if active.is_empty() {
                    break;
                }
                // Probing: random replacements update the importance logits.
                let masks: Vec<Vec<bool>> = active
                    .iter()
                    .map(|&(j, _)| {
                        let sp = &probes[j];
                        (0..sp.seen.len())
                            .map(|c| rng.random::<f64>() < p.replacing_ratio && !sp.fixed[c])
                            .collect()
                    })
                    .collect();
                let points = active
                    .iter()
                    .zip(&masks)
                    .map(|(&(j, _), r)| point(&probes[j], r, &mut rng))
                    .collect();
                let scores = ask(&active, points, ScoreOutput::AttributedFunction)?;
                for ((&(j, b), mask), s) in active.iter().zip(&masks).zip(&scores) {
                    let sp = &mut probes[j];
                    let delta = (sp.f0 - s).clamp(-1.0 + 1e-6, 1.0 - 1e-6);
                    for (c, &r) in mask.iter().enumerate() {
                        let d = if r { delta } else { -delta };
                        sp.logits[b][c] += logit(0.5 * d + 0.5);
                    }
                }
                // Stopping check: keep the top tokens, replace the rest.
                let keeps: Vec<Vec<bool>> = active
                    .iter()
                    .map(|&(j, b)| {
                        let sp = &probes[j];
                        let imp = softmax(&sp.logits[b]);
                        let mut order: Vec<usize> = (0..imp.len()).collect();
                        order.sort_by(|&a, &c| imp[c].total_cmp(&imp[a]));
                        let mut replace = vec![!p.invert_keep; imp.len()];
                        for &c in order.iter().take(sp.top_n) {
                            replace[c] = p.invert_keep;
                        }
                        replace
                    })
                    .collect();
                let points = active
                    .iter()
                    .zip(&keeps)
                    .map(|(&(j, _), r)| point(&probes[j], r, &mut rng))
                    .collect();
                let ranks = ask(&active, points, ScoreOutput::TargetRank)?;
                for (&(j, b), rank) in active.iter().zip(&ranks) {
                    if *rank <= top_k {
                        probes[j].stopped[b] = true;
                    }
                }
                host.progress((iteration + 1) as u64, p.max_probe_steps as u64)?;
            }
            let mut values = vec![vec![0f32; ns]; n];
            for (j, sp) in probes.iter().enumerate() {
                let chosen: Vec<usize> = if sp.stopped.iter().any(|&s| s) {
                    (0..p.num_probes).filter(|&b| sp.stopped[b]).collect()
                } else {
                    (0..p.num_probes).collect()
                };
                for &b in &chosen {
                    if sp.seen.is_empty() {
                        continue;
                    }
                    for (c, v) in softmax(&sp.logits[b]).iter().enumerate() {
                        values[sp.seen[c]][j] += (*v / chosen.len() as f64) as f32;
                    }
                }
            }
            out.sequences
                .push(granular(feats.coarse(&values)?, info.hidden_size)?);
        }
        Ok(out)
    }
}
