//! The attribution output data model, mirroring Inseq 0.7.1's classes in
//! `inseq/data/attribution.py` (reference §4.2–4.4).

use indexmap::IndexMap;
use rinseq_sdk::Tensor;
use serde_json::{Map, Value};

/// Named score tensors in insertion order (Inseq's `dict[str, Tensor]`), e.g.
/// `probability` → `(n_steps,)`. Inseq writes them with sorted keys, so loaded maps are sorted.
pub type ScoreMap = IndexMap<String, Tensor>;

/// A token string and its vocabulary id (Inseq's `inseq.utils.typing.TokenWithId`); the id is
/// `-1` for merged or contrastive tokens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenWithId {
    /// The token as the tokenizer shows it (e.g. `Ġworld`, `▁This`).
    pub token: String,
    /// The vocabulary id, or `-1`.
    pub id: i64,
}

impl TokenWithId {
    /// A token from its string and id.
    pub fn new(token: impl Into<String>, id: i64) -> Self {
        Self {
            token: token.into(),
            id,
        }
    }
}

/// Which Inseq output class a sequence belongs to; it picks the default aggregation (§3.3).
/// Step outputs use the same value for their `…StepOutput` twin class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SequenceClass {
    /// `FeatureAttributionSequenceOutput` (custom / dummy methods; aggregator `scores`).
    #[default]
    Base,
    /// `GranularFeatureAttributionSequenceOutput` (gradient methods, LIME, ReAGent; `vnorm`).
    Granular,
    /// `CoarseFeatureAttributionSequenceOutput` (occlusion; no aggregation).
    Coarse,
    /// `MultiDimensionalFeatureAttributionSequenceOutput` (attention, value zeroing; `mean`s).
    MultiDimensional,
}

impl SequenceClass {
    /// Every class, base first.
    pub const ALL: [Self; 4] = [
        Self::Base,
        Self::Granular,
        Self::Coarse,
        Self::MultiDimensional,
    ];

    fn prefix(self) -> &'static str {
        match self {
            Self::Base => "",
            Self::Granular => "Granular",
            Self::Coarse => "Coarse",
            Self::MultiDimensional => "MultiDimensional",
        }
    }

    /// The Inseq sequence class name, e.g. `GranularFeatureAttributionSequenceOutput`.
    pub fn sequence_class_name(self) -> String {
        format!("{}FeatureAttributionSequenceOutput", self.prefix())
    }

    /// The Inseq step class name, e.g. `GranularFeatureAttributionStepOutput`.
    pub fn step_class_name(self) -> String {
        format!("{}FeatureAttributionStepOutput", self.prefix())
    }

    /// The class whose [`sequence_class_name`](Self::sequence_class_name) is `name`.
    pub fn from_sequence_class_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.sequence_class_name() == name)
    }

    /// The class whose [`step_class_name`](Self::step_class_name) is `name`.
    pub fn from_step_class_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.step_class_name() == name)
    }
}

/// One attributed sequence (Inseq's `FeatureAttributionSequenceOutput`, §4.3).
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureAttributionSequenceOutput {
    /// Encoder tokens (encoder-decoder) or the prompt tokens `target[..attr_pos_start]`.
    pub source: Vec<TokenWithId>,
    /// The full target tokens.
    pub target: Vec<TokenWithId>,
    /// `(source_len, n_steps, extra...)`, or none (decoder-only models).
    pub source_attributions: Option<Tensor>,
    /// `(target_len, n_steps, extra...)`, NaN where a position is not visible yet; or none.
    pub target_attributions: Option<Tensor>,
    /// Per-step scores, each `(n_steps,)` (e.g. `probability`).
    pub step_scores: ScoreMap,
    /// Extra maps (e.g. `encoder_self_attentions`); Inseq writes `{}` when there are none.
    pub sequence_scores: Option<ScoreMap>,
    /// First attributed target position: column `j` belongs to `target[attr_pos_start + j]`.
    pub attr_pos_start: usize,
    /// One past the last attributed target position.
    pub attr_pos_end: usize,
    /// The Inseq class.
    pub class: SequenceClass,
}

impl FeatureAttributionSequenceOutput {
    /// A sequence with tokens and positions, no tensors, empty step scores and `{}` sequence
    /// scores (what Inseq builds).
    pub fn new(
        class: SequenceClass,
        source: Vec<TokenWithId>,
        target: Vec<TokenWithId>,
        attr_pos_start: usize,
        attr_pos_end: usize,
    ) -> Self {
        Self {
            source,
            target,
            source_attributions: None,
            target_attributions: None,
            step_scores: ScoreMap::new(),
            sequence_scores: Some(ScoreMap::new()),
            attr_pos_start,
            attr_pos_end,
            class,
        }
    }

    /// Number of attributed steps, `attr_pos_end - attr_pos_start`.
    pub fn n_steps(&self) -> usize {
        self.attr_pos_end.saturating_sub(self.attr_pos_start)
    }
}

/// The batched output of one generation step (Inseq's `FeatureAttributionStepOutput`, §4.4).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FeatureAttributionStepOutput {
    /// `(batch, source_len, extra...)`, or none.
    pub source_attributions: Option<Tensor>,
    /// `(batch, prefix_len, extra...)`, or none.
    pub target_attributions: Option<Tensor>,
    /// Per-step scores, each `(batch,)`.
    pub step_scores: ScoreMap,
    /// Extra maps for this step.
    pub sequence_scores: ScoreMap,
    /// Source tokens per batch row (encoder-decoder), or none.
    pub source: Option<Vec<Vec<TokenWithId>>>,
    /// Target prefix tokens per batch row.
    pub prefix: Option<Vec<Vec<TokenWithId>>>,
    /// The attributed token per batch row (one-element lists).
    pub target: Option<Vec<Vec<TokenWithId>>>,
    /// The class of sequences this step builds (`…StepOutput` twin of the sequence class).
    pub class: SequenceClass,
}

/// The result of an attribution run (Inseq's `FeatureAttributionOutput`, §4.2).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FeatureAttributionOutput {
    /// One entry per input sequence.
    pub sequence_attributions: Vec<FeatureAttributionSequenceOutput>,
    /// One entry per generation step, when step attributions were requested.
    pub step_attributions: Option<Vec<FeatureAttributionStepOutput>>,
    /// Run parameters (`attribution_method`, `input_texts`, `exec_time`, ...).
    pub info: Map<String, Value>,
}

impl FeatureAttributionOutput {
    /// An output with sequences and info and no step attributions.
    pub fn new(
        sequence_attributions: Vec<FeatureAttributionSequenceOutput>,
        info: Map<String, Value>,
    ) -> Self {
        Self {
            sequence_attributions,
            step_attributions: None,
            info,
        }
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.sequence_attributions.len()
    }

    /// Whether there are no sequences.
    pub fn is_empty(&self) -> bool {
        self.sequence_attributions.is_empty()
    }
}
