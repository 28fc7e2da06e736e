//! scGPT's `TransformerModel._encode`, field names mirroring the checkpoint keys:
//!
//! | checkpoint key | module |
//! |---|---|
//! | `encoder.embedding`, `encoder.enc_norm` | [`ScgptGeneEncoder`] |
//! | `value_encoder.{linear1,linear2,norm}` / `value_encoder.{embedding,enc_norm}` | [`ValueEncoder`] |
//! | `transformer_encoder.layers.{i}.self_attn.{Wqkv,out_proj}` | [`FlashMha`] |
//! | `transformer_encoder.layers.{i}.{linear1,linear2,norm1,norm2}` | [`EncoderLayer`] |
//!
//! `x = LN(Emb[gene]) + value_emb`, then post-norm layers
//! `x = LN1(x + MHA(x)); x = LN2(x + W2 relu(W1 x))` with padded keys masked out.
//! LayerNorm eps is 1e-5; dropout is absent (inference only).

#![allow(non_snake_case)] // `Wqkv` is the checkpoint's name.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

use crate::config::{InputEmbStyle, ScgptArgs};

const LN_EPS: f64 = 1e-5;
/// ContinuousValueEncoder's upper clamp (a constructor default, not in args.json).
pub const MAX_VALUE: f32 = 512.0;

fn layer_norm<B: Backend>(d: usize, device: &B::Device) -> LayerNorm<B> {
    LayerNormConfig::new(d).with_epsilon(LN_EPS).init(device)
}

/// Gene-token embedding and its LayerNorm.
#[derive(Module, Debug)]
pub struct ScgptGeneEncoder<B: Backend> {
    pub embedding: Embedding<B>,
    pub enc_norm: LayerNorm<B>,
}

impl<B: Backend> ScgptGeneEncoder<B> {
    pub fn forward(&self, genes: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.enc_norm.forward(self.embedding.forward(genes))
    }
}

/// The value encoder of the configured style; only that style's fields are present.
#[derive(Module, Debug)]
pub struct ValueEncoder<B: Backend> {
    pub linear1: Option<Linear<B>>,
    pub linear2: Option<Linear<B>>,
    pub norm: Option<LayerNorm<B>>,
    pub embedding: Option<Embedding<B>>,
    pub enc_norm: Option<LayerNorm<B>>,
}

impl<B: Backend> ValueEncoder<B> {
    /// `values (B, L)` to `(B, L, d)`; `None` for the scaling style (no parameters).
    pub fn forward(&self, values: Tensor<B, 2>) -> Option<Tensor<B, 3>> {
        if let (Some(l1), Some(l2), Some(norm)) = (&self.linear1, &self.linear2, &self.norm) {
            let x = values.clamp_max(MAX_VALUE).unsqueeze_dim::<3>(2);
            return Some(norm.forward(l2.forward(relu(l1.forward(x)))));
        }
        if let (Some(emb), Some(norm)) = (&self.embedding, &self.enc_norm) {
            return Some(norm.forward(emb.forward(values.int())));
        }
        None
    }
}

/// flash-attn's `FlashMHA` (and torch MHA): a fused `Wqkv` projection with rows
/// `[Q; K; V]`, scaled dot-product attention per head, `out_proj`.
#[derive(Module, Debug)]
pub struct FlashMha<B: Backend> {
    pub Wqkv: Linear<B>,
    pub out_proj: Linear<B>,
    pub n_heads: usize,
}

impl<B: Backend> FlashMha<B> {
    /// `x (B, L, d)`; `pad (B, L)` true where the key is padding.
    pub fn forward(&self, x: Tensor<B, 3>, pad: Tensor<B, 2, Bool>) -> Tensor<B, 3> {
        let [b, l, d] = x.dims();
        let (h, hd) = (self.n_heads, d / self.n_heads);
        let qkv = self.Wqkv.forward(x);
        let part = |i: usize| {
            qkv.clone()
                .narrow(2, i * d, d)
                .reshape([b, l, h, hd])
                .swap_dims(1, 2)
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let scores = q
            .mul_scalar(1.0 / (hd as f64).sqrt())
            .matmul(k.swap_dims(2, 3));
        let mask = pad
            .unsqueeze_dim::<3>(1)
            .unsqueeze_dim::<4>(1)
            .expand([b, h, l, l]);
        let attn = softmax(scores.mask_fill(mask, f32::NEG_INFINITY), 3);
        let ctx = attn.matmul(v).swap_dims(1, 2).reshape([b, l, d]);
        self.out_proj.forward(ctx)
    }
}

/// One post-norm encoder layer with a ReLU feed-forward.
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    pub self_attn: FlashMha<B>,
    pub linear1: Linear<B>,
    pub linear2: Linear<B>,
    pub norm1: LayerNorm<B>,
    pub norm2: LayerNorm<B>,
}

impl<B: Backend> EncoderLayer<B> {
    pub fn forward(&self, x: Tensor<B, 3>, pad: Tensor<B, 2, Bool>) -> Tensor<B, 3> {
        let x = self
            .norm1
            .forward(x.clone() + self.self_attn.forward(x, pad));
        let ff = self.linear2.forward(relu(self.linear1.forward(x.clone())));
        self.norm2.forward(x + ff)
    }
}

/// `transformer_encoder`: the stack of layers.
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    pub layers: Vec<EncoderLayer<B>>,
}

/// The sizes of an encoder.
#[derive(Config, Debug)]
pub struct ScgptEncoderConfig {
    pub ntoken: usize,
    pub d_model: usize,
    pub nhead: usize,
    pub d_hid: usize,
    pub nlayers: usize,
    /// 0 = continuous, 1 = category, 2 = scaling.
    #[config(default = 0)]
    pub input_emb_style: usize,
    /// Bins of the category style.
    #[config(default = 53)]
    pub n_input_bins: usize,
}

impl ScgptEncoderConfig {
    /// The sizes `args.json` and the vocabulary describe.
    pub fn from_args(args: &ScgptArgs, ntoken: usize) -> Self {
        Self::new(ntoken, args.embsize, args.nheads, args.d_hid, args.nlayers)
            .with_input_emb_style(match args.input_emb_style {
                InputEmbStyle::Continuous => 0,
                InputEmbStyle::Category => 1,
                InputEmbStyle::Scaling => 2,
            })
            .with_n_input_bins(args.n_bins + 2)
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> ScgptEncoder<B> {
        let d = self.d_model;
        let lin = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        let value_encoder = match self.input_emb_style {
            0 => ValueEncoder {
                linear1: Some(lin(1, d)),
                linear2: Some(lin(d, d)),
                norm: Some(layer_norm(d, device)),
                embedding: None,
                enc_norm: None,
            },
            1 => ValueEncoder {
                linear1: None,
                linear2: None,
                norm: None,
                embedding: Some(EmbeddingConfig::new(self.n_input_bins, d).init(device)),
                enc_norm: Some(layer_norm(d, device)),
            },
            _ => ValueEncoder {
                linear1: None,
                linear2: None,
                norm: None,
                embedding: None,
                enc_norm: None,
            },
        };
        ScgptEncoder {
            encoder: ScgptGeneEncoder {
                embedding: EmbeddingConfig::new(self.ntoken, d).init(device),
                enc_norm: layer_norm(d, device),
            },
            value_encoder,
            transformer_encoder: Encoder {
                layers: (0..self.nlayers)
                    .map(|_| EncoderLayer {
                        self_attn: FlashMha {
                            Wqkv: lin(d, 3 * d),
                            out_proj: lin(d, d),
                            n_heads: self.nhead,
                        },
                        linear1: lin(d, self.d_hid),
                        linear2: lin(self.d_hid, d),
                        norm1: layer_norm(d, device),
                        norm2: layer_norm(d, device),
                    })
                    .collect(),
            },
        }
    }
}

/// Every intermediate of one `_encode` call, for parity tests.
#[derive(Debug, Clone)]
pub struct EncodeTrace<B: Backend> {
    pub gene_emb: Tensor<B, 3>,
    pub value_emb: Option<Tensor<B, 3>>,
    pub total: Tensor<B, 3>,
    /// Output of each layer; the last is the encoder output.
    pub layers: Vec<Tensor<B, 3>>,
}

/// The scGPT encoder (the parts of `TransformerModel` that `_encode` uses).
#[derive(Module, Debug)]
pub struct ScgptEncoder<B: Backend> {
    pub encoder: ScgptGeneEncoder<B>,
    pub value_encoder: ValueEncoder<B>,
    pub transformer_encoder: Encoder<B>,
}

impl<B: Backend> ScgptEncoder<B> {
    /// `genes (B, L)` token ids, `values (B, L)`, `pad (B, L)` true at padding: the
    /// contextual embedding of every position, `(B, L, d)`. Rows at padded positions are
    /// not meaningful.
    pub fn forward(
        &self,
        genes: Tensor<B, 2, Int>,
        values: Tensor<B, 2>,
        pad: Tensor<B, 2, Bool>,
    ) -> Tensor<B, 3> {
        self.forward_traced(genes, values, pad)
            .layers
            .pop()
            .expect("at least one layer")
    }

    pub fn forward_traced(
        &self,
        genes: Tensor<B, 2, Int>,
        values: Tensor<B, 2>,
        pad: Tensor<B, 2, Bool>,
    ) -> EncodeTrace<B> {
        let gene_emb = self.encoder.forward(genes);
        let value_emb = self.value_encoder.forward(values.clone());
        let total = match &value_emb {
            Some(v) => gene_emb.clone() + v.clone(),
            None => gene_emb.clone() * values.unsqueeze_dim::<3>(2),
        };
        let mut x = total.clone();
        let mut layers = Vec::new();
        for layer in &self.transformer_encoder.layers {
            x = layer.forward(x, pad.clone());
            layers.push(x.clone());
        }
        EncodeTrace {
            gene_emb,
            value_emb,
            total,
            layers,
        }
    }
}
