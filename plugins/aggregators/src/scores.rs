//! The `scores` aggregators, one plugin per aggregation function.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::normalize::{normalize_columns, rescale};
use crate::reduce::Reduction;

/// Which indices of the last dimension to keep before reducing (Inseq's `select_idx`).
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum SelectIdx {
    /// One index: select it (no reduction needed).
    One(usize),
    /// A list of indices; a 2-element list is read as a `[start, end)` range, as in Inseq.
    Many(Vec<usize>),
}

/// Parameters shared by every `scores` aggregator.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct ScoresParams {
    /// L1-normalise each generated-token column over source + target (default true).
    pub normalize: bool,
    /// Divide by the largest absolute value instead (exclusive with `normalize`).
    pub rescale: bool,
    /// Keep only these indices of the last dimension before reducing.
    pub select_idx: Option<SelectIdx>,
    /// Order of the vector norm (`vnorm` only).
    pub vnorm_ord: f64,
}

impl Default for ScoresParams {
    fn default() -> Self {
        Self {
            normalize: true,
            rescale: false,
            select_idx: None,
            vnorm_ord: 2.0,
        }
    }
}

impl ScoresParams {
    fn indices(&self) -> Option<Vec<usize>> {
        match &self.select_idx {
            None => None,
            Some(SelectIdx::One(i)) => Some(vec![*i]),
            Some(SelectIdx::Many(v)) if v.len() == 2 => Some((v[0]..v[1]).collect()),
            Some(SelectIdx::Many(v)) => Some(v.clone()),
        }
    }
}

/// Reduces the last dimension of every tensor of `seq`, then post-processes.
fn aggregate(
    reduction: Reduction,
    p: &ScoresParams,
    mut seq: SequenceAttribution,
) -> Result<SequenceAttribution, PluginError> {
    let select = p.indices();
    let reduce = |t: &Tensor| -> Result<Tensor, PluginError> {
        if t.ndim() <= 2 {
            return Err(PluginError::unsupported(format!(
                "attributions of shape {:?} are already (tokens, steps): nothing left to aggregate",
                t.shape.as_slice()
            )));
        }
        reduction.reduce_last(t, select.as_deref())
    };
    let mut src = seq
        .scores
        .source
        .as_ref()
        .into_option()
        .map(reduce)
        .transpose()?;
    let mut tgt = seq
        .scores
        .target
        .as_ref()
        .into_option()
        .map(reduce)
        .transpose()?;
    let done_reducing = |t: &Option<Tensor>| t.as_ref().is_none_or(|t| t.ndim() == 2);
    if done_reducing(&src) && done_reducing(&tgt) {
        let mut parts: Vec<&mut Tensor> = src.iter_mut().chain(tgt.iter_mut()).collect();
        if p.rescale {
            rescale(&mut parts);
        } else if p.normalize {
            normalize_columns(&mut parts);
        }
    }
    seq.scores.source = src.into();
    seq.scores.target = tgt.into();
    for s in seq.scores.sequence_scores.iter_mut() {
        if s.tensor.ndim() > 2 {
            s.tensor = reduction.reduce_last(&s.tensor, select.as_deref())?;
        }
    }
    Ok(seq)
}

fn check(p: &ScoresParams) -> Result<(), PluginError> {
    if p.normalize && p.rescale {
        return Err(PluginError::invalid_params(
            "`normalize` and `rescale` are mutually exclusive: set one of them to false",
        ));
    }
    Ok(())
}

macro_rules! scores_aggregator {
    ($ty:ident, $name:literal, $desc:literal, $reduction:expr) => {
        #[doc = $desc]
        pub struct $ty(ScoresParams);
        impl PluginInfo for $ty {
            const NAME: &'static str = $name;
            const VERSION: &'static str = env!("CARGO_PKG_VERSION");
            const DESCRIPTION: &'static str = $desc;
            type Params = ScoresParams;
        }
        impl AggregatorPlugin for $ty {
            fn new(p: ScoresParams) -> Result<Self, PluginError> {
                check(&p)?;
                Ok(Self(p))
            }
            fn aggregate(
                &self,
                seq: SequenceAttribution,
            ) -> Result<SequenceAttribution, PluginError> {
                let reduction: fn(&ScoresParams) -> Reduction = $reduction;
                aggregate(reduction(&self.0), &self.0, seq)
            }
        }
    };
}

scores_aggregator!(
    Mean,
    "mean",
    "Mean over the last dimension, then normalise.",
    |_| Reduction::Mean
);
scores_aggregator!(
    Sum,
    "sum",
    "Sum over the last dimension, then normalise.",
    |_| Reduction::Sum
);
scores_aggregator!(
    Max,
    "max",
    "Maximum over the last dimension, then normalise.",
    |_| Reduction::Max
);
scores_aggregator!(
    Min,
    "min",
    "Minimum over the last dimension, then normalise.",
    |_| Reduction::Min
);
scores_aggregator!(
    Prod,
    "prod",
    "Product over the last dimension, then normalise.",
    |_| Reduction::Prod
);
scores_aggregator!(
    AbsMax,
    "absmax",
    "Largest-magnitude value (sign kept) over the last dimension, then normalise.",
    |_| Reduction::AbsMax
);
scores_aggregator!(
    VNorm,
    "vnorm",
    "Vector norm (vnorm_ord, default L2) over the last dimension, then normalise.",
    |p| Reduction::VNorm(p.vnorm_ord)
);
