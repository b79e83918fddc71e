//! The ABI-stable mirrors of the SDK's plain types, and the conversions between them. Authors
//! never see these: the adapters in [`super::guest`] and [`super::host_side`] convert at the
//! boundary. Vectors move across without copying one way (`Vec` → `RVec`) and are copied once
//! the other way when they were allocated by the other library.

use abi_stable::std_types::{ROption, RSlice, RString, RVec, Tuple2};
use abi_stable::StableAbi;

use crate::capabilities::{Flags, OutputKind};
use crate::data::{ModelKind, TokenId};
use crate::error::ErrorCode;
use crate::requests::GradientRule;

fn rvec<T, U: From<T>>(v: Vec<T>) -> RVec<U> {
    v.into_iter().map(U::from).collect()
}

fn vec<T, U: From<T>>(v: RVec<T>) -> Vec<U> {
    v.into_iter().map(U::from).collect()
}

/// Declares a wire struct mirroring a plain struct field by field, with conversions both ways.
/// Each field is converted with `From`/`Into` (vectors through [`rvec`]/[`vec`]).
macro_rules! mirror {
    (
        $(#[$m:meta])* $wire:ident <=> $plain:path {
            $($f:ident : $wt:ty => $conv:ident),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(StableAbi, Clone, Debug)]
        pub struct $wire {
            $(#[allow(missing_docs)] pub $f: $wt,)*
        }
        impl From<$plain> for $wire {
            fn from(p: $plain) -> Self {
                Self { $($f: mirror!(@to $conv, p.$f),)* }
            }
        }
        impl From<$wire> for $plain {
            fn from(w: $wire) -> Self {
                Self { $($f: mirror!(@from $conv, w.$f),)* }
            }
        }
    };
    (@to same, $e:expr) => { $e };
    (@from same, $e:expr) => { $e };
    (@to into, $e:expr) => { $e.into() };
    (@from into, $e:expr) => { $e.into() };
    (@to vec, $e:expr) => { rvec($e) };
    (@from vec, $e:expr) => { vec($e) };
    (@to opt, $e:expr) => { $e.map(Into::into).into() };
    (@from opt, $e:expr) => { $e.into_option().map(Into::into) };
}

/// A tensor on the wire.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct Tensor {
    /// Dimensions.
    pub shape: RVec<usize>,
    /// Values, row-major.
    pub data: RVec<f32>,
}

impl From<crate::Tensor> for Tensor {
    fn from(t: crate::Tensor) -> Self {
        Self {
            shape: t.shape.into(),
            data: t.data.into(),
        }
    }
}

impl From<Tensor> for crate::Tensor {
    fn from(t: Tensor) -> Self {
        Self {
            shape: t.shape.into_vec(),
            data: t.data.into_vec(),
        }
    }
}

/// A borrowed tensor on the wire.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug)]
pub struct TensorView<'a> {
    /// Dimensions.
    pub shape: RSlice<'a, usize>,
    /// Values, row-major.
    pub data: RSlice<'a, f32>,
}

impl<'a> From<crate::TensorView<'a>> for TensorView<'a> {
    fn from(t: crate::TensorView<'a>) -> Self {
        Self {
            shape: t.shape.into(),
            data: t.data.into(),
        }
    }
}

impl<'a> From<TensorView<'a>> for crate::TensorView<'a> {
    fn from(t: TensorView<'a>) -> Self {
        Self {
            shape: t.shape.as_slice(),
            data: t.data.as_slice(),
        }
    }
}

/// A string on the wire (`String` ↔ `RString`).
fn s(v: String) -> RString {
    v.into()
}

/// A token on the wire: id `-1` = not one vocabulary entry.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct Token {
    /// Text.
    pub text: RString,
    /// Id or -1.
    pub id: i64,
}

impl From<crate::Token> for Token {
    fn from(t: crate::Token) -> Self {
        Self {
            text: s(t.text),
            id: t.id.map_or(-1, i64::from),
        }
    }
}

impl From<Token> for crate::Token {
    fn from(t: Token) -> Self {
        Self {
            text: t.text.into(),
            id: TokenId::try_from(t.id).ok(),
        }
    }
}

mirror! {
    /// A named tensor on the wire.
    NamedTensor <=> crate::NamedTensor { name: RString => into, tensor: Tensor => into }
}

mirror! {
    /// Model facts on the wire.
    ModelInfo <=> crate::ModelInfo {
        name: RString => into,
        model_type: RString => into,
        kind: ModelKind => same,
        vocab_size: usize => same,
        hidden_size: usize => same,
        num_layers: usize => same,
        encoder_layers: usize => same,
        num_heads: usize => same,
        tap_names: RVec<RString> => vec,
        special_token_ids: RVec<TokenId> => into,
    }
}

mirror! {
    /// A sequence to attribute, on the wire.
    SequenceInput <=> crate::SequenceInput {
        source: RVec<Token> => vec,
        target: RVec<Token> => vec,
        steps: RVec<u32> => into,
        source_baseline_ids: RVec<TokenId> => into,
        target_baseline_ids: RVec<TokenId> => into,
    }
}

mirror! {
    /// An attribution request on the wire.
    AttributionRequest <=> crate::AttributionRequest {
        sequences: RVec<SequenceInput> => vec,
        attribute_target: bool => same,
    }
}

mirror! {
    /// A sequence's scores on the wire.
    SequenceScores <=> crate::SequenceScores {
        source: ROption<Tensor> => opt,
        target: ROption<Tensor> => opt,
        step_scores: RVec<NamedTensor> => vec,
        sequence_scores: RVec<NamedTensor> => vec,
    }
}

mirror! {
    /// A method's output on the wire.
    AttributionOutput <=> crate::AttributionOutput { sequences: RVec<SequenceScores> => vec }
}

mirror! {
    /// An attributed sequence on the wire.
    SequenceAttribution <=> crate::SequenceAttribution {
        source: RVec<Token> => vec,
        target: RVec<Token> => vec,
        attr_pos_start: usize => same,
        attr_pos_end: usize => same,
        scores: SequenceScores => into,
    }
}

/// [`crate::Wrt`] on the wire.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug)]
#[allow(missing_docs)]
pub enum Wrt {
    InputEmbeddings,
    Layer { name: RString, input: bool },
}

impl From<crate::Wrt> for Wrt {
    fn from(w: crate::Wrt) -> Self {
        match w {
            crate::Wrt::InputEmbeddings => Self::InputEmbeddings,
            crate::Wrt::Layer { name, input } => Self::Layer {
                name: name.into(),
                input,
            },
        }
    }
}

impl From<Wrt> for crate::Wrt {
    fn from(w: Wrt) -> Self {
        match w {
            Wrt::InputEmbeddings => Self::InputEmbeddings,
            Wrt::Layer { name, input } => Self::Layer {
                name: name.into(),
                input,
            },
        }
    }
}

/// [`crate::PointSide`] on the wire.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug)]
#[allow(missing_docs)]
pub enum PointSide {
    Actual,
    Values(Tensor),
    Ids(RVec<TokenId>),
}

impl From<crate::PointSide> for PointSide {
    fn from(p: crate::PointSide) -> Self {
        match p {
            crate::PointSide::Actual => Self::Actual,
            crate::PointSide::Values(t) => Self::Values(t.into()),
            crate::PointSide::Ids(ids) => Self::Ids(ids.into()),
        }
    }
}

impl From<PointSide> for crate::PointSide {
    fn from(p: PointSide) -> Self {
        match p {
            PointSide::Actual => Self::Actual,
            PointSide::Values(t) => Self::Values(t.into()),
            PointSide::Ids(ids) => Self::Ids(ids.into_vec()),
        }
    }
}

mirror! {
    /// An input point on the wire.
    InputPoint <=> crate::InputPoint { source: PointSide => into, target: PointSide => into }
}

/// [`crate::GradientRequest`] on the wire.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
#[allow(missing_docs)]
pub struct GradientRequest {
    pub sequence: u64,
    pub wrt: Wrt,
    pub points: RVec<InputPoint>,
    pub steps: RVec<u32>,
    pub rule: GradientRule,
}

impl From<crate::GradientRequest> for GradientRequest {
    fn from(r: crate::GradientRequest) -> Self {
        Self {
            sequence: r.sequence as u64,
            wrt: r.wrt.into(),
            points: rvec(r.points),
            steps: r.steps.into(),
            rule: r.rule,
        }
    }
}

impl From<GradientRequest> for crate::GradientRequest {
    fn from(r: GradientRequest) -> Self {
        Self {
            sequence: r.sequence as usize,
            wrt: r.wrt.into(),
            points: vec(r.points),
            steps: r.steps.into_vec(),
            rule: r.rule,
        }
    }
}

mirror! {
    /// Gradients on the wire.
    GradientResponse <=> crate::GradientResponse {
        scores: Tensor => into,
        source: ROption<Tensor> => opt,
        target: ROption<Tensor> => opt,
    }
}

/// [`crate::ScoreRequest`] on the wire.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
#[allow(missing_docs)]
pub struct ScoreRequest {
    pub sequence: u64,
    pub points: RVec<InputPoint>,
    pub steps: RVec<u32>,
    pub output: crate::ScoreOutput,
}

impl From<crate::ScoreRequest> for ScoreRequest {
    fn from(r: crate::ScoreRequest) -> Self {
        Self {
            sequence: r.sequence as u64,
            points: rvec(r.points),
            steps: r.steps.into(),
            output: r.output,
        }
    }
}

impl From<ScoreRequest> for crate::ScoreRequest {
    fn from(r: ScoreRequest) -> Self {
        Self {
            sequence: r.sequence as usize,
            points: vec(r.points),
            steps: r.steps.into_vec(),
            output: r.output,
        }
    }
}

/// [`crate::InterventionOp`] on the wire.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug)]
#[allow(missing_docs)]
pub enum InterventionOp {
    Zero {
        positions: RVec<u32>,
        columns: RVec<Tuple2<u32, u32>>,
    },
    Replace(Tensor),
}

impl From<crate::InterventionOp> for InterventionOp {
    fn from(op: crate::InterventionOp) -> Self {
        match op {
            crate::InterventionOp::Zero { positions, columns } => Self::Zero {
                positions: positions.into(),
                columns: columns.into_iter().map(Tuple2::from).collect(),
            },
            crate::InterventionOp::Replace(t) => Self::Replace(t.into()),
        }
    }
}

impl From<InterventionOp> for crate::InterventionOp {
    fn from(op: InterventionOp) -> Self {
        match op {
            InterventionOp::Zero { positions, columns } => Self::Zero {
                positions: positions.into_vec(),
                columns: columns.into_iter().map(Tuple2::into_tuple).collect(),
            },
            InterventionOp::Replace(t) => Self::Replace(t.into()),
        }
    }
}

mirror! {
    /// An intervention on the wire.
    Intervention <=> crate::Intervention { tap: RString => into, op: InterventionOp => into }
}

/// [`crate::InternalsRequest`] on the wire.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
#[allow(missing_docs)]
pub struct InternalsRequest {
    pub sequence: u64,
    pub attentions: bool,
    pub hidden_states: bool,
    pub record: RVec<RString>,
    pub interventions: RVec<Intervention>,
}

impl From<crate::InternalsRequest> for InternalsRequest {
    fn from(r: crate::InternalsRequest) -> Self {
        Self {
            sequence: r.sequence as u64,
            attentions: r.attentions,
            hidden_states: r.hidden_states,
            record: rvec(r.record),
            interventions: rvec(r.interventions),
        }
    }
}

impl From<InternalsRequest> for crate::InternalsRequest {
    fn from(r: InternalsRequest) -> Self {
        Self {
            sequence: r.sequence as usize,
            attentions: r.attentions,
            hidden_states: r.hidden_states,
            record: vec(r.record),
            interventions: vec(r.interventions),
        }
    }
}

mirror! {
    /// Internals on the wire.
    InternalsResponse <=> crate::InternalsResponse {
        attentions: RVec<NamedTensor> => vec,
        hidden_states: RVec<NamedTensor> => vec,
        recorded: RVec<NamedTensor> => vec,
    }
}

/// [`crate::StepInput`] on the wire.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug)]
#[allow(missing_docs)]
pub struct StepInput<'a> {
    pub logits: TensorView<'a>,
    pub target_ids: RSlice<'a, TokenId>,
    pub contrast_logits: ROption<TensorView<'a>>,
    pub contrast_target_ids: RSlice<'a, TokenId>,
    pub dropout_logits: RSlice<'a, TensorView<'a>>,
    pub want_grad: bool,
}

impl<'a> StepInput<'a> {
    /// The wire form of `input`; `dropout` holds the converted dropout views it borrows.
    pub fn new(input: &crate::StepInput<'a>, dropout: &'a [TensorView<'a>]) -> Self {
        Self {
            logits: input.logits.into(),
            target_ids: input.target_ids.into(),
            contrast_logits: input.contrast_logits.map(Into::into).into(),
            contrast_target_ids: input.contrast_target_ids.into(),
            dropout_logits: dropout.into(),
            want_grad: input.want_grad,
        }
    }

    /// The plain form.
    pub fn plain(self) -> crate::StepInput<'a> {
        crate::StepInput {
            logits: self.logits.into(),
            target_ids: self.target_ids.as_slice(),
            contrast_logits: self.contrast_logits.into_option().map(Into::into),
            contrast_target_ids: self.contrast_target_ids.as_slice(),
            dropout_logits: self.dropout_logits.iter().map(|&v| v.into()).collect(),
            want_grad: self.want_grad,
        }
    }
}

mirror! {
    /// A step function's output on the wire.
    StepOutput <=> crate::StepOutput {
        scores: RVec<f32> => into,
        grad_logits: ROption<Tensor> => opt,
        grad_contrast_logits: ROption<Tensor> => opt,
    }
}

/// [`crate::Capabilities`] on the wire.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
#[allow(missing_docs)]
pub struct Capabilities {
    pub flags: Flags,
    pub output: ROption<OutputKind>,
    pub default_aggregation: RVec<RString>,
    pub span_aggregation: ROption<RString>,
}

impl From<crate::Capabilities> for Capabilities {
    fn from(c: crate::Capabilities) -> Self {
        Self {
            flags: c.flags,
            output: c.output.into(),
            default_aggregation: rvec(c.default_aggregation),
            span_aggregation: c.span_aggregation.map(RString::from).into(),
        }
    }
}

impl From<Capabilities> for crate::Capabilities {
    fn from(c: Capabilities) -> Self {
        Self {
            flags: c.flags,
            output: c.output.into_option(),
            default_aggregation: vec(c.default_aggregation),
            span_aggregation: c.span_aggregation.into_option().map(Into::into),
        }
    }
}

/// [`crate::PluginError`] on the wire.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
#[allow(missing_docs)]
pub struct PluginError {
    pub code: ErrorCode,
    pub message: RString,
    pub context: RVec<RString>,
}

impl From<crate::PluginError> for PluginError {
    fn from(e: crate::PluginError) -> Self {
        Self {
            code: e.code,
            message: e.message.into(),
            context: rvec(e.context),
        }
    }
}

impl From<PluginError> for crate::PluginError {
    fn from(e: PluginError) -> Self {
        Self {
            code: e.code,
            message: e.message.into(),
            context: vec(e.context),
        }
    }
}

/// `(source, target)` inputs on the wire.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct SidePair {
    /// Source side.
    pub source: Tensor,
    /// Target side.
    pub target: Tensor,
}

impl From<crate::SidePair> for SidePair {
    fn from(p: crate::SidePair) -> Self {
        Self {
            source: p.source.into(),
            target: p.target.into(),
        }
    }
}

impl From<SidePair> for crate::SidePair {
    fn from(p: SidePair) -> Self {
        Self {
            source: p.source.into(),
            target: p.target.into(),
        }
    }
}
