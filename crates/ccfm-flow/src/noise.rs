//! Source noise `x0` for the expression flow.

use burn::tensor::{backend::Backend, Distribution, Tensor, TensorData};
use rand::Rng;
use rand_distr::{Distribution as _, Poisson};
use serde::{Deserialize, Serialize};

use crate::FlowError;

/// Standard Gaussian noise of the same shape as `like` (scDFM's default, in log1p space).
pub fn gaussian_like<B: Backend, const D: usize>(like: &Tensor<B, D>) -> Tensor<B, D> {
    like.random_like(Distribution::Normal(0.0, 1.0))
}

/// scDFM's count-space noise on the control cell: `x0 = log1p(Poisson(lambda))` with
/// `base = expm1(control_log1p)` and
///
/// * `library_size = Some(L)`: `lambda = max(base * L / (rowsum(base) + 1e-8), 1e-8)`;
/// * `library_size = None`: `lambda = max(alpha * base, 1e-8)`.
///
/// The reference enters the first branch for its default `L = -1`, which makes `lambda = 1e-8`
/// everywhere and the noise all zeros; here a library size must be positive to be used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoissonNoise {
    pub library_size: Option<f64>,
    pub alpha: f64,
}

impl Default for PoissonNoise {
    fn default() -> Self {
        Self {
            library_size: None,
            alpha: 1.0,
        }
    }
}

impl PoissonNoise {
    pub fn validate(&self) -> Result<(), FlowError> {
        if let Some(l) = self.library_size {
            if !(l.is_finite() && l > 0.0) {
                return Err(FlowError::InvalidParameter {
                    name: "library_size",
                    value: l,
                    expected: "a finite number > 0 (or leave it unset to use alpha)",
                });
            }
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(FlowError::InvalidParameter {
                name: "alpha",
                value: self.alpha,
                expected: "a finite number > 0",
            });
        }
        Ok(())
    }

    /// The Poisson rate per element for a `(cells, genes)` block of log1p control values.
    pub fn rates(&self, control_log1p: &[f32], genes: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(control_log1p.len());
        for row in control_log1p.chunks(genes.max(1)) {
            let base: Vec<f64> = row.iter().map(|&v| (v as f64).exp_m1()).collect();
            let scale = match self.library_size {
                Some(l) => l / (base.iter().sum::<f64>() + 1e-8),
                None => self.alpha,
            };
            out.extend(base.iter().map(|b| (b * scale).max(1e-8)));
        }
        out
    }
}

/// Draw [`PoissonNoise`] for a `(cells, genes)` control tensor with the caller's RNG.
/// The draws happen on the host (Burn has no Poisson distribution) and are exact.
pub fn poisson_noise<B: Backend, R: Rng + ?Sized>(
    control_log1p: Tensor<B, 2>,
    noise: &PoissonNoise,
    rng: &mut R,
) -> Result<Tensor<B, 2>, FlowError> {
    noise.validate()?;
    let [cells, genes] = control_log1p.dims();
    let device = control_log1p.device();
    let values = control_log1p
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| FlowError::Shape(format!("{e:?}")))?;
    let mut draws = Vec::with_capacity(values.len());
    for lambda in noise.rates(&values, genes) {
        let poisson = Poisson::new(lambda).map_err(|_| FlowError::InvalidParameter {
            name: "poisson rate",
            value: lambda,
            expected: "a finite rate: the control cells must hold finite log1p values",
        })?;
        let k: f64 = poisson.sample(rng);
        draws.push(k.ln_1p() as f32);
    }
    Ok(Tensor::from_data(
        TensorData::new(draws, [cells, genes]),
        &device,
    ))
}
