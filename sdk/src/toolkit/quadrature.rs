//! Integral approximation rules of the path methods (Captum `approximation_methods.py`): the
//! step sizes (weights) and the `alphas` (nodes in `[0, 1]`) of `n` evaluation points.
//!
//! ```
//! use rinseq_sdk::toolkit::{IntegrationMethod, Quadrature};
//!
//! let Quadrature { weights, alphas } = IntegrationMethod::RiemannMiddle.quadrature(4);
//! assert_eq!(alphas, [0.125, 0.375, 0.625, 0.875]);
//! assert_eq!(weights, [0.25; 4]);
//! ```

use serde::Deserialize;

use crate::error::PluginError;

/// How the path integral `∫₀¹ ∂f(x′ + α(x − x′)) dα` is approximated (Captum `method`).
#[derive(
    Deserialize, serde::Serialize, schemars::JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationMethod {
    /// Gauss–Legendre quadrature (numpy `leggauss` nodes and weights mapped to `[0, 1]`).
    #[default]
    Gausslegendre,
    /// Left Riemann sum: `α = linspace(0, 1 − 1/n, n)`, weights `1/n`.
    RiemannLeft,
    /// Right Riemann sum: `α = linspace(1/n, 1, n)`, weights `1/n`.
    RiemannRight,
    /// Midpoint Riemann sum: `α = linspace(1/2n, 1 − 1/2n, n)`, weights `1/n`.
    RiemannMiddle,
    /// Captum's "trapezoid": `α = linspace(0, 1, n)`, weights `1/n` with both ends halved (so they
    /// sum to `(n − 1)/n`, exactly as Captum does).
    RiemannTrapezoid,
}

impl IntegrationMethod {
    /// The name users write (`gausslegendre`, `riemann_left`...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Gausslegendre => "gausslegendre",
            Self::RiemannLeft => "riemann_left",
            Self::RiemannRight => "riemann_right",
            Self::RiemannMiddle => "riemann_middle",
            Self::RiemannTrapezoid => "riemann_trapezoid",
        }
    }

    /// Checks `n_steps` against the rule (Captum: Gauss–Legendre needs ≥ 1, Riemann rules ≥ 2).
    pub fn check_steps(self, n_steps: usize) -> Result<(), PluginError> {
        let min = if self == Self::Gausslegendre { 1 } else { 2 };
        if n_steps < min {
            return Err(PluginError::invalid_params(format!(
                "n_steps must be at least {min} with method '{}', got {n_steps}",
                self.name()
            )));
        }
        Ok(())
    }

    /// The weights (step sizes) and alphas of `n` points, as Captum builds them.
    pub fn quadrature(self, n: usize) -> Quadrature {
        let (weights, alphas) = self.table(n);
        Quadrature { weights, alphas }
    }

    fn table(self, n: usize) -> (Vec<f64>, Vec<f64>) {
        let nf = n as f64;
        match self {
            Self::Gausslegendre => {
                let (x, w) = leggauss(n);
                (
                    w.iter().map(|w| 0.5 * w).collect(),
                    x.iter().map(|x| 0.5 * (1.0 + x)).collect(),
                )
            }
            Self::RiemannLeft => (vec![1.0 / nf; n], torch_linspace(0.0, 1.0 - 1.0 / nf, n)),
            Self::RiemannRight => (vec![1.0 / nf; n], torch_linspace(1.0 / nf, 1.0, n)),
            Self::RiemannMiddle => (
                vec![1.0 / nf; n],
                torch_linspace(1.0 / (2.0 * nf), 1.0 - 1.0 / (2.0 * nf), n),
            ),
            Self::RiemannTrapezoid => {
                let mut w = vec![1.0 / nf; n];
                if let Some(first) = w.first_mut() {
                    *first /= 2.0;
                }
                if let Some(last) = w.last_mut() {
                    *last /= 2.0;
                }
                (w, torch_linspace(0.0, 1.0, n))
            }
        }
    }
}

/// The `n` evaluation points of a rule: `∫₀¹ g(α) dα ≈ Σ_k weights[k] · g(alphas[k])`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quadrature {
    /// The step size of each point (Captum `step_sizes`).
    pub weights: Vec<f64>,
    /// The nodes in `[0, 1]`, ascending (Captum `alphas`).
    pub alphas: Vec<f64>,
}

/// `torch.linspace(start, end, n)` in float32, as Captum's Riemann alphas are computed (torch
/// fills the first half forwards from `start` and the second half backwards from `end`).
pub fn torch_linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    let (s, e) = (start as f32, end as f32);
    if n == 1 {
        return vec![s as f64];
    }
    let step = (e - s) / (n - 1) as f32;
    let half = n / 2;
    (0..n)
        .map(|i| {
            let v = if i < half {
                s + step * i as f32
            } else {
                e - step * (n - i - 1) as f32
            };
            v as f64
        })
        .collect()
}

/// Gauss–Legendre nodes (ascending, in `[-1, 1]`) and weights of degree `n`, like numpy's
/// `polynomial.legendre.leggauss` (Newton iteration on the Legendre recurrence, in `f64`).
pub fn leggauss(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut x = vec![0.0; n];
    let mut w = vec![0.0; n];
    let nf = n as f64;
    for i in 0..n.div_ceil(2) {
        // Initial guess of the i-th largest root.
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (nf + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p1, mut p2) = (1.0, 0.0);
            for j in 1..=n {
                let p3 = p2;
                p2 = p1;
                p1 = ((2.0 * j as f64 - 1.0) * z * p2 - (j as f64 - 1.0) * p3) / j as f64;
            }
            dp = nf * (z * p1 - p2) / (z * z - 1.0);
            let z1 = z;
            z = z1 - p1 / dp;
            if (z - z1).abs() <= 1e-15 {
                // One more evaluation of the derivative at the converged root.
                let (mut p1, mut p2) = (1.0, 0.0);
                for j in 1..=n {
                    let p3 = p2;
                    p2 = p1;
                    p1 = ((2.0 * j as f64 - 1.0) * z * p2 - (j as f64 - 1.0) * p3) / j as f64;
                }
                dp = nf * (z * p1 - p2) / (z * z - 1.0);
                break;
            }
        }
        let weight = 2.0 / ((1.0 - z * z) * dp * dp);
        x[i] = -z;
        x[n - 1 - i] = z;
        w[i] = weight;
        w[n - 1 - i] = weight;
    }
    if n % 2 == 1 {
        x[n / 2] = 0.0;
    }
    (x, w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn gauss_legendre_matches_numpy() {
        // 0.5 * (1 + leggauss(5)[0]), 0.5 * leggauss(5)[1] from numpy 2.4.
        let (w, a) = IntegrationMethod::Gausslegendre.table(5);
        close(
            &a,
            &[
                0.04691007703066802,
                0.23076534494715845,
                0.5,
                0.7692346550528415,
                0.9530899229693319,
            ],
            1e-15,
        );
        close(
            &w,
            &[
                0.11846344252809464,
                0.23931433524968315,
                0.28444444444444433,
                0.23931433524968315,
                0.11846344252809464,
            ],
            1e-15,
        );
        // n = 50, first three (numpy).
        let (w, a) = IntegrationMethod::Gausslegendre.table(50);
        close(&a[..3], &[0.0005668, 0.00298402, 0.00732296], 1e-8);
        close(&w[..3], &[0.00145431, 0.0033799, 0.00529527], 1e-8);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-13);
        let (w, a) = IntegrationMethod::Gausslegendre.table(1);
        close(&a, &[0.5], 0.0);
        close(&w, &[1.0], 1e-15);
    }

    #[test]
    fn riemann_tables_match_captum() {
        // captum.attr._utils.approximation_methods, n = 4.
        let q = |m: IntegrationMethod| m.table(4);
        let (w, a) = q(IntegrationMethod::RiemannLeft);
        close(&w, &[0.25; 4], 0.0);
        close(&a, &[0.0, 0.25, 0.5, 0.75], 0.0);
        let (w, a) = q(IntegrationMethod::RiemannRight);
        close(&w, &[0.25; 4], 0.0);
        close(&a, &[0.25, 0.5, 0.75, 1.0], 0.0);
        let (w, a) = q(IntegrationMethod::RiemannMiddle);
        close(&w, &[0.25; 4], 0.0);
        close(&a, &[0.125, 0.375, 0.625, 0.875], 0.0);
        let (w, a) = q(IntegrationMethod::RiemannTrapezoid);
        close(&w, &[0.125, 0.25, 0.25, 0.125], 0.0);
        // torch float32 linspace, bit for bit.
        close(&a, &[0.0, 0.3333333432674408, 0.6666666269302368, 1.0], 0.0);
    }

    #[test]
    fn step_counts_are_checked() {
        assert!(IntegrationMethod::Gausslegendre.check_steps(1).is_ok());
        let e = IntegrationMethod::Gausslegendre.check_steps(0).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParams);
        assert_eq!(
            e.message.as_str(),
            "n_steps must be at least 1 with method 'gausslegendre', got 0"
        );
        let e = IntegrationMethod::RiemannLeft.check_steps(1).unwrap_err();
        assert!(e.message.contains("at least 2"), "{e}");
    }
}
