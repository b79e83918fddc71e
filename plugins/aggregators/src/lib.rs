//! Inseq 0.7.1's aggregators as rinseq plugins (one cdylib, plugin names = Inseq ids):
//!
//! - `scores` (`SequenceAttributionAggregator`): reduces the last dimension of the attributions
//!   and sequence scores with `aggregate_fn` (default mean; `select_idx` picks positions first),
//!   then L1-normalises each generated-token column jointly over source and target (or rescales).
//!   `mean`, `sum`, `max`, `min`, `prod`, `absmax`, `vnorm` are `scores` with that function fixed,
//!   as Inseq's `aggregate("mean")` is.
//! - `spans` (`ContiguousSpanAggregator`): merges given token spans into single tokens (id -1),
//!   aggregating scores over the generated axis, then the attributed axis (default absmax, step
//!   scores per Inseq's table: probability→prod, entropy→sum, ...).
//! - `subwords` (`SubwordAggregator`), `split` (`StringSplitAggregator`): `spans` with spans
//!   found from word markers (detected from the tokens when not given, beyond Inseq) or from a
//!   regex.
//! - `slices` (`SliceAggregator`): keeps token ranges, always with the generated tokens.
//! - `pair` (`PairAggregator`): `paired − this` elementwise with another sequence given as JSON
//!   ([`paired`]).
//!
//! `aggregate_fn` (on `scores`, `spans`, `subwords`, `split`) is one function name for every
//! field, or an object per field ([`AggregateFn`]) resolved like Inseq's `DictWithDefault`.
//! After every aggregation, `attr_pos_end` is clamped to the target length and shapes are checked
//! against tokens and positions, as Inseq's `__post_init__` and `is_compatible` do.

#![warn(missing_docs)]

pub mod aggregate_fn;
mod check;
pub mod contiguous;
pub mod nd;
mod normalize;
mod pair;
pub mod paired;
pub mod params;
mod reduce;
mod scores;
pub mod select;
mod slices;
mod spans;
mod split;
mod subwords;

pub use aggregate_fn::{AggregateFn, DEFAULT_STEP_FNS};
pub use normalize::Post;
pub use pair::{Pair, PairParams};
pub use reduce::{Reduction, FUNCTION_NAMES};
pub use scores::{
    AbsMax, FixedScoresParams, Max, Mean, Min, Prod, Scores, ScoresConfig, ScoresParams, Sum, VNorm,
};
pub use slices::{Slices, SlicesParams};
pub use spans::{Spans, SpansParams};
pub use split::{split_spans, Split, SplitMode, SplitParams};
pub use subwords::{detect, word_spans, Markers, SpecialChars, Subwords, SubwordsParams};

rinseq_sdk::export_plugins! {
    aggregators: [
        Scores, Mean, Sum, Max, Min, Prod, AbsMax, VNorm,
        Spans, Subwords, Split, Slices, Pair,
    ],
}
