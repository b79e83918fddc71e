//! Where a layer method attributes: its `target_layer` and `attribute_to_layer_input`
//! parameters, checked against the model.

use crate::data::{AttributionRequest, ModelKind};
use crate::error::PluginError;
use crate::host::Host;
use crate::requests::Wrt;

use super::endpoints::AttributedSides;

/// Where a layer method attributes (its `target_layer` and `attribute_to_layer_input`
/// parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerTarget {
    /// HF module path of the attributed layer (e.g. `model.layers.15.mlp`); unset = the input
    /// embeddings (Inseq's default, the embedding layer).
    pub target_layer: Option<String>,
    /// Attribute the layer's input instead of its output (Captum `attribute_to_layer_input`).
    pub attribute_to_layer_input: bool,
}

impl LayerTarget {
    /// Checks the layer against the request and the model and returns what to differentiate
    /// with respect to, and the sides that can be attributed there.
    pub fn resolve(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<(Wrt, AttributedSides), PluginError> {
        let info = host.info();
        if info.kind == ModelKind::EncoderDecoder && request.attribute_target {
            return Err(PluginError::unsupported(
                "layer attribution methods do not support attribute_target=True on encoder-decoder models; use the non-layer method instead",
            ));
        }
        let Some(name) = &self.target_layer else {
            if self.attribute_to_layer_input {
                return Err(PluginError::invalid_params(
                    "attribute_to_layer_input needs a target_layer (the default layer is the input embeddings)",
                ));
            }
            return Ok((Wrt::InputEmbeddings, AttributedSides::of(host, request)));
        };
        if !info.tap_names.is_empty() && !info.tap_names.iter().any(|t| t.as_str() == name) {
            let some: Vec<&str> = info.tap_names.iter().take(8).map(|t| t.as_str()).collect();
            return Err(PluginError::invalid_params(format!(
                "unknown target_layer '{name}' for model '{}' (taps include: {})",
                info.name,
                some.join(", ")
            )));
        }
        Ok((
            Wrt::Layer {
                name: name.clone(),
                input: self.attribute_to_layer_input,
            },
            AttributedSides::both(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::testing::ToyHost;

    #[test]
    fn default_is_the_input_embeddings() {
        let toy = ToyHost::new(&[1, 2, 3], 1);
        let (wrt, sides) = LayerTarget::default()
            .resolve(&toy.host(), toy.request())
            .unwrap();
        assert_eq!(wrt, Wrt::InputEmbeddings);
        assert!(sides.target && !sides.source);
        let bad = LayerTarget {
            target_layer: None,
            attribute_to_layer_input: true,
        };
        let e = bad.resolve(&toy.host(), toy.request()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParams);
    }

    #[test]
    fn named_layer_attributes_both_sides() {
        // The toy model lists no taps, so any name is accepted (the host checks it).
        let toy = ToyHost::new(&[1, 2, 3], 1);
        let layer = LayerTarget {
            target_layer: Some("model.layers.0.mlp".into()),
            attribute_to_layer_input: true,
        };
        let (wrt, sides) = layer.resolve(&toy.host(), toy.request()).unwrap();
        assert_eq!(
            wrt,
            Wrt::Layer {
                name: "model.layers.0.mlp".into(),
                input: true
            }
        );
        assert_eq!(sides, AttributedSides::both());
    }
}
