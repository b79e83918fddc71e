//! Finite-difference check of a step function's gradient.

use super::StepInputs;
use crate::author::StepFunctionPlugin;

/// Checks `f`'s d score / d logits (and d score / d contrast logits, when returned) against
/// central finite differences at `inputs` (computed in `f64` from `f32` evaluations with step
/// `1e-2`). Each row's score may only depend on its own row. Returns the first entry whose
/// analytic and numeric derivatives differ by more than `tol` (absolute, plus `tol` relative).
pub fn check_step_gradient<F: StepFunctionPlugin>(
    f: &F,
    inputs: &StepInputs,
    tol: f32,
) -> Result<(), String> {
    let inputs = inputs.clone().want_grad(true);
    let out = f.compute(&inputs.view()).map_err(|e| e.to_string())?;
    let grad = out
        .grad_logits
        .ok_or("the step function returned no gradient (grad_logits is None)")?;
    if grad.shape != inputs.shape {
        return Err(format!(
            "grad_logits has shape {:?}, expected {:?}",
            grad.shape, inputs.shape
        ));
    }
    let score_at = |x: &StepInputs| -> Result<Vec<f32>, String> {
        Ok(f.compute(&x.clone().want_grad(false).view())
            .map_err(|e| e.to_string())?
            .scores)
    };
    compare("logits", &grad.data, &inputs, tol, |x, i, d| {
        x.logits[i] += d;
        score_at(x)
    })?;
    if let (Some(g), Some(_)) = (&out.grad_contrast_logits, &inputs.contrast) {
        compare("contrast logits", &g.data, &inputs, tol, |x, i, d| {
            if let Some(c) = x.contrast.as_mut() {
                c[i] += d;
            }
            score_at(x)
        })?;
    }
    Ok(())
}

fn compare(
    what: &str,
    analytic: &[f32],
    inputs: &StepInputs,
    tol: f32,
    mut nudge: impl FnMut(&mut StepInputs, usize, f32) -> Result<Vec<f32>, String>,
) -> Result<(), String> {
    const H: f32 = 1e-2;
    let vocab = inputs.shape[1];
    for (i, &a) in analytic.iter().enumerate() {
        let row = i / vocab;
        let mut plus = inputs.clone();
        let up = nudge(&mut plus, i, H)?[row] as f64;
        let mut minus = inputs.clone();
        let down = nudge(&mut minus, i, -H)?[row] as f64;
        let numeric = ((up - down) / (2.0 * H as f64)) as f32;
        if (numeric - a).abs() > tol + tol * numeric.abs().max(a.abs()) {
            return Err(format!(
                "d score / d {what}[row {row}, id {}]: analytic {a}, finite differences {numeric}",
                i % vocab
            ));
        }
    }
    Ok(())
}
