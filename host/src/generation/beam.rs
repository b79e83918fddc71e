//! Beam search with the semantics of HF transformers' `_beam_search` (the vectorised rewrite of
//! 4.50+): top `K = max(2, 1 + n_eos) * num_beams` continuations per step, finished hypotheses
//! scored `sum log p / new_len^length_penalty`, `early_stopping` true / false / "never".

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::batch::{step, Rows};
use super::config::EarlyStopping;
use super::processors::{log_softmax, softmax, Processors};
use super::search::sample;
use super::GenerationError;
use crate::models::DecodingState;

/// HF's "minus infinity" for beam bookkeeping.
const NEG: f32 = -1.0e9;

/// The beams of one batch item.
struct Item {
    /// Running scores (sum of log-probs), best first.
    running: Vec<f32>,
    /// Finished hypotheses: (length-normalised score, full row, really finished).
    finished: Vec<(f32, Vec<u32>, bool)>,
    /// HF's `is_early_stop_heuristic_unsatisfied`.
    unsatisfied: bool,
}

/// Runs beam search from the prompt logits (one row per batch item) and returns the new tokens
/// of the best finished hypothesis of each item (EOS included when it ended with one).
pub fn beam_search(
    state: &mut dyn DecodingState,
    rows: Rows,
    logits: Vec<Vec<f32>>,
    procs: &Processors<'_>,
) -> Result<Vec<Vec<u32>>, GenerationError> {
    let p = procs.params;
    let nb = p.num_beams;
    let b = rows.rows.len();
    let prompt_len = rows.len();
    if prompt_len >= procs.max_len {
        return Ok(vec![Vec::new(); b]);
    }
    let n_eos = p.eos_token_ids.len();
    let k_keep = 2usize.max(1 + n_eos) * nb;
    let mut rng = StdRng::seed_from_u64(p.seed);

    // Expand every batch row to `nb` beams.
    let expand: Vec<usize> = (0..b).flat_map(|i| std::iter::repeat_n(i, nb)).collect();
    state.select_rows(&expand)?;
    let mut beams = Rows {
        rows: expand.iter().map(|&i| rows.rows[i].clone()).collect(),
        pad_lens: expand.iter().map(|&i| rows.pad_lens[i]).collect(),
        device: rows.device.clone(),
    };
    let mut logits: Vec<Vec<f32>> = expand.iter().map(|&i| logits[i].clone()).collect();
    let mut items: Vec<Item> = (0..b)
        .map(|_| Item {
            running: (0..nb).map(|j| if j == 0 { 0.0 } else { NEG }).collect(),
            finished: vec![(NEG, Vec::new(), false); nb],
            unsatisfied: true,
        })
        .collect();

    loop {
        let cur_len = beams.len();
        crate::progress::report_generation(
            (cur_len - prompt_len) as u64,
            (procs.max_len - prompt_len) as u64,
        );
        let mut sources = Vec::with_capacity(b * nb);
        let mut next_rows = Vec::with_capacity(b * nb);
        let mut all_hit = true;
        for (i, item) in items.iter_mut().enumerate() {
            // Accumulated scores over (beam, token).
            let vocab = logits[i * nb].len();
            let mut acc = Vec::with_capacity(nb * vocab);
            for j in 0..nb {
                let r = i * nb + j;
                let mut lp = log_softmax(&logits[r]);
                let sampling = p.do_sample.then_some((n_eos + 1).max(2));
                procs.apply(&beams.rows[r], beams.pad_lens[r], &mut lp, sampling);
                acc.extend(lp.iter().map(|v| v + item.running[j]));
            }
            let top = if p.do_sample {
                sample_sorted(&acc, k_keep, &mut rng)
            } else {
                top_indices(&acc, k_keep)
            };
            let cands: Vec<(f32, usize, u32)> = top
                .iter()
                .map(|&f| (acc[f], f / vocab, (f % vocab) as u32))
                .collect();
            let hits: Vec<bool> = cands
                .iter()
                .map(|&(_, _, t)| p.eos_token_ids.contains(&t) || cur_len + 1 >= procs.max_len)
                .collect();
            all_hit &= hits.iter().all(|h| *h);
            let seq = |&(_, j, t): &(f32, usize, u32)| {
                let mut s = beams.rows[i * nb + j].clone();
                s.push(t);
                s
            };

            // Running beams for the next step.
            let adj: Vec<f32> = cands
                .iter()
                .zip(&hits)
                .map(|(c, &h)| c.0 + if h { NEG } else { 0.0 })
                .collect();
            let keep = top_indices(&adj, nb);
            for &k in &keep {
                sources.push(i * nb + cands[k].1);
                next_rows.push(seq(&cands[k]));
            }
            let new_running: Vec<f32> = keep.iter().map(|&k| adj[k]).collect();

            // Finished hypotheses.
            let denom = ((cur_len + 1 - prompt_len) as f64).powf(f64::from(p.length_penalty));
            let full =
                item.finished.iter().all(|f| f.2) && p.early_stopping == EarlyStopping::Bool(true);
            let mut merged = item.finished.clone();
            for (k, c) in cands.iter().enumerate() {
                let done = hits[k] && k < nb;
                let mut s = c.0 / denom as f32;
                if full {
                    s += NEG;
                }
                if !item.unsatisfied {
                    s += NEG;
                }
                if !done {
                    s += NEG;
                }
                merged.push((s, if done { seq(c) } else { Vec::new() }, done));
            }
            let scores: Vec<f32> = merged.iter().map(|m| m.0).collect();
            item.finished = top_indices(&scores, nb)
                .into_iter()
                .map(|k| merged[k].clone())
                .collect();
            item.running = new_running;

            // Early-stop heuristic, with the new length.
            let best_len = match p.early_stopping {
                EarlyStopping::Never(_) if p.length_penalty > 0.0 => procs.max_len - prompt_len,
                _ => cur_len + 1 - prompt_len,
            };
            let best = item.running[0] / (best_len as f64).powf(f64::from(p.length_penalty)) as f32;
            let worst = item
                .finished
                .iter()
                .map(|f| f.0)
                .fold(f32::INFINITY, f32::min);
            item.unsatisfied &= item
                .finished
                .iter()
                .any(|f| best > if f.2 { worst } else { NEG });
        }
        let improvable = items.iter().any(|it| it.unsatisfied);
        let all_finished = items.iter().all(|it| it.finished.iter().all(|f| f.2));
        let open = !(all_finished && p.early_stopping == EarlyStopping::Bool(true));
        if !(improvable && open && !all_hit) {
            break;
        }
        state.select_rows(&sources)?;
        beams.rows = next_rows;
        beams.pad_lens = sources.iter().map(|&s| beams.pad_lens[s]).collect();
        logits = step(state, &beams, 1)?;
    }
    Ok(items
        .into_iter()
        .map(|it| {
            let best = &it.finished[0];
            if best.2 {
                best.1[prompt_len..].to_vec()
            } else {
                Vec::new()
            }
        })
        .collect())
}

/// Indices of the `k` largest values, best first (lower index first on ties).
pub fn top_indices(vals: &[f32], k: usize) -> Vec<usize> {
    let k = k.min(vals.len());
    let cmp = |a: &usize, b: &usize| vals[*b].total_cmp(&vals[*a]).then(a.cmp(b));
    let mut idx: Vec<usize> = (0..vals.len()).collect();
    if k > 0 && k < idx.len() {
        idx.select_nth_unstable_by(k - 1, cmp);
    }
    idx.truncate(k);
    idx.sort_by(cmp);
    idx
}

/// `k` draws without replacement from `softmax(vals)`, returned best score first (HF beam
/// sampling: `multinomial` then sort).
fn sample_sorted(vals: &[f32], k: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut probs = softmax(vals);
    let mut picked = Vec::with_capacity(k);
    for _ in 0..k.min(vals.len()) {
        let total: f32 = probs.iter().sum();
        if total <= 0.0 {
            break;
        }
        let norm: Vec<f32> = probs.iter().map(|p| p / total).collect();
        let i = sample(&norm, rng) as usize;
        probs[i] = 0.0;
        picked.push(i);
    }
    picked.sort_by(|a, b| vals[*b].total_cmp(&vals[*a]).then(a.cmp(b)));
    picked
}
