//! Score requests on decoder-only models through the KV cache of the unperturbed sequence.
//!
//! A causal model's position `i` only sees positions `≤ i`, so a point that first differs from
//! the sequence at position `p` has the unperturbed keys and values at every position `< p` and
//! the unperturbed scores at every step `≤ p` (logits at `step − 1 < p`). The sequence runs once
//! with a cache ([`Model::cache_prefix`](crate::models::Model::cache_prefix)); each point then
//! runs positions `p..len` only, and its steps before `p` take the unperturbed scores.
//!
//! Points are sorted by their first change and batched in that order: a batch starts after the
//! cached positions its first point keeps (the smallest `p` in it), so every row has the same
//! length, as in a whole forward. Occlusion's points change positions `0, 1, …`, so about half
//! of all tokens are skipped; a point that changes nothing the steps read costs no forward.

use candle_core::{DType, Tensor};
use rayon::prelude::*;
use rinseq_sdk::PointSide;

use super::host::{host_err, ModelHost};
use super::perturbed::ScoreJob;
use crate::models::{LogitPositions, Side as ModelSide};
use rinseq_sdk::PluginError;

/// When score requests on decoder-only models go through the unperturbed prefix's KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrefixReuse {
    /// When it costs less than whole forwards by [`FORWARD_COST_TOKENS`]' measure (the
    /// default: long rows, late changes).
    #[default]
    Auto,
    /// Whenever the model has a cache path (tests of that path on short fixtures).
    Always,
    /// Never: one whole forward per point (`--per-row-forward`).
    Never,
}

/// A batch of points (indices into the request, sorted by first change) that all restart at
/// position `from`.
struct Batch {
    points: Vec<usize>,
    from: usize,
}

impl ModelHost<'_> {
    /// The scores `(points × steps)` of `job` through the prefix cache; `None` where the model
    /// has no cache path or whole forwards cost less (the caller then runs those).
    pub(super) fn score_with_prefix_cache(
        &self,
        job: &ScoreJob<'_>,
    ) -> Result<Option<Vec<f32>>, PluginError> {
        let (seq, len, ns) = (job.seq, job.len, job.steps.len());
        let actual = self.embed_ids(ModelSide::Decoder, &seq.target_ids[..len])?;
        let positions = job.positions();
        let all_steps: Vec<usize> = (0..ns).collect();
        let actual_rows: Vec<Vec<f32>> = match job
            .points
            .iter()
            .any(|p| matches!(p.target, PointSide::Values(_)))
        {
            true => actual
                .to_dtype(DType::F32)
                .and_then(|a| a.to_vec2())
                .map_err(host_err)?,
            false => Vec::new(),
        };
        let firsts: Vec<usize> = job
            .points
            .iter()
            .map(|p| first_change(&p.target, &seq.target_ids[..len], &actual_rows))
            .collect();
        let (batches, cost) = plan(&firsts, len, job.budget);
        let per_batch = (job.budget / len).clamp(1, job.points.len());
        let cheaper = cost < whole_cost(job.points.len(), len, per_batch);
        if !cheaper && self.prefix_reuse != PrefixReuse::Always {
            return Ok(None); // short rows: whole forwards are cheaper
        }
        let batched = actual.unsqueeze(0).map_err(host_err)?;
        let Some(cached) = self
            .model
            .cache_prefix(&batched, &LogitPositions::These(positions.clone()))
        else {
            return Ok(None);
        };
        let (base_logits, prefix) = cached.map_err(host_err)?;
        let base = self.score_logits(job, &base_logits, 1, &all_steps)?;
        let unchanged = job.points.len() - batches.iter().map(|b| b.points.len()).sum::<usize>();
        if unchanged > 0 {
            job.advance(self, unchanged)?;
        }

        let run = |b: &Batch| -> Result<(Vec<usize>, Vec<f32>), PluginError> {
            // The steps whose logits come at or after the restart; the rest keep `base`.
            let which: Vec<usize> = (0..ns).filter(|&j| positions[j] >= b.from).collect();
            let at: Vec<usize> = which.iter().map(|&j| positions[j] - b.from).collect();
            let rows = b
                .points
                .iter()
                .map(|&i| {
                    self.point_side(ModelSide::Decoder, &seq.target_ids, &job.points[i].target)
                        .and_then(|t| t.narrow(0, b.from, len - b.from).map_err(host_err))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let embeds = Tensor::stack(&rows, 0).map_err(host_err)?;
            let logits = prefix
                .logits_after(b.from, &embeds, &at)
                .map_err(host_err)?;
            let scores = self.score_logits(job, &logits, b.points.len(), &which)?;
            job.advance(self, b.points.len())?;
            Ok((which, scores))
        };
        let parts: Vec<(Vec<usize>, Vec<f32>)> = if batches.len() > 1 {
            batches.par_iter().map(run).collect::<Result<_, _>>()?
        } else {
            batches.iter().map(run).collect::<Result<_, _>>()?
        };

        let mut out: Vec<f32> = (0..job.points.len()).flat_map(|_| base.clone()).collect();
        for (b, (which, scores)) in batches.iter().zip(parts) {
            for (r, &i) in b.points.iter().enumerate() {
                for (c, &j) in which.iter().enumerate() {
                    out[i * ns + j] = scores[r * which.len() + c];
                }
            }
        }
        Ok(Some(out))
    }
}

/// The first of the `len` target positions where a point differs from the sequence `ids`
/// (`len` when it differs nowhere there). Values are compared with the unperturbed embeddings
/// `actual` exactly: a difference only costs reuse, never correctness.
fn first_change(point: &PointSide, ids: &[u32], actual: &[Vec<f32>]) -> usize {
    let len = ids.len();
    match point {
        PointSide::Actual => len,
        PointSide::Ids(p) => (0..len).find(|&i| p[i] != ids[i]).unwrap_or(len),
        PointSide::Values(t) => {
            let width = t.shape.get(1).copied().unwrap_or(0);
            (0..len)
                .find(|&i| {
                    let row = &t.data[i * width..(i + 1) * width];
                    actual.get(i).is_none_or(|a| a.as_slice() != row)
                })
                .unwrap_or(len)
        }
    }
}

/// A forward's fixed cost in tokens of work: every forward streams all the weights from memory
/// and dispatches every op once, whatever its size. With `2 · params` flops per token and
/// `4 · params` bytes of f32 weights, it is `2 · flops/s ÷ bytes/s` tokens: about 20 on a CPU
/// doing 100–200 Gflop/s from 10–20 GB/s, plus the ops' dispatch.
pub const FORWARD_COST_TOKENS: usize = 32;

/// The cost, in tokens of work, of scoring `points` points as whole forwards of `len` tokens,
/// `per_batch` at a time.
pub fn whole_cost(points: usize, len: usize, per_batch: usize) -> usize {
    points.div_ceil(per_batch.max(1)) * FORWARD_COST_TOKENS + points * len
}

/// The cheapest batches of the points that change one of the `len` positions (sorted by first
/// change `firsts[i]`; a batch restarts at its first point's change, so its cost is
/// [`FORWARD_COST_TOKENS`] + rows × the positions it re-runs, at most `budget` tokens unless
/// it has one row), and their total cost including the unperturbed forward that fills the cache.
/// Contiguous runs of the sorted points are the only batches worth trying (a batch costs what
/// its earliest change costs), so a dynamic programme over them finds the cheapest split.
fn plan(firsts: &[usize], len: usize, budget: usize) -> (Vec<Batch>, usize) {
    let mut order: Vec<usize> = (0..firsts.len()).filter(|&i| firsts[i] < len).collect();
    order.sort_by_key(|&i| firsts[i]);
    let m = order.len();
    // best[b]: the cheapest cost of the first b sorted points, and where its last batch starts.
    let mut best: Vec<(usize, usize)> = vec![(0, 0); m + 1];
    for b in 1..=m {
        best[b] = (usize::MAX, 0);
        for a in (0..b).rev() {
            let tokens = (b - a) * (len - firsts[order[a]]);
            if tokens > budget && b - a > 1 {
                break; // earlier starts only add rows and positions
            }
            let cost = best[a].0 + FORWARD_COST_TOKENS + tokens;
            if cost < best[b].0 {
                best[b] = (cost, a);
            }
        }
    }
    let mut out = Vec::new();
    let mut b = m;
    while b > 0 {
        let a = best[b].1;
        out.push(Batch {
            points: order[a..b].to_vec(),
            from: firsts[order[a]],
        });
        b = a;
    }
    out.reverse();
    (out, best[m].0 + FORWARD_COST_TOKENS + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rinseq_sdk::Tensor as SdkTensor;

    #[test]
    fn first_change_finds_the_first_differing_position() {
        let ids = [5, 6, 7, 8];
        assert_eq!(first_change(&PointSide::Actual, &ids, &[]), 4);
        assert_eq!(
            first_change(&PointSide::Ids(vec![5, 6, 0, 8]), &ids, &[]),
            2
        );
        assert_eq!(
            first_change(&PointSide::Ids(vec![5, 6, 7, 8, 0]), &ids, &[]),
            4
        );
        let actual = vec![vec![1.0, 2.0], vec![3.0, 4.0]];
        let same = SdkTensor::new(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let second = SdkTensor::new(vec![2, 2], vec![1.0, 2.0, 3.0, 0.0]).unwrap();
        assert_eq!(first_change(&PointSide::Values(same), &[1, 2], &actual), 2);
        assert_eq!(
            first_change(&PointSide::Values(second), &[1, 2], &actual),
            1
        );
    }

    #[test]
    fn plans_restart_batches_where_it_pays() {
        // Points 0..5 change positions 3, 0, 9 (none of the 8 read), 1, 5; budget 16 tokens.
        let (b, cost) = plan(&[3, 0, 9, 1, 5], 8, 16);
        let got: Vec<(Vec<usize>, usize)> = b.into_iter().map(|b| (b.points, b.from)).collect();
        // Sorted 1 (0), 3 (1), 0 (3), 4 (5): [1, 3] from 0 is 16 tokens; [0, 4] from 3 is 10.
        assert_eq!(got, vec![(vec![1, 3], 0), (vec![0, 4], 3)]);
        let c = FORWARD_COST_TOKENS;
        assert_eq!(cost, (c + 16) + (c + 10) + (c + 8));
        // Long rows and a large budget: restarting late saves more than a forward costs.
        let firsts: Vec<usize> = (0..200).collect();
        let (b, cost) = plan(&firsts, 200, 1 << 20);
        assert!(b.len() > 1 && cost < whole_cost(200, 200, 200) * 3 / 5);
        // Short rows: one batch from the start, and the whole path is cheaper still.
        let firsts: Vec<usize> = (0..8).collect();
        let (b, cost) = plan(&firsts, 8, 1 << 20);
        assert_eq!(b.len(), 1);
        assert!(cost > whole_cost(8, 8, 8));
    }
}
