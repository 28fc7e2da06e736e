//! scDFM's `DifferentialTransformerBlock` and `DiffPerceiverBlock` (`model.py`).

// Field names mirror the checkpoint key `adaLN_modulation` (see `checkpoint`).
#![allow(non_snake_case)]

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{activation::silu, backend::Backend, Tensor};

use crate::activation::gelu_tanh;
use crate::adaln::{modulate, per_token};
use crate::diff_attn::{MultiheadDiffAttn, MultiheadDiffAttnConfig};
use crate::linear;
use crate::norm::layer_norm_plain;

#[derive(Config, Debug)]
pub struct MlpConfig {
    pub d_model: usize,
    pub d_hidden: usize,
}

/// timm's `Mlp`: `fc1 -> GELU(tanh approximation) -> fc2`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
}

impl MlpConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Mlp<B> {
        Mlp {
            fc1: linear(self.d_model, self.d_hidden, true, device),
            fc2: linear(self.d_hidden, self.d_model, true, device),
        }
    }
}

impl<B: Backend> Mlp<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.fc2.forward(gelu_tanh(self.fc1.forward(x)))
    }
}

/// The adaLN block body shared by the differential and the plain attention blocks: with the
/// six `(B, d)` vectors of `modulation (B, 6d)` in the order shift, scale, gate (attention) then
/// shift, scale, gate (MLP), and plain LayerNorms (eps 1e-6),
/// `y += gate_msa * attn(modulate(LN(y)))`, then `y += gate_mlp * mlp(modulate(LN(y)))`.
pub fn adaln_residual<B: Backend>(
    y: Tensor<B, 3>,
    modulation: Tensor<B, 2>,
    attn: impl FnOnce(Tensor<B, 3>) -> Tensor<B, 3>,
    mlp: &Mlp<B>,
) -> Tensor<B, 3> {
    let [shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp]: [Tensor<B, 2>; 6] =
        modulation.chunk(6, 1).try_into().expect("6 chunks");
    let t = y.dims()[1];
    let h = modulate(layer_norm_plain(y.clone(), 1e-6), shift_msa, scale_msa);
    let y = y + attn(h).mul(per_token(gate_msa, t));
    let h = modulate(layer_norm_plain(y.clone(), 1e-6), shift_mlp, scale_mlp);
    y + mlp.forward(h).mul(per_token(gate_mlp, t))
}

#[derive(Config, Debug)]
pub struct DifferentialTransformerBlockConfig {
    pub hidden_size: usize,
    pub num_heads: usize,
    pub depth: usize,
    pub cross: bool,
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
}

/// adaLN block around differential attention:
/// `y += gate_msa * attn(modulate(LN(y), shift_msa, scale_msa), x)`,
/// `y += gate_mlp * mlp(modulate(LN(y), shift_mlp, scale_mlp))`,
/// with the six `(B, d)` vectors from `Linear(d, 6d)(SiLU(c))` in that order and plain
/// LayerNorms (no affine, eps 1e-6). `x` enters the attention raw.
#[derive(Module, Debug)]
pub struct DifferentialTransformerBlock<B: Backend> {
    pub attn: MultiheadDiffAttn<B>,
    pub mlp: Mlp<B>,
    /// Checkpoint key `adaLN_modulation.1`.
    pub adaLN_modulation_1: Linear<B>,
}

impl DifferentialTransformerBlockConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> DifferentialTransformerBlock<B> {
        let d = self.hidden_size;
        DifferentialTransformerBlock {
            attn: MultiheadDiffAttnConfig::new(d, self.num_heads, self.depth, self.cross)
                .init(device),
            mlp: MlpConfig::new(d, (d as f64 * self.mlp_ratio) as usize).init(device),
            adaLN_modulation_1: linear(d, 6 * d, true, device),
        }
    }
}

impl<B: Backend> DifferentialTransformerBlock<B> {
    /// The raw adaLN vector `(B, 6d)` for conditioning `c (B, d)`.
    pub fn modulation(&self, c: Tensor<B, 2>) -> Tensor<B, 2> {
        self.adaLN_modulation_1.forward(silu(c))
    }

    pub fn forward(&self, y: Tensor<B, 3>, x: Tensor<B, 3>, c: Tensor<B, 2>) -> Tensor<B, 3> {
        adaln_residual(
            y,
            self.modulation(c),
            |h| self.attn.forward(h, x),
            &self.mlp,
        )
    }
}

#[derive(Config, Debug)]
pub struct DiffPerceiverBlockConfig {
    pub hidden_size: usize,
    pub num_heads: usize,
    pub depth: usize,
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
}

/// `y = diff_self_attn(y, y, c)` (built with `cross = true`: keys from the raw stream), then
/// `y = diff_cross_attn(y, h_c, c)` (built with `cross = false`: the second attention map is
/// among the control tokens). The names are scDFM's, kept for its checkpoints.
#[derive(Module, Debug)]
pub struct DiffPerceiverBlock<B: Backend> {
    pub diff_self_attn: DifferentialTransformerBlock<B>,
    pub diff_cross_attn: DifferentialTransformerBlock<B>,
}

impl DiffPerceiverBlockConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> DiffPerceiverBlock<B> {
        let dtb = |cross| {
            DifferentialTransformerBlockConfig::new(
                self.hidden_size,
                self.num_heads,
                self.depth,
                cross,
            )
            .with_mlp_ratio(self.mlp_ratio)
            .init(device)
        };
        DiffPerceiverBlock {
            diff_self_attn: dtb(true),
            diff_cross_attn: dtb(false),
        }
    }
}

impl<B: Backend> DiffPerceiverBlock<B> {
    /// `y (B,T,d)`, `h_c (B,T,d)` (the control-cell embedding), `c (B,d)`.
    pub fn forward(&self, y: Tensor<B, 3>, h_c: Tensor<B, 3>, c: Tensor<B, 2>) -> Tensor<B, 3> {
        let y = self.diff_self_attn.forward(y.clone(), y, c.clone());
        self.diff_cross_attn.forward(y, h_c, c)
    }

    /// Like [`Self::forward`], also returning the state after the first block.
    pub fn forward_with_intermediate(
        &self,
        y: Tensor<B, 3>,
        h_c: Tensor<B, 3>,
        c: Tensor<B, 2>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let mid = self.diff_self_attn.forward(y.clone(), y, c.clone());
        (self.diff_cross_attn.forward(mid.clone(), h_c, c), mid)
    }
}
