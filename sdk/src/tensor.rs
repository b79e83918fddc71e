//! Tensors that cross the plugin boundary: a row-major `f32` buffer plus its shape.

use crate::error::PluginError;

/// An owned, row-major `f32` tensor.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Tensor {
    /// Size of each dimension, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values in row-major order.
    pub data: Vec<f32>,
}

/// A borrowed view of a row-major `f32` tensor.
#[derive(Copy, Clone, Debug)]
pub struct TensorView<'a> {
    /// Size of each dimension, outermost first.
    pub shape: &'a [usize],
    /// The values, row-major.
    pub data: &'a [f32],
}

fn check(shape: &[usize], len: usize) -> Result<(), PluginError> {
    let n: usize = shape.iter().product();
    if n != len {
        return Err(PluginError::shape(format!(
            "shape {shape:?} needs {n} values, got {len}"
        )));
    }
    Ok(())
}

impl Tensor {
    /// Builds a tensor, checking that `data` has as many values as `shape` says.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, PluginError> {
        check(&shape, data.len())?;
        Ok(Self { shape, data })
    }

    /// A tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Self {
            shape,
            data: vec![0.0; n],
        }
    }

    /// A borrowed view of this tensor.
    pub fn view(&self) -> TensorView<'_> {
        TensorView {
            shape: &self.shape,
            data: &self.data,
        }
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The values as a slice.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
}

impl<'a> TensorView<'a> {
    /// A view over `data` with `shape` (checked).
    pub fn new(shape: &'a [usize], data: &'a [f32]) -> Result<Self, PluginError> {
        check(shape, data.len())?;
        Ok(Self { shape, data })
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Row `i` of a 2-D view (`shape = [rows, cols]`).
    pub fn row(&self, i: usize) -> &'a [f32] {
        let cols = self.shape.last().copied().unwrap_or(0);
        &self.data[i * cols..(i + 1) * cols]
    }

    /// Copies the view into an owned tensor.
    pub fn to_owned(&self) -> Tensor {
        Tensor {
            shape: self.shape.to_vec(),
            data: self.data.to_vec(),
        }
    }
}

/// A tensor with a name (step scores, sequence scores, recorded activations).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// The name, e.g. `probability` or `model.layers.3.mlp`.
    pub name: String,
    /// The values.
    pub tensor: Tensor,
}

impl NamedTensor {
    /// Pairs a name with a tensor.
    pub fn new(name: impl Into<String>, tensor: Tensor) -> Self {
        Self {
            name: name.into(),
            tensor,
        }
    }
}
