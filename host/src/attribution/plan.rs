//! Checks of an attribution plan before any forward: the method, the attributed function and the
//! step scores must fit together and fit the options (Inseq raises these as `ValueError`s or
//! `RuntimeError`s mid-run).

use rinseq_sdk::{abi::LoadedMethod, abi::LoadedStepFunction, Flags};

use super::{AttributeOptions, AttributionError};
use crate::plugins::Instance;

/// Inseq's default `n_mcd_steps`.
const DEFAULT_DROPOUT_SAMPLES: usize = 5;

/// Refuses plans that cannot give a meaningful result.
pub fn check(
    method: &Instance<LoadedMethod>,
    target_fn: &Instance<LoadedStepFunction>,
    step_scores: &[(String, Instance<LoadedStepFunction>)],
    opts: &AttributeOptions,
    decoder_only: bool,
) -> Result<(), AttributionError> {
    let bad = |m: String| Err(AttributionError::BadInput(m));
    let target = &target_fn.capabilities.flags;
    let uses_target = !method.capabilities.flags.contains(Flags::OUTPUT_AGNOSTIC);
    if uses_target && target.contains(Flags::NOT_DIFFERENTIABLE) {
        return bad(format!(
            "'{}' cannot be the attributed function: it is not differentiable (use it in \
             --step-scores instead)",
            target_fn.name
        ));
    }
    if uses_target && target.contains(Flags::NEEDS_FORCED_CONTRAST) && !opts.contrast_force_inputs {
        return bad(format!(
            "'{}' as the attributed function needs contrast_force_inputs=true (otherwise the \
             contrast reuses the original forward and the score is constant)",
            target_fn.name
        ));
    }
    let has_contrast = !opts.contrast_targets.is_empty() || !opts.contrast_sources.is_empty();
    let contrastive = std::iter::once((&target_fn.name, target))
        .filter(|_| uses_target)
        .chain(step_scores.iter().map(|(n, f)| (n, &f.capabilities.flags)))
        .find(|(_, flags)| flags.contains(Flags::NEEDS_CONTRAST));
    if let (Some((name, _)), false) = (contrastive, has_contrast) {
        return bad(format!(
            "'{name}' needs a contrastive input: pass contrast_targets (or contrast_sources) in \
             --attribution-kwargs"
        ));
    }
    if method.capabilities.flags.contains(Flags::LAYER_METHOD)
        && opts.attribute_target
        && !decoder_only
    {
        return bad(format!(
            "layer method '{}' does not support attribute_target on encoder-decoder models (as \
             Inseq): drop --attribute-target",
            method.name
        ));
    }
    Ok(())
}

/// How many Monte Carlo dropout forwards a step function needs (0 if none): its `n_mcd_steps`
/// parameter, by the host contract of [`Flags::NEEDS_DROPOUT_SAMPLES`].
pub fn dropout_samples(f: &Instance<LoadedStepFunction>) -> usize {
    if !f.capabilities.flags.contains(Flags::NEEDS_DROPOUT_SAMPLES) {
        return 0;
    }
    f.params
        .get("n_mcd_steps")
        .and_then(|v| v.as_u64())
        .map_or(DEFAULT_DROPOUT_SAMPLES, |n| n as usize)
}
