//! Gradient-based attribution methods (Captum semantics, as wrapped by Inseq 0.7.1):
//! `saliency`, `input_x_gradient`, `integrated_gradients`, `gradient_shap`,
//! `sequential_integrated_gradients`, `discretized_integrated_gradients`, `deeplift`, and the
//! layer methods `layer_integrated_gradients`, `layer_gradient_x_activation` and `layer_deeplift`.
//!
//! Every method sends the host few large [`rinseq_sdk::GradientRequest`]s (all the steps of a
//! sequence, and all its path points unless `internal_batch_size` chunks them) and lays the
//! result out token-major, `(len, n_steps, hidden)`. `deeplift` and `layer_deeplift` need host
//! support for [`rinseq_sdk::GradientRule::DeepLiftRescale`].

#![warn(missing_docs)]

mod deeplift;
mod discretized_integrated_gradients;
mod gradient_shap;
mod input_x_gradient;
mod integrated_gradients;
mod layer_deeplift;
mod layer_gradient_x_activation;
mod layer_integrated_gradients;
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

#[cfg(test)]
mod tests {
    use rinseq_sdk::prelude::*;
    use rinseq_sdk::testing::{ToyHost, TOY_HIDDEN};

    use super::*;

    fn run<M: AttributionPlugin>(toy: &ToyHost, json: &str) -> SequenceScores {
        let params = serde_json::from_str(json).unwrap();
        let out = toy.attribute(&M::new(params).unwrap()).unwrap();
        out.sequences.into_iter().next().unwrap()
    }

    #[test]
    fn every_method_is_token_major_on_the_toy_host() {
        let toy = ToyHost::new(&[1, 2, 3, 4, 5], 2);
        let shape = vec![5, 3, TOY_HIDDEN];
        let d = r#"{"return_convergence_delta": true}"#;
        let all = [
            run::<Saliency>(&toy, "{}"),
            run::<InputXGradient>(&toy, "{}"),
            run::<IntegratedGradients>(&toy, d),
            run::<GradientShap>(&toy, r#"{"seed": 1}"#),
            run::<SequentialIntegratedGradients>(&toy, r#"{"n_steps": 8}"#),
            run::<DiscretizedIntegratedGradients>(&toy, r#"{"n_steps": 4, "n_neighbors": 3}"#),
            run::<DeepLift>(&toy, d),
            run::<LayerIntegratedGradients>(&toy, r#"{"n_steps": 8}"#),
            run::<LayerGradientXActivation>(&toy, "{}"),
            run::<LayerDeepLift>(&toy, "{}"),
        ];
        for s in &all {
            assert!(s.source.is_none());
            let t = s.target.as_ref().unwrap();
            assert_eq!(t.shape, shape);
            // Step 0 scores position 2: positions 2.. are not visible yet.
            assert!(t.at(&[1, 0, 0]).is_finite() && t.at(&[2, 0, 0]).is_nan());
        }
    }

    #[test]
    fn saliency_is_the_absolute_gradient() {
        let toy = ToyHost::new(&[1, 2, 3, 4], 1);
        let s = run::<Saliency>(&toy, "{}");
        let seq = &toy.request().sequences[0];
        let (_, g) = plain_gradients(&toy.host(), 0, seq).unwrap();
        let g = steps_to_token_major(&g.unwrap()).unwrap();
        let t = s.target.unwrap();
        for (a, b) in t.data.iter().zip(&g.data).filter(|(a, _)| !a.is_nan()) {
            assert_eq!(*a, b.abs());
        }
    }

    #[test]
    fn integrated_gradients_are_complete_on_the_toy_host() {
        let toy = ToyHost::new(&[1, 2, 3, 4, 5], 2);
        let s = run::<IntegratedGradients>(&toy, r#"{"return_convergence_delta": true}"#);
        let deltas = &s.step_scores[0];
        assert_eq!(deltas.name, "deltas");
        assert!(
            deltas.tensor.data.iter().all(|d| d.abs() < 1e-4),
            "{deltas:?}"
        );
    }
}
