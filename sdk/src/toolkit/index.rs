//! Indexing row-major tensors by coordinates, with shape checks: `t.at(&[i, j])`,
//! `t.set(&[i, j], v)`, and `let [rows, cols] = t.dims()?` to check a tensor's rank.
//!
//! ```
//! use rinseq_sdk::prelude::*;
//!
//! let mut t = Tensor::zeros(vec![2, 3]);
//! let [rows, cols] = t.dims()?;
//! t.set(&[1, 2], 5.0)?;
//! *t.at_mut(&[0, 1]) += 1.0;
//! assert_eq!((rows, cols), (2, 3));
//! assert_eq!(t.at(&[1, 2]), 5.0);
//! assert_eq!(t.data, [0.0, 1.0, 0.0, 0.0, 0.0, 5.0]);
//! assert!(t.get(&[2, 0]).is_none());
//! # Ok::<(), PluginError>(())
//! ```

use crate::error::PluginError;
use crate::tensor::{Tensor, TensorView};

/// Row-major strides of `shape` (the last dimension has stride 1).
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// The flat offset of `idx` in a row-major tensor of `shape`, or `None` when `idx` does not have
/// one coordinate per dimension or one is out of range.
pub fn offset(shape: &[usize], idx: &[usize]) -> Option<usize> {
    if idx.len() != shape.len() {
        return None;
    }
    let mut at = 0;
    for (&i, &n) in idx.iter().zip(shape) {
        if i >= n {
            return None;
        }
        at = at * n + i;
    }
    Some(at)
}

fn out_of_range(shape: &[usize], idx: &[usize]) -> PluginError {
    PluginError::shape(format!(
        "index {idx:?} is out of range for a tensor of shape {shape:?}"
    ))
}

/// Reading a tensor by coordinates (for [`Tensor`] and [`TensorView`]).
pub trait TensorIndex {
    /// The shape and the values.
    fn parts(&self) -> (&[usize], &[f32]);

    /// The sizes of a rank-`N` tensor, e.g. `let [rows, cols] = t.dims()?`; an error when the
    /// tensor has another rank or its data does not fill its shape.
    fn dims<const N: usize>(&self) -> Result<[usize; N], PluginError> {
        let (shape, data) = self.parts();
        let n: usize = shape.iter().product();
        match <[usize; N]>::try_from(shape) {
            Ok(d) if n == data.len() => Ok(d),
            _ => Err(PluginError::shape(format!(
                "expected a {N}-d tensor, got shape {shape:?} with {} values",
                data.len()
            ))),
        }
    }

    /// The flat offset of `idx` (checked against the shape).
    fn offset_of(&self, idx: &[usize]) -> Result<usize, PluginError> {
        let (shape, data) = self.parts();
        offset(shape, idx)
            .filter(|&at| at < data.len())
            .ok_or_else(|| out_of_range(shape, idx))
    }

    /// The value at `idx`, or `None` when `idx` is out of range.
    fn get(&self, idx: &[usize]) -> Option<f32> {
        let at = self.offset_of(idx).ok()?;
        Some(self.parts().1[at])
    }

    /// The value at `idx`.
    ///
    /// # Panics
    /// When `idx` is out of range (like slice indexing); see [`TensorIndex::get`].
    fn at(&self, idx: &[usize]) -> f32 {
        match self.offset_of(idx) {
            Ok(at) => self.parts().1[at],
            Err(e) => panic!("{}", e.message),
        }
    }
}

impl TensorIndex for Tensor {
    fn parts(&self) -> (&[usize], &[f32]) {
        (&self.shape, &self.data)
    }
}

impl TensorIndex for TensorView<'_> {
    fn parts(&self) -> (&[usize], &[f32]) {
        (self.shape, self.data)
    }
}

/// Writing a tensor by coordinates.
pub trait TensorIndexMut: TensorIndex {
    /// The value at `idx`, mutably, or `None` when `idx` is out of range.
    fn get_mut(&mut self, idx: &[usize]) -> Option<&mut f32>;

    /// The value at `idx`, mutably.
    ///
    /// # Panics
    /// When `idx` is out of range; see [`TensorIndexMut::get_mut`].
    fn at_mut(&mut self, idx: &[usize]) -> &mut f32 {
        if let Err(e) = self.offset_of(idx) {
            panic!("{}", e.message);
        }
        self.get_mut(idx).expect("checked index")
    }

    /// Sets the value at `idx`; an error when `idx` is out of range.
    fn set(&mut self, idx: &[usize], value: f32) -> Result<(), PluginError> {
        match self.get_mut(idx) {
            Some(v) => {
                *v = value;
                Ok(())
            }
            None => Err(out_of_range(self.parts().0, idx)),
        }
    }
}

impl TensorIndexMut for Tensor {
    fn get_mut(&mut self, idx: &[usize]) -> Option<&mut f32> {
        let at = self.offset_of(idx).ok()?;
        self.data.get_mut(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_strides() {
        assert_eq!(strides(&[2, 3, 4]), [12, 4, 1]);
        assert_eq!(strides(&[]), Vec::<usize>::new());
        assert_eq!(offset(&[2, 3, 4], &[1, 2, 3]), Some(23));
        assert_eq!(offset(&[2, 3, 4], &[1, 3, 0]), None);
        assert_eq!(offset(&[2, 3], &[1]), None);
        assert_eq!(offset(&[], &[]), Some(0));
    }

    #[test]
    fn get_set_and_dims() {
        let mut t = Tensor::new(vec![2, 2, 2], (0..8).map(|v| v as f32).collect()).unwrap();
        assert_eq!(t.at(&[1, 0, 1]), 5.0);
        assert_eq!(t.view().at(&[0, 1, 1]), 3.0);
        assert_eq!(t.get(&[0, 0]), None);
        t.set(&[0, 0, 0], 9.0).unwrap();
        *t.at_mut(&[1, 1, 1]) *= 2.0;
        assert_eq!((t.data[0], t.data[7]), (9.0, 14.0));
        assert!(t.set(&[2, 0, 0], 1.0).is_err());
        assert_eq!(t.dims::<3>().unwrap(), [2, 2, 2]);
        let e = t.dims::<2>().unwrap_err();
        assert!(e.message.contains("2-d"), "{e}");
        let broken = Tensor {
            shape: vec![3],
            data: vec![1.0],
        };
        assert!(broken.dims::<1>().is_err());
        assert_eq!(broken.get(&[2]), None);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn at_panics_out_of_range() {
        Tensor::zeros(vec![2]).at(&[2]);
    }
}
