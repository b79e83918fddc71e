//! Input checks and output assembly shared by the step functions beyond `simple`.

use rinseq_sdk::prelude::*;

/// Checks that `t` is `(batch, vocab)` and returns both sizes.
pub(crate) fn shape2(what: &str, t: &TensorView<'_>) -> Result<(usize, usize), PluginError> {
    let [rows, vocab] = t.dims().map_err(|_| {
        PluginError::new(
            ErrorCode::ShapeMismatch,
            format!("{what} must be (batch, vocab), got shape {:?}", t.shape),
        )
    })?;
    Ok((rows, vocab))
}

/// Checks one target id against the vocabulary size.
pub(crate) fn target(what: &str, id: u32, vocab: usize) -> Result<usize, PluginError> {
    let id = id as usize;
    if id >= vocab {
        return Err(PluginError::new(
            ErrorCode::ShapeMismatch,
            format!("{what} {id} is outside the vocabulary of {vocab}"),
        ));
    }
    Ok(id)
}

/// Checks that there is one target id per row.
pub(crate) fn targets(what: &str, ids: &[u32], rows: usize) -> Result<(), PluginError> {
    if ids.len() != rows {
        return Err(PluginError::new(
            ErrorCode::ShapeMismatch,
            format!("{what}: expected one per row ({rows}), got {}", ids.len()),
        ));
    }
    Ok(())
}

/// One row of a contrastive step: original and contrast logits and target ids.
pub(crate) struct ContrastRow<'a> {
    /// Original logits `z`.
    pub z: &'a [f32],
    /// Original target `y`.
    pub y: usize,
    /// Contrast logits `z'`.
    pub zc: &'a [f32],
    /// Contrast target `y'`.
    pub yc: usize,
}

/// What a row function returns: the score, d score / d z and d score / d z'.
pub(crate) type RowOut = (f64, Vec<f64>, Vec<f64>);

/// Runs `row_fn` on every row of a contrastive step, after checking the contrast inputs.
///
/// Missing contrast logits are an `invalid-params` error naming the host-level arguments that
/// provide them. Empty `contrast_target_ids` next to contrast logits fall back to the original
/// target ids: Inseq does the same when only `contrast_sources` are given (the contrast target
/// is then the original target).
pub(crate) fn contrast_per_row(
    name: &str,
    input: &StepInput<'_>,
    row_fn: impl Fn(&ContrastRow<'_>) -> Result<RowOut, PluginError>,
) -> Result<StepOutput, PluginError> {
    let (rows, vocab) = shape2("logits", &input.logits)?;
    targets("target ids", input.target_ids, rows)?;
    let Some(contrast) = input.contrast_logits else {
        return Err(PluginError::invalid_params(format!(
            "'{name}' is contrastive and needs contrast inputs (pass `contrast_targets` and/or \
             `contrast_sources`), but no contrast logits were given"
        )));
    };
    let (crows, cvocab) = shape2("contrast logits", &contrast)?;
    if (crows, cvocab) != (rows, vocab) {
        return Err(PluginError::new(
            ErrorCode::ShapeMismatch,
            format!(
                "contrast logits are ({crows}, {cvocab}) but logits are ({rows}, {vocab}): the \
                 contrast batch must match the original batch"
            ),
        ));
    }
    let contrast_ids: &[u32] = if input.contrast_target_ids.is_empty() {
        input.target_ids
    } else {
        input.contrast_target_ids
    };
    targets("contrast target ids", contrast_ids, rows)?;

    let mut scores = Vec::with_capacity(rows);
    let (mut grads, mut cgrads) = (Vec::new(), Vec::new());
    for (r, (&y, &yc)) in input.target_ids.iter().zip(contrast_ids).enumerate() {
        let row = ContrastRow {
            z: input.logits.row(r),
            y: target("target id", y, vocab)?,
            zc: contrast.row(r),
            yc: target("contrast target id", yc, vocab)?,
        };
        let (score, g, gc) = row_fn(&row)?;
        scores.push(score);
        if input.want_grad {
            grads.extend(g);
            cgrads.extend(gc);
        }
    }
    let (g, gc) = if input.want_grad {
        (Some(grads), Some(cgrads))
    } else {
        (None, None)
    };
    output(rows, vocab, scores, g, gc)
}

/// Assembles a [`StepOutput`] from `f64` scores and optional `(rows, vocab)` gradients.
pub(crate) fn output(
    rows: usize,
    vocab: usize,
    scores: Vec<f64>,
    grad: Option<Vec<f64>>,
    grad_contrast: Option<Vec<f64>>,
) -> Result<StepOutput, PluginError> {
    let tensor = |g: Option<Vec<f64>>| -> Result<Option<Tensor>, PluginError> {
        Ok(match g {
            Some(g) => Some(Tensor::new(
                vec![rows, vocab],
                g.into_iter().map(|v| v as f32).collect(),
            )?),
            None => None,
        })
    };
    Ok(StepOutput {
        scores: scores.into_iter().map(|s| s as f32).collect::<Vec<f32>>(),
        grad_logits: tensor(grad)?,
        grad_contrast_logits: tensor(grad_contrast)?,
    })
}
