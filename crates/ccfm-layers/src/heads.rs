//! scDFM's small MLP pieces around the backbone: the expression/control fusion, the
//! per-layer perturbation adapters and the expression decoder.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{activation::gelu, activation::leaky_relu, backend::Backend, Tensor};

use crate::linear;

const LEAKY_SLOPE: f64 = 0.01;

#[derive(Config, Debug)]
pub struct FusionLayerConfig {
    pub d_model: usize,
}

/// `Linear(2d,d) -> GELU(exact) -> Linear(d,d) -> LayerNorm(d)` (keys `fusion_layer.{0,2,3}`,
/// fields `layer_{0,2,3}`).
#[derive(Module, Debug)]
pub struct FusionLayer<B: Backend> {
    pub layer_0: Linear<B>,
    pub layer_2: Linear<B>,
    pub layer_3: LayerNorm<B>,
}

impl FusionLayerConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> FusionLayer<B> {
        let d = self.d_model;
        FusionLayer {
            layer_0: linear(2 * d, d, true, device),
            layer_2: linear(d, d, true, device),
            layer_3: LayerNormConfig::new(d).init(device),
        }
    }
}

impl<B: Backend> FusionLayer<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.layer_3
            .forward(self.layer_2.forward(gelu(self.layer_0.forward(x))))
    }
}

#[derive(Config, Debug)]
pub struct AdapterLayerConfig {
    pub d_model: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
}

/// `Linear(2d,d) -> LeakyReLU -> Dropout -> Linear(d,d) -> LeakyReLU`
/// (keys `adapter_layer.i.{0,3}`).
#[derive(Module, Debug)]
pub struct AdapterLayer<B: Backend> {
    pub layer_0: Linear<B>,
    pub layer_3: Linear<B>,
    pub dropout: Dropout,
}

impl AdapterLayerConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> AdapterLayer<B> {
        let d = self.d_model;
        AdapterLayer {
            layer_0: linear(2 * d, d, true, device),
            layer_3: linear(d, d, true, device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl<B: Backend> AdapterLayer<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = self
            .dropout
            .forward(leaky_relu(self.layer_0.forward(x), LEAKY_SLOPE));
        leaky_relu(self.layer_3.forward(h), LEAKY_SLOPE)
    }
}

/// scDFM's expression decoder over `[h, pert_tokens]` (input `2 d_model`; scDFM always builds
/// it with `use_batch_labels = True`).
#[derive(Config, Debug)]
pub struct ExprDecoderConfig {
    pub d_model: usize,
}

/// `Linear(d_in,d) -> LeakyReLU -> Linear(d,d) -> LeakyReLU -> Linear(d,1)`, squeezed to
/// `(B, T)`; no output activation (keys `fc.{0,2,4}`).
#[derive(Module, Debug)]
pub struct ExprDecoder<B: Backend> {
    pub fc_0: Linear<B>,
    pub fc_2: Linear<B>,
    pub fc_4: Linear<B>,
}

impl ExprDecoderConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> ExprDecoder<B> {
        let d = self.d_model;
        ExprDecoder {
            fc_0: linear(2 * d, d, true, device),
            fc_2: linear(d, d, true, device),
            fc_4: linear(d, 1, true, device),
        }
    }
}

impl<B: Backend> ExprDecoder<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 2> {
        let [b, t, _] = x.dims();
        let h = leaky_relu(self.fc_0.forward(x), LEAKY_SLOPE);
        let h = leaky_relu(self.fc_2.forward(h), LEAKY_SLOPE);
        self.fc_4.forward(h).reshape([b, t])
    }
}
