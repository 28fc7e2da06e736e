//! scDFM's `ContinuousValueEncoder` (`layers.py`): one expression value per token to a d-vector.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{activation::relu, backend::Backend, Tensor};

use crate::linear;

#[derive(Config, Debug)]
pub struct ContinuousValueEncoderConfig {
    pub d_model: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Values are clamped from above only (a negative value passes unchanged).
    #[config(default = 512.0)]
    pub max_value: f64,
}

/// `x (B,T) -> clamp(max) -> Linear(1,d) -> ReLU -> Linear(d,d) -> LayerNorm -> Dropout`.
#[derive(Module, Debug)]
pub struct ContinuousValueEncoder<B: Backend> {
    pub linear1: Linear<B>,
    pub linear2: Linear<B>,
    pub norm: LayerNorm<B>,
    pub dropout: Dropout,
    pub max_value: f64,
}

impl ContinuousValueEncoderConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> ContinuousValueEncoder<B> {
        ContinuousValueEncoder {
            linear1: linear(1, self.d_model, true, device),
            linear2: linear(self.d_model, self.d_model, true, device),
            norm: LayerNormConfig::new(self.d_model).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            max_value: self.max_value,
        }
    }
}

impl<B: Backend> ContinuousValueEncoder<B> {
    /// `(B, T)` values to `(B, T, d)`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 3> {
        let x = x.unsqueeze_dim::<3>(2).clamp_max(self.max_value);
        let h = relu(self.linear1.forward(x));
        let h = self.norm.forward(self.linear2.forward(h));
        self.dropout.forward(h)
    }
}
