//! Requests a method sends to the host, and the host's answers.
//!
//! Every request names one sequence of the current [`crate::AttributionRequest`] and may carry
//! many input points and many steps at once, so that the host can share forwards across steps
//! (a causal model's logits at step `t` only depend on positions `< t`) and batch the rest.

use abi_stable::std_types::{ROption, RString, RVec};
use abi_stable::StableAbi;

use crate::data::Side;
use crate::tensor::{NamedTensor, Tensor};

/// Where gradients (or replaced activations) live.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub enum Wrt {
    /// The input embeddings of the attributed sides (`(len, hidden)` per side).
    InputEmbeddings,
    /// The output (or, with `input: true`, the input) of the module at this HF path, e.g.
    /// `model.layers.15.mlp`. Its activation is `(len, hidden)` on the side the module is on.
    Layer {
        /// HF module path of the tap.
        name: RString,
        /// Use the module's input instead of its output.
        input: bool,
    },
}

/// One side of an input point.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub enum PointSide {
    /// The actual input (or actual activation, for [`Wrt::Layer`]).
    Actual,
    /// Replace the embeddings (or the activation) by this `(len, hidden)` tensor.
    Values(Tensor),
    /// Replace the input by these token ids (perturbation methods; not with [`Wrt::Layer`]).
    Ids(RVec<u32>),
}

/// One point at which the model is evaluated: a full input for both sides.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
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
}

/// How the backward pass treats non-linearities.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Debug)]
pub struct GradientRule(pub u32);

impl GradientRule {
    /// Plain autograd gradients.
    pub const STANDARD: Self = Self(0);
    /// DeepLIFT rescale multipliers against the baseline point (first point of the request).
    pub const DEEPLIFT_RESCALE: Self = Self(1);
}

/// "Give me d(attributed score at each step) / d(inputs) at each point."
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct GradientRequest {
    /// Index into the request's sequences.
    pub sequence: u32,
    /// What to differentiate with respect to.
    pub wrt: Wrt,
    /// The points (e.g. the interpolation path of integrated gradients).
    pub points: RVec<InputPoint>,
    /// Target positions (a subset of the sequence's steps).
    pub steps: RVec<u32>,
    /// How non-linearities are differentiated.
    pub rule: GradientRule,
}

/// The host's answer to a [`GradientRequest`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct GradientResponse {
    /// Attributed-function scores, `(points, steps)`.
    pub scores: Tensor,
    /// Source-side gradients `(points, steps, source_len, hidden)`, when the source is attributed.
    pub source: ROption<Tensor>,
    /// Target-side gradients `(points, steps, target_len, hidden)`, when the target is attributed;
    /// positions at or after a step's position are zero (not visible).
    pub target: ROption<Tensor>,
}

/// "Give me the attributed score at each step for each point" (no gradient: perturbation methods).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ScoreRequest {
    /// Index into the request's sequences.
    pub sequence: u32,
    /// The (perturbed) inputs.
    pub points: RVec<InputPoint>,
    /// Target positions.
    pub steps: RVec<u32>,
}

/// What to do to an activation during an [`InternalsRequest`] forward.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub enum InterventionOp {
    /// Set rows `positions` (sequence positions) to zero in the columns `[start, end)` of every
    /// range in `columns` (all columns when empty), e.g. one token's value vectors of some heads.
    Zero {
        /// Sequence positions to zero.
        positions: RVec<u32>,
        /// Column ranges `(start, end)`; empty = all columns.
        columns: RVec<abi_stable::std_types::Tuple2<u32, u32>>,
    },
    /// Replace the activation by this tensor (same shape, without the batch dimension).
    Replace(Tensor),
}

/// One activation edit at a named tap.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Intervention {
    /// HF module path.
    pub tap: RString,
    /// The edit.
    pub op: InterventionOp,
}

/// "Run one forward of this sequence and give me its internals."
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct InternalsRequest {
    /// Index into the request's sequences.
    pub sequence: u32,
    /// Record attention probabilities of every attention module.
    pub attentions: bool,
    /// Record hidden states (embeddings output + every layer).
    pub hidden_states: bool,
    /// Record the activation at these taps (after the interventions there).
    pub record: RVec<RString>,
    /// Edits applied during the forward, in order.
    pub interventions: RVec<Intervention>,
}

/// The host's answer to an [`InternalsRequest`]. Batch dimensions are dropped.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct InternalsResponse {
    /// Attention probabilities `(heads, queries, keys)` by module path, in forward order.
    pub attentions: RVec<NamedTensor>,
    /// Hidden states `(len, hidden)` by module path, in forward order.
    pub hidden_states: RVec<NamedTensor>,
    /// Activations recorded at the requested taps.
    pub recorded: RVec<NamedTensor>,
}

/// "Embed these ids on this side" (baselines, vocabulary embeddings for DIG...).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct EmbedRequest {
    /// Which embedding table.
    pub side: Side,
    /// Token ids.
    pub ids: RVec<u32>,
}
