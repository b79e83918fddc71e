//! Contrastive inputs (Inseq's `contrast_targets`, `contrast_sources`,
//! `contrast_targets_alignments`): a second input whose logits `z'` and aligned target token
//! `y'` contrastive step functions compare with the original ones.

use super::sequence::EncodedSequence;
use super::AttributionError;

/// The contrastive counterpart of one encoded sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct ContrastSequence {
    /// Encoder ids of the contrast (the original source when no `contrast_sources`).
    pub source_ids: Vec<u32>,
    /// Decoder ids of the contrast (decoder-only: prompt included).
    pub target_ids: Vec<u32>,
    /// For every original target position, the aligned contrast position.
    pub aligned: Vec<usize>,
}

impl ContrastSequence {
    /// The contrast position aligned with original target position `pos`.
    pub fn position(&self, pos: usize) -> usize {
        self.aligned[pos]
    }
}

/// Aligns the attributed target positions `[start, end)` with contrast positions as Inseq's
/// `get_adjusted_alignments(fill_missing=True)` does: an explicit `(orig, contrast)` pair wins
/// (the first one whose contrast position is not taken yet); every other position is
/// right-aligned against `end` (`pos + contrast_len - end`), or the last contrast token when that
/// would fall before position 1. Entries outside `[start, end)` are unused (0).
pub fn align(
    contrast_len: usize,
    explicit: &[(usize, usize)],
    start: usize,
    end: usize,
) -> Result<Vec<usize>, AttributionError> {
    if let Some(&(o, c)) = explicit.iter().find(|&&(_, c)| c >= contrast_len) {
        return Err(AttributionError::BadInput(format!(
            "contrast alignment ({o}, {c}) is out of range: the contrast has {contrast_len} tokens"
        )));
    }
    let mut pairs: Vec<(usize, usize)> = explicit.to_vec();
    pairs.sort_unstable();
    pairs.dedup();
    let mut aligned = vec![0; end];
    let mut taken: Vec<usize> = Vec::new();
    for (pos, slot) in aligned.iter_mut().enumerate().take(end).skip(start) {
        let matches: Vec<usize> = pairs.iter().filter(|p| p.0 == pos).map(|p| p.1).collect();
        *slot = match matches
            .iter()
            .find(|c| !taken.contains(c))
            .or(matches.first())
        {
            Some(&c) => c,
            None => {
                let back = end - pos;
                if contrast_len > back {
                    contrast_len - back
                } else {
                    contrast_len - 1
                }
            }
        };
        taken.push(*slot);
    }
    Ok(aligned)
}

/// Builds the contrast of `seq` from encoded contrast ids.
pub fn contrast_of(
    seq: &EncodedSequence,
    contrast_source: Option<Vec<u32>>,
    contrast_target: Vec<u32>,
    explicit: &[(usize, usize)],
) -> Result<ContrastSequence, AttributionError> {
    // Only contrast sources: the contrast decodes the original target.
    let contrast_target = if contrast_target.is_empty() {
        seq.target_ids.clone()
    } else {
        contrast_target
    };
    let start = seq.steps.first().copied().unwrap_or(0);
    let end = seq.steps.last().map_or(start, |s| s + 1);
    let aligned = align(contrast_target.len(), explicit, start, end)?;
    for &step in &seq.steps {
        if aligned[step] == 0 {
            return Err(AttributionError::BadInput(format!(
                "target position {step} aligns with the first contrast token, which has no prefix to predict it from: give a longer contrast or explicit alignments"
            )));
        }
    }
    Ok(ContrastSequence {
        source_ids: contrast_source.unwrap_or_else(|| seq.source_ids.clone()),
        target_ids: contrast_target,
        aligned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_aligned_against_the_end_explicit_pairs_win() {
        // Position 0 would align with contrast position 0, which Inseq avoids (last token).
        assert_eq!(align(4, &[], 0, 4).unwrap(), vec![3, 1, 2, 3]);
        assert_eq!(align(6, &[], 0, 4).unwrap(), vec![2, 3, 4, 5]);
        // Positions that would fall before 1 take the last contrast token (Inseq).
        assert_eq!(align(3, &[], 0, 4).unwrap(), vec![2, 2, 1, 2]);
        assert_eq!(align(6, &[], 2, 4).unwrap(), vec![0, 0, 4, 5]);
        assert_eq!(align(6, &[(3, 1)], 2, 4).unwrap(), vec![0, 0, 4, 1]);
        assert!(align(6, &[(3, 6)], 2, 4).is_err());
    }
}
