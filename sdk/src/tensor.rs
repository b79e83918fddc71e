//! Tensors that cross the plugin boundary: a row-major `f32` buffer plus its shape.

use abi_stable::std_types::{RSlice, RVec};
use abi_stable::StableAbi;

use crate::error::{ErrorCode, PluginError};

/// An owned, row-major `f32` tensor. Moving it across the boundary moves the buffer (no copy).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Default)]
pub struct Tensor {
    /// Size of each dimension, outermost first.
    pub shape: RVec<usize>,
    /// `shape.iter().product()` values in row-major order.
    pub data: RVec<f32>,
}

/// A borrowed view of a row-major `f32` tensor (zero-copy).
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug)]
pub struct TensorView<'a> {
    /// Size of each dimension, outermost first.
    pub shape: RSlice<'a, usize>,
    /// The values, row-major.
    pub data: RSlice<'a, f32>,
}

impl Tensor {
    /// Builds a tensor, checking that `data` has as many values as `shape` says.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, PluginError> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(PluginError::new(
                ErrorCode::SHAPE_MISMATCH,
                format!("shape {shape:?} needs {n} values, got {}", data.len()),
            ));
        }
        Ok(Self {
            shape: shape.into(),
            data: data.into(),
        })
    }

    /// A tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Self {
            shape: shape.into(),
            data: vec![0.0; n].into(),
        }
    }

    /// A zero-copy view of this tensor.
    pub fn view(&self) -> TensorView<'_> {
        TensorView {
            shape: self.shape.as_rslice(),
            data: self.data.as_rslice(),
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
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(PluginError::new(
                ErrorCode::SHAPE_MISMATCH,
                format!("shape {shape:?} needs {n} values, got {}", data.len()),
            ));
        }
        Ok(Self {
            shape: shape.into(),
            data: data.into(),
        })
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Row `i` of a 2-D view (`shape = [rows, cols]`).
    pub fn row(&self, i: usize) -> &'a [f32] {
        let cols = self.shape.as_slice().last().copied().unwrap_or(0);
        &self.data.as_slice()[i * cols..(i + 1) * cols]
    }

    /// Copies the view into an owned tensor.
    pub fn to_owned(&self) -> Tensor {
        Tensor {
            shape: self.shape.to_vec().into(),
            data: self.data.to_vec().into(),
        }
    }
}

/// A tensor with a name (step scores, sequence scores, recorded activations).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// The name, e.g. `probability` or `model.layers.3.mlp`.
    pub name: abi_stable::std_types::RString,
    /// The values.
    pub tensor: Tensor,
}

impl NamedTensor {
    /// Pairs a name with a tensor.
    pub fn new(name: impl Into<String>, tensor: Tensor) -> Self {
        Self {
            name: name.into().into(),
            tensor,
        }
    }
}
