//! The host-level contrastive arguments of an attribution (Inseq's `contrast_targets`,
//! `contrast_sources`, `contrast_targets_alignments`, `contrast_force_inputs`).

use serde_json::{Map, Value};

/// The contrastive arguments, one entry per input (or per dataset row).
#[derive(Debug, Clone, Default)]
pub struct Contrast {
    /// `contrast_targets`, one per input.
    pub targets: Vec<String>,
    /// `contrast_sources`, one per input.
    pub sources: Vec<String>,
    /// `contrast_targets_alignments`, one list per input.
    pub alignments: Vec<Vec<(usize, usize)>>,
    /// `contrast_force_inputs`.
    pub force_inputs: bool,
}

impl Contrast {
    /// Removes the contrastive keys from `kwargs`.
    pub fn take(kwargs: &mut Map<String, Value>) -> Result<Self, String> {
        let texts = |v: Option<Value>, key: &str| -> Result<Vec<String>, String> {
            match v {
                None => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(vec![s]),
                Some(v) => serde_json::from_value(v)
                    .map_err(|_| format!("{key} must be a string or a list of strings")),
            }
        };
        let alignments = match kwargs.remove("contrast_targets_alignments") {
            None => Vec::new(),
            Some(v) => {
                let err = |_| {
                    "contrast_targets_alignments must be [[orig, contrast], ...] or one such list per input".to_string()
                };
                match serde_json::from_value::<Vec<(usize, usize)>>(v.clone()) {
                    Ok(pairs) => vec![pairs],
                    Err(_) => serde_json::from_value(v).map_err(err)?,
                }
            }
        };
        let force_inputs = match kwargs.remove("contrast_force_inputs") {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err("contrast_force_inputs must be true or false".into()),
        };
        Ok(Self {
            targets: texts(kwargs.remove("contrast_targets"), "contrast_targets")?,
            sources: texts(kwargs.remove("contrast_sources"), "contrast_sources")?,
            alignments,
            force_inputs,
        })
    }

    /// The entries of dataset rows `rows` (rows past a list's end are skipped).
    pub fn pick(&self, rows: &[usize]) -> Contrast {
        let pick = |list: &[String]| -> Vec<String> {
            rows.iter().filter_map(|&r| list.get(r).cloned()).collect()
        };
        Contrast {
            targets: pick(&self.targets),
            sources: pick(&self.sources),
            alignments: rows
                .iter()
                .filter_map(|&r| self.alignments.get(r).cloned())
                .collect(),
            force_inputs: self.force_inputs,
        }
    }
}
