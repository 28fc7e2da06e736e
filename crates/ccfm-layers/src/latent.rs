//! The latent stream of CCFM (new; not in scDFM): embedding the per-gene scGPT features into
//! the token stream and decoding the latent velocity back out.
//!
//! Checkpoint names: `LatentEmbedder.proj`, `LatentDecoder.dh_blocks` / `.final` (docs/model.md),
//! with `nn.Sequential` positions as `name_N` fields.

// Field names mirror the checkpoint's module names (`adaLN_modulation`, as in scDFM).
#![allow(non_snake_case)]

use burn::config::Config;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{
    activation::gelu, activation::silu, activation::softmax, backend::Backend, Tensor,
};

use crate::blocks::{adaln_residual, Mlp, MlpConfig};
use crate::linear;

#[derive(Config, Debug)]
pub struct LatentEmbedderConfig {
    #[config(default = 512)]
    pub scgpt_dim: usize,
    #[config(default = 128)]
    pub bottleneck_dim: usize,
    pub d_model: usize,
}

/// `Linear(scgpt_dim, bottleneck) -> GELU -> Linear(bottleneck, d_model)`, per token.
#[derive(Module, Debug)]
pub struct LatentEmbedder<B: Backend> {
    pub proj_0: Linear<B>,
    pub proj_2: Linear<B>,
}

impl LatentEmbedderConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> LatentEmbedder<B> {
        LatentEmbedder {
            proj_0: linear(self.scgpt_dim, self.bottleneck_dim, true, device),
            proj_2: linear(self.bottleneck_dim, self.d_model, true, device),
        }
    }
}

impl<B: Backend> LatentEmbedder<B> {
    /// `(B, T, scgpt_dim)` to `(B, T, d_model)`.
    pub fn forward(&self, z: Tensor<B, 3>) -> Tensor<B, 3> {
        self.proj_2.forward(gelu(self.proj_0.forward(z)))
    }
}

/// Standard multi-head self-attention with biased q/k/v/out projections.
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub out_proj: Linear<B>,
    pub num_heads: usize,
}

impl<B: Backend> SelfAttention<B> {
    pub fn new(d: usize, num_heads: usize, device: &B::Device) -> Self {
        assert_eq!(
            d % num_heads,
            0,
            "d_model must be divisible by the number of heads"
        );
        Self {
            q_proj: linear(d, d, true, device),
            k_proj: linear(d, d, true, device),
            v_proj: linear(d, d, true, device),
            out_proj: linear(d, d, true, device),
            num_heads,
        }
    }

    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, t, d] = x.dims();
        let (h, hd) = (self.num_heads, d / self.num_heads);
        let split = |y: Tensor<B, 3>| y.reshape([b, t, h, hd]).swap_dims(1, 2);
        let q = split(self.q_proj.forward(x.clone())).mul_scalar(1.0 / (hd as f64).sqrt());
        let k = split(self.k_proj.forward(x.clone()));
        let v = split(self.v_proj.forward(x));
        let a = softmax(q.matmul(k.swap_dims(2, 3)), 3);
        self.out_proj
            .forward(a.matmul(v).swap_dims(1, 2).reshape([b, t, d]))
    }
}

#[derive(Config, Debug)]
pub struct AdaLnBlockConfig {
    pub d_model: usize,
    pub num_heads: usize,
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
}

/// A DiT block conditioned on `c (B, d)`: adaLN (shift, scale, gate) around self-attention and
/// an MLP, with plain LayerNorms (eps 1e-6) as in scDFM's blocks.
#[derive(Module, Debug)]
pub struct AdaLnBlock<B: Backend> {
    pub attn: SelfAttention<B>,
    pub mlp: Mlp<B>,
    pub adaLN_modulation_1: Linear<B>,
}

impl AdaLnBlockConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> AdaLnBlock<B> {
        let d = self.d_model;
        AdaLnBlock {
            attn: SelfAttention::new(d, self.num_heads, device),
            mlp: MlpConfig::new(d, (d as f64 * self.mlp_ratio) as usize).init(device),
            adaLN_modulation_1: linear(d, 6 * d, true, device),
        }
    }
}

impl<B: Backend> AdaLnBlock<B> {
    pub fn forward(&self, x: Tensor<B, 3>, c: Tensor<B, 2>) -> Tensor<B, 3> {
        let modulation = self.adaLN_modulation_1.forward(silu(c));
        adaln_residual(x, modulation, |h| self.attn.forward(h), &self.mlp)
    }
}

#[derive(Config, Debug)]
pub struct LatentDecoderConfig {
    pub d_model: usize,
    #[config(default = 512)]
    pub scgpt_dim: usize,
    #[config(default = 2)]
    pub dh_depth: usize,
    #[config(default = 8)]
    pub num_heads: usize,
}

/// `dh_depth` [`AdaLnBlock`]s on `c`, then `LayerNorm -> Linear(d,d) -> GELU -> Linear(d, scgpt_dim)`.
#[derive(Module, Debug)]
pub struct LatentDecoder<B: Backend> {
    pub dh_blocks: Vec<AdaLnBlock<B>>,
    pub final_0: LayerNorm<B>,
    pub final_1: Linear<B>,
    pub final_3: Linear<B>,
}

impl LatentDecoderConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> LatentDecoder<B> {
        let d = self.d_model;
        LatentDecoder {
            dh_blocks: (0..self.dh_depth)
                .map(|_| AdaLnBlockConfig::new(d, self.num_heads).init(device))
                .collect(),
            final_0: LayerNormConfig::new(d).init(device),
            final_1: linear(d, d, true, device),
            final_3: linear(d, self.scgpt_dim, true, device),
        }
    }
}

impl<B: Backend> LatentDecoder<B> {
    /// Backbone output `(B, T, d)` and conditioning `c (B, d)` to `(B, T, scgpt_dim)`.
    pub fn forward(&self, h: Tensor<B, 3>, c: Tensor<B, 2>) -> Tensor<B, 3> {
        let mut x = h;
        for block in &self.dh_blocks {
            x = block.forward(x, c.clone());
        }
        self.final_3
            .forward(gelu(self.final_1.forward(self.final_0.forward(x))))
    }
}
