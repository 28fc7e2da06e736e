//! Normalisations that Burn's `LayerNorm` does not cover.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Tensor};

/// LayerNorm over the last axis without affine parameters (scDFM's DTB norms, eps 1e-6).
pub fn layer_norm_plain<B: Backend, const D: usize>(x: Tensor<B, D>, eps: f64) -> Tensor<B, D> {
    let (var, mean) = x.clone().var_mean_bias(D - 1);
    (x - mean).div(var.add_scalar(eps).sqrt())
}

/// `RmsNorm` configuration.
#[derive(Config, Debug)]
pub struct RmsNormConfig {
    pub d_model: usize,
    #[config(default = 1e-5)]
    pub eps: f64,
}

/// `x * rsqrt(mean(x^2) + eps) * weight` over the last axis (field `weight`, as the checkpoint).
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl RmsNormConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> RmsNorm<B> {
        RmsNorm {
            weight: Param::from_tensor(Tensor::ones([self.d_model], device)),
            eps: self.eps,
        }
    }
}

impl<B: Backend> RmsNorm<B> {
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let d = self.weight.dims()[0];
        let mut shape = [1usize; D];
        shape[D - 1] = d;
        let rms = x
            .clone()
            .powi_scalar(2)
            .mean_dim(D - 1)
            .add_scalar(self.eps)
            .sqrt();
        x.div(rms).mul(self.weight.val().reshape(shape))
    }
}
