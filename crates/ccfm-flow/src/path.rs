//! The affine probability path between a source sample `x0` (noise) and a target `x1`.

use burn::tensor::{backend::Backend, Tensor};

use crate::expand_time;
use crate::scheduler::Scheduler;

/// A point on the path and the path's velocity there.
#[derive(Debug, Clone)]
pub struct PathSample<B: Backend, const D: usize> {
    /// `sigma_t * x0 + alpha_t * x1`.
    pub x_t: Tensor<B, D>,
    /// `d_sigma_t * x0 + d_alpha_t * x1`, the regression target of velocity prediction.
    pub dx_t: Tensor<B, D>,
}

/// `x_t = sigma_t x0 + alpha_t x1` for a [`Scheduler`]; works for states of any rank
/// `(B, ...)` with `t` of shape `(B,)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AffineProbPath<S: Scheduler> {
    pub scheduler: S,
}

impl<S: Scheduler> AffineProbPath<S> {
    pub fn new(scheduler: S) -> Self {
        Self { scheduler }
    }

    /// Sample the path at times `t` for paired `x0` (source) and `x1` (target).
    pub fn sample<B: Backend, const D: usize>(
        &self,
        x0: Tensor<B, D>,
        x1: Tensor<B, D>,
        t: Tensor<B, 1>,
    ) -> PathSample<B, D> {
        let c = self.scheduler.coefficients(t);
        let alpha = expand_time::<B, D>(c.alpha_t);
        let sigma = expand_time::<B, D>(c.sigma_t);
        let d_alpha = expand_time::<B, D>(c.d_alpha_t);
        let d_sigma = expand_time::<B, D>(c.d_sigma_t);
        PathSample {
            x_t: x0.clone().mul(sigma) + x1.clone().mul(alpha),
            dx_t: x0.mul(d_sigma) + x1.mul(d_alpha),
        }
    }

    /// The velocity implied by a prediction of the clean target `x1_hat` at state `x_t`
    /// (data prediction): solving `x_t = sigma x0 + alpha x1` for `x0` and substituting.
    ///
    /// For [`crate::CondOt`] this is `(x1_hat - x_t) / (1 - t)`. The divisor `sigma_t` is clamped
    /// from below at `min_sigma` (Latent Forcing uses 0.05) so `t -> 1` stays finite.
    pub fn velocity_from_data_prediction<B: Backend, const D: usize>(
        &self,
        x1_hat: Tensor<B, D>,
        x_t: Tensor<B, D>,
        t: Tensor<B, 1>,
        min_sigma: f64,
    ) -> Tensor<B, D> {
        let c = self.scheduler.coefficients(t);
        // Eliminating x0 from x_t = sigma x0 + alpha x1 and v = d_sigma x0 + d_alpha x1 gives
        // v = (det x1 + d_sigma x_t) / sigma with det = sigma d_alpha - d_sigma alpha
        // (det = 1 for CondOT, so v = (x1_hat - x_t) / max(1 - t, min_sigma) as in Latent Forcing).
        let det = c.sigma_t.clone().mul(c.d_alpha_t) - c.d_sigma_t.clone().mul(c.alpha_t);
        let sigma = expand_time::<B, D>(c.sigma_t.clamp_min(min_sigma));
        let det = expand_time::<B, D>(det);
        let d_sigma = expand_time::<B, D>(c.d_sigma_t);
        (x1_hat.mul(det) + x_t.mul(d_sigma)).div(sigma)
    }

    /// The one-step endpoint estimate `x1_hat` from a predicted velocity (used by scDFM's MMD
    /// loss): for [`crate::CondOt`] this is `x_t + (1 - t) v`. In general it inverts
    /// `v = d_sigma x0 + d_alpha x1` together with `x_t = sigma x0 + alpha x1`.
    pub fn endpoint_from_velocity<B: Backend, const D: usize>(
        &self,
        v: Tensor<B, D>,
        x_t: Tensor<B, D>,
        t: Tensor<B, 1>,
    ) -> Tensor<B, D> {
        let c = self.scheduler.coefficients(t);
        // x1 = (sigma v - d_sigma x_t) / (sigma d_alpha - d_sigma alpha)
        let det = c.sigma_t.clone().mul(c.d_alpha_t) - c.d_sigma_t.clone().mul(c.alpha_t);
        let sigma = expand_time::<B, D>(c.sigma_t);
        let d_sigma = expand_time::<B, D>(c.d_sigma_t);
        let det = expand_time::<B, D>(det);
        (v.mul(sigma) - x_t.mul(d_sigma)).div(det)
    }
}
