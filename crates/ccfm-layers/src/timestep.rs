//! scDFM's (DiT-style) `TimestepEmbedder`, with t used as is (no x1000) and the cos half first.

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{activation::silu, backend::Backend, Tensor, TensorData};

use crate::linear;

/// The `dim`-wide sinusoid of `t (N,)`: `[cos(t f_k), sin(t f_k)]` with
/// `f_k = exp(-ln(max_period) k / (dim/2))`, k = 0..dim/2 (an odd `dim` gets a zero column).
pub fn timestep_frequency_embedding<B: Backend>(
    t: Tensor<B, 1>,
    dim: usize,
    max_period: f64,
) -> Tensor<B, 2> {
    let half = dim / 2;
    let n = t.dims()[0];
    let device = t.device();
    let freqs: Vec<f32> = (0..half)
        .map(|k| (-(max_period.ln()) * k as f64 / half as f64).exp() as f32)
        .collect();
    let freqs = Tensor::<B, 2>::from_data(TensorData::new(freqs, [1, half]), &device);
    let args = t.reshape([n, 1]).mul(freqs);
    let mut parts = vec![args.clone().cos(), args.sin()];
    if dim % 2 == 1 {
        parts.push(Tensor::zeros([n, 1], &device));
    }
    Tensor::cat(parts, 1)
}

#[derive(Config, Debug)]
pub struct TimestepEmbedderConfig {
    pub d_model: usize,
    #[config(default = 256)]
    pub frequency_embedding_size: usize,
    #[config(default = 10000.0)]
    pub max_period: f64,
}

/// `t (B,) -> sinusoid(256) -> Linear(256,d) -> SiLU -> Linear(d,d)`
/// (checkpoint keys `mlp.0`, `mlp.2`).
#[derive(Module, Debug)]
pub struct TimestepEmbedder<B: Backend> {
    pub mlp_0: Linear<B>,
    pub mlp_2: Linear<B>,
    pub frequency_embedding_size: usize,
    pub max_period: f64,
}

impl TimestepEmbedderConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> TimestepEmbedder<B> {
        TimestepEmbedder {
            mlp_0: linear(self.frequency_embedding_size, self.d_model, true, device),
            mlp_2: linear(self.d_model, self.d_model, true, device),
            frequency_embedding_size: self.frequency_embedding_size,
            max_period: self.max_period,
        }
    }
}

impl<B: Backend> TimestepEmbedder<B> {
    /// `(B,)` times to `(B, d)`.
    pub fn forward(&self, t: Tensor<B, 1>) -> Tensor<B, 2> {
        let f = timestep_frequency_embedding(t, self.frequency_embedding_size, self.max_period);
        self.mlp_2.forward(silu(self.mlp_0.forward(f)))
    }
}
