//! Position embeddings of the BART family: learned with an offset (BART, mBART) or fixed
//! sinusoidal (Marian).

use candle_core::{DType, Device, Result, Tensor};

use crate::models::ModelError;

/// How positions are embedded.
#[derive(Debug, Clone)]
pub enum PositionEmbedding {
    /// `BartLearnedPositionalEmbedding`: rows `position + offset` of a learned table.
    Learned {
        /// `(max_positions + offset, d)` table.
        table: Tensor,
        /// Row offset (2 for BART and mBART).
        offset: usize,
    },
    /// `MarianSinusoidalPositionalEmbedding`: a fixed `(max_positions, d)` table.
    Sinusoidal {
        /// The precomputed table.
        table: Tensor,
    },
}

impl PositionEmbedding {
    /// The sinusoidal table in HF Marian layout: sines of `pos / 10000^(2i/d)` in the first
    /// `ceil(d/2)` columns, cosines in the rest (computed in f64, then cast).
    pub fn sinusoidal(n_pos: usize, dim: usize, dtype: DType, dev: &Device) -> Result<Self> {
        let sentinel = dim.div_ceil(2);
        let mut data = vec![0f64; n_pos * dim];
        for pos in 0..n_pos {
            let row = &mut data[pos * dim..(pos + 1) * dim];
            for j in 0..dim {
                let angle = pos as f64 / 10000f64.powf((2 * (j / 2)) as f64 / dim as f64);
                if j % 2 == 0 {
                    row[j / 2] = angle.sin();
                } else {
                    row[sentinel + j / 2] = angle.cos();
                }
            }
        }
        let table = Tensor::from_vec(data, (n_pos, dim), dev)?.to_dtype(dtype)?;
        Ok(Self::Sinusoidal { table })
    }

    /// Embeddings of positions `start..start + len`: `(len, d)`.
    pub fn forward(&self, start: usize, len: usize) -> Result<Tensor> {
        let (table, first) = match self {
            Self::Learned { table, offset } => (table, start + offset),
            Self::Sinusoidal { table } => (table, start),
        };
        let rows = table.dim(0)?;
        if first + len > rows {
            let max = rows - (first - start);
            return Err(ModelError::TooLong {
                len: start + len,
                max,
            }
            .into_candle());
        }
        table.narrow(0, first, len)
    }

    /// Longest sequence the table covers.
    pub fn max_positions(&self) -> Result<usize> {
        Ok(match self {
            Self::Learned { table, offset } => table.dim(0)?.saturating_sub(*offset),
            Self::Sinusoidal { table } => table.dim(0)?,
        })
    }
}
