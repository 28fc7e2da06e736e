//! Schedulers give the coefficients of an affine probability path:
//! `x_t = sigma_t * x0 + alpha_t * x1`, with `alpha_0 = 0, alpha_1 = 1` and
//! `sigma_0 = 1, sigma_1 = 0`.

use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

/// The four coefficient tensors at times `t`, each of the same shape as `t`.
#[derive(Debug, Clone)]
pub struct SchedulerOutput<B: Backend> {
    pub alpha_t: Tensor<B, 1>,
    pub sigma_t: Tensor<B, 1>,
    pub d_alpha_t: Tensor<B, 1>,
    pub d_sigma_t: Tensor<B, 1>,
}

/// A schedule `t -> (alpha_t, sigma_t)` together with its derivatives.
pub trait Scheduler {
    fn coefficients<B: Backend>(&self, t: Tensor<B, 1>) -> SchedulerOutput<B>;
}

/// Conditional optimal transport (rectified flow): `alpha_t = t`, `sigma_t = 1 - t`.
/// This is the scheduler of scDFM and of CCFM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CondOt;

impl Scheduler for CondOt {
    fn coefficients<B: Backend>(&self, t: Tensor<B, 1>) -> SchedulerOutput<B> {
        SchedulerOutput {
            sigma_t: t.ones_like().sub(t.clone()),
            d_alpha_t: t.ones_like(),
            d_sigma_t: t.ones_like().neg(),
            alpha_t: t,
        }
    }
}

/// Variance-preserving cosine schedule: `alpha_t = sin(pi t / 2)`, `sigma_t = cos(pi t / 2)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cosine;

impl Scheduler for Cosine {
    fn coefficients<B: Backend>(&self, t: Tensor<B, 1>) -> SchedulerOutput<B> {
        let half_pi = core::f64::consts::FRAC_PI_2;
        let angle = t.mul_scalar(half_pi);
        let sin = angle.clone().sin();
        let cos = angle.cos();
        SchedulerOutput {
            d_alpha_t: cos.clone().mul_scalar(half_pi),
            d_sigma_t: sin.clone().mul_scalar(-half_pi),
            alpha_t: sin,
            sigma_t: cos,
        }
    }
}
