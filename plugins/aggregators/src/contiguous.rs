//! The core of Inseq's `ContiguousSpanAggregator`, shared by `spans`, `subwords` and `split`:
//! validating spans, merging tokens, aggregating every tensor over the spans and moving
//! `attr_pos_start` / `attr_pos_end`.

use rinseq_sdk::{PluginError, SequenceAttribution, Tensor, Token};

use crate::aggregate_fn::Fns;
use crate::check::finish;
use crate::nd::merge_spans;
use crate::reduce::Reduction;

/// A list of `[start, end)` token spans.
pub type SpanList = [(usize, usize)];

/// Inseq's `validate_spans`: non-empty, ascending, non-overlapping, ending within `len` tokens.
pub fn validate(which: &str, spans: &SpanList, len: usize) -> Result<(), PluginError> {
    let mut prev_end = 0;
    for (i, &(s, e)) in spans.iter().enumerate() {
        let msg = if e < s + 1 {
            format!("span [{s}, {e}] is empty: the end (exclusive) must be greater than the start")
        } else if i > 0 && s < prev_end {
            format!(
                "span [{s}, {e}] starts before the previous span ends ({prev_end}): spans must be \
                 ascending and non-overlapping"
            )
        } else if e > len {
            format!("span [{s}, {e}] ends past the {len} tokens: the end must be at most {len}")
        } else {
            prev_end = e;
            continue;
        };
        return Err(PluginError::invalid_params(format!("{which}: {msg}")));
    }
    Ok(())
}

/// Inseq's `aggregate_token_sequence`: each span becomes one token, its texts joined, id -1
/// (also for one-token spans).
pub fn merge_tokens(tokens: &[Token], spans: &SpanList) -> Vec<Token> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if let Some(&(_, e)) = spans.iter().find(|(s, _)| *s == i) {
            let text: String = tokens[i..e].iter().map(|t| t.text.as_str()).collect();
            out.push(Token::merged(text));
            i = e;
        } else {
            out.push(tokens[i].clone());
            i += 1;
        }
    }
    out
}

/// Inseq's `_relativize_target_spans`: target spans as generated-step spans (those ending in the
/// prefix dropped, those starting before the generation clipped to 0).
pub fn relativize(spans: &SpanList, start: usize) -> Vec<(usize, usize)> {
    if start == 0 {
        return spans.to_vec();
    }
    spans
        .iter()
        .filter(|s| s.1 > start)
        .map(|&(s, e)| (s.saturating_sub(start), e - start))
        .collect()
}

/// Inseq's `_aggregate_sequential_scores`: along the generated axis (1) first, then axis 0.
fn sequential(t: &Tensor, x: &SpanList, y: &SpanList, r: Reduction) -> Result<Tensor, PluginError> {
    merge_spans(&merge_spans(t, y, r, 1)?, x, r, 0)
}

/// Inseq's `aggregate_attr_pos_start`.
fn new_start(start: usize, spans: &SpanList) -> usize {
    let merged_prefix: usize = spans
        .iter()
        .filter(|s| s.1 <= start)
        .map(|s| s.1 - s.0 - 1)
        .sum();
    // A span across the start keeps its whole merged token among the attributed targets.
    let across = spans
        .iter()
        .find(|s| s.0 < start && start < s.1)
        .map_or(0, |s| start - s.0);
    start - merged_prefix - across
}

/// Merges the spans (already validated) of one sequence, as `ContiguousSpanAggregator` does.
pub fn merge(
    mut seq: SequenceAttribution,
    src_spans: &SpanList,
    tgt_spans: &SpanList,
    fns: &Fns,
) -> Result<SequenceAttribution, PluginError> {
    let (start, end) = (seq.attr_pos_start, seq.attr_pos_end);
    let gen = relativize(tgt_spans, start);
    let s = &mut seq.scores;
    if let Some(t) = s.source.as_mut() {
        *t = sequential(t, src_spans, &gen, fns.source)?;
    }
    if let Some(t) = s.target.as_mut() {
        *t = sequential(t, tgt_spans, &gen, fns.target)?;
    }
    for n in s.step_scores.iter_mut() {
        n.tensor = merge_spans(&n.tensor, &gen, fns.step(&n.name), 0)?;
    }
    for n in s.sequence_scores.iter_mut() {
        // Named by what they relate: decoder* target×target, encoder* source×source, else
        // source×target (with the relativised target spans on both decoder axes, as Inseq).
        let (x, y) = if n.name.starts_with("decoder") {
            (&gen[..], &gen[..])
        } else if n.name.starts_with("encoder") {
            (src_spans, src_spans)
        } else {
            (src_spans, &gen[..])
        };
        n.tensor = sequential(&n.tensor, x, y, fns.sequence)?;
    }
    if !tgt_spans.is_empty() {
        let new_start = new_start(start, tgt_spans);
        let merged_gen: usize = gen.iter().map(|s| s.1 - s.0 - 1).sum();
        seq.attr_pos_start = new_start;
        let steps = (end - start).checked_sub(merged_gen).ok_or_else(|| {
            PluginError::invalid_params(format!(
                "target spans {tgt_spans:?} merge more generated tokens than the {} attributed",
                end - start
            ))
        })?;
        seq.attr_pos_end = new_start + steps;
    }
    seq.source = merge_tokens(&seq.source, src_spans);
    seq.target = merge_tokens(&seq.target, tgt_spans);
    finish(seq)
}
