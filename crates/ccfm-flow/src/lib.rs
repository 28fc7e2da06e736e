//! Flow matching building blocks for CCFM.
//!
//! Each piece is small and tested on its own, so the model crates can combine them:
//!
//! | module | what it holds |
//! |---|---|
//! | [`scheduler`] | `(alpha_t, sigma_t)` schedules: [`CondOt`], [`Cosine`] |
//! | [`path`] | [`AffineProbPath`]: `x_t = sigma_t x0 + alpha_t x1` and its time derivative |
//! | [`time`] | time samplers: uniform, logit-normal, and the cascaded latent/expression sampler |
//! | [`noise`] | source noise: Gaussian and scDFM's Poisson noise on the control cell |
//! | [`solver`] | fixed-grid ODE solvers over a velocity closure (Euler, midpoint, Heun, RK4, RK4 3/8) |
//! | [`mmd`] | scDFM's unbiased multi-bandwidth MMD² and CellFlow's biased RBF MMD |
//!
//! Conventions: time runs from `t = 0` (noise) to `t = 1` (data); `t` is a `(B,)` tensor
//! broadcast over every other axis of the state.

pub mod error;
pub mod mmd;
pub mod noise;
pub mod path;
pub mod scheduler;
pub mod solver;
pub mod time;

pub use error::FlowError;
pub use mmd::{
    median_sigmas, mmd2_unbiased_multi_sigma, rbf_mmd, MedianSigmas, CELLFLOW_GAMMAS,
    SCDFM_SIGMA_SCALES,
};
pub use noise::{gaussian_like, poisson_noise, PoissonNoise};
pub use path::{AffineProbPath, PathSample};
pub use scheduler::{CondOt, Cosine, Scheduler, SchedulerOutput};
pub use solver::{integrate, OdeMethod, OdeSolution, TimeGrid};
pub use time::{CascadedTimeSampler, CascadedTimes, TimeSampler};

use burn::tensor::{backend::Backend, Tensor};

/// Reshape a `(B,)` tensor to `(B, 1, ..., 1)` so it broadcasts against a rank-`D` state.
pub fn expand_time<B: Backend, const D: usize>(t: Tensor<B, 1>) -> Tensor<B, D> {
    let b = t.dims()[0];
    let mut shape = [1usize; D];
    shape[0] = b;
    t.reshape(shape)
}
