//! `CascadedFlowModel`: the velocity network.

// Field names mirror scDFM's state-dict keys (`gene_adaLN`).
#![allow(non_snake_case)]

use burn::module::Module;
use burn::tensor::{backend::Backend, Int, Tensor};
use ccfm_layers::{
    AdapterLayer, AdapterLayerConfig, BatchLabelEncoder, BatchLabelEncoderConfig, CoexpressionMask,
    ContinuousValueEncoder, ContinuousValueEncoderConfig, DiffPerceiverBlock,
    DiffPerceiverBlockConfig, ExprDecoder, ExprDecoderConfig, FusionLayer, FusionLayerConfig,
    GeneEncoder, GeneEncoderConfig, GeneadaLN, GeneadaLNConfig, LatentDecoder, LatentDecoderConfig,
    LatentEmbedder, LatentEmbedderConfig, TimestepEmbedder, TimestepEmbedderConfig,
};

use crate::config::{CascadedFlowModelConfig, PerturbationKind};
use crate::error::ModelError;

/// The latent stream of CCFM: its own time embedder, the embedder of `z_t` into the tokens and
/// the latent velocity head. In the model's record its parameters sit under `latent.`
/// (`latent.latent_embedder.proj_0.weight`, ...).
#[derive(Module, Debug)]
pub struct LatentStream<B: Backend> {
    pub t_latent_embedder: TimestepEmbedder<B>,
    pub latent_embedder: LatentEmbedder<B>,
    pub latent_decoder: LatentDecoder<B>,
}

impl<B: Backend> LatentStream<B> {
    /// Width of the scGPT features the stream generates.
    pub fn dim(&self) -> usize {
        self.latent_embedder.proj_0.weight.dims()[0]
    }
}

/// The network. Field names are scDFM's state-dict keys (see `ccfm_layers::checkpoint`).
#[derive(Module, Debug)]
pub struct CascadedFlowModel<B: Backend> {
    pub t_embedder: TimestepEmbedder<B>,
    /// Drug-label encoder (scDFM builds it in both modes; only drugs use it).
    pub perturbation_embedder: BatchLabelEncoder<B>,
    pub fusion_layer: FusionLayer<B>,
    pub value_encoder_1: ContinuousValueEncoder<B>,
    pub value_encoder_2: ContinuousValueEncoder<B>,
    pub encoder: GeneEncoder<B>,
    pub blocks: Vec<DiffPerceiverBlock<B>>,
    pub gene_adaLN: Vec<GeneadaLN<B>>,
    pub adapter_layer: Vec<AdapterLayer<B>>,
    pub final_layer: ExprDecoder<B>,
    /// CRISPR (gene tokens through the gene encoder) or drug labels.
    #[module(skip)]
    pub perturbation: PerturbationKind,
    /// The latent stream (CCFM); `None` is plain scDFM.
    pub latent: Option<LatentStream<B>>,
}

/// The inputs of one velocity evaluation.
#[derive(Debug, Clone)]
pub struct FlowInput<B: Backend> {
    /// `(T,)` vocabulary ids of the T genes, shared by every cell of the batch (scDFM samples
    /// one gene subset per step), so the gene encoder runs once per call.
    pub gene_ids: Tensor<B, 1, Int>,
    /// `(B, T)` noisy state and `(B,)` its time.
    pub x_t: Tensor<B, 2>,
    pub t: Tensor<B, 1>,
    /// `(B, T)` control cells (the condition).
    pub ctrl: Tensor<B, 2>,
    /// `(B, S)` perturbation token ids (`control` token for an empty slot).
    pub pert_ids: Tensor<B, 2, Int>,
    /// The latent half (CCFM models only).
    pub latent: Option<LatentInput<B>>,
}

/// The latent half of a cascaded forward pass: the noisy scGPT features and their time.
#[derive(Debug, Clone)]
pub struct LatentInput<B: Backend> {
    /// `(B, T, scgpt_dim)`.
    pub z_t: Tensor<B, 3>,
    /// `(B,)`.
    pub t_latent: Tensor<B, 1>,
}

/// The network's outputs: `(B, T)` expression and, in CCFM, `(B, T, scgpt_dim)` latent.
#[derive(Debug, Clone)]
pub struct FlowOutput<B: Backend> {
    pub expr: Tensor<B, 2>,
    pub latent: Option<Tensor<B, 3>>,
}

/// What every velocity evaluation of one batch shares: none of it depends on the state `x_t`,
/// the time or the latent, so generation computes it once per batch
/// ([`CascadedFlowModel::context`]).
#[derive(Debug, Clone)]
pub struct FlowContext<B: Backend> {
    /// `(B, T, d)` gene embeddings (the gene encoder over the vocabulary), shared by the cells.
    pub genes: Tensor<B, 3>,
    /// `value_encoder_2(ctrl) + genes`: the control tokens, the blocks' memory.
    pub control: Tensor<B, 3>,
    /// `(B, d)` perturbation embedding and `(B, T, d)` its tokens.
    pub pert: Tensor<B, 2>,
    pub pert_tokens: Tensor<B, 3>,
}

/// One backbone layer's intermediate values: after GeneadaLN, after the adapter, after the block.
#[derive(Debug, Clone)]
pub struct LayerOutput<B: Backend> {
    pub adaln: Tensor<B, 3>,
    pub adapter: Tensor<B, 3>,
    pub block: Tensor<B, 3>,
}

impl CascadedFlowModelConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> CascadedFlowModel<B> {
        let d = self.d_model;
        let n = self.nlayers;
        let model = CascadedFlowModel {
            t_embedder: TimestepEmbedderConfig::new(d).init(device),
            perturbation_embedder: BatchLabelEncoderConfig::new(self.ntoken, d).init(device),
            fusion_layer: FusionLayerConfig::new(d).init(device),
            value_encoder_1: ContinuousValueEncoderConfig::new(d)
                .with_dropout(self.dropout)
                .init(device),
            value_encoder_2: ContinuousValueEncoderConfig::new(d)
                .with_dropout(self.dropout)
                .init(device),
            encoder: GeneEncoderConfig::new(self.ntoken, d)
                .with_dropout(self.dropout)
                .init(device),
            blocks: (0..n)
                .map(|i| {
                    DiffPerceiverBlockConfig::new(d, self.nhead, i)
                        .with_mlp_ratio(self.mlp_ratio)
                        .init(device)
                })
                .collect(),
            gene_adaLN: (0..n)
                .map(|_| GeneadaLNConfig::new(d).init(device))
                .collect(),
            adapter_layer: (0..n)
                .map(|_| {
                    AdapterLayerConfig::new(d)
                        .with_dropout(self.dropout)
                        .init(device)
                })
                .collect(),
            final_layer: ExprDecoderConfig::new(d).init(device),
            perturbation: self.perturbation,
            latent: self.latent.as_ref().map(|l| LatentStream {
                t_latent_embedder: TimestepEmbedderConfig::new(d).init(device),
                latent_embedder: LatentEmbedderConfig::new(d)
                    .with_scgpt_dim(l.scgpt_dim)
                    .with_bottleneck_dim(l.bottleneck_dim)
                    .init(device),
                latent_decoder: LatentDecoderConfig::new(d)
                    .with_scgpt_dim(l.scgpt_dim)
                    .with_dh_depth(l.dh_depth)
                    .with_num_heads(self.nhead)
                    .init(device),
            }),
        };
        ccfm_layers::materialize(model)
    }
}

impl<B: Backend> CascadedFlowModel<B> {
    /// The perturbation embedding `(B, d)`: the mean over the slots of `pert_ids (B, S)`.
    pub fn perturbation_embedding(
        &self,
        pert_ids: Tensor<B, 2, Int>,
        mask: &CoexpressionMask<B>,
    ) -> Tensor<B, 2> {
        let [b, _] = pert_ids.dims();
        let e = match self.perturbation {
            PerturbationKind::Crispr => self.encoder.forward(pert_ids, mask),
            PerturbationKind::Drug => self.perturbation_embedder.forward(pert_ids),
        };
        let d = e.dims()[2];
        e.mean_dim(1).reshape([b, d])
    }

    /// True when the model has the latent stream (CCFM), false in scDFM mode.
    pub fn has_latent(&self) -> bool {
        self.latent.is_some()
    }

    /// Width of the latent features, `None` in scDFM mode.
    pub fn latent_dim(&self) -> Option<usize> {
        self.latent.as_ref().map(LatentStream::dim)
    }

    /// The velocity (or data) prediction of either mode. `input.latent` must be given exactly
    /// when the model has a latent stream. In CCFM the latent tokens `LatentEmbedder(z_t)` are
    /// added to the fused expression tokens and `c = t_emb(t) + t_latent_emb(t_latent) +
    /// pert_emb`; in scDFM `c = t_emb(t)`.
    pub fn forward(
        &self,
        input: FlowInput<B>,
        mask: &CoexpressionMask<B>,
    ) -> Result<FlowOutput<B>, ModelError> {
        let ctx = self.context(input.gene_ids, input.ctrl, input.pert_ids, mask);
        self.forward_in(&ctx, input.x_t, input.t, input.latent)
    }

    /// The state-independent part of a forward pass for the cells of `ctrl (B, T)`.
    pub fn context(
        &self,
        gene_ids: Tensor<B, 1, Int>,
        ctrl: Tensor<B, 2>,
        pert_ids: Tensor<B, 2, Int>,
        mask: &CoexpressionMask<B>,
    ) -> FlowContext<B> {
        let [b, t] = ctrl.dims();
        let genes = self.gene_embedding(gene_ids, b, mask);
        let control = self.value_encoder_2.forward(ctrl) + genes.clone();
        let pert = self.perturbation_embedding(pert_ids, mask);
        FlowContext {
            pert_tokens: self.perturbation_tokens(pert.clone(), t),
            genes,
            control,
            pert,
        }
    }

    /// The forward pass at state `x_t (B, T)` and time `t (B,)` in a precomputed context.
    pub fn forward_in(
        &self,
        ctx: &FlowContext<B>,
        x_t: Tensor<B, 2>,
        t: Tensor<B, 1>,
        latent: Option<LatentInput<B>>,
    ) -> Result<FlowOutput<B>, ModelError> {
        let latent = match (&self.latent, latent) {
            (Some(stream), Some(l)) => Some((stream, l)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ModelError::Mode(
                    "a CCFM model needs its latent input (z_t, t_latent)",
                ))
            }
            (None, Some(_)) => {
                return Err(ModelError::Mode(
                    "a latent input was given to a scDFM model (no latent stream)",
                ))
            }
        };
        let (_, mut h) = self.fuse(ctx, x_t);
        let mut c = self.t_embedder.forward(t);
        if let Some((stream, l)) = &latent {
            h = h + stream.latent_embedder.forward(l.z_t.clone());
            c = c + stream.t_latent_embedder.forward(l.t_latent.clone()) + ctx.pert.clone();
        }
        for i in 0..self.blocks.len() {
            h = self.layer(i, ctx, h, &c).block;
        }
        let latent = latent.map(|(stream, _)| stream.latent_decoder.forward(h.clone(), c));
        let expr = self
            .final_layer
            .forward(self.decoder_input(h, ctx.pert_tokens.clone()));
        Ok(FlowOutput { expr, latent })
    }

    /// The `(B, T, d)` gene embeddings of `gene_ids (T,)`, shared by the `b` cells.
    pub fn gene_embedding(
        &self,
        gene_ids: Tensor<B, 1, Int>,
        b: usize,
        mask: &CoexpressionMask<B>,
    ) -> Tensor<B, 3> {
        let e = self.encoder.forward_shared(gene_ids, mask);
        let [t, d] = e.dims();
        e.unsqueeze_dim::<3>(0).expand([b, t, d])
    }

    /// The value tokens `value_encoder_1(x_t) + genes` and their fusion with the control tokens.
    pub fn fuse(&self, ctx: &FlowContext<B>, x_t: Tensor<B, 2>) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let value = self.value_encoder_1.forward(x_t) + ctx.genes.clone();
        let fused = self
            .fusion_layer
            .forward(Tensor::cat(vec![value.clone(), ctx.control.clone()], 2));
        (value, fused)
    }

    /// The perturbation embedding `(B, d)` repeated over the `t` tokens.
    pub fn perturbation_tokens(&self, pert: Tensor<B, 2>, t: usize) -> Tensor<B, 3> {
        let [b, d] = pert.dims();
        pert.unsqueeze_dim::<3>(1).expand([b, t, d])
    }

    /// Backbone layer `i` on the hidden tokens `h` under the conditioning `c (B, d)`.
    pub fn layer(
        &self,
        i: usize,
        ctx: &FlowContext<B>,
        h: Tensor<B, 3>,
        c: &Tensor<B, 2>,
    ) -> LayerOutput<B> {
        let adaln = self.gene_adaLN[i].forward(ctx.genes.clone(), h);
        let adapter = self.adapter_layer[i]
            .forward(Tensor::cat(vec![adaln.clone(), ctx.pert_tokens.clone()], 2));
        let block = self.blocks[i].forward(adapter.clone(), ctx.control.clone(), c.clone());
        LayerOutput {
            adaln,
            adapter,
            block,
        }
    }

    /// The expression decoder's input, `[h, pert_tokens]`.
    pub fn decoder_input(&self, h: Tensor<B, 3>, pert_tokens: Tensor<B, 3>) -> Tensor<B, 3> {
        Tensor::cat(vec![h, pert_tokens], 2)
    }
}
