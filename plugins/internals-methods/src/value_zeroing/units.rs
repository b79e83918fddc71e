//! Which value units (attention heads) are zeroed: Inseq's `*_zeroed_units_indices` forms.

use std::collections::BTreeMap;

use rinseq_sdk::PluginError;
use serde::Deserialize;

/// A set of attention heads (value units) of one layer.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum Heads {
    /// One head (negative: from the end).
    One(i64),
    /// A list of heads.
    List(Vec<i64>),
    /// A span `"start:end"` (end exclusive), Inseq's `(start, end)` tuple.
    Span(String),
}

/// Which heads are zeroed: the same heads in every layer, or per layer (`{"0": [1, 2], "3":
/// 0}`; layers not listed are not zeroed).
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum ZeroedUnits {
    /// The same heads in every layer.
    All(Heads),
    /// Heads per layer index; missing layers are not zeroed.
    PerLayer(BTreeMap<String, Heads>),
}

pub(super) fn parse_span(s: &str) -> Result<(i64, i64), PluginError> {
    let bad = || PluginError::invalid_params(format!("head span '{s}' is not \"start:end\""));
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}

fn resolve(i: i64, n: usize) -> Result<usize, PluginError> {
    let r = if i < 0 { n as i64 + i } else { i };
    if r < 0 || r >= n as i64 {
        return Err(PluginError::invalid_params(format!(
            "head index {i} is out of range: the layer has {n} value heads"
        )));
    }
    Ok(r as usize)
}

impl Heads {
    /// The head indices among `n` heads (Inseq's `validate_indices`).
    pub fn indices(&self, n: usize) -> Result<Vec<usize>, PluginError> {
        match self {
            Heads::One(i) => Ok(vec![resolve(*i, n)?]),
            Heads::List(v) if v.is_empty() => Err(PluginError::invalid_params(
                "an empty list of heads is not allowed",
            )),
            Heads::List(v) => v.iter().map(|&i| resolve(i, n)).collect(),
            Heads::Span(s) => {
                let (a, b) = parse_span(s)?;
                let a = if a < 0 { n as i64 + a } else { a };
                let b = if b < 0 { n as i64 + b } else { b };
                if a < 0 || b > n as i64 || a >= b {
                    return Err(PluginError::invalid_params(format!(
                        "head span '{s}' is not within the {n} value heads"
                    )));
                }
                Ok((a as usize..b as usize).collect())
            }
        }
    }
}

/// The heads zeroed in `layer` (`None`: the layer is not zeroed).
pub(super) fn layer_heads(
    units: Option<&ZeroedUnits>,
    layer: usize,
    n: usize,
) -> Result<Option<Vec<usize>>, PluginError> {
    match units {
        None => Ok(Some((0..n).collect())),
        Some(ZeroedUnits::All(h)) => h.indices(n).map(Some),
        Some(ZeroedUnits::PerLayer(m)) => {
            for k in m.keys() {
                k.parse::<usize>().map_err(|_| {
                    PluginError::invalid_params(format!("layer key '{k}' is not a layer index"))
                })?;
            }
            match m
                .iter()
                .find(|(k, _)| k.parse::<usize>().ok() == Some(layer))
            {
                Some((_, h)) => h.indices(n).map(Some),
                None => Ok(None),
            }
        }
    }
}
