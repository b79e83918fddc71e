//! Plain data exchanged between the host and plugins: tokens, model facts, attribution requests
//! and results.

use abi_stable::std_types::{ROption, RString, RVec};
use abi_stable::StableAbi;

use crate::tensor::{NamedTensor, Tensor};

/// A token as shown to users: its string and its vocabulary id (`-1` for merged or contrastive
/// tokens such as `"▁Le → ▁I"`, as in Inseq).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Token {
    /// The token string as the tokenizer shows it (e.g. `Ġcapital`).
    pub text: RString,
    /// The vocabulary id, or `-1`.
    pub id: i64,
}

impl Token {
    /// A token from its text and id.
    pub fn new(text: impl Into<String>, id: i64) -> Self {
        Self {
            text: text.into().into(),
            id,
        }
    }
}

/// Decoder-only or encoder-decoder, as a `u8` newtype so that new kinds keep the ABI.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Debug)]
pub struct ModelKind(pub u8);

impl ModelKind {
    /// A causal LM (GPT-2, Llama...): prompt and generation share the target side.
    pub const DECODER_ONLY: Self = Self(0);
    /// A sequence-to-sequence model (Marian, BART...): source on the encoder side.
    pub const ENCODER_DECODER: Self = Self(1);
}

/// Facts about the model the host is running.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// The model name or path as the user gave it.
    pub name: RString,
    /// HF `model_type`, e.g. `llama`.
    pub model_type: RString,
    /// Decoder-only or encoder-decoder.
    pub kind: ModelKind,
    /// Number of logits.
    pub vocab_size: usize,
    /// Width of the input embeddings.
    pub hidden_size: usize,
    /// Number of (decoder) layers.
    pub num_layers: usize,
    /// Number of encoder layers (0 for decoder-only models).
    pub encoder_layers: usize,
    /// Attention heads per layer.
    pub num_heads: usize,
    /// Every named tap (HF module path) a method may ask for.
    pub tap_names: RVec<RString>,
}

/// The input side an attribution lands on.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Debug)]
pub struct Side(pub u8);

impl Side {
    /// The encoder input (source text) of encoder-decoder models.
    pub const SOURCE: Self = Self(0);
    /// The decoder input: the target prefix (the whole sequence for decoder-only models).
    pub const TARGET: Self = Self(1);
}

/// One sequence of the batch a method is asked to attribute.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct SequenceInput {
    /// Encoder tokens (encoder-decoder); empty for decoder-only models.
    pub source: RVec<Token>,
    /// The full target: prompt + generation (decoder-only) or decoder-start + generation.
    pub target: RVec<Token>,
    /// Target positions to attribute, ascending: at position `p` the model sees `target[..p]` and
    /// the attributed function scores `target[p]`. Column `j` of the result belongs to `steps[j]`.
    pub steps: RVec<u32>,
    /// Baseline ids for the source (UNK, EOS kept unless `include_eos_baseline`).
    pub source_baseline_ids: RVec<u32>,
    /// Baseline ids for the target.
    pub target_baseline_ids: RVec<u32>,
}

/// What the host asks an attribution method to do: one call covers a whole batch and every step,
/// so the method can hand the host large requests that it shares and batches.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct AttributionRequest {
    /// The sequences of this batch.
    pub sequences: RVec<SequenceInput>,
    /// Whether target-prefix attributions are wanted (always true for decoder-only models).
    pub attribute_target: bool,
}

/// Scores a method produced for one sequence (tokens stay with the host).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Default)]
pub struct SequenceScores {
    /// `(source_len, n_steps, extra...)`, or none.
    pub source: ROption<Tensor>,
    /// `(target_len, n_steps, extra...)` with NaN where a position is not visible yet, or none.
    pub target: ROption<Tensor>,
    /// Extra per-step scores the method computed (e.g. `deltas`), each `(n_steps,)`.
    pub step_scores: RVec<NamedTensor>,
    /// Extra maps (e.g. `encoder_self_attentions`).
    pub sequence_scores: RVec<NamedTensor>,
}

/// A method's result: one entry per requested sequence, in order.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Default)]
pub struct AttributionOutput {
    /// Per-sequence scores.
    pub sequences: RVec<SequenceScores>,
}

/// A whole attributed sequence, as aggregators see it (Inseq's `FeatureAttributionSequenceOutput`).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct SequenceAttribution {
    /// Source tokens (encoder-decoder) or the prompt tokens (decoder-only).
    pub source: RVec<Token>,
    /// The full target tokens.
    pub target: RVec<Token>,
    /// First attributed target position.
    pub attr_pos_start: usize,
    /// One past the last attributed target position.
    pub attr_pos_end: usize,
    /// The scores.
    pub scores: SequenceScores,
}
