//! `scores` (Inseq's `SequenceAttributionAggregator`), and the seven plugins named after an
//! aggregation function (`mean`, ...), which are `scores` with that function fixed, as Inseq's
//! `aggregate("mean")` is.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::aggregate_fn::{AggregateFn, Family, Fns};
use crate::check::finish;
use crate::nd::{reduce_last, select_last};
use crate::normalize::{postprocess, Post};
use crate::params::{two, vnorm_ord, OrdSchema};
use crate::reduce::Reduction;
use crate::select::SelectIdx;

/// Parameters of `scores`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct ScoresParams {
    /// Function reducing the last dimension (mean, max, min, sum, prod, absmax, vnorm), or an object with one per field (source_attributions, target_attributions, sequence_scores); missing fields take mean.
    pub aggregate_fn: Option<AggregateFn>,
    /// Keep only these positions of the last dimension first: an int selects one position and drops the dimension without reducing; [start, end] is a range; {"indices": [...]} a list.
    pub select_idx: Option<SelectIdx>,
    /// L1-normalise each generated-token column jointly over source + target (default: true unless `rescale` is true).
    pub normalize: Option<bool>,
    /// Divide every score by the largest absolute score instead of normalising.
    pub rescale: bool,
    /// Order of the vector norm used by vnorm (default 2; "inf" and "-inf" accepted).
    #[serde(deserialize_with = "vnorm_ord")]
    #[schemars(with = "OrdSchema")]
    pub vnorm_ord: f64,
}

/// Parameters of the function-named plugins (`mean`, `sum`, ...): `scores`' without
/// `aggregate_fn`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct FixedScoresParams {
    /// Keep only these positions of the last dimension first: an int selects one position and drops the dimension without reducing; [start, end] is a range; {"indices": [...]} a list.
    pub select_idx: Option<SelectIdx>,
    /// L1-normalise each generated-token column jointly over source + target (default: true unless `rescale` is true).
    pub normalize: Option<bool>,
    /// Divide every score by the largest absolute score instead of normalising.
    pub rescale: bool,
    /// Order of the vector norm (vnorm only; default 2; "inf" and "-inf" accepted).
    #[serde(deserialize_with = "vnorm_ord")]
    #[schemars(with = "OrdSchema")]
    pub vnorm_ord: f64,
}

impl Default for ScoresParams {
    fn default() -> Self {
        Self {
            aggregate_fn: None,
            select_idx: None,
            normalize: None,
            rescale: false,
            vnorm_ord: two(),
        }
    }
}

impl Default for FixedScoresParams {
    fn default() -> Self {
        Self {
            select_idx: None,
            normalize: None,
            rescale: false,
            vnorm_ord: two(),
        }
    }
}

/// A resolved `scores` configuration.
#[derive(Debug, Clone)]
pub struct ScoresConfig {
    fns: Fns,
    select: Option<SelectIdx>,
    post: Post,
}

impl ScoresConfig {
    fn new(af: Option<&AggregateFn>, p: &FixedScoresParams) -> Result<Self, PluginError> {
        // Inseq: `normalize=None` means normalise unless rescaling; both true is an error.
        let normalize = p.normalize.unwrap_or(!p.rescale);
        if normalize && p.rescale {
            return Err(PluginError::invalid_params(
                "`normalize` and `rescale` are mutually exclusive: set one of them to false",
            ));
        }
        let post = if p.rescale {
            Post::Rescale
        } else if normalize {
            Post::Normalize
        } else {
            Post::None
        };
        let fns = Fns::resolve(af, Family::Scores, p.vnorm_ord)?;
        Ok(Self {
            fns,
            select: p.select_idx.clone(),
            post,
        })
    }

    /// `_filter_scores` then, unless one int was selected, the reduction of the last dimension.
    fn reduce(&self, t: &Tensor, r: Reduction) -> Result<Tensor, PluginError> {
        let last = t.shape.last().copied().unwrap_or(0);
        let Some(sel) = self.select.as_ref().map(|s| s.resolve(last)).transpose()? else {
            return reduce_last(t, r);
        };
        let picked = select_last(t, &sel.idx, sel.squeeze)?;
        if sel.squeeze {
            Ok(picked)
        } else {
            reduce_last(&picked, r)
        }
    }

    /// Inseq's `_process_attribution_scores` with one function: both sides reduced, then post-processed jointly.
    fn process(
        &self,
        s: &SequenceScores,
        r: Reduction,
    ) -> Result<(Option<Tensor>, Option<Tensor>), PluginError> {
        let side = |t: &ROpt| t.as_ref().map(|t| self.reduce(t, r)).transpose();
        let (mut src, mut tgt) = (side(&s.source)?, side(&s.target)?);
        let mut parts: Vec<&mut Tensor> = src.iter_mut().chain(tgt.iter_mut()).collect();
        postprocess(&mut parts, self.post)?;
        Ok((src, tgt))
    }

    /// Aggregates one sequence.
    pub fn aggregate(
        &self,
        mut seq: SequenceAttribution,
    ) -> Result<SequenceAttribution, PluginError> {
        let s = &seq.scores;
        for t in [&s.source, &s.target]
            .into_iter()
            .filter_map(|t| t.as_ref())
        {
            if t.ndim() <= 2 {
                return Err(PluginError::unsupported(format!(
                    "attributions of shape {:?} are already (tokens, steps): nothing left to aggregate",
                    &t.shape[..]
                )));
            }
        }
        // Each side is computed with its own field's function; the joint normalisation then
        // uses the other side reduced with that same function, as Inseq does.
        let (src, tgt_same) = self.process(s, self.fns.source)?;
        let tgt = if self.fns.target == self.fns.source {
            tgt_same
        } else {
            self.process(s, self.fns.target)?.1
        };
        seq.scores.source = src;
        seq.scores.target = tgt;
        for named in seq.scores.sequence_scores.iter_mut() {
            named.tensor = self.reduce(&named.tensor, self.fns.sequence)?;
        }
        finish(seq)
    }
}

type ROpt = Option<Tensor>;

/// Inseq's `scores` aggregator: reduces the last dimension of the attributions and sequence
/// scores with `aggregate_fn` (default mean), then normalises or rescales.
pub struct Scores(ScoresConfig);

impl PluginInfo for Scores {
    const NAME: &'static str = "scores";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Reduce the last dimension with aggregate_fn (default mean), then normalise.";
    type Params = ScoresParams;
}

impl AggregatorPlugin for Scores {
    fn new(p: ScoresParams) -> Result<Self, PluginError> {
        let fixed = FixedScoresParams {
            select_idx: p.select_idx,
            normalize: p.normalize,
            rescale: p.rescale,
            vnorm_ord: p.vnorm_ord,
        };
        Ok(Self(ScoresConfig::new(p.aggregate_fn.as_ref(), &fixed)?))
    }
    fn aggregate(&self, seq: SequenceAttribution) -> Result<SequenceAttribution, PluginError> {
        self.0.aggregate(seq)
    }
}

macro_rules! fixed_scores {
    ($ty:ident, $name:literal, $desc:literal) => {
        #[doc = $desc]
        pub struct $ty(ScoresConfig);
        impl PluginInfo for $ty {
            const NAME: &'static str = $name;
            const VERSION: &'static str = env!("CARGO_PKG_VERSION");
            const DESCRIPTION: &'static str = $desc;
            type Params = FixedScoresParams;
        }
        impl AggregatorPlugin for $ty {
            fn new(p: FixedScoresParams) -> Result<Self, PluginError> {
                let af = AggregateFn::One($name.to_string());
                Ok(Self(ScoresConfig::new(Some(&af), &p)?))
            }
            fn aggregate(
                &self,
                seq: SequenceAttribution,
            ) -> Result<SequenceAttribution, PluginError> {
                self.0.aggregate(seq)
            }
        }
    };
}

fixed_scores!(
    Mean,
    "mean",
    "scores with mean over the last dimension, then normalise."
);
fixed_scores!(
    Sum,
    "sum",
    "scores with sum over the last dimension, then normalise."
);
fixed_scores!(
    Max,
    "max",
    "scores with max over the last dimension, then normalise."
);
fixed_scores!(
    Min,
    "min",
    "scores with min over the last dimension, then normalise."
);
fixed_scores!(
    Prod,
    "prod",
    "scores with product over the last dimension, then normalise."
);
fixed_scores!(
    AbsMax,
    "absmax",
    "scores with the largest-magnitude value (sign kept) over the last dimension, then normalise."
);
fixed_scores!(
    VNorm,
    "vnorm",
    "scores with the vector norm (vnorm_ord, default L2) over the last dimension, then normalise."
);
