//! `split` (Inseq's `StringSplitAggregator`): merges tokens between matches of a regex over the
//! concatenated token text.

use regex::Regex;
use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::aggregate_fn::{AggregateFn, Fns};
use crate::contiguous::{merge, validate};
use crate::spans::spans_fns;

/// Where the matched separators go.
#[derive(
    Deserialize, serde::Serialize, schemars::JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum SplitMode {
    /// Each separator is a span of its own.
    #[default]
    Single,
    /// A separator starts the span that follows it.
    Start,
    /// A separator ends the span that precedes it.
    End,
}

/// Parameters of `split`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct SplitParams {
    /// Regular expression matched over the concatenated token strings (Rust `regex` syntax: no look-around or back-references; it must not match the empty string), e.g. "Ġ|\\." .
    pub split_pattern: String,
    /// single (separators are spans of their own), start (glued to what follows) or end (glued to what precedes); default single.
    #[serde(default)]
    pub split_mode: SplitMode,
    /// Split the source (default true).
    #[serde(default = "yes")]
    pub aggregate_source: bool,
    /// Split the target (default true).
    #[serde(default = "yes")]
    pub aggregate_target: bool,
    /// Function merging the scores of a span, as for spans (default absmax; step scores probability→prod, entropy→sum, ...).
    #[serde(default)]
    pub aggregate_fn: Option<AggregateFn>,
}

fn yes() -> bool {
    true
}

/// Token index whose text covers byte `at` (`ts <= at < te`, or `ts < at <= te` at an end).
fn token_at(bounds: &[(usize, usize)], at: usize, is_end: bool) -> Option<usize> {
    bounds.iter().position(|&(s, e)| {
        if is_end {
            s < at && at <= e
        } else {
            s <= at && at < e
        }
    })
}

/// Inseq's `StringSplitAggregator.get_spans` (byte offsets stand in for Python's character
/// offsets: both sides use the same unit).
pub fn split_spans(
    tokens: &[Token],
    re: &Regex,
    mode: SplitMode,
) -> Result<Vec<(usize, usize)>, PluginError> {
    let mut bounds = Vec::with_capacity(tokens.len());
    let mut text = String::new();
    for t in tokens {
        bounds.push((text.len(), text.len() + t.text.len()));
        text.push_str(&t.text);
    }
    let mut matched: Vec<(usize, usize)> = Vec::new();
    for m in re.find_iter(&text) {
        if m.is_empty() {
            return Err(PluginError::invalid_params(format!(
                "split_pattern '{}' matches the empty string at byte {}: use a pattern that \
                 always matches at least one character",
                re.as_str(),
                m.start()
            )));
        }
        let (Some(s), Some(e)) = (
            token_at(&bounds, m.start(), false),
            token_at(&bounds, m.end(), true),
        ) else {
            continue;
        };
        if !matched.contains(&(s, e + 1)) {
            matched.push((s, e + 1));
        }
    }
    if matched.is_empty() {
        return Ok(Vec::new());
    }
    Ok(by_mode(
        &fill(&non_overlapping(&matched), tokens.len()),
        mode,
    ))
}

/// Splits overlapping token spans of matches, as Inseq does.
fn non_overlapping(m: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (i, &(start, end)) in m.iter().enumerate() {
        let next = m.get(i + 1);
        let cur_end = match next {
            Some(n) if end > n.0 => n.0,
            _ => end,
        };
        let cur_start = match out.last() {
            Some(prev) if i > 0 && start < prev.1 => prev.1,
            _ => start,
        };
        out.push((cur_start, cur_end));
        if cur_end != end && next.is_some_and(|n| end < n.1) {
            out.push((cur_end, end));
        }
    }
    out
}

/// Adds the unmatched spans in between; `true` marks matches.
fn fill(m: &[(usize, usize)], len: usize) -> Vec<((usize, usize), bool)> {
    let mut out = Vec::new();
    if m[0].0 != 0 {
        out.push(((0, m[0].0), false));
    }
    for w in m.windows(2) {
        out.push((w[0], true));
        if w[0].1 != w[1].0 {
            out.push(((w[0].1, w[1].0), false));
        }
    }
    let last = m[m.len() - 1];
    out.push((last, true));
    if last.1 != len {
        out.push(((last.1, len), false));
    }
    out
}

/// Glues separators to their neighbours according to `mode`.
fn by_mode(spans: &[((usize, usize), bool)], mode: SplitMode) -> Vec<(usize, usize)> {
    if mode == SplitMode::Single {
        return spans.iter().map(|s| s.0).collect();
    }
    let mut out = Vec::new();
    let mut cur = 0;
    for &((s, e), _) in spans.iter().filter(|s| s.1) {
        let cut = if mode == SplitMode::Start { s } else { e };
        // "start" cuts before a separator (unless a span starts there already), "end" after.
        if cut != cur || mode == SplitMode::End {
            out.push((cur, cut));
            cur = cut;
        }
    }
    let last_end = spans[spans.len() - 1].0 .1;
    if cur != last_end {
        out.push((cur, last_end));
    }
    out
}

/// Inseq's `split` aggregator: spans between regex matches over the token text, merged as
/// `spans` does.
pub struct Split {
    re: Regex,
    p: SplitParams,
    fns: Fns,
}

impl PluginInfo for Split {
    const NAME: &'static str = "split";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Merge tokens between matches of a regex (split_pattern).";
    type Params = SplitParams;
}

impl AggregatorPlugin for Split {
    fn new(p: SplitParams) -> Result<Self, PluginError> {
        let re = Regex::new(&p.split_pattern).map_err(|e| {
            let first = e
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string();
            PluginError::invalid_params(format!(
                "split_pattern '{}' is not a valid regex: {first}",
                p.split_pattern
            ))
        })?;
        let fns = spans_fns(p.aggregate_fn.as_ref())?;
        Ok(Self { re, p, fns })
    }
    fn aggregate(&self, seq: SequenceAttribution) -> Result<SequenceAttribution, PluginError> {
        let side = |on: bool, tokens: &[Token]| {
            if on {
                split_spans(tokens, &self.re, self.p.split_mode)
            } else {
                Ok(Vec::new())
            }
        };
        let src = side(self.p.aggregate_source, &seq.source)?;
        let tgt = side(self.p.aggregate_target, &seq.target)?;
        // Inseq validates the computed spans too (its overlap fixes can leave an empty span).
        validate("split source spans", &src, seq.source.len())?;
        validate("split target spans", &tgt, seq.target.len())?;
        merge(seq, &src, &tgt, &self.fns)
    }
}
