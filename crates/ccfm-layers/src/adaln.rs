//! Adaptive LayerNorm pieces: scDFM's per-gene `GeneadaLN` and DiT's `modulate`.

// Field names mirror the checkpoint key `adaLN_modulation` (see `checkpoint`).
#![allow(non_snake_case)]

use burn::config::Config;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{activation::silu, backend::Backend, Tensor};

use crate::linear;

/// `x * (1 + scale) + shift` with per-sample `shift`, `scale` of shape `(B, d)` broadcast over
/// the tokens of `x (B, T, d)`.
pub fn modulate<B: Backend>(
    x: Tensor<B, 3>,
    shift: Tensor<B, 2>,
    scale: Tensor<B, 2>,
) -> Tensor<B, 3> {
    let t = x.dims()[1];
    x * per_token(scale + 1.0, t) + per_token(shift, t)
}

/// A per-sample vector `(B, d)` repeated over `t` tokens into a contiguous `(B, t, d)`. A
/// broadcast `(B, 1, d)` operand would be cheaper to build, but the CPU backend multiplies by
/// it element by element through a strided index (its vectorised paths take a row shared by
/// all samples, or a scalar per row, not a row per sample): repeating the small operand once is
/// faster than that (10% of a SMALL training step went to those strided walks).
pub fn per_token<B: Backend>(v: Tensor<B, 2>, t: usize) -> Tensor<B, 3> {
    v.unsqueeze_dim::<3>(1).repeat_dim(1, t)
}

#[derive(Config, Debug)]
pub struct GeneadaLNConfig {
    pub d_model: usize,
}

/// Per-token modulation by the gene embedding:
/// `[shift, gate, scale] = Linear(d,3d)(SiLU(gene_emb))`, `x + gate * (LN(x) * scale + shift)`.
#[derive(Module, Debug)]
pub struct GeneadaLN<B: Backend> {
    pub norm: LayerNorm<B>,
    /// Checkpoint key `adaLN_modulation.1` (index 0 is the SiLU).
    pub adaLN_modulation_1: Linear<B>,
}

impl GeneadaLNConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> GeneadaLN<B> {
        GeneadaLN {
            norm: LayerNormConfig::new(self.d_model).init(device),
            adaLN_modulation_1: linear(self.d_model, 3 * self.d_model, true, device),
        }
    }
}

impl<B: Backend> GeneadaLN<B> {
    /// `gene_emb`, `x`: `(B, T, d)`.
    pub fn forward(&self, gene_emb: Tensor<B, 3>, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let m = self.adaLN_modulation_1.forward(silu(gene_emb));
        let [shift, gate, scale]: [Tensor<B, 3>; 3] = m.chunk(3, 2).try_into().expect("3 chunks");
        x.clone() + gate.mul(self.norm.forward(x).mul(scale) + shift)
    }
}
