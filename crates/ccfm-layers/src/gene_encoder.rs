//! scDFM's `GeneEncoder` (gene-token embedding refined by a cross-attention over the whole
//! vocabulary, restricted by a co-expression mask) and `BatchLabelEncoder` (drug labels).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
};
use burn::tensor::{
    activation::gelu, activation::softmax, backend::Backend, Bool, Int, Tensor, TensorData,
};

use crate::linear;

/// Which vocabulary tokens a query token may attend to: row `r` is the query token id `r`,
/// column `m` the memory token id `m`; `true` = blocked (PyTorch's convention).
#[derive(Debug, Clone)]
pub struct CoexpressionMask<B: Backend> {
    blocked: Tensor<B, 2, Bool>,
}

impl<B: Backend> CoexpressionMask<B> {
    /// From a row-major `(m, m)` list of blocked flags.
    pub fn from_blocked(blocked: Vec<bool>, m: usize, device: &B::Device) -> Self {
        assert_eq!(blocked.len(), m * m, "mask must be {m} x {m}");
        Self {
            blocked: Tensor::from_data(TensorData::new(blocked, [m, m]), device),
        }
    }

    /// Number of vocabulary tokens `M` the memory holds.
    pub fn size(&self) -> usize {
        self.blocked.dims()[0]
    }

    pub fn blocked(&self) -> Tensor<B, 2, Bool> {
        self.blocked.clone()
    }
}

/// Multi-head attention with PyTorch's packed input projection (`in_proj_weight` (3d, d),
/// rows `[W_q; W_k; W_v]`, `in_proj_bias` (3d)) and an additive mask bias.
#[derive(Module, Debug)]
pub struct PackedMultiheadAttention<B: Backend> {
    pub in_proj_weight: Param<Tensor<B, 2>>,
    pub in_proj_bias: Param<Tensor<B, 1>>,
    pub out_proj: Linear<B>,
    pub dropout: Dropout,
    pub n_heads: usize,
}

impl<B: Backend> PackedMultiheadAttention<B> {
    pub fn new(d_model: usize, n_heads: usize, dropout: f64, device: &B::Device) -> Self {
        assert_eq!(d_model % n_heads, 0, "d_model must be divisible by n_heads");
        // PyTorch initialises the packed projection with xavier-uniform over (3d, d).
        let bound = (6.0 / (4 * d_model) as f64).sqrt();
        let w = Tensor::random(
            [3 * d_model, d_model],
            burn::tensor::Distribution::Uniform(-bound, bound),
            device,
        );
        Self {
            in_proj_weight: Param::from_tensor(w),
            in_proj_bias: Param::from_tensor(Tensor::zeros([3 * d_model], device)),
            out_proj: linear(d_model, d_model, true, device),
            dropout: DropoutConfig::new(dropout).init(),
            n_heads,
        }
    }

    fn project(&self, x: Tensor<B, 3>, which: usize) -> Tensor<B, 3> {
        let [_, d] = self.in_proj_weight.dims();
        let w = self
            .in_proj_weight
            .val()
            .slice([which * d..(which + 1) * d, 0..d]);
        let b = self.in_proj_bias.val().narrow(0, which * d, d);
        x.matmul(w.transpose().unsqueeze_dim(0)) + b.unsqueeze_dim::<2>(0).unsqueeze_dim(0)
    }

    /// `query (B, T, d)` attends to `memory (1 or B, M, d)` (keys = values = memory);
    /// `bias (T, M)` is added to the scores (0 = allowed, -inf = blocked).
    pub fn forward(
        &self,
        query: Tensor<B, 3>,
        memory: Tensor<B, 3>,
        bias: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 3> {
        let [b, t, d] = query.dims();
        let [bm, m, _] = memory.dims();
        let h = self.n_heads;
        let hd = d / h;
        let q = self
            .project(query, 0)
            .reshape([b, t, h, hd])
            .swap_dims(1, 2);
        let k = self
            .project(memory.clone(), 1)
            .reshape([bm, m, h, hd])
            .swap_dims(1, 2);
        let v = self
            .project(memory, 2)
            .reshape([bm, m, h, hd])
            .swap_dims(1, 2);
        let (k, v) = if bm == b {
            (k, v)
        } else {
            (k.expand([b, h, m, hd]), v.expand([b, h, m, hd]))
        };
        let mut scores = q
            .mul_scalar(1.0 / (hd as f64).sqrt())
            .matmul(k.swap_dims(2, 3));
        if let Some(bias) = bias {
            scores = scores + bias.unsqueeze_dim::<3>(0).unsqueeze_dim(0);
        }
        let attn = self.dropout.forward(softmax(scores, 3));
        let out = attn.matmul(v).swap_dims(1, 2).reshape([b, t, d]);
        self.out_proj.forward(out)
    }
}

/// scDFM's `CrossAttentionTransformerLayer`: pre-norm cross-attention (the memory is not
/// normalised) and a GELU (exact) feed-forward, each with a residual.
#[derive(Module, Debug)]
pub struct CrossAttentionLayer<B: Backend> {
    pub cross_attn: PackedMultiheadAttention<B>,
    pub norm1: LayerNorm<B>,
    pub linear1: Linear<B>,
    pub linear2: Linear<B>,
    pub norm2: LayerNorm<B>,
    pub dropout: Dropout,
}

impl<B: Backend> CrossAttentionLayer<B> {
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        memory: Tensor<B, 3>,
        bias: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 3> {
        let h = x.clone()
            + self
                .dropout
                .forward(self.cross_attn.forward(self.norm1.forward(x), memory, bias));
        let ff = self.linear2.forward(
            self.dropout
                .forward(gelu(self.linear1.forward(self.norm2.forward(h.clone())))),
        );
        h + self.dropout.forward(ff)
    }
}

#[derive(Config, Debug)]
pub struct GeneEncoderConfig {
    /// Vocabulary size (embedding rows).
    pub ntoken: usize,
    pub d_model: usize,
    /// scDFM's GeneEncoder always uses 8 heads, whatever the model's `nhead`.
    #[config(default = 8)]
    pub n_heads: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
}

/// `ids -> LayerNorm(Embedding(ids))`, refined by cross-attention over the memory
/// `LayerNorm(Embedding(0..M))` under the co-expression mask.
#[derive(Module, Debug)]
pub struct GeneEncoder<B: Backend> {
    pub embedding: Embedding<B>,
    pub enc_norm: LayerNorm<B>,
    pub perturbation_interaction: CrossAttentionLayer<B>,
}

impl GeneEncoderConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> GeneEncoder<B> {
        let d = self.d_model;
        GeneEncoder {
            embedding: EmbeddingConfig::new(self.ntoken, d).init(device),
            enc_norm: LayerNormConfig::new(d).init(device),
            perturbation_interaction: CrossAttentionLayer {
                cross_attn: PackedMultiheadAttention::new(d, self.n_heads, self.dropout, device),
                norm1: LayerNormConfig::new(d).init(device),
                linear1: linear(d, 4 * d, true, device),
                linear2: linear(4 * d, d, true, device),
                norm2: LayerNormConfig::new(d).init(device),
                dropout: DropoutConfig::new(self.dropout).init(),
            },
        }
    }
}

impl<B: Backend> GeneEncoder<B> {
    /// The memory: every vocabulary token `0..M`, embedded and normalised, `(1, M, d)`.
    pub fn memory(&self, m: usize, device: &B::Device) -> Tensor<B, 3> {
        let ids = Tensor::<B, 1, Int>::arange(0..m as i64, device).unsqueeze_dim::<2>(0);
        self.enc_norm.forward(self.embedding.forward(ids))
    }

    /// `ids (B, T)` to `(B, T, d)`. As in scDFM, the mask rows of **every** batch row come from
    /// `ids[0]`; the memory holds all `mask.size()` vocabulary tokens.
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: &CoexpressionMask<B>) -> Tensor<B, 3> {
        let device = ids.device();
        let [_, t] = ids.dims();
        let x = self.enc_norm.forward(self.embedding.forward(ids.clone()));
        let m = mask.size();
        let memory = self.memory(m, &device);
        let rows = ids.slice([0..1, 0..t]).reshape([t]);
        let blocked = mask.blocked().select(0, rows);
        let bias = Tensor::<B, 2>::zeros([t, m], &device).mask_fill(blocked, f32::NEG_INFINITY);
        self.perturbation_interaction.forward(x, memory, Some(bias))
    }

    /// The encoding of one row of ids `(T,)` to `(T, d)`: what [`Self::forward`] gives for each
    /// row when all rows are equal (gene tokens in training and inference), computed once.
    pub fn forward_shared(
        &self,
        ids: Tensor<B, 1, Int>,
        mask: &CoexpressionMask<B>,
    ) -> Tensor<B, 2> {
        let [t] = ids.dims();
        let d = self.embedding.weight.dims()[1];
        self.forward(ids.unsqueeze_dim(0), mask).reshape([t, d])
    }
}

#[derive(Config, Debug)]
pub struct BatchLabelEncoderConfig {
    pub ntoken: usize,
    pub d_model: usize,
}

/// `LayerNorm(Embedding(ids))`: scDFM's drug/label encoder.
#[derive(Module, Debug)]
pub struct BatchLabelEncoder<B: Backend> {
    pub embedding: Embedding<B>,
    pub enc_norm: LayerNorm<B>,
}

impl BatchLabelEncoderConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> BatchLabelEncoder<B> {
        BatchLabelEncoder {
            embedding: EmbeddingConfig::new(self.ntoken, self.d_model).init(device),
            enc_norm: LayerNormConfig::new(self.d_model).init(device),
        }
    }
}

impl<B: Backend> BatchLabelEncoder<B> {
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.enc_norm.forward(self.embedding.forward(ids))
    }
}
