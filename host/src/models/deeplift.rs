//! DeepLIFT's rescale rule at one non-linearity (Captum `DeepLift`'s `nonlinear` hook).
//!
//! Captum runs the input and its baseline in one batch and, in the backward pass, replaces the
//! local derivative of every `nn.ReLU`/`nn.Tanh`/... module by the multiplier
//! `Δy / Δx = (f(x) − f(x′)) / (x − x′)`, falling back to `f′(x)` where `|Δx| < 1e-10`. Only
//! modules of those exact types are rescaled: GELU and SiLU modules keep plain gradients.

use candle_core::{Result, Tensor};

/// Captum's threshold below which the plain derivative is used.
const EPS: f64 = 1e-10;

/// Whether Captum's DeepLift rescales the HF activation `act` (HF builds `relu` as `nn.ReLU` and
/// `tanh` as `nn.Tanh`; every other activation class is not in Captum's list).
pub fn rescaled(act: &str) -> bool {
    matches!(act, "relu" | "tanh")
}

/// Returns `y = act(x)` with the same value, whose gradient with respect to `x` is the rescale
/// multiplier against the batch rows `against` (`u32`, one reference row per row; a row that is
/// its own reference gets the plain derivative).
pub fn rescale(act: &str, x: &Tensor, y: Tensor, against: &Tensor) -> Result<Tensor> {
    if !rescaled(act) {
        return Ok(y);
    }
    let (xd, yd) = (x.detach(), y.detach());
    let dx = (&xd - xd.index_select(against, 0)?)?;
    let dy = (&yd - yd.index_select(against, 0)?)?;
    let plain = match act {
        "relu" => xd.gt(0.0)?.to_dtype(xd.dtype())?,
        _ => (1.0 - yd.sqr()?)?,
    };
    let small = dx.abs()?.lt(EPS)?;
    // Divide by 1 where Δx is tiny so that no inf/NaN is ever formed.
    let safe_dx = small.where_cond(&Tensor::ones_like(&dx)?, &dx)?;
    let m = small.where_cond(&plain, &(dy / safe_dx)?)?;
    // Value y (the added term is exactly zero), gradient m with respect to x.
    yd + ((x - &xd)? * m)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    #[test]
    fn relu_gradient_is_the_secant_against_the_reference_row() {
        let x =
            Var::from_slice(&[2.0f32, -1.0, 0.5, -3.0, 1.0, 1.0], (2, 3), &Device::Cpu).unwrap();
        // Row 0 is compared with row 1, row 1 with itself.
        let against = Tensor::new(&[1u32, 1], &Device::Cpu).unwrap();
        let y = rescale(
            "relu",
            x.as_tensor(),
            x.as_tensor().relu().unwrap(),
            &against,
        )
        .unwrap();
        assert_eq!(
            y.to_vec2::<f32>().unwrap(),
            vec![vec![2.0, 0.0, 0.5], vec![0.0, 1.0, 1.0]]
        );
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        // (relu(2) - relu(-3)) / 5, (0 - 1) / (-2), Δx = -0.5 < 0: (0.5 - 1) / -0.5; row 1: plain.
        assert_eq!(g[0], vec![0.4, 0.5, 1.0]);
        assert_eq!(g[1], vec![0.0, 1.0, 1.0]);
    }

    #[test]
    fn other_activations_keep_plain_gradients() {
        let x = Tensor::new(&[[1.0f32]], &Device::Cpu).unwrap();
        let against = Tensor::new(&[0u32], &Device::Cpu).unwrap();
        let y = x.silu().unwrap();
        let r = rescale("silu", &x, y.clone(), &against).unwrap();
        assert_eq!(r.to_vec2::<f32>().unwrap(), y.to_vec2::<f32>().unwrap());
        assert_eq!(DType::F32, r.dtype());
    }
}
