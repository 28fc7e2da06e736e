//! Differential attention (`MultiheadDiffAttn` of scDFM's `blocks.py`).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{activation::softmax, backend::Backend, Distribution, Tensor};

use crate::linear;
use crate::norm::{RmsNorm, RmsNormConfig};

/// `lambda_init(depth) = 0.8 - 0.6 exp(-0.3 depth)`.
pub fn lambda_init(depth: usize) -> f64 {
    0.8 - 0.6 * (-0.3 * depth as f64).exp()
}

#[derive(Config, Debug)]
pub struct MultiheadDiffAttnConfig {
    pub embed_dim: usize,
    pub num_heads: usize,
    /// Block index; sets `lambda_init`.
    pub depth: usize,
    /// `true`: q1, q2 from the first argument and k1, k2 from the second. `false`: q1, k1 from
    /// the first and q2, k2 from the second. V always comes from the first.
    pub cross: bool,
    #[config(default = 1e-5)]
    pub rms_eps: f64,
}

/// `out = out_proj(concat_h(RMSNorm(A1 V - lambda A2 V) (1 - lambda_init)))` with
/// `lambda = exp(sum lq1*lk1) - exp(sum lq2*lk2) + lambda_init` shared by all heads.
#[derive(Module, Debug)]
pub struct MultiheadDiffAttn<B: Backend> {
    pub q_proj_1: Linear<B>,
    pub k_proj_1: Linear<B>,
    pub q_proj_2: Linear<B>,
    pub k_proj_2: Linear<B>,
    pub v_proj: Linear<B>,
    pub out_proj: Linear<B>,
    pub lambda_q1: Param<Tensor<B, 1>>,
    pub lambda_k1: Param<Tensor<B, 1>>,
    pub lambda_q2: Param<Tensor<B, 1>>,
    pub lambda_k2: Param<Tensor<B, 1>>,
    pub subln: RmsNorm<B>,
    pub num_heads: usize,
    pub lambda_init: f64,
    pub cross: bool,
}

impl MultiheadDiffAttnConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> MultiheadDiffAttn<B> {
        let d = self.embed_dim;
        assert_eq!(
            d % self.num_heads,
            0,
            "embed_dim must be divisible by num_heads"
        );
        let hd = d / self.num_heads;
        let lam =
            || Param::from_tensor(Tensor::random([hd], Distribution::Normal(0.0, 0.1), device));
        MultiheadDiffAttn {
            q_proj_1: linear(d, d, false, device),
            k_proj_1: linear(d, d, false, device),
            q_proj_2: linear(d, d, false, device),
            k_proj_2: linear(d, d, false, device),
            v_proj: linear(d, d, false, device),
            out_proj: linear(d, d, false, device),
            lambda_q1: lam(),
            lambda_k1: lam(),
            lambda_q2: lam(),
            lambda_k2: lam(),
            subln: RmsNormConfig::new(hd).with_eps(self.rms_eps).init(device),
            num_heads: self.num_heads,
            lambda_init: lambda_init(self.depth),
            cross: self.cross,
        }
    }
}

impl<B: Backend> MultiheadDiffAttn<B> {
    /// The scalar `lambda_full`, shape `(1,)`.
    pub fn lambda_full(&self) -> Tensor<B, 1> {
        let l1 = self.lambda_q1.val().mul(self.lambda_k1.val()).sum().exp();
        let l2 = self.lambda_q2.val().mul(self.lambda_k2.val()).sum().exp();
        (l1 - l2).add_scalar(self.lambda_init)
    }

    fn heads(&self, x: Tensor<B, 3>) -> Tensor<B, 4> {
        let [b, t, d] = x.dims();
        x.reshape([b, t, self.num_heads, d / self.num_heads])
            .swap_dims(1, 2)
    }

    /// `noisy_y (B, T, d)`, `x (B, T, d)` to `(B, T, d)`.
    pub fn forward(&self, noisy_y: Tensor<B, 3>, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, t, d] = noisy_y.dims();
        let hd = d / self.num_heads;
        let (q1, k1, q2, k2) = if self.cross {
            (
                self.q_proj_1.forward(noisy_y.clone()),
                self.k_proj_1.forward(x.clone()),
                self.q_proj_2.forward(noisy_y.clone()),
                self.k_proj_2.forward(x),
            )
        } else {
            (
                self.q_proj_1.forward(noisy_y.clone()),
                self.k_proj_1.forward(noisy_y.clone()),
                self.q_proj_2.forward(x.clone()),
                self.k_proj_2.forward(x),
            )
        };
        let v = self.heads(self.v_proj.forward(noisy_y));
        let scale = 1.0 / (hd as f64).sqrt();
        // The queries are scaled before the heads are split off: the same values, but a scalar
        // product over a contiguous tensor instead of a strided (B, H, T, hd) view.
        let a1 = softmax(
            self.heads(q1.mul_scalar(scale))
                .matmul(self.heads(k1).swap_dims(2, 3)),
            3,
        );
        let a2 = softmax(
            self.heads(q2.mul_scalar(scale))
                .matmul(self.heads(k2).swap_dims(2, 3)),
            3,
        );
        // (A1 - lambda A2) V computed as A1 V - lambda A2 V: two attentions sharing V.
        let lambda = self.lambda_full().reshape([1, 1, 1, 1]);
        let o = a1.matmul(v.clone()) - a2.matmul(v).mul(lambda);
        let o = self.subln.forward(o).mul_scalar(1.0 - self.lambda_init);
        self.out_proj.forward(o.swap_dims(1, 2).reshape([b, t, d]))
    }
}
