//! Top-k / top-p (nucleus) filtering of logits, as Inseq 0.7.1's `inseq/utils/torch_utils.py`
//! (`top_p_logits_mask`, `top_k_logits_mask`, `filter_logits`), one row at a time and in `f64`.
//!
//! Masks say which entries are **kept** (`true`); Inseq's say which are removed.
//!
//! Ties: Inseq sorts with `torch.sort`, whose order among equal logits is unspecified; here the
//! sort is stable (equal logits keep their vocabulary order), so among tied logits at the nucleus
//! boundary the one with the lower id is removed first.

use rinseq_sdk::prelude::*;

/// Validates the filtering parameters that do not depend on the vocabulary size, with Inseq's
/// messages.
///
/// Inseq checks `top_p` and `min_tokens_to_keep` only when top-p filtering actually runs
/// (`top_p < 1`) and lets `top_p > 1` through as "no filtering"; rinseq checks them when the
/// function is built and rejects every `top_p` outside `[0, 1]` (a deliberate, stricter choice:
/// a misspelt `top_p` should not silently turn filtering off).
pub fn validate(top_k: i64, top_p: f64, min_tokens_to_keep: i64) -> Result<(), PluginError> {
    if top_k < 0 {
        return Err(PluginError::invalid_params(format!(
            "`top_k` has to be a positive integer < vocabulary size, but is {top_k}"
        )));
    }
    validate_top_p(top_p)?;
    if min_tokens_to_keep < 1 {
        return Err(PluginError::invalid_params(format!(
            "`min_tokens_to_keep` has to be a positive integer, but is {min_tokens_to_keep}"
        )));
    }
    Ok(())
}

/// Checks `0 <= top_p <= 1` (Inseq's `top_p_logits_mask` message).
pub fn validate_top_p(top_p: f64) -> Result<(), PluginError> {
    if !(0.0..=1.0).contains(&top_p) {
        return Err(PluginError::invalid_params(format!(
            "`top_p` has to be a float > 0 and < 1, but is {top_p}"
        )));
    }
    Ok(())
}

/// The nucleus mask of one row (`top_p_logits_mask`): sort the logits in ascending order, remove
/// every entry whose cumulative softmax probability is `<= 1 - top_p`, but always keep the
/// `min_tokens_to_keep` largest. Returns `true` for kept entries.
pub fn top_p_keep(logits: &[f64], top_p: f64, min_tokens_to_keep: usize) -> Vec<bool> {
    let n = logits.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| logits[a].total_cmp(&logits[b]));
    let probs = rinseq_sdk::toolkit::softmax::log_softmax_f64(logits);
    let threshold = 1.0 - top_p;
    let mut keep = vec![true; n];
    let mut cumulative = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        cumulative += probs[i].exp();
        if cumulative <= threshold && rank + min_tokens_to_keep < n {
            keep[i] = false;
        }
    }
    keep
}

/// The top-k mask of one row (`top_k_logits_mask`): keep the entries not below the
/// `max(top_k, min_tokens_to_keep)`-th largest logit (ties at the threshold are all kept).
/// Errors when that count exceeds the vocabulary (torch's "selected index k out of range").
pub fn top_k_keep(
    logits: &[f64],
    top_k: usize,
    min_tokens_to_keep: usize,
) -> Result<Vec<bool>, PluginError> {
    let k = top_k.max(min_tokens_to_keep);
    if k > logits.len() {
        return Err(PluginError::invalid_params(format!(
            "top-k filtering keeps max(`top_k`, `min_tokens_to_keep`) = {k} tokens, more than \
             the vocabulary size {}",
            logits.len()
        )));
    }
    let mut sorted = logits.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let threshold = sorted[k - 1];
    Ok(logits.iter().map(|&v| v >= threshold).collect())
}

/// `filter_logits` for one row: which entries survive top-p (if `top_p < 1`), then top-k (if
/// `top_k > 0`) filtering. With contrast logits the masks are computed on the **merged** logits
/// `z + z'` (Inseq's default `filter_strategy`), and the same entries are masked in both.
/// `top_k` above the vocabulary size is an error with Inseq's message.
pub fn filter_keep(
    logits: &[f32],
    contrast_logits: Option<&[f32]>,
    top_k: usize,
    top_p: f64,
    min_tokens_to_keep: usize,
) -> Result<Vec<bool>, PluginError> {
    let vocab = logits.len();
    if top_k > vocab {
        return Err(PluginError::invalid_params(format!(
            "`top_k` has to be a positive integer < {vocab}, but is {top_k}"
        )));
    }
    let mut merged: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
    if let Some(c) = contrast_logits {
        merged
            .iter_mut()
            .zip(c)
            .for_each(|(m, &c)| *m += f64::from(c));
    }
    let mut keep = vec![true; vocab];
    if top_p < 1.0 {
        keep = top_p_keep(&merged, top_p, min_tokens_to_keep);
    }
    if top_k > 0 {
        // Inseq recomputes the merged logits from the already-masked ones: -inf where removed.
        let masked: Vec<f64> = merged
            .iter()
            .zip(&keep)
            .map(|(&m, &k)| if k { m } else { f64::NEG_INFINITY })
            .collect();
        let top = top_k_keep(&masked, top_k, min_tokens_to_keep)?;
        keep.iter_mut().zip(top).for_each(|(k, t)| *k &= t);
    }
    Ok(keep)
}
