//! Score requests (perturbation methods): request validation shared with gradient requests, and
//! the scores of many perturbed inputs from batched no-gradient forwards.
//!
//! Each point runs **one** forward over the prefix the request's last step needs, and every
//! step reads its logits from it (`LogitPositions::These`): a causal decoder's logits at
//! position `p − 1` only see positions `< p`, so one forward serves every step, where Inseq runs
//! one forward per step per perturbation. Points are stacked into batches of at most
//! [`SCORE_TOKENS_FACTOR`] × `tokens_per_forward` tokens, which run side by side on the rayon
//! pool. No activation is kept (no gradient), so memory stays at one batch's activations.
//!
//! Decoder-only models go further (`prefix_cache.rs`): the unperturbed sequence runs once with
//! a KV cache, and a point re-runs only the positions from its first change on; the steps before
//! it keep the unperturbed scores. Encoder-decoder models run each point whole (a perturbed source
//! changes every decoder position).

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Tensor};
use rayon::prelude::*;
use rinseq_sdk::{
    ErrorCode, HostApi, InputPoint, PluginError, PointSide, ScoreOutput, Side, Tensor as SdkTensor,
    Wrt,
};

use super::forward::{score_rows, RowContrast};
use super::host::{host_err, ModelHost};
use super::prefix_cache::PrefixReuse;
use crate::attribution::sequence::EncodedSequence;
use crate::models::{ForwardInput, LogitPositions, Side as ModelSide, SideInput, Taps};

/// Tokens (points × prefix length) per batched scoring forward, in multiples of
/// [`ModelHost::tokens_per_forward`]: no activation is kept for a backward pass, so batches can
/// be larger than gradient batches.
pub const SCORE_TOKENS_FACTOR: usize = 8;

fn invalid(what: &str, message: String) -> PluginError {
    PluginError::new(ErrorCode::InvalidParams, format!("{what}: {message}"))
}

impl ModelHost<'_> {
    /// Checks a request's sequence, steps and points against the rules of
    /// `rinseq_sdk::requests` (one-line errors naming the request, the rule and the fix).
    pub(super) fn check_request(
        &self,
        what: &str,
        sequence: usize,
        points: &[InputPoint],
        steps: &[u32],
        wrt: &Wrt,
    ) -> Result<&EncodedSequence, PluginError> {
        let seq = self.seq(sequence).map_err(|e| {
            invalid(
                what,
                format!("{}: ask for sequences of the current request", e.message),
            )
        })?;
        if let Some(s) = steps.iter().find(|&&s| !seq.steps.contains(&(s as usize))) {
            return Err(invalid(
                what,
                format!(
                    "step {s} is not one of sequence {sequence}'s attributed steps {:?}: ask only \
                     for steps from SequenceInput::steps",
                    seq.steps
                ),
            ));
        }
        let spec = self.model.spec();
        let (vocab, hidden) = (spec.vocab_size, spec.hidden_size);
        for (i, p) in points.iter().enumerate() {
            for (side, ps) in [(Side::Source, &p.source), (Side::Target, &p.target)] {
                if side == Side::Source && self.decoder_only() {
                    continue; // ignored for decoder-only models
                }
                let (name, len) = match side {
                    Side::Source => ("source", seq.source_ids.len()),
                    Side::Target => ("target", seq.target_ids.len()),
                };
                match ps {
                    PointSide::Actual => {}
                    PointSide::Ids(ids) => {
                        if ids.len() != len {
                            return Err(invalid(
                                what,
                                format!(
                                    "point {i} has {} {name} ids, the sequence's {name} has \
                                     {len} tokens: give one id per token (a perturbation \
                                     replaces tokens, it does not insert or drop them)",
                                    ids.len()
                                ),
                            ));
                        }
                        if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab) {
                            return Err(invalid(
                                what,
                                format!(
                                    "point {i} has {name} id {id}, outside the vocabulary of \
                                     {vocab}: use ids below {vocab}"
                                ),
                            ));
                        }
                    }
                    PointSide::Values(t) => {
                        let ok = match wrt {
                            Wrt::InputEmbeddings => t.shape.as_slice() == [len, hidden],
                            // A tap's activation may be wider than the embeddings.
                            Wrt::Layer { .. } => t.shape.len() == 2,
                        };
                        if !ok {
                            return Err(invalid(
                                what,
                                format!(
                                    "point {i} has {name} values of shape {:?}, expected \
                                     ({len}, {hidden}) = ({name} tokens, hidden size): give one \
                                     embedding row per token",
                                    t.shape.as_slice()
                                ),
                            ));
                        }
                    }
                }
            }
        }
        Ok(seq)
    }

    /// Attributed-function scores (or target ranks, as `output` asks) `(points, steps)` of many
    /// points: one no-gradient forward per point for all its steps, points batched (see the
    /// module docs).
    pub(super) fn score_points(
        &self,
        sequence: usize,
        points: &[InputPoint],
        steps: &[u32],
        output: ScoreOutput,
    ) -> Result<SdkTensor, PluginError> {
        let seq = self.check_request(
            "score request",
            sequence,
            points,
            steps,
            &Wrt::InputEmbeddings,
        )?;
        let (np, ns) = (points.len(), steps.len());
        if np == 0 || ns == 0 {
            return SdkTensor::new(vec![np, ns], vec![]);
        }
        let job = ScoreJob {
            seq,
            points,
            steps,
            // The prefix every step needs: logits at position `step − 1` see `target[..step]`.
            len: steps.iter().copied().max().unwrap_or(1).max(1) as usize,
            // A rank only reads the target's logit: no contrast input to run.
            contrast: match output {
                ScoreOutput::AttributedFunction => self.contrast_for_steps(seq, steps)?,
                ScoreOutput::TargetRank => None,
            },
            output,
            budget: self.tokens_per_forward.max(1) * SCORE_TOKENS_FACTOR,
            done: AtomicU64::new(0),
        };
        let scores = match self.decoder_only() && self.prefix_reuse != PrefixReuse::Never {
            true => match self.score_with_prefix_cache(&job)? {
                Some(scores) => scores,
                None => self.score_whole(&job)?,
            },
            false => self.score_whole(&job)?,
        };
        SdkTensor::new(vec![np, ns], scores)
    }

    /// Every point as one whole forward over `job.len` target tokens (and the source).
    fn score_whole(&self, job: &ScoreJob<'_>) -> Result<Vec<f32>, PluginError> {
        let (seq, points, len) = (job.seq, job.points, job.len);
        let np = points.len();
        let enc_dec = !self.decoder_only();
        let src_len = if enc_dec { seq.source_ids.len() } else { 0 };
        let per_batch = (job.budget / (len + src_len).max(1)).clamp(1, np);
        let positions = job.positions();
        let all_steps: Vec<usize> = (0..job.steps.len()).collect();
        let device = self.model.device().clone();
        let ones = |rows: usize, n: usize| Tensor::ones((rows, n), DType::U8, &device);
        let run = |range: Range<usize>| -> Result<Vec<f32>, PluginError> {
            let rows = range.len();
            let targets = points[range.clone()]
                .iter()
                .map(|p| {
                    self.point_side(ModelSide::Decoder, &seq.target_ids, &p.target)
                        .and_then(|t| t.narrow(0, 0, len).map_err(host_err))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let decoder = SideInput {
                embeds: Tensor::stack(&targets, 0).map_err(host_err)?,
                mask: ones(rows, len).map_err(host_err)?,
            };
            let encoder = if enc_dec {
                let sources = points[range.clone()]
                    .iter()
                    .map(|p| self.point_side(ModelSide::Encoder, &seq.source_ids, &p.source))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(SideInput {
                    embeds: Tensor::stack(&sources, 0).map_err(host_err)?,
                    mask: ones(rows, src_len).map_err(host_err)?,
                })
            } else {
                None
            };
            let input = ForwardInput {
                encoder,
                decoder,
                logits_at: LogitPositions::These(positions.clone()),
            };
            let logits = self
                .model
                .forward(&input, &mut Taps::none())
                .map_err(host_err)?
                .logits;
            let scores = self.score_logits(job, &logits, rows, &all_steps)?;
            job.advance(self, rows)?;
            Ok(scores)
        };
        let batches: Vec<Range<usize>> = (0..np)
            .step_by(per_batch)
            .map(|s| s..(s + per_batch).min(np))
            .collect();
        let parts: Vec<Vec<f32>> = if batches.len() > 1 {
            batches.into_par_iter().map(run).collect::<Result<_, _>>()?
        } else {
            batches.into_iter().map(run).collect::<Result<_, _>>()?
        };
        Ok(parts.concat())
    }

    /// The attributed function (or the target's rank, as `job.output` asks) on `logits`
    /// `(rows, which.len(), vocab)`, the logits of the steps `job.steps[which]` of `rows` points:
    /// scores `(rows × which.len())`.
    pub(super) fn score_logits(
        &self,
        job: &ScoreJob<'_>,
        logits: &Tensor,
        rows: usize,
        which: &[usize],
    ) -> Result<Vec<f32>, PluginError> {
        let values: Vec<f32> = logits
            .to_dtype(DType::F32)
            .and_then(|l| l.flatten_all())
            .and_then(|l| l.to_vec1())
            .map_err(host_err)?;
        let k = which.len();
        let step_ids: Vec<u32> = which
            .iter()
            .map(|&j| job.seq.target_ids[job.steps[j] as usize])
            .collect();
        let target_ids: Vec<u32> = (0..rows).flat_map(|_| step_ids.iter().copied()).collect();
        let vocab = self.model.spec().vocab_size;
        if values.len() != rows * k * vocab {
            return Err(host_err(format!(
                "scoring logits have {} values, expected {rows} rows × {k} steps × {vocab} vocab",
                values.len(),
            )));
        }
        if job.output == ScoreOutput::TargetRank {
            return Ok(values
                .chunks_exact(vocab)
                .zip(&target_ids)
                .map(|(z, &t)| target_rank(z, t as usize))
                .collect());
        }
        let row_contrast = job.contrast.as_ref().map(|(ids, logits)| RowContrast {
            target_ids: (0..rows)
                .flat_map(|_| which.iter().map(|&j| ids[j]))
                .collect(),
            logits: logits.as_ref().map(|(l, v)| {
                (0..rows)
                    .flat_map(|_| which.iter().flat_map(|&j| l[j * v..(j + 1) * v].iter()))
                    .copied()
                    .collect()
            }),
        });
        let (scores, _) = score_rows(
            self.target_fn,
            &values,
            &target_ids,
            row_contrast.as_ref(),
            &[],
            false,
        )?;
        Ok(scores)
    }
}

/// One score request, checked: what both scoring paths read.
pub(super) struct ScoreJob<'a> {
    /// The sequence the points perturb.
    pub seq: &'a EncodedSequence,
    /// The points.
    pub points: &'a [InputPoint],
    /// The attributed steps.
    pub steps: &'a [u32],
    /// Target tokens every point runs: the longest step's prefix.
    pub len: usize,
    /// The contrast of each step (ids, and logits when the contrast input is forced).
    pub contrast: Option<StepContrast>,
    /// What each value is: the attributed function or the target's rank.
    pub output: ScoreOutput,
    /// Tokens (rows × length) per batched forward.
    pub budget: usize,
    /// Points scored so far (progress).
    pub done: AtomicU64,
}

/// The rank of token `target` in the logits `z`: 1 + the number of strictly higher logits (a NaN
/// logit never counts as higher).
fn target_rank(z: &[f32], target: usize) -> f32 {
    let t = z[target];
    (1 + z.iter().filter(|&&v| v > t).count()) as f32
}

/// Each step's aligned contrast id and, when the contrast input is forced, its logits
/// (`steps × vocab`, and the vocabulary size).
pub(super) type StepContrast = (Vec<u32>, Option<(Vec<f32>, usize)>);

impl ScoreJob<'_> {
    /// The decoder position whose logits score each step (`step − 1`).
    pub fn positions(&self) -> Vec<usize> {
        self.steps.iter().map(|&s| s as usize - 1).collect()
    }

    /// Counts `rows` more points as scored; an error when the user cancelled.
    pub fn advance(&self, host: &ModelHost<'_>, rows: usize) -> Result<(), PluginError> {
        let so_far = self.done.fetch_add(rows as u64, Ordering::Relaxed) + rows as u64;
        match host.progress(so_far, self.points.len() as u64) {
            true => Ok(()),
            false => Err(PluginError::new(ErrorCode::Cancelled, "cancelled")),
        }
    }
}
