//! `subwords` (Inseq's `SubwordAggregator`): merges the subword tokens of each word.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::aggregate_fn::{AggregateFn, Fns};
use crate::contiguous::merge;
use crate::spans::spans_fns;

/// Word markers: one string, or several.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum SpecialChars {
    /// One marker string (Inseq's `str`: presence is checked per character, as Inseq does).
    One(String),
    /// Several markers (Inseq's tuple).
    Many(Vec<String>),
}

/// Parameters of `subwords`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct SubwordsParams {
    /// Word-boundary marker(s), e.g. "▁" (SentencePiece), ["Ġ", "Ċ"] (byte-level BPE) or "##" with is_suffix_symbol (WordPiece). Beyond Inseq, which assumes "▁": when not given, the markers are detected from the tokens: "▁" if any token has it, else "Ġ"/"Ċ", else a "##" continuation prefix (as a suffix symbol).
    pub special_chars: Option<SpecialChars>,
    /// Whether the marker starts word continuations (WordPiece "##") rather than words; default false, or what the detection found when special_chars is not given.
    pub is_suffix_symbol: Option<bool>,
    /// Merge subwords of the source (default true).
    pub aggregate_source: bool,
    /// Merge subwords of the target (default true).
    pub aggregate_target: bool,
    /// Function merging the scores of a word, as for spans (default absmax; step scores probability→prod, entropy→sum, ...).
    pub aggregate_fn: Option<AggregateFn>,
}

impl Default for SubwordsParams {
    fn default() -> Self {
        Self {
            special_chars: None,
            is_suffix_symbol: None,
            aggregate_source: true,
            aggregate_target: true,
            aggregate_fn: None,
        }
    }
}

/// The markers and their meaning, after detection.
#[derive(Debug, Clone, PartialEq)]
pub struct Markers {
    /// The marker strings; `per_char` means presence is tested per character (Inseq's `str`).
    pub chars: Vec<String>,
    /// Presence test per character of the one string given.
    pub per_char: bool,
    /// The markers start continuations, not words.
    pub is_suffix: bool,
}

/// Detects the word markers of a tokenizer from its tokens (beyond Inseq).
pub fn detect(tokens: &[&Token]) -> Markers {
    let any = |f: &dyn Fn(&str) -> bool| tokens.iter().any(|t| f(t.text.as_str()));
    let (chars, is_suffix): (Vec<&str>, bool) = if any(&|t| t.contains('▁')) {
        (vec!["▁"], false)
    } else if any(&|t| t.contains('Ġ') || t.contains('Ċ')) {
        (vec!["Ġ", "Ċ"], false)
    } else if any(&|t| t.starts_with("##")) {
        (vec!["##"], true)
    } else {
        (vec!["▁"], false)
    };
    Markers {
        chars: chars.into_iter().map(String::from).collect(),
        per_char: false,
        is_suffix,
    }
}

/// Inseq's `SubwordAggregator.get_spans`, quirks included: a word ending the sequence is merged
/// without its last token, and only if that leaves at least two tokens.
pub fn word_spans(tokens: &[Token], m: &Markers) -> Vec<(usize, usize)> {
    let has = |t: &str| {
        if m.per_char {
            m.chars
                .iter()
                .flat_map(|s| s.chars())
                .any(|c| t.contains(c))
        } else {
            m.chars.iter().any(|s| t.contains(s.as_str()))
        }
    };
    if !tokens.iter().any(|t| has(&t.text)) {
        return Vec::new();
    }
    let mut spans = Vec::new();
    let mut last_prefix = 0;
    for (i, t) in tokens.iter().enumerate() {
        let starts = m.chars.iter().any(|s| t.text.starts_with(s.as_str()));
        if starts == m.is_suffix {
            if i == tokens.len() - 1 && i - last_prefix > 1 {
                spans.push((last_prefix, i));
            }
            continue;
        }
        if i - last_prefix > 1 {
            spans.push((last_prefix, i));
        }
        last_prefix = i;
    }
    spans
}

/// Inseq's `subwords` aggregator: merges the subwords of each word (markers given, or detected
/// from the tokens when not, beyond Inseq) and aggregates their scores as `spans` does.
pub struct Subwords {
    p: SubwordsParams,
    fns: Fns,
}

impl PluginInfo for Subwords {
    const NAME: &'static str = "subwords";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Merge the subword tokens of each word (markers detected when not given).";
    type Params = SubwordsParams;
}

impl Subwords {
    /// The markers used for `seq`.
    pub fn markers(&self, seq: &SequenceAttribution) -> Markers {
        let mut m = match &self.p.special_chars {
            Some(SpecialChars::One(s)) => Markers {
                chars: vec![s.clone()],
                per_char: true,
                is_suffix: false,
            },
            Some(SpecialChars::Many(v)) => Markers {
                chars: v.clone(),
                per_char: false,
                is_suffix: false,
            },
            None => detect(
                &seq.source
                    .iter()
                    .chain(seq.target.iter())
                    .collect::<Vec<_>>(),
            ),
        };
        if let Some(s) = self.p.is_suffix_symbol {
            m.is_suffix = s;
        }
        m
    }
}

impl AggregatorPlugin for Subwords {
    fn new(p: SubwordsParams) -> Result<Self, PluginError> {
        if matches!(&p.special_chars, Some(SpecialChars::One(s)) if s.is_empty())
            || matches!(&p.special_chars, Some(SpecialChars::Many(v)) if v.is_empty())
        {
            return Err(PluginError::invalid_params(
                "special_chars is empty: give a marker such as \"▁\", or leave it out to detect it",
            ));
        }
        let fns = spans_fns(p.aggregate_fn.as_ref())?;
        Ok(Self { p, fns })
    }
    fn aggregate(&self, seq: SequenceAttribution) -> Result<SequenceAttribution, PluginError> {
        let m = self.markers(&seq);
        let src = if self.p.aggregate_source {
            word_spans(&seq.source, &m)
        } else {
            Vec::new()
        };
        let tgt = if self.p.aggregate_target {
            word_spans(&seq.target, &m)
        } else {
            Vec::new()
        };
        merge(seq, &src, &tgt, &self.fns)
    }
}
