//! Contrastive inputs (Inseq's `contrast_targets`, `contrast_sources`,
//! `contrast_targets_alignments`): a second input whose logits `z'` and aligned target token
//! `y'` contrastive step functions compare with the original ones.

use rinseq_sdk::Token;

use super::sequence::{ContrastSequence, EncodedSequence};
use super::AttributionError;
use crate::models::tokenizer::TextTokenizer;

/// Inseq's separator in a renamed target token: `"{contrast} → {target}"`.
pub const RENAME_SEPARATOR: &str = " → ";

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

/// Inseq's `join_token_ids` with contrast tokens: every position in `[start, end)` (the
/// positions Inseq aligns, `attr_pos_start..attr_pos_end`) whose aligned contrast token differs
/// from the target token becomes `"{contrast} → {target}"` with id -1; the other positions (the
/// prompt, the decoder start token, identical tokens) are unchanged. Raw token strings are
/// compared, as Inseq compares `convert_ids_to_tokens` outputs.
pub fn rename_targets(
    target: &[Token],
    contrast: &[String],
    aligned: &[usize],
    start: usize,
    end: usize,
) -> Vec<Token> {
    target
        .iter()
        .enumerate()
        .map(|(pos, t)| {
            let c = (start..end)
                .contains(&pos)
                .then(|| aligned.get(pos).and_then(|&c| contrast.get(c)))
                .flatten();
            match c {
                Some(c) if c.as_str() != t.text.as_str() => {
                    Token::merged(format!("{c}{RENAME_SEPARATOR}{}", t.text))
                }
                _ => t.clone(),
            }
        })
        .collect()
}

/// Builds the contrast of `seq` from encoded contrast ids; `tokenizer` (the target tokenizer)
/// names the contrast tokens for [`rename_targets`].
pub fn contrast_of(
    seq: &EncodedSequence,
    contrast_source: Option<Vec<u32>>,
    contrast_target: Vec<u32>,
    explicit: &[(usize, usize)],
    tokenizer: &TextTokenizer,
) -> Result<ContrastSequence, AttributionError> {
    // Only contrast sources: the contrast decodes the original target, and Inseq, which has no
    // contrast batch then, renames nothing.
    let renames = !contrast_target.is_empty();
    let contrast_target = if renames {
        contrast_target
    } else {
        seq.target_ids.clone()
    };
    let start = seq.steps.first().copied().unwrap_or(0);
    let end = seq.steps.last().map_or(start, |s| s + 1);
    // Inseq aligns `attr_pos_start..attr_pos_end` only; an encoder-decoder's explicit end
    // position is attributed too, and its missing alignment (-1) picks the last contrast token.
    let align_end = seq.attr_pos.1.clamp(start, end);
    let aligned = if renames {
        let mut aligned = align(contrast_target.len(), explicit, start, align_end)?;
        aligned.resize(end, contrast_target.len().saturating_sub(1));
        aligned
    } else {
        // Inseq decodes the original target itself (no contrast batch, no alignment).
        (0..end).collect()
    };
    for &step in &seq.steps {
        if aligned[step] == 0 {
            return Err(AttributionError::BadInput(format!(
                "target position {step} aligns with the first contrast token, which has no prefix to predict it from: give a longer contrast or explicit alignments"
            )));
        }
    }
    // An encoder-decoder's explicit end position, unaligned in Inseq, is not renamed.
    let renamed_targets = if renames {
        let contrast_tokens = tokenizer.tokens(&contrast_target);
        rename_targets(
            &seq.target_tokens,
            &contrast_tokens,
            &aligned,
            start,
            align_end,
        )
    } else {
        seq.target_tokens.clone()
    };
    Ok(ContrastSequence {
        source_ids: contrast_source.unwrap_or_else(|| seq.source_ids.clone()),
        target_ids: contrast_target,
        aligned,
        renamed_targets,
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

    #[test]
    fn only_differing_aligned_tokens_in_range_are_renamed() {
        let target: Vec<Token> = ["a", "b", "c", "d"]
            .iter()
            .zip(10..)
            .map(|(t, i)| Token::new(*t, i))
            .collect();
        let contrast: Vec<String> = ["x", "c", "y"].iter().map(|s| s.to_string()).collect();
        // Position 0 is outside the range, position 2 aligns with an identical token.
        let got = rename_targets(&target, &contrast, &[2, 0, 1, 2], 1, 4);
        let got: Vec<(String, i64)> = got
            .iter()
            .map(|t| (t.text.to_string(), t.id.map_or(-1, i64::from)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), 10),
                ("x → b".into(), -1),
                ("c".into(), 12),
                ("y → d".into(), -1)
            ]
        );
    }
}
