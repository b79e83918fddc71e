//! Logits processors and warpers with HF semantics, on one row of scores (`vocab` floats).
//!
//! Processors run in HF's order (repetition penalty, no-repeat n-grams, bad words, min length,
//! forced BOS, forced EOS); the sampling warpers (temperature, top-k, top-p) run after them.

use super::params::GenerationParams;

/// The processors of one generation call (lengths resolved for its prompt).
#[derive(Debug, Clone)]
pub struct Processors<'a> {
    /// The resolved settings.
    pub params: &'a GenerationParams,
    /// Total length at which generation stops.
    pub max_len: usize,
    /// Total length below which EOS is suppressed.
    pub min_len: usize,
}

impl Processors<'_> {
    /// Everything HF's processor list does to one row, in order: [`Processors::process`], then
    /// when sampling [`Processors::warp`] (`Some(min_keep)`), then the final log-softmax when
    /// `renormalize_logits` is set.
    pub fn apply(&self, row: &[u32], pad_len: usize, scores: &mut [f32], sample: Option<usize>) {
        self.process(row, pad_len, scores);
        if let Some(min_keep) = sample {
            self.warp(scores, min_keep);
        }
        if self.params.renormalize_logits {
            let normalized = log_softmax(scores);
            scores.copy_from_slice(&normalized);
        }
    }

    /// Applies the processors to `scores` for the sequence `row` (the whole decoder row so far,
    /// left padding included, as HF's `input_ids`); `pad_len` leading entries are padding.
    pub fn process(&self, row: &[u32], pad_len: usize, scores: &mut [f32]) {
        let p = self.params;
        if p.repetition_penalty != 1.0 {
            repetition_penalty(scores, &row[pad_len.min(row.len())..], p.repetition_penalty);
        }
        if p.no_repeat_ngram_size > 0 {
            for t in banned_ngram_tokens(row, p.no_repeat_ngram_size) {
                set(scores, t, f32::NEG_INFINITY);
            }
        }
        for seq in &p.bad_words_ids {
            let (last, prefix) = seq.split_last().expect("checked non-empty");
            if row.ends_with(prefix) {
                set(scores, *last, f32::NEG_INFINITY);
            }
        }
        if row.len() < self.min_len {
            for &e in &p.eos_token_ids {
                set(scores, e, f32::NEG_INFINITY);
            }
        }
        if let Some(bos) = p.forced_bos_token_id {
            if row.len() == 1 {
                force(scores, &[bos]);
            }
        }
        if !p.forced_eos_token_ids.is_empty() && row.len() + 1 == self.max_len {
            force(scores, &p.forced_eos_token_ids);
        }
    }

    /// Applies the sampling warpers (temperature, top-k, top-p); `min_keep` is 1 for plain
    /// sampling and `n_eos + 1` for beam sampling, as in HF.
    pub fn warp(&self, scores: &mut [f32], min_keep: usize) {
        let p = self.params;
        if p.temperature != 1.0 {
            scores.iter_mut().for_each(|s| *s /= p.temperature);
        }
        if p.top_k > 0 {
            top_k_filter(scores, p.top_k.max(min_keep));
        }
        if p.top_p < 1.0 {
            top_p_filter(scores, p.top_p, min_keep);
        }
    }
}

fn set(scores: &mut [f32], id: u32, v: f32) {
    if let Some(s) = scores.get_mut(id as usize) {
        *s = v;
    }
}

/// Everything `-inf` except `ids`, which become 0.
fn force(scores: &mut [f32], ids: &[u32]) {
    scores.iter_mut().for_each(|s| *s = f32::NEG_INFINITY);
    for &id in ids {
        set(scores, id, 0.0);
    }
}

/// HF repetition penalty: every token present in `seen` gets `s * penalty` if `s < 0`, else
/// `s / penalty`.
pub fn repetition_penalty(scores: &mut [f32], seen: &[u32], penalty: f32) {
    let mut done = vec![false; scores.len()];
    for &t in seen {
        let t = t as usize;
        if t < scores.len() && !done[t] {
            done[t] = true;
            let s = scores[t];
            scores[t] = if s < 0.0 { s * penalty } else { s / penalty };
        }
    }
}

/// Tokens that would complete an n-gram of size `n` already present in `row` (HF
/// `NoRepeatNGramLogitsProcessor`).
pub fn banned_ngram_tokens(row: &[u32], n: usize) -> Vec<u32> {
    if n == 0 || row.len() + 1 < n {
        return Vec::new();
    }
    let prefix = &row[row.len() + 1 - n..];
    row.windows(n)
        .filter(|w| &w[..n - 1] == prefix)
        .map(|w| w[n - 1])
        .collect()
}

/// Keeps the `k` largest scores (and everything tied with the k-th); the rest become `-inf`.
pub fn top_k_filter(scores: &mut [f32], k: usize) {
    let k = k.min(scores.len());
    if k == 0 {
        return;
    }
    let mut sorted: Vec<f32> = scores.to_vec();
    sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let threshold = sorted[k - 1];
    scores
        .iter_mut()
        .filter(|s| **s < threshold)
        .for_each(|s| *s = f32::NEG_INFINITY);
}

/// Nucleus filter with HF semantics: sort ascending, remove tokens whose cumulative probability
/// is `<= 1 - top_p`, always keeping the `min_keep` most likely.
pub fn top_p_filter(scores: &mut [f32], top_p: f32, min_keep: usize) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let sorted: Vec<f32> = order.iter().map(|&i| scores[i]).collect();
    let probs = softmax(&sorted);
    let keep_from = scores.len().saturating_sub(min_keep);
    let mut cum = 0f32;
    for (rank, (&i, p)) in order.iter().zip(probs).enumerate() {
        cum += p;
        if cum <= 1.0 - top_p && rank < keep_from {
            scores[i] = f32::NEG_INFINITY;
        }
    }
}

/// Softmax of a row (f32, max-subtracted).
pub fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return vec![0.0; x.len()];
    }
    let e: Vec<f32> = x.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// Log-softmax of a row (f32, max-subtracted, as torch computes it).
pub fn log_softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = x.iter().map(|v| (v - max).exp()).sum();
    let lse = sum.ln();
    x.iter().map(|v| v - max - lse).collect()
}

/// Index of the largest score (the first one on ties, like `torch.argmax`).
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in x.iter().enumerate() {
        if *v > x[best] {
            best = i;
        }
    }
    best as u32
}
