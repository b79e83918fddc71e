//! How clean and corrupted layer outputs are compared.

use rinseq_sdk::Tensor;

use super::SimilarityMetric;

/// 1 − cos or the euclidean distance between the rows of two `(len, hidden)` tensors.
pub(super) fn row_scores(metric: SimilarityMetric, clean: &Tensor, corrupt: &Tensor) -> Vec<f32> {
    let d = clean.shape[1];
    clean
        .data
        .chunks(d)
        .zip(corrupt.data.chunks(d))
        .map(|(a, b)| match metric {
            SimilarityMetric::Cosine => {
                let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
                for (x, y) in a.iter().zip(b) {
                    let (x, y) = (*x as f64, *y as f64);
                    ab += x * y;
                    aa += x * x;
                    bb += y * y;
                }
                // torch's CosineSimilarity: x·y / max(‖x‖·‖y‖, eps), eps = 1e-8.
                (1.0 - ab / (aa.sqrt() * bb.sqrt()).max(1e-8)) as f32
            }
            SimilarityMetric::Euclidean => a
                .iter()
                .zip(b)
                .map(|(x, y)| ((x - y) as f64).powi(2))
                .sum::<f64>()
                .sqrt() as f32,
        })
        .collect()
}
