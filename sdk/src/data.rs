//! Plain data exchanged between the host and plugins: tokens, model facts, attribution requests
//! and results.

use abi_stable::StableAbi;

use crate::tensor::{NamedTensor, Tensor};

/// A vocabulary id: the one id type of the SDK (tokens, perturbed inputs, step targets).
pub type TokenId = u32;

/// A token as shown to users: its string and its vocabulary id (`None` for merged or contrastive
/// tokens such as `"▁Le → ▁I"`, which Inseq's JSON writes as id `-1`).
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    /// The token string as the tokenizer shows it (e.g. `Ġcapital`).
    pub text: String,
    /// The vocabulary id, if the token is one vocabulary entry.
    pub id: Option<TokenId>,
}

impl Token {
    /// A vocabulary token.
    pub fn new(text: impl Into<String>, id: TokenId) -> Self {
        Self {
            text: text.into(),
            id: Some(id),
        }
    }

    /// A token that is not one vocabulary entry (a merged span, a contrastive pair).
    pub fn merged(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            id: None,
        }
    }
}

/// Decoder-only or encoder-decoder.
#[repr(u8)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Debug)]
pub enum ModelKind {
    /// A causal LM (GPT-2, Llama...): prompt and generation share the target side.
    DecoderOnly,
    /// A sequence-to-sequence model (Marian, BART...): source on the encoder side.
    EncoderDecoder,
}

/// Facts about the model the host is running.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// The model name or path as the user gave it.
    pub name: String,
    /// HF `model_type`, e.g. `llama`.
    pub model_type: String,
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
    pub tap_names: Vec<String>,
    /// The tokenizers' special ids (BOS, EOS, PAD, UNK...), e.g. for methods that keep them fixed.
    pub special_token_ids: Vec<TokenId>,
}

/// The input side an attribution lands on.
#[repr(u8)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Debug)]
pub enum Side {
    /// The encoder input (source text) of encoder-decoder models.
    Source,
    /// The decoder input: the target prefix (the whole sequence for decoder-only models).
    Target,
}

/// One sequence of the batch a method is asked to attribute.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SequenceInput {
    /// Encoder tokens (encoder-decoder); empty for decoder-only models.
    pub source: Vec<Token>,
    /// The full target: prompt + generation (decoder-only) or decoder-start + generation.
    pub target: Vec<Token>,
    /// Target positions to attribute, ascending: at position `p` the model sees `target[..p]` and
    /// the attributed function scores `target[p]`. Column `j` of the result belongs to `steps[j]`.
    pub steps: Vec<u32>,
    /// Baseline ids for the source (UNK, EOS kept unless `include_eos_baseline`).
    pub source_baseline_ids: Vec<TokenId>,
    /// Baseline ids for the target.
    pub target_baseline_ids: Vec<TokenId>,
}

/// What the host asks an attribution method to do: one call covers a whole batch and every step,
/// so the method can hand the host large requests that it shares and batches.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AttributionRequest {
    /// The sequences of this batch.
    pub sequences: Vec<SequenceInput>,
    /// Whether target-prefix attributions are wanted (always true for decoder-only models).
    pub attribute_target: bool,
}

/// Scores a method produced for one sequence (tokens stay with the host).
///
/// The host checks every result against its request: `source` is `(source_len, n_steps,
/// extra...)` and `target` `(target_len, n_steps, extra...)`, where `extra` is `(hidden,)` for
/// a granular method, `()` for a coarse one and the declared extra dimensions otherwise.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SequenceScores {
    /// `(source_len, n_steps, extra...)`, or none.
    pub source: Option<Tensor>,
    /// `(target_len, n_steps, extra...)` with NaN where a position is not visible yet, or none.
    pub target: Option<Tensor>,
    /// Extra per-step scores the method computed (e.g. `deltas`), each `(n_steps,)`.
    pub step_scores: Vec<NamedTensor>,
    /// Extra maps (e.g. `encoder_self_attentions`).
    pub sequence_scores: Vec<NamedTensor>,
}

/// A method's result: one entry per requested sequence, in order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AttributionOutput {
    /// Per-sequence scores.
    pub sequences: Vec<SequenceScores>,
}

/// A whole attributed sequence, as aggregators see it (Inseq's `FeatureAttributionSequenceOutput`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SequenceAttribution {
    /// Source tokens (encoder-decoder) or the prompt tokens (decoder-only).
    pub source: Vec<Token>,
    /// The full target tokens.
    pub target: Vec<Token>,
    /// First attributed target position.
    pub attr_pos_start: usize,
    /// One past the last attributed target position.
    pub attr_pos_end: usize,
    /// The scores.
    pub scores: SequenceScores,
}
