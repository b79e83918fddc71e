//! `pair` (Inseq's `PairAggregator`): the elementwise difference with another attributed
//! sequence of the same shape (e.g. a minimal-pair edit).

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::check::finish;
use crate::nd::zip_with;
use crate::paired::SequenceJson;

/// Parameters of `pair`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct PairParams {
    /// The other attributed sequence; the result is paired − this, elementwise. JSON: `{"source": [{"token": "▁Hi", "id": 5}, ...], "target": [...], "attr_pos_start": 1, "attr_pos_end": 4, "source_attributions": {"shape": [3, 3], "data": [0.1, null, ...]} or null, "target_attributions": ... or null, "step_scores": {"probability": {"shape": [3], "data": [...]}}, "sequence_scores": {...}}` (row-major, null = NaN).
    pub paired_attr: SequenceJson,
}

/// Inseq's `pair` aggregator: `paired − self` for every score (Inseq's default
/// `lambda x, y: y - x` called as `fn(attr, paired_attr)`), tokens that differ shown as
/// `"a → b"` with id -1.
pub struct Pair(SequenceAttribution);

impl PluginInfo for Pair {
    const NAME: &'static str = "pair";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Difference paired_attr − this sequence, elementwise; differing tokens become 'a → b'.";
    type Params = PairParams;
}

/// Inseq's `aggregate_token_pair`.
fn token_pair(a: &[Token], b: &[Token]) -> Vec<Token> {
    if b.is_empty() {
        return a.to_vec();
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if x.text == y.text {
                x.clone()
            } else {
                Token::merged(format!("{} → {}", x.text, y.text))
            }
        })
        .collect()
}

fn diff(what: &str, x: &Tensor, y: Option<&Tensor>) -> Result<Tensor, PluginError> {
    let y = y.ok_or_else(|| {
        PluginError::invalid_params(format!(
            "paired_attr has no {what}, which this sequence has"
        ))
    })?;
    zip_with(x, y, |a, b| b - a).map_err(|_| {
        PluginError::new(
            ErrorCode::ShapeMismatch,
            format!(
                "{what} must have the same shape: {:?} here, {:?} in paired_attr",
                &x.shape[..],
                &y.shape[..]
            ),
        )
    })
}

fn named_diff(what: &str, xs: &mut [NamedTensor], ys: &[NamedTensor]) -> Result<(), PluginError> {
    for n in xs.iter_mut() {
        let y = ys.iter().find(|y| y.name == n.name).map(|y| &y.tensor);
        n.tensor = diff(&format!("{what} '{}'", n.name), &n.tensor, y)?;
    }
    Ok(())
}

impl AggregatorPlugin for Pair {
    fn new(p: PairParams) -> Result<Self, PluginError> {
        Ok(Self(p.paired_attr.to_sequence()?))
    }
    fn aggregate(&self, mut seq: SequenceAttribution) -> Result<SequenceAttribution, PluginError> {
        let other = &self.0;
        for (what, a, b) in [
            ("source", seq.source.len(), other.source.len()),
            ("target", seq.target.len(), other.target.len()),
        ] {
            if a != b {
                return Err(PluginError::new(
                    ErrorCode::ShapeMismatch,
                    format!("{what} sequences must have the same length: {a} tokens here, {b} in paired_attr"),
                ));
            }
        }
        let (s, o) = (&mut seq.scores, &other.scores);
        if let Some(t) = s.source.as_mut() {
            *t = diff("source attributions", t, o.source.as_ref())?;
        }
        if let Some(t) = s.target.as_mut() {
            *t = diff("target attributions", t, o.target.as_ref())?;
        }
        named_diff("step score", &mut s.step_scores, &o.step_scores)?;
        named_diff("sequence score", &mut s.sequence_scores, &o.sequence_scores)?;
        seq.source = token_pair(&seq.source, &other.source);
        seq.target = token_pair(&seq.target, &other.target);
        finish(seq)
    }
}
