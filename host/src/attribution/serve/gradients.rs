//! Scores and gradients for every (input point, step) of a request, in batched row chunks.

use candle_core::Tensor;
use rinseq_sdk::{
    ErrorCode, GradientResponse, GradientRule, HostApi, InputPoint, PluginError, PointSide, Side,
    Tensor as SdkTensor, Wrt,
};

use super::forward::{run_rows, GradMode, RowContrast, RowResult, Rows};
use super::host::{host_err, to_sdk, ModelHost};
use super::layer::{activation_at, LayerTap};
use crate::attribution::memory;
use crate::attribution::sequence::EncodedSequence;
use crate::models::Side as ModelSide;

/// Splits `n` step-major rows (ascending steps) into chunks of at most `budget` tokens
/// (rows × the last row's token count), whole `group`s of rows at a time, at least one group.
fn chunk_rows(
    n: usize,
    group: usize,
    budget: usize,
    tokens: impl Fn(usize) -> usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let mut end = (start + group).min(n);
        while end + group <= n && (end + group - start) * tokens(end + group - 1) <= budget {
            end += group;
        }
        out.push(start..end);
        start = end;
    }
    out
}

/// Requests with at least this many row chunks run them in parallel.
const PARALLEL_MIN_CHUNKS: usize = 4;

/// What one request asks for, besides its points and steps.
pub struct Ask<'a> {
    /// What to differentiate with respect to.
    pub wrt: &'a Wrt,
    /// Compute gradients (else scores only).
    pub grad: bool,
    /// How non-linearities are differentiated.
    pub rule: GradientRule,
}

/// The inputs of one point: embeddings of both sides and, for layer requests, the tap value.
struct PointInputs {
    source: Option<Tensor>,
    target: Tensor,
    layer: Option<Tensor>,
}

impl ModelHost<'_> {
    /// Embeddings of one side of a point; `Values` on the tapped side of a layer request replace
    /// the activation, not the embeddings.
    fn side_embeddings(
        &self,
        side: ModelSide,
        actual: &[u32],
        p: &PointSide,
        values_are_activations: bool,
    ) -> Result<Tensor, PluginError> {
        match p {
            PointSide::Values(_) if values_are_activations => self.embed_ids(side, actual),
            other => self.point_side(side, actual, other),
        }
    }

    fn point_inputs(
        &self,
        seq: &EncodedSequence,
        p: &InputPoint,
        tap: Option<LayerTap<'_>>,
        actual_activation: &mut Option<Tensor>,
    ) -> Result<PointInputs, PluginError> {
        let tap_side = tap.map(|t| t.side());
        let source = (!self.decoder_only())
            .then(|| {
                self.side_embeddings(
                    ModelSide::Encoder,
                    &seq.source_ids,
                    &p.source,
                    tap_side == Some(Side::Source),
                )
            })
            .transpose()?;
        let target = self.side_embeddings(
            ModelSide::Decoder,
            &seq.target_ids,
            &p.target,
            tap_side == Some(Side::Target),
        )?;
        let layer = match tap {
            None => None,
            Some(tap) => {
                let on_tap = if tap.side() == Side::Source {
                    &p.source
                } else {
                    &p.target
                };
                Some(match on_tap {
                    PointSide::Values(t) => self.to_candle(t)?,
                    // The activation this point's own input gives (token ids, or the actual
                    // input: computed once per request).
                    _ if *p == InputPoint::actual() => match actual_activation {
                        Some(a) => a.clone(),
                        None => actual_activation
                            .insert(activation_at(self.model, tap, source.as_ref(), &target)?)
                            .clone(),
                    },
                    _ => activation_at(self.model, tap, source.as_ref(), &target)?,
                })
            }
        };
        Ok(PointInputs {
            source,
            target,
            layer,
        })
    }

    /// Scores (and gradients) for every (point, step) of a request, in row chunks.
    pub(super) fn evaluate(
        &self,
        sequence: usize,
        ask: Ask<'_>,
        points: &[InputPoint],
        steps: &[u32],
    ) -> Result<GradientResponse, PluginError> {
        let what = if ask.grad {
            "gradient request"
        } else {
            "score request"
        };
        let seq = self.check_request(what, sequence, points, steps, ask.wrt)?;
        let enc_dec = !self.decoder_only();
        if let Some(&s) = steps
            .iter()
            .find(|&&s| s == 0 || s as usize >= seq.target_ids.len())
        {
            return Err(PluginError::new(
                ErrorCode::Host,
                format!(
                    "step {s} is outside the target of {} tokens",
                    seq.target_ids.len()
                ),
            ));
        }
        let deeplift = match ask.rule {
            GradientRule::Standard => false,
            GradientRule::DeepLiftRescale => true,
        };
        let tap = match ask.wrt {
            Wrt::InputEmbeddings => None,
            Wrt::Layer { name, input } => Some(LayerTap {
                name: name.as_str(),
                input: *input,
            }),
        };
        let mut actual_activation = None;
        let inputs = points
            .iter()
            .map(|p| self.point_inputs(seq, p, tap, &mut actual_activation))
            .collect::<Result<Vec<_>, _>>()?;
        // Rows run step-major (shortest steps first) so that each chunk holds rows of similar
        // steps and runs on a short prefix (see `run_rows`); results are put back in
        // (point, step) order below. Every step's points stay in one chunk, so that DeepLIFT
        // rows find their reference (the step's first point) next to them.
        let mut step_order: Vec<usize> = (0..steps.len()).collect();
        step_order.sort_by_key(|&s| steps[s]);
        let contrast = self.contrast_for_steps(seq, steps)?;
        if self.share_forward && tap.is_none() && !deeplift && self.dropout_samples == 0 {
            let targets: Vec<&Tensor> = inputs.iter().map(|i| &i.target).collect();
            let sources: Option<Vec<&Tensor>> = inputs.iter().map(|i| i.source.as_ref()).collect();
            let sources = if enc_dec { sources } else { None };
            if let Some(r) = self.evaluate_shared(
                seq,
                ask.grad,
                sources.as_deref(),
                &targets,
                steps,
                contrast.as_ref(),
            )? {
                return Ok(r);
            }
        }
        let np = points.len();
        let pairs: Vec<(usize, usize)> = step_order
            .iter()
            .flat_map(|&s| (0..np).map(move |p| (p, s)))
            .collect();
        let mut order = vec![0u32; pairs.len()];
        for (i, &(p, s)) in pairs.iter().enumerate() {
            order[p * steps.len() + s] = i as u32;
        }
        let group = if deeplift { np } else { 1 };
        let row_tokens = |i: usize| steps[pairs[i].1] as usize + seq.source_ids.len();
        let chunks = chunk_rows(pairs.len(), group, self.tokens_per_forward, row_tokens);
        let longest = (0..pairs.len()).map(row_tokens).max().unwrap_or(1);
        let finished = std::sync::atomic::AtomicUsize::new(0);
        let run_chunk = |range: std::ops::Range<usize>| -> Result<RowResult, PluginError> {
            let rows = &pairs[range];
            let batch = Rows {
                source: enc_dec.then(|| {
                    rows.iter()
                        .filter_map(|&(p, _)| inputs[p].source.as_ref())
                        .collect()
                }),
                target: rows.iter().map(|&(p, _)| &inputs[p].target).collect(),
                positions: rows.iter().map(|&(_, s)| steps[s] as usize).collect(),
                target_ids: rows
                    .iter()
                    .map(|&(_, s)| seq.target_ids[steps[s] as usize])
                    .collect(),
                contrast: contrast.as_ref().map(|(ids, logits)| RowContrast {
                    target_ids: rows.iter().map(|&(_, s)| ids[s]).collect(),
                    logits: logits.as_ref().map(|(l, vocab)| {
                        rows.iter()
                            .flat_map(|&(_, s)| l[s * vocab..(s + 1) * vocab].to_vec())
                            .collect()
                    }),
                }),
                dropout_samples: self.dropout_samples,
                rescale_against: deeplift
                    .then(|| (0..rows.len()).map(|i| (i - rows[i].0) as u32).collect()),
            };
            let mode = match (ask.grad, tap) {
                (false, _) => GradMode::None,
                (true, None) => GradMode::Embeddings,
                (true, Some(tap)) => {
                    let per_row: Vec<&Tensor> = rows
                        .iter()
                        .filter_map(|&(p, _)| inputs[p].layer.as_ref())
                        .collect();
                    GradMode::Layer {
                        tap,
                        values: Tensor::stack(&per_row, 0).map_err(host_err)?,
                    }
                }
            };
            let r = run_rows(self.model, self.target_fn, &batch, mode)?;
            let done = finished.fetch_add(rows.len(), std::sync::atomic::Ordering::Relaxed);
            if !self.progress((done + rows.len()) as u64, pairs.len() as u64) {
                return Err(PluginError::new(ErrorCode::Cancelled, "cancelled"));
            }
            Ok(r)
        };
        // Many chunks (path methods: integrated gradients...) run side by side on the rayon pool:
        // the matmuls inside each nest in the same pool, so every core works on its own chunk
        // instead of splitting each small matmul (IG 1.5x faster on 2 cores, for twice the
        // activation memory). A few chunks (saliency) run one by one and keep memory low.
        let side_by_side = chunks.len() >= PARALLEL_MIN_CHUNKS
            && memory::two_chunks_fit(
                self.model.spec(),
                self.memory_budget,
                self.tokens_per_forward,
                longest,
            );
        let results: Vec<RowResult> = if side_by_side {
            use rayon::prelude::*;
            chunks
                .into_par_iter()
                .map(run_chunk)
                .collect::<Result<_, _>>()?
        } else {
            chunks
                .into_iter()
                .map(run_chunk)
                .collect::<Result<_, _>>()?
        };
        let mut scores = Vec::with_capacity(pairs.len());
        let (mut src_grads, mut tgt_grads, mut layer_grads) = (Vec::new(), Vec::new(), Vec::new());
        for r in results {
            scores.extend(r.scores);
            src_grads.extend(r.source_grad);
            tgt_grads.extend(r.target_grad);
            layer_grads.extend(r.layer_grad);
        }
        let ns = steps.len();
        let scores: Vec<f32> = order.iter().map(|&i| scores[i as usize]).collect();
        let order = Tensor::new(order.as_slice(), self.model.device()).map_err(host_err)?;
        let gather = |parts: Vec<Tensor>| -> Result<Option<SdkTensor>, PluginError> {
            if parts.is_empty() {
                return Ok(None);
            }
            let all = Tensor::cat(&parts, 0)
                .and_then(|a| a.index_select(&order, 0))
                .map_err(host_err)?;
            let (_, len, hidden) = all.dims3().map_err(host_err)?;
            Ok(Some(to_sdk(
                &all.reshape((np, ns, len, hidden)).map_err(host_err)?,
            )?))
        };
        let (source, target) = match tap {
            Some(t) if t.side() == Side::Source => (gather(layer_grads)?, None),
            Some(_) => (None, gather(layer_grads)?),
            None => (
                gather(src_grads)?,
                if self.attribute_target || !enc_dec {
                    gather(tgt_grads)?
                } else {
                    None
                },
            ),
        };
        Ok(GradientResponse {
            scores: SdkTensor::new(vec![np, ns], scores)?,
            source,
            target,
        })
    }

    /// Per step: the aligned contrast target id, and (with `contrast_force_inputs`) the contrast
    /// logits `(steps × vocab, vocab)` of one contrast forward.
    #[allow(clippy::type_complexity)]
    pub(super) fn contrast_for_steps(
        &self,
        seq: &EncodedSequence,
        steps: &[u32],
    ) -> Result<Option<(Vec<u32>, Option<(Vec<f32>, usize)>)>, PluginError> {
        let Some(c) = &seq.contrast else {
            return Ok(None);
        };
        let aligned: Vec<usize> = steps.iter().map(|&s| c.position(s as usize)).collect();
        let ids = aligned.iter().map(|&p| c.target_ids[p]).collect();
        let logits = if self.force_contrast_inputs {
            let positions = aligned.iter().map(|p| p - 1).collect();
            Some(super::logits::logits_at(
                self.model,
                &c.source_ids,
                &c.target_ids,
                positions,
            )?)
        } else {
            None
        };
        Ok(Some((ids, logits)))
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_rows;

    #[test]
    fn chunks_respect_the_token_budget_and_keep_groups_whole() {
        // 6 rows of 10 tokens, budget 25: two rows per chunk.
        assert_eq!(chunk_rows(6, 1, 25, |_| 10), vec![0..2, 2..4, 4..6]);
        // Groups of 3 never split, even past the budget.
        assert_eq!(chunk_rows(6, 3, 25, |_| 10), vec![0..3, 3..6]);
        // Longer rows later: fewer per chunk.
        assert_eq!(
            chunk_rows(4, 1, 40, |i| 10 * (i + 1)),
            vec![0..2, 2..3, 3..4]
        );
    }
}
