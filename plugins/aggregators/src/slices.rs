//! `slices` (Inseq's `SliceAggregator`): keeps only some token ranges; the generated tokens are
//! always kept.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::check::finish;
use crate::contiguous::{validate, SpanList};
use crate::nd::{take_blocks, take_rows};
use crate::params::Spans;

/// Parameters of `slices`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SlicesParams {
    /// Source token ranges to keep: one [start, end] (end exclusive) or a list of ascending, non-overlapping ones. Without it the whole source is kept (Inseq fails instead). Decoder-only sequences (no source attributions) ignore it and slice their source (the prompt) like target_spans, as Inseq does.
    pub source_spans: Option<Spans>,
    /// Target token ranges to keep; the generated tokens [attr_pos_start, attr_pos_end) are always kept (a range reaching into them is extended to attr_pos_end). Required for decoder-only sequences.
    pub target_spans: Option<Spans>,
}

/// Token ranges `[start, end)`.
pub type Ranges = Vec<(usize, usize)>;

/// Inseq's `slices` aggregator.
pub struct Slices(SlicesParams);

impl PluginInfo for Slices {
    const NAME: &'static str = "slices";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Keep only some token ranges (generated tokens are always kept).";
    type Params = SlicesParams;
}

fn tokens(all: &[Token], spans: &SpanList) -> Vec<Token> {
    spans
        .iter()
        .flat_map(|&(s, e)| all[s..e].iter().cloned())
        .collect()
}

impl Slices {
    /// The source and target ranges actually kept for `seq` (Inseq's `SliceAggregator.aggregate`).
    pub fn ranges(&self, seq: &SequenceAttribution) -> Result<(Ranges, Ranges), PluginError> {
        let (start, end) = (seq.attr_pos_start, seq.attr_pos_end);
        let target = self.0.target_spans.as_ref().map(|s| s.0.clone());
        let source = if seq.scores.source.is_none() {
            let Some(t) = &target else {
                return Err(PluginError::invalid_params(
                    "slices: this sequence has no source attributions (decoder-only): give \
                     target_spans, from which the prompt slices are derived",
                ));
            };
            t.iter().map(|&(s, e)| (s, e.min(start))).collect()
        } else {
            self.0
                .source_spans
                .as_ref()
                .map_or_else(|| vec![(0, seq.source.len())], |s| s.0.clone())
        };
        let mut kept = Vec::new();
        let mut gen_added = false;
        for &(s, e) in target.iter().flatten() {
            if e <= start {
                kept.push((s, e));
            } else if !gen_added {
                if s > start {
                    return Err(PluginError::invalid_params(format!(
                        "target_spans: span [{s}, {e}] starts after the first generated token \
                         ({start}): generated tokens [{start}, {end}) are always kept, so start \
                         it at or before {start}"
                    )));
                }
                kept.push((s, end));
                gen_added = true;
            }
        }
        if !gen_added {
            kept.push((start, end));
        }
        let which = if seq.scores.source.is_none() {
            "source_spans (derived from target_spans: decoder-only prompt)"
        } else {
            "source_spans"
        };
        validate(which, &source, seq.source.len())?;
        validate("target_spans", &kept, seq.target.len())?;
        Ok((source, kept))
    }
}

impl AggregatorPlugin for Slices {
    fn new(p: SlicesParams) -> Result<Self, PluginError> {
        for s in [&p.source_spans, &p.target_spans].into_iter().flatten() {
            validate("spans", &s.0, usize::MAX)?;
        }
        Ok(Self(p))
    }
    fn aggregate(&self, mut seq: SequenceAttribution) -> Result<SequenceAttribution, PluginError> {
        let (src, tgt) = self.ranges(&seq)?;
        let start = seq.attr_pos_start;
        let sc = &mut seq.scores;
        if let Some(t) = sc.source.as_mut() {
            *t = take_rows(t, &src)?;
        }
        if let Some(t) = sc.target.as_mut() {
            *t = take_rows(t, &tgt)?;
        }
        for n in sc.sequence_scores.iter_mut() {
            n.tensor = if n.name.starts_with("decoder") {
                take_rows(&n.tensor, &tgt)?
            } else if n.name.starts_with("encoder") {
                take_blocks(&n.tensor, &src)?
            } else {
                take_rows(&n.tensor, &src)?
            };
        }
        // Step scores and attr_pos_end stay (the end is clamped to the new target length).
        seq.attr_pos_start = tgt.iter().map(|&(s, e)| e.min(start) - s).sum();
        seq.source = tokens(&seq.source, &src);
        seq.target = tokens(&seq.target, &tgt);
        finish(seq)
    }
}
