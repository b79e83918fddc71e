//! How many points go into one host request: `internal_batch_size` when the user gives it, else
//! as many as fit a response budget.

use crate::data::SequenceInput;
use crate::error::PluginError;
use crate::host::Host;

use super::endpoints::AttributedSides;

/// Most gradient values one host response should hold when the user gives no
/// `internal_batch_size` (2²⁶ `f32`s = 256 MiB): a response carries every step of the sequence
/// for every point, so long sequences get their points split over several requests.
pub const RESPONSE_BUDGET: usize = 1 << 26;

/// Points per host request: `internal_batch_size` when given, else `natural` (e.g. all the
/// quadrature points) capped so that a response stays within [`RESPONSE_BUDGET`].
pub fn points_per_request(
    explicit: Option<usize>,
    natural: usize,
    host: &Host<'_>,
    seq: &SequenceInput,
    sides: AttributedSides,
) -> usize {
    let hidden = host.info().hidden_size;
    points_within_budget(explicit, natural, seq, sides, hidden)
}

/// [`points_per_request`] for a known hidden size.
pub fn points_within_budget(
    explicit: Option<usize>,
    natural: usize,
    seq: &SequenceInput,
    sides: AttributedSides,
    hidden: usize,
) -> usize {
    if let Some(b) = explicit {
        return b.max(1);
    }
    let len =
        usize::from(sides.source) * seq.source.len() + usize::from(sides.target) * seq.target.len();
    let per_point = seq.steps.len().max(1) * len.max(1) * hidden.max(1);
    natural.min(RESPONSE_BUDGET / per_point).max(1)
}

/// Number of host requests needed for `n_points` points in chunks of `chunk`.
pub fn n_chunks(n_points: usize, chunk: usize) -> u64 {
    n_points.div_ceil(chunk.max(1)) as u64
}

/// Checks `internal_batch_size` (≥ 1 when given).
pub fn check_batch_size(b: Option<usize>) -> Result<(), PluginError> {
    if b == Some(0) {
        return Err(PluginError::invalid_params(
            "internal_batch_size must be at least 1, got 0",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Token;

    fn seq(len: usize, steps: usize) -> SequenceInput {
        SequenceInput {
            target: (0..len).map(|i| Token::new("t", i as u32)).collect(),
            steps: (len - steps..len).map(|s| s as u32).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn explicit_batch_size_wins() {
        let sides = AttributedSides::both();
        assert_eq!(points_within_budget(Some(3), 50, &seq(4, 2), sides, 8), 3);
        assert_eq!(points_within_budget(Some(0), 50, &seq(4, 2), sides, 8), 1);
        assert_eq!(points_within_budget(None, 50, &seq(4, 2), sides, 8), 50);
    }

    #[test]
    fn budget_caps_points() {
        let sides = AttributedSides::both();
        // 1000 steps x 1000 tokens x 4096 hidden is over the budget for one point: still 1.
        assert_eq!(
            points_within_budget(None, 50, &seq(1000, 1000), sides, 4096),
            1
        );
        // 64 steps x 64 tokens x 1024 hidden = 2^22 values per point: 16 points fit.
        assert_eq!(
            points_within_budget(None, 50, &seq(64, 64), sides, 1024),
            16
        );
    }

    #[test]
    fn chunks_and_checks() {
        assert_eq!(n_chunks(50, 16), 4);
        assert_eq!(n_chunks(0, 16), 0);
        assert_eq!(n_chunks(3, 0), 3);
        assert!(check_batch_size(None).is_ok());
        assert!(check_batch_size(Some(1)).is_ok());
        assert!(check_batch_size(Some(0)).is_err());
    }
}
