//! Row-major N-d helpers on SDK tensors: reducing, selecting, span-merging and slicing along an
//! axis, with Python's slice clamping where Inseq relies on it.

use rinseq_sdk::{ErrorCode, PluginError, Tensor};

use crate::reduce::Reduction;

fn shape_error(msg: String) -> PluginError {
    PluginError::new(ErrorCode::ShapeMismatch, msg)
}

/// `(outer, len, inner)` sizes of `t` around `axis`.
fn around(t: &Tensor, axis: usize) -> Result<(usize, usize, usize), PluginError> {
    if axis >= t.ndim() {
        return Err(shape_error(format!(
            "a tensor of shape {:?} has no axis {axis}",
            &t.shape[..]
        )));
    }
    let outer = t.shape[..axis].iter().product();
    let inner = t.shape[axis + 1..].iter().product();
    Ok((outer, t.shape[axis], inner))
}

fn with_axis_len(t: &Tensor, axis: usize, len: usize) -> Vec<usize> {
    let mut shape = t.shape.to_vec();
    shape[axis] = len;
    shape
}

/// What one output position along an axis is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The input position, copied.
    Keep(usize),
    /// The reduction of the input positions `start..end` (may be empty).
    Reduce(usize, usize),
}

/// Builds a tensor whose positions along `axis` are `parts` of `t`.
pub fn remap_axis(
    t: &Tensor,
    axis: usize,
    parts: &[Part],
    r: Reduction,
) -> Result<Tensor, PluginError> {
    let (outer, n, inner) = around(t, axis)?;
    let mut data = Vec::with_capacity(outer * parts.len() * inner);
    let mut buf = Vec::new();
    for o in 0..outer {
        let at = |k: usize, i: usize| t.data[(o * n + k) * inner + i];
        for part in parts {
            match *part {
                Part::Keep(k) => data.extend((0..inner).map(|i| at(k, i))),
                Part::Reduce(s, e) => {
                    for i in 0..inner {
                        buf.clear();
                        buf.extend((s..e).map(|k| at(k, i)));
                        data.push(r.try_apply(&buf)?);
                    }
                }
            }
        }
    }
    Tensor::new(with_axis_len(t, axis, parts.len()), data)
}

/// Reduces the last axis of `t`.
pub fn reduce_last(t: &Tensor, r: Reduction) -> Result<Tensor, PluginError> {
    let Some((&last, outer)) = t.shape.split_last() else {
        return Err(shape_error("cannot reduce a 0-d tensor".into()));
    };
    let rows: usize = outer.iter().product();
    let data = (0..rows)
        .map(|k| r.try_apply(&t.data[k * last..(k + 1) * last]))
        .collect::<Result<Vec<f32>, _>>()?;
    Tensor::new(outer.to_vec(), data)
}

/// Keeps the positions `idx` (in order) of the last axis; `squeeze` drops the axis (one index).
pub fn select_last(t: &Tensor, idx: &[usize], squeeze: bool) -> Result<Tensor, PluginError> {
    let axis = t
        .ndim()
        .checked_sub(1)
        .ok_or_else(|| shape_error("cannot index a 0-d tensor".into()))?;
    let parts: Vec<Part> = idx.iter().map(|&k| Part::Keep(k)).collect();
    let mut out = remap_axis(t, axis, &parts, Reduction::Mean)?;
    if squeeze {
        out.shape.pop();
    }
    Ok(out)
}

/// Inseq's `aggregate_contiguous`: along `axis`, each `[start, end)` span becomes one position
/// (reduced with `r`), everything else is copied; ranges are clamped as Python slices are.
pub fn merge_spans(
    t: &Tensor,
    spans: &[(usize, usize)],
    r: Reduction,
    axis: usize,
) -> Result<Tensor, PluginError> {
    if spans.is_empty() {
        return Ok(t.clone());
    }
    let (_, n, _) = around(t, axis)?;
    let clamp = |v: usize| v.min(n);
    let mut parts = Vec::new();
    let mut base = 0;
    for &(s, e) in spans {
        parts.extend((clamp(base)..clamp(s)).map(Part::Keep));
        parts.push(Part::Reduce(clamp(s), clamp(e).max(clamp(s))));
        base = e;
    }
    parts.extend((clamp(base)..n).map(Part::Keep));
    remap_axis(t, axis, &parts, r)
}

/// The rows `[start, end)` of each span, concatenated along axis 0 (`torch.cat` of slices).
pub fn take_rows(t: &Tensor, spans: &[(usize, usize)]) -> Result<Tensor, PluginError> {
    let (_, n, _) = around(t, 0)?;
    let parts: Vec<Part> = spans
        .iter()
        .flat_map(|&(s, e)| (s.min(n)..e.min(n)).map(Part::Keep))
        .collect();
    remap_axis(t, 0, &parts, Reduction::Mean)
}

/// The square blocks `t[s:e, s:e, ...]` of each span, concatenated along axis 0 (Inseq's slicing
/// of `encoder*` sequence scores); blocks of different widths cannot be concatenated.
pub fn take_blocks(t: &Tensor, spans: &[(usize, usize)]) -> Result<Tensor, PluginError> {
    let mut blocks: Vec<Tensor> = Vec::new();
    for &(s, e) in spans {
        let rows = take_rows(t, &[(s, e)])?;
        let n = *rows.shape.get(1).unwrap_or(&0);
        let cols: Vec<Part> = (s.min(n)..e.min(n)).map(Part::Keep).collect();
        blocks.push(remap_axis(&rows, 1, &cols, Reduction::Mean)?);
    }
    let Some(first) = blocks.first() else {
        return Ok(t.clone());
    };
    let mut shape = first.shape.to_vec();
    shape[0] = 0;
    let mut data = Vec::new();
    for b in &blocks {
        if b.shape[1..] != first.shape[1..] {
            return Err(shape_error(format!(
                "cannot concatenate blocks of shapes {:?} and {:?}",
                &first.shape[..],
                &b.shape[..]
            )));
        }
        shape[0] += b.shape[0];
        data.extend_from_slice(&b.data);
    }
    Tensor::new(shape, data)
}

/// `f(a, b)` elementwise; the shapes must be equal.
pub fn zip_with(
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(f32, f32) -> f32,
) -> Result<Tensor, PluginError> {
    if a.shape != b.shape {
        return Err(shape_error(format!(
            "shapes {:?} and {:?} differ",
            &a.shape[..],
            &b.shape[..]
        )));
    }
    let data = a
        .data
        .iter()
        .zip(b.data.iter())
        .map(|(&x, &y)| f(x, y))
        .collect();
    Tensor::new(a.shape.to_vec(), data)
}
