//! Selection of salient tokens by score (Inseq's `filter_rank_tokens`, `get_scores_threshold`):
//! CTI picks context-sensitive tokens with it, the views pick the context cues.

/// Inseq's threshold: `mean + λ·std` (unbiased std, as torch), the mean alone when `λ = 0` or
/// there is one score, 0 when there is no `λ` or no score.
pub fn threshold(scores: &[f32], std_weight: Option<f64>) -> f64 {
    let Some(w) = std_weight else { return 0.0 };
    if scores.is_empty() {
        return 0.0;
    }
    let n = scores.len() as f64;
    let mean = scores.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
    if w == 0.0 || scores.len() == 1 {
        return mean;
    }
    let var = scores
        .iter()
        .map(|&s| (f64::from(s) - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    mean + w * var.sqrt()
}

/// Indices of `scores` ranked by |score| (descending, ties in order) whose |score| reaches the
/// threshold, cut to `topk`; and the threshold.
pub fn rank(scores: &[f32], std_weight: Option<f64>, topk: Option<usize>) -> (Vec<usize>, f64) {
    let t = threshold(scores, std_weight);
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    // A stable sort, as Python's `sorted`.
    idx.sort_by(|&a, &b| scores[b].abs().total_cmp(&scores[a].abs()));
    // Inseq compares in float32 (a Python float against a float32 tensor).
    let mut kept: Vec<usize> = idx
        .into_iter()
        .filter(|&i| scores[i].abs() >= t as f32)
        .collect();
    if let Some(k) = topk.filter(|&k| k > 0) {
        kept.truncate(k);
    }
    (kept, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_and_ranking_follow_inseq() {
        let s = [0.31, 0.25, 0.55, 0.16, 0.43];
        let t = threshold(&s, Some(1.0));
        assert!((t - 0.492_970_6).abs() < 1e-6, "{t}");
        assert_eq!(rank(&s, Some(1.0), None).0, vec![2]);
        assert_eq!(rank(&s, Some(0.0), None).0, vec![2, 4]);
        assert_eq!(rank(&s, None, Some(2)).0, vec![2, 4]);
        assert_eq!(rank(&[-0.5], Some(1.0), None).0, vec![0]);
        assert!(rank(&[], Some(1.0), None).0.is_empty());
    }
}
