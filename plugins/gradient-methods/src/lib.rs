//! Gradient-based attribution methods (Captum semantics, as wrapped by Inseq 0.7.1):
//! `saliency`, `input_x_gradient`, `integrated_gradients`, `gradient_shap`,
//! `sequential_integrated_gradients`, `discretized_integrated_gradients`, `deeplift`, and the
//! layer methods `layer_integrated_gradients`, `layer_gradient_x_activation` and `layer_deeplift`.
//!
//! Every method sends the host few large [`rinseq_sdk::GradientRequest`]s (all the steps of a
//! sequence, and all its path points unless `internal_batch_size` chunks them) and lays the
//! result out token-major, `(len, n_steps, hidden)`. `deeplift` and `layer_deeplift` need host
//! support for [`rinseq_sdk::GradientRule::DEEPLIFT_RESCALE`].

#![warn(missing_docs)]

mod common;
mod deeplift;
mod discretized_integrated_gradients;
mod gradient_shap;
mod input_x_gradient;
mod integrated_gradients;
mod layer_deeplift;
mod layer_gradient_x_activation;
mod layer_integrated_gradients;
pub mod quadrature;
mod saliency;
mod sequential_integrated_gradients;

pub use deeplift::DeepLift;
pub use discretized_integrated_gradients::DiscretizedIntegratedGradients;
pub use gradient_shap::GradientShap;
pub use input_x_gradient::InputXGradient;
pub use integrated_gradients::IntegratedGradients;
pub use layer_deeplift::LayerDeepLift;
pub use layer_gradient_x_activation::LayerGradientXActivation;
pub use layer_integrated_gradients::LayerIntegratedGradients;
pub use saliency::Saliency;
pub use sequential_integrated_gradients::SequentialIntegratedGradients;

rinseq_sdk::export_plugins! {
    attribution: [
        Saliency,
        InputXGradient,
        IntegratedGradients,
        GradientShap,
        SequentialIntegratedGradients,
        DiscretizedIntegratedGradients,
        DeepLift,
        LayerIntegratedGradients,
        LayerGradientXActivation,
        LayerDeepLift,
    ],
}
