//! The result of a context attribution, as Inseq writes it: `json.dump(output.to_dict())` of
//! its `AttributeContextOutput` (same keys, same nesting, `info` only when kept).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One context-sensitive token and its context cues (Inseq's `CCIOutput`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CciOutput {
    /// Index of the token in `output_current_tokens`.
    pub cti_idx: usize,
    /// The token.
    pub cti_token: String,
    /// Its context sensitivity.
    pub cti_score: f64,
    /// The contextual output up to and including the token (the attributed text).
    pub contextual_output: String,
    /// The contextless output's token at the same position (contrastive attributed functions).
    pub contrast_token: Option<String>,
    /// The contextless output (contrastive attributed functions).
    pub contextless_output: Option<String>,
    /// Attribution scores of the input context tokens.
    pub input_context_scores: Option<Vec<f64>>,
    /// Attribution scores of the output context tokens.
    pub output_context_scores: Option<Vec<f64>>,
}

/// The whole result (Inseq's `AttributeContextOutput`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AttributeContextOutput {
    /// The input context.
    pub input_context: Option<String>,
    /// Its tokens (special tokens dropped).
    pub input_context_tokens: Option<Vec<String>>,
    /// The output context.
    pub output_context: Option<String>,
    /// Its tokens.
    pub output_context_tokens: Option<Vec<String>>,
    /// The current output.
    pub output_current: Option<String>,
    /// Its tokens, as CTI scored them.
    pub output_current_tokens: Option<Vec<String>>,
    /// Context sensitivity of every current output token.
    pub cti_scores: Option<Vec<f64>>,
    /// One entry per selected token, most sensitive first.
    pub cci_scores: Vec<CciOutput>,
    /// The arguments of the run (absent with `--add-output-info false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Map<String, Value>>,
}

impl AttributeContextOutput {
    /// The JSON text Inseq writes (`indent=4`).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        self.serialize(&mut ser)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Reads a file written by rinseq or Inseq.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}
