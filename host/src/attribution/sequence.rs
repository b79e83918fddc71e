//! One encoded sequence of an attribution batch: ids, tokens, baselines and attributed steps.

use rinseq_sdk::Token;

/// An encoded sequence, ready to attribute.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncodedSequence {
    /// Encoder ids (encoder-decoder models); empty for decoder-only models.
    pub source_ids: Vec<u32>,
    /// Encoder tokens as displayed.
    pub source_tokens: Vec<Token>,
    /// Decoder ids: prompt + generation (decoder-only) or decoder start + generation.
    pub target_ids: Vec<u32>,
    /// Decoder tokens as displayed.
    pub target_tokens: Vec<Token>,
    /// Attributed target positions: at position `p` the model sees `target[..p]` and the
    /// attributed function scores `target[p]`.
    pub steps: Vec<usize>,
    /// `(attr_pos_start, attr_pos_end)` as Inseq reports them (see [`super::Positions`]).
    pub attr_pos: (usize, usize),
    /// Baseline ids of the source (UNK; EOS kept unless `include_eos_baseline`).
    pub source_baseline: Vec<u32>,
    /// Baseline ids of the target.
    pub target_baseline: Vec<u32>,
    /// The contrastive input, when `contrast_targets` / `contrast_sources` were given.
    pub contrast: Option<ContrastSequence>,
}

impl EncodedSequence {
    /// The SDK view of this sequence.
    pub fn to_sdk(&self) -> rinseq_sdk::SequenceInput {
        rinseq_sdk::SequenceInput {
            source: self.source_tokens.clone(),
            target: self.target_tokens.clone(),
            steps: self.steps.iter().map(|&s| s as u32).collect(),
            source_baseline_ids: self.source_baseline.clone(),
            target_baseline_ids: self.target_baseline.clone(),
        }
    }
}

/// Baseline ids for `ids`: `unk` everywhere except EOS positions, which keep EOS unless
/// `include_eos_baseline` (Inseq's `HuggingfaceModel.encode(return_baseline=True)`).
/// Empty when the tokenizer has no baseline token (`unk` is `None`).
pub fn baseline_ids(
    ids: &[u32],
    unk: Option<u32>,
    eos: &[u32],
    include_eos_baseline: bool,
) -> Vec<u32> {
    let Some(unk) = unk else {
        return Vec::new();
    };
    ids.iter()
        .map(|id| {
            if !include_eos_baseline && eos.contains(id) {
                *id
            } else {
                unk
            }
        })
        .collect()
}

/// The contrastive counterpart of one encoded sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct ContrastSequence {
    /// Encoder ids of the contrast (the original source when no `contrast_sources`).
    pub source_ids: Vec<u32>,
    /// Decoder ids of the contrast (decoder-only: prompt included).
    pub target_ids: Vec<u32>,
    /// For every original target position, the aligned contrast position.
    pub aligned: Vec<usize>,
    /// The original target tokens as Inseq's output names them (see [`super::contrast::rename_targets`]); a plain
    /// copy when only `contrast_sources` were given.
    pub renamed_targets: Vec<Token>,
}

impl ContrastSequence {
    /// The contrast position aligned with original target position `pos`.
    pub fn position(&self, pos: usize) -> usize {
        self.aligned[pos]
    }
}
