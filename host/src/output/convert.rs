//! Conversions between the output model and the plugin SDK types, so the engine hands sequences
//! to aggregator plugins without copying tensors twice.

use rinseq_sdk::{NamedTensor, SequenceAttribution, SequenceScores, Token};

use super::model::{FeatureAttributionSequenceOutput, ScoreMap, SequenceClass, TokenWithId};

impl From<&Token> for TokenWithId {
    fn from(t: &Token) -> Self {
        Self::new(t.text.as_str(), t.id.map_or(-1, i64::from))
    }
}

impl From<Token> for TokenWithId {
    fn from(t: Token) -> Self {
        Self::from(&t)
    }
}

impl From<&TokenWithId> for Token {
    fn from(t: &TokenWithId) -> Self {
        Token {
            text: t.token.clone(),
            id: u32::try_from(t.id).ok(),
        }
    }
}

impl From<TokenWithId> for Token {
    fn from(t: TokenWithId) -> Self {
        Token {
            text: t.token,
            id: u32::try_from(t.id).ok(),
        }
    }
}

fn to_map(named: impl IntoIterator<Item = NamedTensor>) -> ScoreMap {
    named.into_iter().map(|n| (n.name, n.tensor)).collect()
}

fn to_named(map: ScoreMap) -> Vec<NamedTensor> {
    map.into_iter()
        .map(|(name, tensor)| NamedTensor::new(name, tensor))
        .collect()
}

impl FeatureAttributionSequenceOutput {
    /// Builds a sequence of class `class` from an SDK sequence (step scores from
    /// `scores.step_scores`, sequence scores from `scores.sequence_scores`, `{}` when empty).
    pub fn from_sdk(attr: SequenceAttribution, class: SequenceClass) -> Self {
        let SequenceAttribution {
            source,
            target,
            attr_pos_start,
            attr_pos_end,
            scores,
        } = attr;
        Self {
            source: source.into_iter().map(TokenWithId::from).collect(),
            target: target.into_iter().map(TokenWithId::from).collect(),
            source_attributions: scores.source,
            target_attributions: scores.target,
            step_scores: to_map(scores.step_scores),
            sequence_scores: Some(to_map(scores.sequence_scores)),
            attr_pos_start,
            attr_pos_end,
            class,
        }
    }

    /// Moves this sequence into an SDK sequence (the class is dropped: keep it aside to rebuild
    /// with [`from_sdk`](Self::from_sdk)).
    pub fn into_sdk(self) -> SequenceAttribution {
        SequenceAttribution {
            source: self.source.into_iter().map(Token::from).collect(),
            target: self.target.into_iter().map(Token::from).collect(),
            attr_pos_start: self.attr_pos_start,
            attr_pos_end: self.attr_pos_end,
            scores: SequenceScores {
                source: self.source_attributions,
                target: self.target_attributions,
                step_scores: to_named(self.step_scores),
                sequence_scores: to_named(self.sequence_scores.unwrap_or_default()),
            },
        }
    }

    /// A copy of this sequence as an SDK sequence.
    pub fn to_sdk(&self) -> SequenceAttribution {
        self.clone().into_sdk()
    }
}
