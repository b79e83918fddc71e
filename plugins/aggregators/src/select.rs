//! `select_idx`: which positions of the last dimension a `scores` aggregation keeps (Inseq's
//! `validate_indices` + `_filter_scores`).

use rinseq_sdk::PluginError;
use serde::Deserialize;

/// Positions of the last dimension to keep (negative counts from the end).
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum SelectIdx {
    /// One index: select it and drop the dimension, with no reduction (e.g. one layer).
    One(i64),
    /// `[start, end)` when it has two elements (a Python `(start, end)` tuple in Inseq),
    /// otherwise a list of individual indices; both are then reduced.
    List(Vec<i64>),
    /// Individual indices, also when there are exactly two (a Python list in Inseq).
    Indices {
        /// The indices, without duplicates.
        indices: Vec<i64>,
    },
}

/// The validated positions and whether the dimension is dropped (a single int index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Positions to keep, in order.
    pub idx: Vec<usize>,
    /// True for a single int: the dimension is squeezed and nothing is reduced.
    pub squeeze: bool,
}

fn err(msg: String) -> PluginError {
    PluginError::invalid_params(format!("select_idx: {msg}"))
}

fn one(i: i64, n: usize) -> Result<usize, PluginError> {
    let n_i = n as i64;
    if !(-n_i..n_i).contains(&i) {
        return Err(err(format!(
            "index {i} is out of range for a dimension of size {n}"
        )));
    }
    Ok(if i < 0 {
        (n_i + i) as usize
    } else {
        i as usize
    })
}

impl SelectIdx {
    /// Validates the selection against a last dimension of size `n`, as Inseq does.
    pub fn resolve(&self, n: usize) -> Result<Selection, PluginError> {
        let (list, is_span) = match self {
            Self::One(i) => {
                return Ok(Selection {
                    idx: vec![one(*i, n)?],
                    squeeze: true,
                })
            }
            Self::List(v) => (v, v.len() == 2),
            Self::Indices { indices } => (indices, false),
        };
        match list.len() {
            0 => return Err(err("an empty list of indices is not allowed".into())),
            // A one-element list selects without squeezing, so the reduction still runs.
            1 => {
                return Ok(Selection {
                    idx: vec![one(list[0], n)?],
                    squeeze: false,
                })
            }
            _ => {}
        }
        let n_i = n as i64;
        let pos: Vec<i64> = list
            .iter()
            .map(|&i| if i < 0 { n_i + i } else { i })
            .collect();
        if is_span {
            let (s, e) = (pos[0], pos[1]);
            if s >= e || s < 0 || e > n_i {
                return Err(err(format!(
                    "span {list:?} must be [start, end) with start < end ≤ {n}; give \
                     {{\"indices\": [...]}} for individual indices"
                )));
            }
            return Ok(Selection {
                idx: (s as usize..e as usize).collect(),
                squeeze: false,
            });
        }
        let mut idx = Vec::with_capacity(pos.len());
        for (&p, &orig) in pos.iter().zip(list) {
            if !(0..n_i).contains(&p) {
                return Err(err(format!(
                    "index {orig} is out of range for a dimension of size {n}"
                )));
            }
            if idx.contains(&(p as usize)) {
                return Err(err(format!("duplicate index {orig}")));
            }
            idx.push(p as usize);
        }
        Ok(Selection {
            idx,
            squeeze: false,
        })
    }
}
