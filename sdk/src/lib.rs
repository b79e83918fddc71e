//! # rinseq-sdk: write rinseq plugins in ordinary Rust
//!
//! rinseq loads every attribution method, step function and aggregator from plugin libraries
//! (`cdylib`s) at run time. This crate is the boundary: plain Rust data ([`Tensor`],
//! [`Token`], [`PluginError`]...; their ABI-stable mirrors live in [`abi`]), one trait per
//! plugin kind, the handle through which a method drives the model ([`Host`]), a [`toolkit`] of
//! helpers methods share, a test kit ([`testing`]), and [`export_plugins!`], which exports a
//! library's root module. Plugin crates depend on this crate, `serde` and `schemars` only — no
//! `abi_stable`.
//!
//! ## A small method, end to end
//!
//! The [`toolkit`] holds the plumbing methods share (host requests, layout, path integrals,
//! perturbations); the method itself stays short:
//!
//! ```
//! use rinseq_sdk::prelude::*;
//!
//! /// Parameters: parsed from the JSON the host passes (`--attribution-kwargs`).
//! #[derive(serde::Deserialize, schemars::JsonSchema, Default)]
//! #[serde(deny_unknown_fields, default)]
//! pub struct Params { pub abs: bool }
//!
//! /// Gradient of the attributed function with respect to the input embeddings.
//! pub struct MySaliency(Params);
//!
//! impl PluginInfo for MySaliency {
//!     const NAME: &'static str = "my_saliency";
//!     const VERSION: &'static str = "0.1.0";
//!     const DESCRIPTION: &'static str = "Gradient of the target w.r.t. input embeddings.";
//!     type Params = Params;
//!     fn capabilities() -> Capabilities {
//!         Capabilities::method(Flags::USES_GRADIENTS, OutputKind::Granular, &["vnorm"])
//!     }
//! }
//!
//! impl AttributionPlugin for MySaliency {
//!     fn new(params: Params) -> Result<Self, PluginError> { Ok(Self(params)) }
//!
//!     fn attribute(&self, host: &Host<'_>, req: &AttributionRequest)
//!         -> Result<AttributionOutput, PluginError> {
//!         let mut out = AttributionOutput::default();
//!         for (i, seq) in req.sequences.iter().enumerate() {
//!             // Every step in one host request: `(steps, len, hidden)` per attributed side.
//!             let (mut source, mut target) = plain_gradients(host, i, seq)?;
//!             for t in source.iter_mut().chain(target.iter_mut()).filter(|_| self.0.abs) {
//!                 t.data.iter_mut().for_each(|v| *v = v.abs());
//!             }
//!             // Token-major `(len, steps, hidden)`; the host masks future target positions.
//!             out.sequences.push(to_sequence_scores(seq, source, target)?);
//!         }
//!         Ok(out)
//!     }
//! }
//!
//! // In the plugin crate (crate-type = ["cdylib"]), one line exports everything:
//! rinseq_sdk::export_plugins! { attribution: [MySaliency] }
//!
//! # fn main() -> Result<(), PluginError> {
//! // And a unit test runs it on the SDK's toy model:
//! let toy = rinseq_sdk::testing::ToyHost::new(&[1, 2, 3, 4], 2);
//! let out = toy.attribute(&MySaliency(Params { abs: true }))?;
//! let target = out.sequences[0].target.as_ref().unwrap();
//! assert_eq!(target.shape, vec![4, 2, rinseq_sdk::testing::TOY_HIDDEN]);
//! assert!(target.at(&[0, 0, 0]) >= 0.0);
//! # Ok(())
//! # }
//! ```
//!
//! ## A perturbation method
//!
//! A perturbation method asks for scores, not gradients: every perturbed input of a sequence
//! goes in ONE [`Host::scores`] request, so that the host batches the forwards (and, for a
//! causal model, reads every step of a point from one forward). [`toolkit::Occlusion`] builds
//! the points and turns their scores back into per-token attributions:
//!
//! ```
//! use rinseq_sdk::prelude::*;
//!
//! /// `f(x) − f(x with token i replaced by its baseline id)`, one score per token.
//! pub struct LeaveOneOut;
//!
//! impl PluginInfo for LeaveOneOut {
//!     const NAME: &'static str = "my_leave_one_out";
//!     const VERSION: &'static str = "0.1.0";
//!     const DESCRIPTION: &'static str = "Score drop when each token is replaced.";
//!     type Params = ();
//!     fn capabilities() -> Capabilities {
//!         // No flag: no gradients, no baselines callback, no internals.
//!         Capabilities::method(Flags::NONE, OutputKind::Coarse, &[])
//!     }
//! }
//!
//! impl AttributionPlugin for LeaveOneOut {
//!     fn new(_: ()) -> Result<Self, PluginError> { Ok(Self) }
//!
//!     fn attribute(&self, host: &Host<'_>, req: &AttributionRequest)
//!         -> Result<AttributionOutput, PluginError> {
//!         let sides = AttributedSides::of(host, req);
//!         let mut out = AttributionOutput::default();
//!         for (i, seq) in req.sequences.iter().enumerate() {
//!             // Point 0: the input; then one point per token, that token replaced.
//!             let occ = Occlusion::leave_one_out(seq, sides)?;
//!             let scores = host.scores(ScoreRequest {
//!                 sequence: i,
//!                 points: occ.points.clone(),
//!                 steps: seq.steps.clone(),
//!                 ..Default::default()
//!             })?;
//!             out.sequences.push(occ.drops(&scores)?); // `(len, steps)` per side
//!         }
//!         Ok(out)
//!     }
//! }
//!
//! rinseq_sdk::export_plugins! { attribution: [LeaveOneOut] }
//!
//! # fn main() -> Result<(), PluginError> {
//! // On the test kit's toy model: the drop at position 0 for the first step is the score
//! // difference the host itself reports.
//! let toy = rinseq_sdk::testing::ToyHost::new(&[1, 2, 3, 4], 2);
//! let out = toy.attribute(&LeaveOneOut)?;
//! let drops = out.sequences[0].target.as_ref().unwrap();
//! let direct = toy.host().scores(ScoreRequest {
//!     sequence: 0,
//!     points: vec![InputPoint::actual(), InputPoint::with_ids(Side::Target, vec![0, 2, 3, 4])],
//!     steps: vec![2],
//!     ..Default::default()
//! })?;
//! assert!((drops.at(&[0, 0]) - (direct.data[0] - direct.data[1])).abs() < 1e-6);
//! # Ok(())
//! # }
//! ```
//!
//! Register the built library in `registry.toml` (or pass `--plugin PATH`) and the host lists it
//! with `rinseq plugins list`; no host rebuild is needed.
//!
//! ## Compatibility
//!
//! The SDK's crate version is the plugin ABI version. Within a `0.y` series the ABI types are
//! frozen; any change to them bumps `y`, and the host then rejects plugins built with another
//! series ("built with rinseq-sdk X, host uses Y: rebuild the plugin"). The SDK is not on
//! crates.io: depend on it by path or git (`sdk/Cargo.toml` stands alone), pinned to a `0.y`
//! release.
//!
//! - 0.3: [`ScoreRequest::output`] asks for the attributed function (the default) or the
//!   target's rank ([`ScoreOutput::TargetRank`], ReAGent's stopping rule). Plugins built with
//!   0.2 must be rebuilt; their source compiles unchanged where it builds a `ScoreRequest` with
//!   `..Default::default()`, otherwise add `output: ScoreOutput::AttributedFunction`.
//!
//! ## Panics
//!
//! Every entry point generated by [`export_plugins!`] runs inside `catch_unwind`: a panic in a
//! plugin becomes a [`PluginError`] with code [`ErrorCode::Panic`] in the host. Build plugins with
//! `panic = "unwind"` (the default).

#![warn(missing_docs)]

pub mod abi;
pub mod author;
pub mod capabilities;
pub mod data;
pub mod error;
pub mod host;
pub mod layout;
pub mod requests;
pub mod step;
pub mod tensor;
pub mod testing;
pub mod toolkit;

pub use author::{AggregatorPlugin, AttributionPlugin, PluginInfo, StepFunctionPlugin};
pub use capabilities::{Capabilities, Flags, OutputKind};
pub use data::{
    AttributionOutput, AttributionRequest, ModelInfo, ModelKind, SequenceAttribution,
    SequenceInput, SequenceScores, Side, Token, TokenId,
};
pub use error::{ErrorCode, PluginError};
pub use host::{Host, HostApi, SidePair};
pub use requests::{
    GradientRequest, GradientResponse, GradientRule, InputPoint, InternalsRequest,
    InternalsResponse, Intervention, InterventionOp, PointSide, ScoreOutput, ScoreRequest, Wrt,
};
pub use step::{StepInput, StepOutput};
pub use tensor::{NamedTensor, Tensor, TensorView};

/// Re-exported for the macros; plugin crates need not depend on it.
#[doc(hidden)]
pub use abi_stable;

/// The SDK (and plugin ABI) version plugins are built with.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The exported symbol abi_stable looks up in a plugin library.
#[doc(hidden)]
pub const ROOT_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

// `export_plugins!` writes the root-module symbol itself (so that plugin crates need no direct
// abi_stable dependency); this keeps it in step with abi_stable's own name.
const _: () = {
    let (a, b) = (
        abi_stable::library::ROOT_MODULE_LOADER_NAME.as_bytes(),
        ROOT_SYMBOL.as_bytes(),
    );
    assert!(a.len() == b.len(), "abi_stable root symbol changed");
    let mut i = 0;
    while i < a.len() {
        assert!(a[i] == b[i], "abi_stable root symbol changed");
        i += 1;
    }
};

/// Everything a plugin author needs, in one `use`.
pub mod prelude {
    pub use crate::toolkit::{
        mask_future_positions, plain_gradients, source_ids, steps_to_token_major, target_ids,
        to_sequence_scores, Accumulator, AttributedSides, Endpoints, IntegrationMethod,
        LayerTarget, Occlusion, PathRun, PointGrads, Progress, Quadrature, TensorIndex,
        TensorIndexMut,
    };
    pub use crate::{
        AggregatorPlugin, AttributionOutput, AttributionPlugin, AttributionRequest, Capabilities,
        ErrorCode, Flags, GradientRequest, GradientResponse, GradientRule, Host, InputPoint,
        InternalsRequest, InternalsResponse, Intervention, InterventionOp, ModelInfo, ModelKind,
        NamedTensor, OutputKind, PluginError, PluginInfo, PointSide, ScoreOutput, ScoreRequest,
        SequenceAttribution, SequenceInput, SequenceScores, Side, SidePair, StepFunctionPlugin,
        StepInput, StepOutput, Tensor, TensorView, Token, TokenId, Wrt,
    };
}

/// Exports a plugin library's root module, listing its plugins by kind:
///
/// ```text
/// rinseq_sdk::export_plugins! {
///     attribution: [Saliency, IntegratedGradients],
///     step_functions: [Probability],
///     aggregators: [Mean],
/// }
/// ```
///
/// Each list is optional. A type that does not implement the matching trait is a compile error.
#[macro_export]
macro_rules! export_plugins {
    (
        $(attribution: [$($a:ty),* $(,)?] $(,)?)?
        $(step_functions: [$($s:ty),* $(,)?] $(,)?)?
        $(aggregators: [$($g:ty),* $(,)?] $(,)?)?
    ) => {
        const _: () = {
            extern "C" fn __rinseq_plugins()
                -> $crate::abi_stable::std_types::RVec<$crate::abi::PluginDescriptor>
            {
                ::std::panic::catch_unwind(|| {
                    let mut v = $crate::abi_stable::std_types::RVec::new();
                    $($( v.push($crate::abi::guest::attribution::<$a>()); )*)?
                    $($( v.push($crate::abi::guest::step_function::<$s>()); )*)?
                    $($( v.push($crate::abi::guest::aggregator::<$g>()); )*)?
                    v
                })
                .unwrap_or_default()
            }

            fn __rinseq_root() -> $crate::abi::PluginLibRef {
                $crate::abi::guest::root_module(
                    env!("CARGO_PKG_NAME"),
                    env!("CARGO_PKG_VERSION"),
                    __rinseq_plugins,
                )
            }

            #[no_mangle]
            pub static _1as_0lib_1header_0root_bmodule_bloader:
                $crate::abi_stable::library::LibHeader = {
                extern "C" fn __rinseq_erased() -> $crate::abi_stable::library::RootModuleResult {
                    $crate::abi_stable::library::__call_root_module_loader(__rinseq_root)
                }
                unsafe {
                    $crate::abi_stable::library::LibHeader::from_constructor::<$crate::abi::PluginLibRef>(
                        __rinseq_erased,
                        $crate::abi_stable::library::CheckTypeLayout::Yes,
                    )
                }
            };
        };
    };
}
