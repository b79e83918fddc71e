//! Moved to [`crate::toolkit::layout`]; re-exported here so that `rinseq_sdk::layout::...` paths
//! keep working.

pub use crate::toolkit::layout::{mask_future_positions, point, steps_to_token_major};
