//! A test kit for plugin authors: unit-test a method or a step function without loading a model.
//!
//! - [`ToyHost`]: a small deterministic differentiable decoder-only "model" that serves every
//!   [`crate::Host`] request a method makes (gradients, scores, baselines, embeddings);
//! - [`StepInputs`]: owned step-function inputs, with a builder, viewed as a [`crate::StepInput`];
//! - [`check_step_gradient`]: compares a step function's d score / d logits with central finite
//!   differences.
//!
//! ```
//! use rinseq_sdk::prelude::*;
//! use rinseq_sdk::testing::{check_step_gradient, StepInputs, ToyHost};
//!
//! // A step function: the target's logit, whose gradient is one-hot.
//! struct Logit;
//! impl PluginInfo for Logit {
//!     const NAME: &'static str = "logit";
//!     const VERSION: &'static str = "0.1.0";
//!     const DESCRIPTION: &'static str = "The target's logit.";
//!     type Params = ();
//! }
//! impl StepFunctionPlugin for Logit {
//!     fn new(_: ()) -> Result<Self, PluginError> { Ok(Logit) }
//!     fn compute(&self, x: &StepInput<'_>) -> Result<StepOutput, PluginError> {
//!         let vocab = x.logits.shape[1];
//!         let mut grad = vec![0.0; x.logits.data.len()];
//!         let scores = x.target_ids.iter().enumerate().map(|(r, &t)| {
//!             grad[r * vocab + t as usize] = 1.0;
//!             x.logits.row(r)[t as usize]
//!         }).collect();
//!         Ok(StepOutput {
//!             scores,
//!             grad_logits: x.want_grad.then(|| Tensor::new(x.logits.shape.to_vec(), grad).unwrap()),
//!             ..Default::default()
//!         })
//!     }
//! }
//!
//! let inputs = StepInputs::random(2, 5, 7).targets(&[1, 3]);
//! check_step_gradient(&Logit, &inputs, 1e-3).unwrap();
//!
//! // The toy host serves any method; here it scores two points directly.
//! let toy = ToyHost::new(&[1, 2, 3, 4], 2);
//! let host = toy.host();
//! let scores = host.scores(ScoreRequest {
//!     sequence: 0,
//!     points: vec![InputPoint::actual(), InputPoint::with_ids(Side::Target, vec![0; 4])],
//!     steps: vec![2, 3],
//!     ..Default::default()
//! }).unwrap();
//! assert_eq!(scores.shape, vec![2, 2]);
//! ```

mod finite_diff;
mod step_inputs;
mod toy_host;

pub use finite_diff::check_step_gradient;
pub use step_inputs::StepInputs;
pub use toy_host::{ToyHost, TOY_HIDDEN, TOY_VOCAB};
