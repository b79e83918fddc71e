//! Features of a sequence (single tokens, words, sentences or explicit spans, on the attributed
//! sides), perturbed inputs that replace some features, and per-feature results laid out as
//! per-token `(len, steps)` maps.

use rinseq_sdk::prelude::*;
use rinseq_sdk::toolkit::{baseline_ids, source_ids, target_ids, visible_positions};
use serde::Deserialize;

/// How tokens are grouped into features.
#[derive(
    Deserialize, serde::Serialize, schemars::JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// Every token is a feature.
    #[default]
    Token,
    /// A word: a token starting with `▁`/`Ġ`/whitespace (or following one that ends with
    /// whitespace) starts a new word; special tokens are words of their own.
    Word,
    /// A sentence: a sentence ends after a token ending with `.`, `!` or `?`; special tokens are
    /// sentences of their own.
    Sentence,
}

/// One feature: positions of one side, perturbed together.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// The side the positions are on.
    pub side: Side,
    /// Positions on that side, ascending.
    pub positions: Vec<usize>,
}

/// A sequence's features and what replaces them.
#[derive(Debug, Clone)]
pub struct Features {
    /// The features, source side first.
    pub features: Vec<Feature>,
    ids: [Vec<TokenId>; 2],
    lens: [usize; 2],
    sides: AttributedSides,
    steps: Vec<u32>,
}

fn slot(side: Side) -> usize {
    match side {
        Side::Source => 0,
        Side::Target => 1,
    }
}

fn starts_word(text: &str) -> bool {
    text.starts_with('▁') || text.starts_with('Ġ') || text.starts_with(char::is_whitespace)
}

fn ends_with_space(text: &str) -> bool {
    text.ends_with(char::is_whitespace) || text.ends_with('▁') || text.ends_with('Ċ')
}

fn ends_sentence(text: &str) -> bool {
    let t = text.trim_end_matches(|c: char| c.is_whitespace() || c == 'Ċ' || c == '▁');
    t.ends_with('.') || t.ends_with('!') || t.ends_with('?')
}

/// Groups positions `range` of `tokens` by `granularity` (consecutive positions per group).
pub fn group_tokens(
    tokens: &[Token],
    range: std::ops::Range<usize>,
    granularity: Granularity,
    special: &[TokenId],
) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let is_special = |i: usize| tokens[i].id.is_some_and(|id| special.contains(&id));
    for i in range.clone() {
        let new = match granularity {
            Granularity::Token => true,
            _ if i == range.start || is_special(i) || is_special(i - 1) => true,
            Granularity::Word => {
                starts_word(&tokens[i].text) || ends_with_space(&tokens[i - 1].text)
            }
            Granularity::Sentence => ends_sentence(&tokens[i - 1].text),
        };
        match groups.last_mut() {
            Some(g) if !new => g.push(i),
            _ => groups.push(vec![i]),
        }
    }
    groups
}

/// Groups `range` by explicit `[start, end)` spans; positions outside every span are features
/// of their own (Captum's feature mask gives every position a group).
pub fn group_spans(
    range: std::ops::Range<usize>,
    len: usize,
    spans: &[[usize; 2]],
    what: &str,
) -> Result<Vec<Vec<usize>>, PluginError> {
    let mut owner = vec![None; len];
    for (k, &[a, b]) in spans.iter().enumerate() {
        if a >= b || b > len {
            return Err(PluginError::invalid_params(format!(
                "{what} span [{a}, {b}] is not a non-empty range within the {len} tokens of that \
                 side: give [start, end) with start < end <= {len}"
            )));
        }
        for o in &mut owner[a..b] {
            if o.is_some() {
                return Err(PluginError::invalid_params(format!(
                    "{what} spans overlap at [{a}, {b}]: give disjoint spans"
                )));
            }
            *o = Some(k);
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_span: Vec<Option<usize>> = vec![None; spans.len()];
    for i in range {
        match owner[i] {
            None => groups.push(vec![i]),
            Some(k) => match by_span[k] {
                Some(g) => groups[g].push(i),
                None => {
                    by_span[k] = Some(groups.len());
                    groups.push(vec![i]);
                }
            },
        }
    }
    Ok(groups)
}

/// How a method groups tokens (parameters shared by feature ablation and Shapley sampling).
#[derive(Debug, Clone, Default)]
pub struct Grouping {
    /// Token, word or sentence.
    pub granularity: Granularity,
    /// Explicit spans of the first attributed side (source on encoder-decoder models).
    pub spans: Option<Vec<[usize; 2]>>,
    /// Explicit spans of the target side of encoder-decoder models (`attribute_target`).
    pub target_spans: Option<Vec<[usize; 2]>>,
}

impl Features {
    /// The features of `seq` on the attributed `sides`: positions some step sees, grouped by
    /// `grouping`.
    pub fn new(
        host: &Host<'_>,
        seq: &SequenceInput,
        sides: AttributedSides,
        grouping: &Grouping,
    ) -> Result<Self, PluginError> {
        let info = host.info();
        let enc_dec = info.kind == ModelKind::EncoderDecoder;
        let mut features = Vec::new();
        for side in [Side::Source, Side::Target] {
            if !sides.has(side) {
                continue;
            }
            let tokens = match side {
                Side::Source => &seq.source,
                Side::Target => &seq.target,
            };
            let visible = visible_positions(seq, side);
            let spans = match (side, enc_dec) {
                (Side::Source, _) | (Side::Target, false) => grouping.spans.as_ref(),
                (Side::Target, true) => grouping.target_spans.as_ref(),
            };
            let what = if side == Side::Source {
                "source"
            } else {
                "target"
            };
            let groups = match spans {
                Some(s) => group_spans(visible, tokens.len(), s, what)?,
                None => group_tokens(
                    tokens,
                    visible,
                    grouping.granularity,
                    &info.special_token_ids,
                ),
            };
            features.extend(
                groups
                    .into_iter()
                    .map(|positions| Feature { side, positions }),
            );
        }
        Ok(Self {
            features,
            ids: [source_ids(seq)?, target_ids(seq)?],
            lens: [seq.source.len(), seq.target.len()],
            sides,
            steps: seq.steps.clone(),
        })
    }

    /// One feature per visible token of the attributed sides.
    pub fn tokens(
        host: &Host<'_>,
        seq: &SequenceInput,
        sides: AttributedSides,
    ) -> Result<Self, PluginError> {
        Self::new(host, seq, sides, &Grouping::default())
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// The actual ids of `side`.
    pub fn ids(&self, side: Side) -> &[TokenId] {
        &self.ids[slot(side)]
    }

    /// Whether feature `k` is seen by the step at target position `step` (a target feature only
    /// when it starts before it).
    pub fn visible_at(&self, k: usize, step: u32) -> bool {
        let f = &self.features[k];
        f.side == Side::Source || f.positions.first().is_some_and(|&p| p < step as usize)
    }

    /// The input with the features `replaced[k] == true` replaced: every position `p` of a
    /// replaced feature gets `by(side, p)`.
    pub fn point(
        &self,
        replaced: &[bool],
        mut by: impl FnMut(Side, usize) -> TokenId,
    ) -> InputPoint {
        let mut ids = self.ids.clone();
        let mut touched = [false, false];
        for (f, _) in self.features.iter().zip(replaced).filter(|(_, &r)| r) {
            let s = slot(f.side);
            touched[s] = true;
            for &p in &f.positions {
                ids[s][p] = by(f.side, p);
            }
        }
        let mut point = InputPoint::actual();
        let [src, tgt] = ids;
        if touched[0] {
            point.source = PointSide::Ids(src);
        }
        if touched[1] {
            point.target = PointSide::Ids(tgt);
        }
        point
    }

    /// The input with the features `replaced[k] == true` replaced by their baseline ids.
    pub fn baseline_point(&self, seq: &SequenceInput, replaced: &[bool]) -> InputPoint {
        let src = baseline_ids(seq, Side::Source).to_vec();
        let tgt = baseline_ids(seq, Side::Target).to_vec();
        self.point(replaced, |side, p| match side {
            Side::Source => src[p],
            Side::Target => tgt[p],
        })
    }

    /// Per-token maps `(len, steps)` from per-feature values `values[k][j]` (feature `k`, step
    /// `j`): every position of a feature gets the feature's value; positions of no feature 0.
    pub fn coarse(&self, values: &[Vec<f32>]) -> Result<SequenceScores, PluginError> {
        let ns = self.steps.len();
        let mut maps = [vec![0f32; self.lens[0] * ns], vec![0f32; self.lens[1] * ns]];
        for (f, v) in self.features.iter().zip(values) {
            let s = slot(f.side);
            for &p in &f.positions {
                maps[s][p * ns..(p + 1) * ns].copy_from_slice(&v[..ns]);
            }
        }
        let side = |s: usize, on: bool| -> Result<Option<Tensor>, PluginError> {
            if !on || self.lens[s] == 0 {
                return Ok(None);
            }
            Tensor::new(vec![self.lens[s], ns], maps[s].clone()).map(Some)
        };
        Ok(SequenceScores {
            source: side(0, self.sides.source)?,
            target: side(1, self.sides.target)?,
            ..Default::default()
        })
    }
}

/// A coarse `(len, steps)` map repeated along `hidden`: `(len, steps, hidden)` (granular
/// output of a token-level method, as Inseq's LIME and ReAGent return it).
pub fn repeat_hidden(t: Option<Tensor>, hidden: usize) -> Result<Option<Tensor>, PluginError> {
    t.map(|t| {
        let data = t
            .data
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, hidden))
            .collect();
        Tensor::new(vec![t.shape[0], t.shape[1], hidden], data)
    })
    .transpose()
}

/// Granular [`SequenceScores`] from coarse ones.
pub fn granular(s: SequenceScores, hidden: usize) -> Result<SequenceScores, PluginError> {
    Ok(SequenceScores {
        source: repeat_hidden(s.source, hidden)?,
        target: repeat_hidden(s.target, hidden)?,
        ..s
    })
}

/// Attributed-function scores `(points, steps)` of `points` as rows: `rows[point][step]`.
pub fn score_rows(
    host: &Host<'_>,
    sequence: usize,
    points: Vec<InputPoint>,
    steps: &[u32],
) -> Result<Vec<Vec<f32>>, PluginError> {
    values_of(
        host,
        sequence,
        points,
        steps,
        ScoreOutput::AttributedFunction,
    )
}

/// `output` values `(points, steps)` of `points` as rows: `rows[point][step]`.
pub fn values_of(
    host: &Host<'_>,
    sequence: usize,
    points: Vec<InputPoint>,
    steps: &[u32],
    output: ScoreOutput,
) -> Result<Vec<Vec<f32>>, PluginError> {
    if points.is_empty() {
        return Ok(Vec::new());
    }
    let ns = steps.len();
    let t = host.scores(ScoreRequest {
        sequence,
        points,
        steps: steps.to_vec(),
        output,
    })?;
    Ok(t.data.chunks(ns.max(1)).map(|c| c.to_vec()).collect())
}

/// A seeded generator, or one from the OS when no seed is given.
pub fn rng(seed: Option<u64>) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    match seed {
        Some(s) => rand::rngs::StdRng::seed_from_u64(s),
        None => rand::rngs::StdRng::from_os_rng(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(t: &[&str]) -> Vec<Token> {
        t.iter()
            .enumerate()
            .map(|(i, s)| Token::new(*s, i as u32 + 10))
            .collect()
    }

    #[test]
    fn words_and_sentences() {
        let t = toks(&["<s>", "ĠThe", "Ġcap", "ital", ".", "ĠIt", "Ġis", "!"]);
        let special = [10];
        assert_eq!(
            group_tokens(&t, 0..8, Granularity::Word, &special),
            vec![vec![0], vec![1], vec![2, 3, 4], vec![5], vec![6, 7]]
        );
        assert_eq!(
            group_tokens(&t, 0..8, Granularity::Sentence, &special),
            vec![vec![0], vec![1, 2, 3, 4], vec![5, 6, 7]]
        );
        assert_eq!(
            group_tokens(&t, 1..3, Granularity::Token, &special).len(),
            2
        );
        let sp = toks(&["▁Hello", "▁wor", "ld", "?", "▁Yes"]);
        assert_eq!(
            group_tokens(&sp, 0..5, Granularity::Sentence, &[]),
            vec![vec![0, 1, 2, 3], vec![4]]
        );
    }

    #[test]
    fn spans_leave_the_rest_as_singletons() {
        assert_eq!(
            group_spans(0..5, 6, &[[1, 3]], "target").unwrap(),
            vec![vec![0], vec![1, 2], vec![3], vec![4]]
        );
        assert!(group_spans(0..5, 6, &[[1, 3], [2, 4]], "target").is_err());
        assert!(group_spans(0..5, 6, &[[3, 3]], "target").is_err());
        assert!(group_spans(0..5, 6, &[[3, 9]], "target").is_err());
    }
}
