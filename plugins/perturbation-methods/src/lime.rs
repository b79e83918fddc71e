//! `lime`: Inseq 0.7.1's LIME (Captum `LimeBase` with a token-masking perturbation, a
//! "number of unchanged elements" similarity kernel and a Ridge surrogate).
//!
//! Deviations from Inseq 0.7.1, each towards what Inseq intends:
//! - masked tokens are replaced by the UNK token's *embedding* (Inseq multiplies the embedding
//!   tensor by the mask and fills masked positions with the scalar UNK/PAD *id* in every
//!   embedding dimension), and special tokens are never masked (Inseq compares embedding rows
//!   with ids, so its guard never matches);
//! - the surrogate is fitted on the binary keep-mask of the tokens (Inseq fits a Ridge on every
//!   embedding value, `n_samples × (len · hidden)`), and its per-token weight is repeated along
//!   the hidden dimension (Granular output, as Inseq);
//! - the similarity is the number of unchanged tokens (Inseq counts unchanged embedding
//!   values: the same up to the factor `hidden`, which rescales Ridge's `alpha`);
//! - one set of `n_samples` masks serves every step (one host request); each step's surrogate
//!   uses the tokens that step sees (Inseq draws fresh masks per step);
//! - encoder-decoder models with `attribute_target` are supported (Inseq: NotImplementedError).

use rand::Rng;
use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::features::{granular, rng, score_rows, Features};

/// Which token replaces masked tokens.
#[derive(
    Deserialize, serde::Serialize, schemars::JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum MaskToken {
    /// The baseline ids (UNK, or PAD when the tokenizer has no UNK; special tokens kept).
    #[default]
    Unk,
    /// The PAD id, given with `mask_token_id` (the SDK does not tell which special id is PAD).
    Pad,
}

/// Parameters of `lime` (Inseq 0.7.1 names and defaults).
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct LimeParams {
    /// Number of random masks (surrogate training samples).
    pub n_samples: usize,
    /// Probability that a token is masked in a sample.
    pub mask_prob: f64,
    /// `unk` or `pad`.
    pub mask_token: MaskToken,
    /// The id that replaces masked tokens (required with `mask_token = "pad"`; overrides it).
    pub mask_token_id: Option<u32>,
    /// Ridge regularisation of the surrogate (sklearn's default 1.0).
    pub alpha: f64,
    /// Seed of the masks; unset = a fresh random seed at every call.
    pub seed: Option<u64>,
    /// Accepted for compatibility; the host batches the samples itself.
    pub perturbations_per_eval: Option<usize>,
    /// Accepted for compatibility (the CLI shows progress).
    pub show_progress: Option<bool>,
}

impl Default for LimeParams {
    fn default() -> Self {
        Self {
            n_samples: 50,
            mask_prob: 0.3,
            mask_token: MaskToken::Unk,
            mask_token_id: None,
            alpha: 1.0,
            seed: None,
            perturbations_per_eval: None,
            show_progress: None,
        }
    }
}

/// LIME with a Ridge surrogate over token keep-masks.
pub struct Lime(LimeParams);

impl PluginInfo for Lime {
    const NAME: &'static str = "lime";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Weights of a Ridge surrogate fitted on randomly UNK-masked inputs (LIME, as Inseq).";
    type Params = LimeParams;
    fn capabilities() -> Capabilities {
        Capabilities::method(Flags::USES_BASELINES, OutputKind::Granular, &["vnorm"])
    }
}

/// Weighted ridge regression with an intercept (sklearn `Ridge(alpha).fit(x, y, sample_weight=w)`):
/// the coefficients of the columns of `x` (`rows × cols`, row-major).
pub fn ridge(x: &[Vec<f64>], y: &[f64], w: &[f64], alpha: f64) -> Vec<f64> {
    let cols = x.first().map_or(0, Vec::len);
    let sw: f64 = w.iter().sum();
    if cols == 0 || sw <= 0.0 {
        return vec![0.0; cols];
    }
    let xm: Vec<f64> = (0..cols)
        .map(|c| x.iter().zip(w).map(|(r, wi)| r[c] * wi).sum::<f64>() / sw)
        .collect();
    let ym = y.iter().zip(w).map(|(v, wi)| v * wi).sum::<f64>() / sw;
    // A = Xcᵀ W Xc + αI, b = Xcᵀ W yc.
    let mut a = vec![vec![0f64; cols]; cols];
    let mut b = vec![0f64; cols];
    for ((r, &yi), &wi) in x.iter().zip(y).zip(w) {
        for i in 0..cols {
            let xi = r[i] - xm[i];
            b[i] += wi * xi * (yi - ym);
            for j in 0..cols {
                a[i][j] += wi * xi * (r[j] - xm[j]);
            }
        }
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += alpha;
    }
    solve(a, b)
}

/// Solves `a · x = b` (symmetric positive definite) by Gaussian elimination with pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap_or(c);
        a.swap(c, p);
        b.swap(c, p);
        let d = a[c][c];
        if d.abs() < 1e-300 {
            continue;
        }
        for r in c + 1..n {
            let f = a[r][c] / d;
            if f == 0.0 {
                continue;
            }
            let (top, bottom) = a.split_at_mut(r);
            for (x, y) in bottom[0][c..].iter_mut().zip(&top[c][c..]) {
                *x -= f * y;
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0f64; n];
    for c in (0..n).rev() {
        let s: f64 = (c + 1..n).map(|k| a[c][k] * x[k]).sum();
        x[c] = if a[c][c].abs() < 1e-300 {
            0.0
        } else {
            (b[c] - s) / a[c][c]
        };
    }
    x
}

impl AttributionPlugin for Lime {
    fn new(p: LimeParams) -> Result<Self, PluginError> {
        if p.n_samples == 0 {
            return Err(PluginError::invalid_params(
                "n_samples must be at least 1, got 0",
            ));
        }
        if !(0.0..=1.0).contains(&p.mask_prob) {
            return Err(PluginError::invalid_params(format!(
                "mask_prob must be within [0, 1], got {}",
                p.mask_prob
            )));
        }
        if !(p.alpha.is_finite() && p.alpha >= 0.0) {
            return Err(PluginError::invalid_params(format!(
                "alpha must be a finite number >= 0, got {}",
                p.alpha
            )));
        }
        if p.mask_token == MaskToken::Pad && p.mask_token_id.is_none() {
            return Err(PluginError::invalid_params(
                "mask_token = \"pad\" needs the PAD id: add mask_token_id (the host does not \
                 tell which special id is PAD)",
            ));
        }
        Ok(Self(p))
    }

    fn attribute(
        &self,
        host: &Host<'_>,
        request: &AttributionRequest,
    ) -> Result<AttributionOutput, PluginError> {
        let p = &self.0;
        let info = host.info();
        let sides = AttributedSides::of(host, request);
        let mut rng = rng(p.seed);
        let mut out = AttributionOutput::default();
        for (i, seq) in request.sequences.iter().enumerate() {
            let feats = Features::tokens(host, seq, sides)?;
            let (n, ns) = (feats.len(), seq.steps.len());
            // Special tokens are never masked.
            let maskable: Vec<bool> = feats
                .features
                .iter()
                .map(|f| {
                    let id = feats.ids(f.side)[f.positions[0]];
                    !info.special_token_ids.contains(&id)
                })
                .collect();
            let masks: Vec<Vec<bool>> = (0..p.n_samples)
                .map(|_| {
                    maskable
                        .iter()
                        .map(|&m| rng.random::<f64>() < p.mask_prob && m)
                        .collect()
                })
                .collect();
            let points = std::iter::once(InputPoint::actual())
                .chain(masks.iter().map(|m| match p.mask_token_id {
                    Some(id) => feats.point(m, |_, _| id),
                    None => feats.baseline_point(seq, m),
                }))
                .collect();
            let scores = score_rows(host, i, points, &seq.steps)?;
            let mut values = vec![vec![0f32; ns]; n];
            for (j, &step) in seq.steps.iter().enumerate() {
                let seen: Vec<usize> = (0..n).filter(|&k| feats.visible_at(k, step)).collect();
                let x: Vec<Vec<f64>> = masks
                    .iter()
                    .map(|m| seen.iter().map(|&k| f64::from(u8::from(!m[k]))).collect())
                    .collect();
                let w: Vec<f64> = masks
                    .iter()
                    .map(|m| seen.iter().filter(|&&k| !m[k]).count() as f64)
                    .collect();
                let y: Vec<f64> = (0..p.n_samples).map(|s| scores[s + 1][j] as f64).collect();
                for (c, &k) in ridge(&x, &y, &w, p.alpha).iter().zip(&seen) {
                    values[k][j] = *c as f32;
                }
            }
            out.sequences
                .push(granular(feats.coarse(&values)?, info.hidden_size)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_matches_the_closed_form() {
        // y = 1 + 2 a − 3 b, exact data: small alpha recovers the coefficients.
        let x = vec![
            vec![0.0, 0.0],
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![1.0, 1.0],
            vec![1.0, 0.0],
        ];
        let y: Vec<f64> = x.iter().map(|r| 1.0 + 2.0 * r[0] - 3.0 * r[1]).collect();
        let c = ridge(&x, &y, &[1.0; 5], 1e-9);
        assert!(
            (c[0] - 2.0).abs() < 1e-6 && (c[1] + 3.0).abs() < 1e-6,
            "{c:?}"
        );
        // sklearn's weighted Ridge(alpha=1) (weighted centring, then (XcᵀWXc + I)⁻¹ XcᵀWyc),
        // computed with numpy: [1.41666667, -1.91666667].
        let c = ridge(&x, &y, &[1.0, 2.0, 1.0, 1.0, 3.0], 1.0);
        assert!((c[0] - 1.416_666_67).abs() < 1e-6, "{c:?}");
        assert!((c[1] + 1.916_666_67).abs() < 1e-6, "{c:?}");
        // A constant column gets 0.
        let c = ridge(&[vec![1.0], vec![1.0]], &[1.0, 2.0], &[1.0, 1.0], 1.0);
        assert_eq!(c, vec![0.0]);
    }
}
