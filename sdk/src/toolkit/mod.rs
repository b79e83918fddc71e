//! Helpers for writing attribution methods: the plumbing the in-tree methods share, so that a
//! method file holds only its method.
//!
//! ## Which helper for which kind of method
//!
//! | Method kind | Helpers |
//! |---|---|
//! | Plain gradient (saliency, input × gradient) | [`plain_gradients`] → `(steps, len, hidden)` per side, [`times_input`], [`to_sequence_scores`] |
//! | Path / sampling (integrated gradients, SHAP, SIG, DIG, DeepLIFT) | [`IntegrationMethod`] / [`Quadrature`] for alphas and weights, [`PathRun`] (per-sequence loop: [`Endpoints`] with baselines, chunked [`GradientSweep`], [`Progress`]), [`Accumulator`] for Σ weight × gradient, [`convergence_deltas`] |
//! | Layer methods | [`LayerTarget`] (`target_layer`, `attribute_to_layer_input`) → what to differentiate and which sides, then the path helpers with that [`crate::Wrt`] |
//! | Perturbation (leave-one-out, occlusion) | [`source_ids`] / [`target_ids`], [`occluded`] points, [`Occlusion`] (points for one [`crate::ScoreRequest`], then per-token score drops) |
//! | Any | [`steps_to_token_major`] / [`point`] (layout), [`TensorIndex`] / [`TensorIndexMut`] (`t.at(&[i, j])`, `t.dims()?`), [`points_per_request`] / [`check_batch_size`] |
//!
//! ## What the host does for every method
//!
//! After `attribute` returns, the host checks each result's shape against the request and the
//! declared [`crate::OutputKind`], and sets target positions a step cannot see to NaN. Methods
//! need not call [`mask_future_positions`] (it stays available, e.g. for tests on
//! [`crate::testing::ToyHost`], which returns a method's output as is).
//!
//! ## Layout
//!
//! Host gradients are step-major, `(points, steps, len, hidden)`; results are token-major,
//! `(len, steps, extra...)`. [`to_sequence_scores`] turns per-side `(steps, len, hidden)`
//! tensors into a [`crate::SequenceScores`].

pub mod accumulate;
pub mod chunking;
pub mod delta;
pub mod endpoints;
pub mod gradients;
pub mod index;
pub mod layer;
pub mod layout;
pub mod path;
pub mod perturb;
pub mod progress;
pub mod quadrature;
pub mod softmax;

pub use accumulate::{add_at_position, times_input, Accumulator};
pub use chunking::{
    check_batch_size, n_chunks, points_per_request, points_within_budget, RESPONSE_BUDGET,
};
pub use delta::convergence_deltas;
pub use endpoints::{AttributedSides, Endpoints, SideEnds};
pub use gradients::{missing_side, plain_gradients, point_scores, GradientSweep, PointGrads};
pub use index::{TensorIndex, TensorIndexMut};
pub use layer::LayerTarget;
pub use layout::{
    finish_sequence, mask_future_positions, point, steps_to_token_major, to_sequence_scores,
};
pub use path::{PathRun, PathSeq};
pub use perturb::{
    baseline_ids, occluded, replace, source_ids, target_ids, visible_positions, Occlusion,
};
pub use progress::Progress;
pub use quadrature::{leggauss, torch_linspace, IntegrationMethod, Quadrature};
pub use softmax::{log_softmax, log_softmax_f64, onehot_minus, softmax, Dist};
