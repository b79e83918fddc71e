//! Requests a method sends to the host, and the host's answers.
//!
//! Every request names one sequence of the current [`crate::AttributionRequest`] and may carry
//! many input points and many steps at once, so that the host can share forwards across steps
//! (a causal model's logits at step `t` only depend on positions `< t`) and batch the rest.
//!
//! ## Rules the host checks (an error names the request, the rule and the fix)
//! - `sequence` indexes the current request's sequences;
//! - `steps` are target positions from that sequence's `steps`, ascending;
//! - a [`PointSide::Ids`] has exactly as many ids as that side has tokens (a perturbation
//!   replaces tokens, it does not insert or drop them) and every id is below the vocabulary size;
//!   a [`PointSide::Values`] is `(len, hidden)` for that side;
//! - the source side of a point is ignored for decoder-only models; the target side of a point
//!   only matters at positions before a step's position (a causal model never sees the rest);
//! - cost: a gradient request costs about one forward and one backward per (point, step) chunk,
//!   a score request one forward per point (all steps of a point come from one forward).

use abi_stable::StableAbi;

use crate::data::{Side, TokenId};
use crate::tensor::{NamedTensor, Tensor};

/// Where gradients (or replaced activations) live.
#[derive(Clone, Debug, PartialEq)]
pub enum Wrt {
    /// The input embeddings of the attributed sides (`(len, hidden)` per side).
    InputEmbeddings,
    /// The output (or, with `input: true`, the input) of the module at this HF path, e.g.
    /// `model.layers.15.mlp`. Its activation is `(len, hidden)` on the side the module is on.
    Layer {
        /// HF module path of the tap.
        name: String,
        /// Use the module's input instead of its output.
        input: bool,
    },
}

/// One side of an input point.
#[derive(Clone, Debug, PartialEq)]
pub enum PointSide {
    /// The actual input (or actual activation, for [`Wrt::Layer`]).
    Actual,
    /// Replace the embeddings (or the activation) by this `(len, hidden)` tensor.
    Values(Tensor),
    /// Replace the input by these token ids (perturbation methods; with [`Wrt::Layer`], the
    /// layer's activation at these inputs, e.g. a baseline).
    Ids(Vec<TokenId>),
}

/// One point at which the model is evaluated: a full input for both sides.
#[derive(Clone, Debug, PartialEq)]
pub struct InputPoint {
    /// The source side (ignored for decoder-only models).
    pub source: PointSide,
    /// The target side.
    pub target: PointSide,
}

impl InputPoint {
    /// The unmodified input.
    pub fn actual() -> Self {
        Self {
            source: PointSide::Actual,
            target: PointSide::Actual,
        }
    }

    /// The input with the ids of `side` replaced (the other side unchanged).
    pub fn with_ids(side: Side, ids: Vec<TokenId>) -> Self {
        let mut p = Self::actual();
        *p.side_mut(side) = PointSide::Ids(ids);
        p
    }

    /// The point's side `side`.
    pub fn side_mut(&mut self, side: Side) -> &mut PointSide {
        match side {
            Side::Source => &mut self.source,
            Side::Target => &mut self.target,
        }
    }
}

/// How the backward pass treats non-linearities.
#[repr(u8)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Debug, Default)]
pub enum GradientRule {
    /// Plain autograd gradients.
    #[default]
    Standard,
    /// DeepLIFT rescale multipliers against the baseline point (first point of the request).
    DeepLiftRescale,
}

/// "Give me d(attributed score at each step) / d(inputs) at each point."
#[derive(Clone, Debug, PartialEq)]
pub struct GradientRequest {
    /// Index into the request's sequences.
    pub sequence: usize,
    /// What to differentiate with respect to.
    pub wrt: Wrt,
    /// The points (e.g. the interpolation path of integrated gradients).
    pub points: Vec<InputPoint>,
    /// Target positions (a subset of the sequence's steps).
    pub steps: Vec<u32>,
    /// How non-linearities are differentiated.
    pub rule: GradientRule,
}

/// The host's answer to a [`GradientRequest`].
#[derive(Clone, Debug, PartialEq)]
pub struct GradientResponse {
    /// Attributed-function scores, `(points, steps)`.
    pub scores: Tensor,
    /// Source-side gradients `(points, steps, source_len, hidden)`, when the source is attributed.
    pub source: Option<Tensor>,
    /// Target-side gradients `(points, steps, target_len, hidden)`, when the target is attributed;
    /// positions at or after a step's position are zero (not visible).
    pub target: Option<Tensor>,
}

/// What a [`ScoreRequest`] returns for each (point, step).
#[repr(u8)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Debug, Default)]
pub enum ScoreOutput {
    /// The attributed function (the target's probability by default).
    #[default]
    AttributedFunction,
    /// The rank of the step's target token among the model's next-token logits: 1 for the most
    /// likely token, `r` when `r − 1` tokens have a strictly higher logit. "The target is among
    /// the top `k` predictions" (ReAGent's stopping rule) is `rank ≤ k`. The attributed function
    /// (and any contrast) plays no part.
    TargetRank,
}

/// "Give me the attributed score at each step for each point" (no gradient: perturbation methods).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ScoreRequest {
    /// Index into the request's sequences.
    pub sequence: usize,
    /// The (perturbed) inputs.
    pub points: Vec<InputPoint>,
    /// Target positions.
    pub steps: Vec<u32>,
    /// What each (point, step) value is: the attributed function unless asked otherwise.
    pub output: ScoreOutput,
}

/// What to do to an activation during an [`InternalsRequest`] forward.
#[derive(Clone, Debug, PartialEq)]
pub enum InterventionOp {
    /// Set rows `positions` (sequence positions) to zero in the columns `[start, end)` of every
    /// range in `columns` (all columns when empty), e.g. one token's value vectors of some heads.
    Zero {
        /// Sequence positions to zero.
        positions: Vec<u32>,
        /// Column ranges `(start, end)`; empty = all columns.
        columns: Vec<(u32, u32)>,
    },
    /// Replace the activation by this tensor (same shape, without the batch dimension).
    Replace(Tensor),
}

/// One activation edit at a named tap.
#[derive(Clone, Debug, PartialEq)]
pub struct Intervention {
    /// HF module path.
    pub tap: String,
    /// The edit.
    pub op: InterventionOp,
}

/// "Run one forward of this sequence and give me its internals."
#[derive(Clone, Debug, PartialEq, Default)]
pub struct InternalsRequest {
    /// Index into the request's sequences.
    pub sequence: usize,
    /// Record attention probabilities of every attention module.
    pub attentions: bool,
    /// Record hidden states (embeddings output + every layer).
    pub hidden_states: bool,
    /// Record the activation at these taps (after the interventions there).
    pub record: Vec<String>,
    /// Edits applied during the forward, in order.
    pub interventions: Vec<Intervention>,
}

/// The host's answer to an [`InternalsRequest`]. Batch dimensions are dropped.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct InternalsResponse {
    /// Attention probabilities `(heads, queries, keys)` by module path, in forward order.
    pub attentions: Vec<NamedTensor>,
    /// Hidden states `(len, hidden)` by module path, in forward order.
    pub hidden_states: Vec<NamedTensor>,
    /// Activations recorded at the requested taps.
    pub recorded: Vec<NamedTensor>,
}
