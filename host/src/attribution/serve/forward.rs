//! Batched forwards over many (input point, step) rows: the work every host request shares.
//!
//! A row is one input point evaluated at one attribution step. A causal decoder's logits at
//! position `p - 1` only see positions `< p`, so one batched forward serves rows of different
//! steps (each row reads its own position with [`LogitPositions::PerRow`]) instead of re-running
//! every prefix as Inseq does; each chunk runs on the shortest prefix its rows need (the caller
//! groups rows of similar steps) and gradients come back padded to the full length.

use std::cell::RefCell;

use candle_core::{DType, Device, Tensor, Var};
use rinseq_sdk::{abi::LoadedStepFunction, ErrorCode, PluginError, StepInput, TensorView};

use super::host::host_err;
use super::layer::LayerTap;
use crate::models::{ForwardInput, LogitPositions, Model, SideInput, Taps};

/// What one chunk of rows needs: per-row `(len, hidden)` embeddings and the scored positions.
pub struct Rows<'a> {
    /// Source embeddings per row (encoder-decoder only).
    pub source: Option<Vec<&'a Tensor>>,
    /// Target embeddings per row.
    pub target: Vec<&'a Tensor>,
    /// The target position each row scores.
    pub positions: Vec<usize>,
    /// The target id each row scores.
    pub target_ids: Vec<u32>,
    /// The contrast of each row, for contrastive attributed functions.
    pub contrast: Option<RowContrast>,
    /// DeepLIFT's rescale rule: the row (index in this chunk) each row is compared with.
    pub rescale_against: Option<Vec<u32>>,
    /// Monte Carlo dropout forwards the attributed function needs (0: none).
    pub dropout_samples: usize,
}

/// Contrast inputs of a chunk of rows.
pub struct RowContrast {
    /// The aligned contrast token of each row.
    pub target_ids: Vec<u32>,
    /// Contrast logits `(rows × vocab)` from the contrast forward (`contrast_force_inputs`), or
    /// `None` to reuse each row's own logits with only the target changed (Inseq's default, so
    /// that gradients flow through the attributed inputs).
    pub logits: Option<Vec<f32>>,
}

/// What the backward pass differentiates with respect to.
pub enum GradMode<'a> {
    /// Scores only.
    None,
    /// The input embeddings of both sides.
    Embeddings,
    /// The activation at this tap, replaced by these per-row values `(rows, len, hidden)`.
    Layer {
        /// The tap.
        tap: LayerTap<'a>,
        /// The activation each row runs with.
        values: Tensor,
    },
}

/// Scores (and gradients) of one chunk of rows.
pub struct RowResult {
    /// One score per row.
    pub scores: Vec<f32>,
    /// d score / d source embeddings, `(rows, src_len, hidden)`.
    pub source_grad: Option<Tensor>,
    /// d score / d target embeddings, `(rows, tgt_len, hidden)`.
    pub target_grad: Option<Tensor>,
    /// d score / d layer activation, `(rows, len, hidden)`.
    pub layer_grad: Option<Tensor>,
}

fn stack(v: &[&Tensor]) -> Result<Tensor, PluginError> {
    Tensor::stack(v, 0).map_err(host_err)
}

fn var(t: &Tensor) -> Result<Var, PluginError> {
    Var::from_tensor(t).map_err(host_err)
}

fn side_input(e: Tensor, device: &Device) -> Result<SideInput, PluginError> {
    let (rows, len) = (e.dim(0).map_err(host_err)?, e.dim(1).map_err(host_err)?);
    Ok(SideInput {
        mask: Tensor::ones((rows, len), DType::U8, device).map_err(host_err)?,
        embeds: e,
    })
}

fn flat(t: &Tensor) -> Result<Vec<f32>, PluginError> {
    t.to_dtype(DType::F32)
        .and_then(|l| l.flatten_all())
        .and_then(|l| l.to_vec1())
        .map_err(host_err)
}

fn detach_side(s: &SideInput) -> SideInput {
    SideInput {
        embeds: s.embeds.detach(),
        mask: s.mask.clone(),
    }
}

/// Runs the attributed function over `rows`, differentiating per `mode`.
pub fn run_rows(
    model: &dyn Model,
    target_fn: &LoadedStepFunction,
    rows: &Rows<'_>,
    mode: GradMode<'_>,
) -> Result<RowResult, PluginError> {
    let n = rows.positions.len();
    let device = rows.target[0].device().clone();
    let tgt = stack(&rows.target)?;
    // The decoder is causal: row r (scoring target[p] from the logits at p - 1) only sees
    // positions < p, so the chunk runs on the shortest prefix that serves all its rows and
    // the gradients are padded back with the (exact) zeros of the later positions. Layer
    // requests on encoder-decoder models keep the full length (the tap may be on either side).
    let full_len = tgt.dim(1).map_err(host_err)?;
    let keep_len = match &mode {
        GradMode::Layer { .. } if rows.source.is_some() => full_len,
        GradMode::Layer { values, .. } if values.dim(1).map_err(host_err)? != full_len => full_len,
        _ => rows
            .positions
            .iter()
            .copied()
            .max()
            .unwrap_or(full_len)
            .clamp(1, full_len),
    };
    let truncate = |t: Tensor| -> Result<Tensor, PluginError> {
        if keep_len == full_len {
            return Ok(t);
        }
        t.narrow(1, 0, keep_len).map_err(host_err)
    };
    let tgt = truncate(tgt)?;
    let mode = match mode {
        GradMode::Layer { tap, values } => GradMode::Layer {
            tap,
            values: truncate(values)?,
        },
        other => other,
    };
    let src = rows.source.as_ref().map(|s| stack(s)).transpose()?;
    let embeds = matches!(mode, GradMode::Embeddings);
    let tgt_var = embeds.then(|| var(&tgt)).transpose()?;
    let src_var = match (&src, embeds) {
        (Some(s), true) => Some(var(s)?),
        _ => None,
    };
    let tgt_in = tgt_var.as_ref().map_or(tgt, |v| v.as_tensor().clone());
    let src_in = match &src_var {
        Some(v) => Some(v.as_tensor().clone()),
        None => src,
    };
    let input = ForwardInput {
        encoder: src_in.map(|e| side_input(e, &device)).transpose()?,
        decoder: side_input(tgt_in, &device)?,
        // Row r scores target[p] from the logits at position p - 1.
        logits_at: LogitPositions::PerRow(rows.positions.iter().map(|p| p - 1).collect()),
    };
    let layer_var = match &mode {
        GradMode::Layer { values, .. } => Some(var(values)?),
        _ => None,
    };
    let hit = RefCell::new(None::<String>);
    let hit_ref = &hit;
    let mut taps = Taps::none();
    if let Some(rows) = &rows.rescale_against {
        taps.rescale_against = Some(Tensor::new(rows.as_slice(), &device).map_err(host_err)?);
    }
    if let (GradMode::Layer { tap, .. }, Some(v)) = (&mode, &layer_var) {
        let replacement = v.as_tensor().clone();
        tap.hook(
            &mut taps,
            Box::new(move |x: &Tensor| {
                if x.dims() != replacement.dims() {
                    *hit_ref.borrow_mut() =
                        Some(format!("{:?} vs {:?}", x.dims(), replacement.dims()));
                    return Ok(x.clone());
                }
                *hit_ref.borrow_mut() = Some(String::new());
                Ok(replacement.clone())
            }),
        );
    }
    let logits = model
        .forward(&input, &mut taps)
        .map_err(host_err)?
        .logits
        .squeeze(1)
        .map_err(host_err)?;
    drop(taps);
    if let GradMode::Layer { tap, .. } = &mode {
        match hit.into_inner() {
            None => return Err(tap.missing()),
            Some(msg) if !msg.is_empty() => {
                return Err(host_err(format!(
                    "activation shapes differ at '{}': {msg}",
                    tap.name
                )))
            }
            Some(_) => {}
        }
    }
    let values = flat(&logits)?;
    // Monte Carlo dropout samples: the same rows with dropout on, outside the graph (the step
    // function treats them as constants).
    let mut samples = Vec::with_capacity(rows.dropout_samples);
    for _ in 0..rows.dropout_samples {
        let detached = ForwardInput {
            encoder: input.encoder.as_ref().map(detach_side),
            decoder: detach_side(&input.decoder),
            logits_at: input.logits_at.clone(),
        };
        let mut taps = Taps::none();
        taps.dropout = true;
        if let (GradMode::Layer { tap, .. }, Some(v)) = (&mode, &layer_var) {
            let replacement = v.as_tensor().detach();
            tap.hook(
                &mut taps,
                Box::new(move |_: &Tensor| Ok(replacement.clone())),
            );
        }
        let l = model
            .forward(&detached, &mut taps)
            .map_err(host_err)?
            .logits;
        samples.push(flat(&l.squeeze(1).map_err(host_err)?)?);
    }
    let vocab = values.len() / n;
    let want_grad = !matches!(mode, GradMode::None);
    let (scores, g) = score_rows(
        target_fn,
        &values,
        &rows.target_ids,
        rows.contrast.as_ref(),
        &samples,
        want_grad,
    )?;
    let mut result = RowResult {
        scores,
        source_grad: None,
        target_grad: None,
        layer_grad: None,
    };
    let Some(g) = g else {
        return Ok(result);
    };
    let g = Tensor::from_slice(&g, (n, vocab), &device)
        .and_then(|g| g.to_dtype(logits.dtype()))
        .map_err(host_err)?;
    // d(Σ_r <g_r, z_r>) / d inputs = Σ_r d score_r / d inputs, and row r only depends on its
    // own inputs, so one backward gives every row's gradient.
    let grads = (logits * g)
        .and_then(|l| l.sum_all())
        .and_then(|l| l.backward())
        .map_err(host_err)?;
    let take = |v: &Option<Var>| -> Result<Option<Tensor>, PluginError> {
        v.as_ref()
            .map(|v| {
                grads.get(v.as_tensor()).cloned().ok_or_else(|| {
                    host_err("the gradient did not reach the attributed inputs (graph cut)")
                })
            })
            .transpose()
    };
    let pad = |g: Option<Tensor>| -> Result<Option<Tensor>, PluginError> {
        match g {
            Some(g) if keep_len < full_len && g.dim(1).map_err(host_err)? == keep_len => g
                .pad_with_zeros(1, 0, full_len - keep_len)
                .map(Some)
                .map_err(host_err),
            other => Ok(other),
        }
    };
    result.target_grad = pad(take(&tgt_var)?)?;
    result.source_grad = take(&src_var)?;
    result.layer_grad = pad(take(&layer_var)?)?;
    Ok(result)
}

/// The attributed function on the logits `(rows × vocab)` of some rows: the scores, and (when
/// `want_grad`) d score / d logits `(rows × vocab)`.
pub fn score_rows(
    target_fn: &LoadedStepFunction,
    logits: &[f32],
    target_ids: &[u32],
    contrast: Option<&RowContrast>,
    dropout_samples: &[Vec<f32>],
    want_grad: bool,
) -> Result<(Vec<f32>, Option<Vec<f32>>), PluginError> {
    let n = target_ids.len();
    let shape = [n, logits.len() / n.max(1)];
    let (contrast_logits, contrast_ids, reused) = match contrast {
        None => (None, &[][..], false),
        Some(c) => {
            let l = c.logits.as_deref().unwrap_or(logits);
            (
                Some(TensorView::new(&shape, l)?),
                c.target_ids.as_slice(),
                c.logits.is_none(),
            )
        }
    };
    let sample_views = dropout_samples
        .iter()
        .map(|s| TensorView::new(&shape, s))
        .collect::<Result<Vec<_>, _>>()?;
    let out = target_fn.compute(&StepInput {
        logits: TensorView::new(&shape, logits)?,
        target_ids,
        contrast_logits,
        contrast_target_ids: contrast_ids,
        dropout_logits: sample_views,
        want_grad,
    })?;
    let scores = out.scores.to_vec();
    if !want_grad {
        return Ok((scores, None));
    }
    let mut g = out.grad_logits.ok_or_else(|| {
        PluginError::new(
            ErrorCode::Unsupported,
            "the attributed function returned no gradient: it cannot be an attribution target",
        )
    })?;
    // Reused contrast logits are the same tensor: their gradient adds up.
    if let (true, Some(gc)) = (reused, &out.grad_contrast_logits) {
        g.data
            .iter_mut()
            .zip(gc.data.iter())
            .for_each(|(a, b)| *a += b);
    }
    Ok((scores, Some(g.data.to_vec())))
}
