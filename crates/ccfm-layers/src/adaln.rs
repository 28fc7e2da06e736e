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

/// `linear(x)` restricted to its output columns `cols`: `x · W[:, cols] + b[cols]`.
pub fn output_columns<B: Backend, const D: usize>(
    linear: &Linear<B>,
    x: Tensor<B, D>,
    cols: std::ops::Range<usize>,
) -> Tensor<B, D> {
    let d_in = linear.weight.dims()[0];
    let w = linear.weight.val().slice([0..d_in, cols.clone()]);
    let b = linear.bias.as_ref().map(|b| b.val().slice([cols]));
    burn::tensor::module::linear(x, w, b)
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
        let h = silu(gene_emb);
        let d = self.adaLN_modulation_1.weight.dims()[1] / 3;
        // Three products over the weight's column blocks rather than one split afterwards:
        // each part comes out contiguous, so the element-wise ops below take the CPU
        // backend's vectorised paths instead of walking a (B, T, 3d) view with strides.
        let part =
            |i: usize| output_columns(&self.adaLN_modulation_1, h.clone(), i * d..(i + 1) * d);
        let (shift, gate, scale) = (part(0), part(1), part(2));
        x.clone() + gate.mul(self.norm.forward(x).mul(scale) + shift)
    }
}
