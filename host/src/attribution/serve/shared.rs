//! Gradient and score requests served with one forward per input point.
//!
//! The per-row path (`forward.rs`) runs a differentiable forward for every (point, step) row:
//! Inseq's work, batched. Here each point runs one forward over the longest prefix the request
//! needs ([`crate::models::Model::prefix_forward`]; encoder-decoder models encode the source
//! once); every step then reads its logits from it and runs its own hand-written backward over
//! its prefix (and the whole encoder), several steps (and points) per backward batch. For a
//! 10-token generation this skips about 85% of the decoder's forward work (each step re-ran its
//! whole prefix). SmolLM2-135M in `cargo bench -p rinseq --bench attribution`, medians of one
//! run each way (`--per-row-forward` selects the per-row path): integrated gradients
//! 26.3 → 14.4 s, saliency 0.96 → 0.44 s. Used for plain gradients and scores with respect to
//! the input embeddings of models that implement `prefix_forward` (GPT-2, Llama / Qwen2 /
//! Mistral, BART / mBART / Marian); DeepLIFT, layer requests, MC dropout and T5 take the
//! per-row path.

use candle_core::Tensor;
use rayon::prelude::*;
use rinseq_sdk::{ErrorCode, GradientResponse, HostApi, PluginError, Tensor as SdkTensor};

use super::forward::{score_rows, RowContrast};
use super::host::{host_err, to_sdk, ModelHost};
use crate::attribution::memory;
use crate::attribution::sequence::EncodedSequence;
use crate::models::backward::Streams;

/// Tokens (points × prefix length) whose activations one shared forward keeps, in multiples
/// of [`ModelHost::tokens_per_forward`]: the saved activations (about 0.64 MB per token for
/// SmolLM2-135M in f32) are a quarter of what autograd keeps, and large groups give the
/// backward large matrix products.
const SHARED_TOKENS_FACTOR: usize = 8;

/// Backward batches smaller than this many rows (streams × span) take in streams with longer
/// prefixes (zero-padded): a backward pass reads every weight once, and a handful of rows leaves
/// the matrix products memory-bound. Saliency in `cargo bench -p rinseq --bench attribution`:
/// 0.84 s with one pass per step, 0.41 s with 64 (two batches, one per core), 0.69 s with 128.
const MIN_BACKWARD_ROWS: usize = 64;

/// Splits streams sorted by span into backward batches: each grows until it holds
/// [`MIN_BACKWARD_ROWS`] rows, then only takes streams of the same span, within `budget` rows.
fn backward_batches(spans: &[usize], budget: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < spans.len() {
        let mut end = start + 1;
        while end < spans.len() {
            let grows = spans[end] != spans[end - 1];
            let full = (end - start) * spans[end - 1] >= MIN_BACKWARD_ROWS;
            if (end + 1 - start) * spans[end] > budget || (grows && full) {
                break;
            }
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

/// One backward batch's results.
struct BatchResult {
    scores: Vec<f32>,
    /// Target `(streams, full_len, hidden)` and source `(streams, src_len, hidden)` gradients.
    grad: Option<(Tensor, Option<Tensor>)>,
}

impl ModelHost<'_> {
    /// Serves a request from shared forwards, or `None` when the model has no such path.
    /// `sources` / `targets` are the points' `(len, hidden)` embeddings (sources on
    /// encoder-decoder models); `contrast` is per step, as from `contrast_for_steps`.
    #[allow(clippy::type_complexity)]
    pub(super) fn evaluate_shared(
        &self,
        seq: &EncodedSequence,
        grad: bool,
        sources: Option<&[&Tensor]>,
        targets: &[&Tensor],
        steps: &[u32],
        contrast: Option<&(Vec<u32>, Option<(Vec<f32>, usize)>)>,
    ) -> Result<Option<GradientResponse>, PluginError> {
        let (np, ns) = (targets.len(), steps.len());
        if np == 0 || ns == 0 {
            return Ok(None);
        }
        let full_len = seq.target_ids.len();
        let len = steps.iter().copied().max().unwrap_or(1).max(1) as usize;
        // Every point keeps its decoder prefix and, on encoder-decoder models, its source.
        let src_len = seq.source_ids.len() * usize::from(sources.is_some());
        let spec = self.model.spec();
        let budget = (self.tokens_per_forward.max(1) * SHARED_TOKENS_FACTOR).min(
            memory::shared_tokens(spec, self.memory_budget, len + src_len),
        );
        let n_groups = (np * (len + src_len)).div_ceil(budget).clamp(1, np);
        let per_group = np.div_ceil(n_groups).max(1);
        let total = (np * ns) as u64;
        let done = std::sync::atomic::AtomicU64::new(0);
        let mut scores = vec![0f32; np * ns];
        let (mut parts, mut source_parts) = (Vec::new(), Vec::new());
        let mut order = vec![0u32; np * ns];
        let mut offset = 0;
        for g0 in (0..np).step_by(per_group) {
            let points = g0..(g0 + per_group).min(np);
            let embeds = Tensor::stack(&targets[points.clone()], 0)
                .and_then(|e| e.narrow(1, 0, len))
                .map_err(host_err)?;
            let source = sources
                .map(|s| Tensor::stack(&s[points.clone()], 0))
                .transpose()
                .map_err(host_err)?;
            let Some(shared) = self.model.prefix_forward(source.as_ref(), &embeds) else {
                return Ok(None);
            };
            let shared = shared.map_err(host_err)?;
            // Streams (point of this group, step), shortest prefixes first.
            let mut streams: Vec<(usize, usize)> = (0..ns)
                .flat_map(|s| (0..points.len()).map(move |p| (p, s)))
                .collect();
            streams.sort_by_key(|&(p, s)| (steps[s], p));
            let spans: Vec<usize> = streams.iter().map(|&(_, s)| steps[s] as usize).collect();
            let batches = backward_batches(&spans, budget);
            let run = |range: std::ops::Range<usize>| -> Result<BatchResult, PluginError> {
                let these = &streams[range];
                let batch = Streams {
                    rows: these.iter().map(|&(p, _)| p).collect(),
                    positions: these.iter().map(|&(_, s)| steps[s] as usize - 1).collect(),
                };
                let n = these.len();
                let logits = shared.logits_at(&batch).map_err(host_err)?;
                let values = logits
                    .to_dtype(candle_core::DType::F32)
                    .and_then(|l| l.flatten_all())
                    .and_then(|l| l.to_vec1::<f32>())
                    .map_err(host_err)?;
                let vocab = values.len() / n;
                let row_contrast = contrast.map(|(ids, logits)| RowContrast {
                    target_ids: these.iter().map(|&(_, s)| ids[s]).collect(),
                    logits: logits.as_ref().map(|(l, v)| {
                        these
                            .iter()
                            .flat_map(|&(_, s)| l[s * v..(s + 1) * v].iter().copied())
                            .collect()
                    }),
                });
                let target_ids: Vec<u32> = these
                    .iter()
                    .map(|&(_, s)| seq.target_ids[steps[s] as usize])
                    .collect();
                let (scores, g) = score_rows(
                    self.target_fn,
                    &values,
                    &target_ids,
                    row_contrast.as_ref(),
                    &[],
                    grad,
                )?;
                let grad = match g {
                    None => None,
                    Some(g) => {
                        let g =
                            Tensor::from_vec(g, (n, vocab), logits.device()).map_err(host_err)?;
                        let dx = shared.backward(&batch, &g).map_err(host_err)?;
                        let pad = full_len - batch.span();
                        let target = dx.target.pad_with_zeros(1, 0, pad).map_err(host_err)?;
                        Some((target, dx.source))
                    }
                };
                let so_far = done.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                if !self.progress(so_far + n as u64, total) {
                    return Err(PluginError::new(ErrorCode::Cancelled, "cancelled"));
                }
                Ok(BatchResult { scores, grad })
            };
            // Batches run side by side: each backward only reads the shared forward.
            let results: Vec<BatchResult> = batches
                .clone()
                .into_par_iter()
                .map(run)
                .collect::<Result<_, _>>()?;
            for (range, r) in batches.into_iter().zip(results) {
                for (i, &(p, s)) in streams[range.clone()].iter().enumerate() {
                    let p = points.start + p;
                    scores[p * ns + s] = r.scores[i];
                    order[p * ns + s] = (offset + i) as u32;
                }
                if let Some((target, source)) = r.grad {
                    parts.push(target);
                    source_parts.extend(source);
                    offset += range.len();
                }
            }
        }
        // Back in (point, step) order: `(points, steps, len, hidden)`.
        let gather = |parts: Vec<Tensor>| -> Result<Option<SdkTensor>, PluginError> {
            if !grad || parts.is_empty() {
                return Ok(None);
            }
            let order = Tensor::new(order.as_slice(), self.model.device()).map_err(host_err)?;
            let all = Tensor::cat(&parts, 0)
                .and_then(|a| a.index_select(&order, 0))
                .map_err(host_err)?;
            let (_, len, hidden) = all.dims3().map_err(host_err)?;
            let all = all.reshape((np, ns, len, hidden)).map_err(host_err)?;
            Ok(Some(to_sdk(&all)?))
        };
        let enc_dec = sources.is_some();
        let target = if self.attribute_target || !enc_dec {
            gather(parts)?
        } else {
            None
        };
        Ok(Some(GradientResponse {
            scores: SdkTensor::new(vec![np, ns], scores)?,
            source: gather(source_parts)?,
            target,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::backward_batches;

    #[test]
    fn small_batches_take_longer_streams_and_large_ones_keep_one_span() {
        // Saliency: one stream per step, spans 5..14: two padded batches.
        let spans: Vec<usize> = (5..15).collect();
        assert_eq!(backward_batches(&spans, 512), vec![0..7, 7..10]);
        // Integrated gradients: 20 points per step, one span per batch, within the budget.
        let spans: Vec<usize> = [5, 6].iter().flat_map(|&s| vec![s; 20]).collect();
        assert_eq!(backward_batches(&spans, 512), vec![0..20, 20..40]);
        // A small budget splits them; a short batch (8 rows × 5) takes longer streams.
        assert_eq!(
            backward_batches(&spans, 60),
            vec![0..12, 12..22, 22..32, 32..40]
        );
    }
}
