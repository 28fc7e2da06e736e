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
    pub crispr: bool,
    /// Latent stream (CCFM): its own time embedder, the embedder of `z_t` into the tokens and
    /// the latent velocity head. All `None` in scDFM mode.
    pub t_latent_embedder: Option<TimestepEmbedder<B>>,
    pub latent_embedder: Option<LatentEmbedder<B>>,
    pub latent_decoder: Option<LatentDecoder<B>>,
}

/// The latent half of a cascaded forward pass: the noisy scGPT features and their time.
#[derive(Debug, Clone)]
pub struct LatentInput<B: Backend> {
    /// `(B, T, scgpt_dim)`.
    pub z_t: Tensor<B, 3>,
    /// `(B,)`.
    pub t_latent: Tensor<B, 1>,
}

/// Intermediate values of one forward pass, for inspection and parity tests.
#[derive(Debug, Clone, Default)]
pub struct ModelTrace<B: Backend> {
    pub gene_emb: Option<Tensor<B, 3>>,
    pub value_emb_1: Option<Tensor<B, 3>>,
    pub value_emb_2: Option<Tensor<B, 3>>,
    pub fusion: Option<Tensor<B, 3>>,
    pub t_emb: Option<Tensor<B, 2>>,
    pub pert_emb: Option<Tensor<B, 2>>,
    /// Per layer: after GeneadaLN, after the adapter, after the block.
    pub layers: Vec<[Tensor<B, 3>; 3]>,
    pub decoder_in: Option<Tensor<B, 3>>,
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
            crispr: self.perturbation == PerturbationKind::Crispr,
            t_latent_embedder: self
                .latent
                .as_ref()
                .map(|_| TimestepEmbedderConfig::new(d).init(device)),
            latent_embedder: self.latent.as_ref().map(|l| {
                LatentEmbedderConfig::new(d)
                    .with_scgpt_dim(l.scgpt_dim)
                    .with_bottleneck_dim(l.bottleneck_dim)
                    .init(device)
            }),
            latent_decoder: self.latent.as_ref().map(|l| {
                LatentDecoderConfig::new(d)
                    .with_scgpt_dim(l.scgpt_dim)
                    .with_dh_depth(l.dh_depth)
                    .with_num_heads(self.nhead)
                    .init(device)
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
        let e = if self.crispr {
            self.encoder.forward(pert_ids, mask)
        } else {
            self.perturbation_embedder.forward(pert_ids)
        };
        let d = e.dims()[2];
        e.mean_dim(1).reshape([b, d])
    }

    /// True when the model has the latent stream (CCFM), false in scDFM mode.
    pub fn has_latent(&self) -> bool {
        self.latent_decoder.is_some()
    }

    /// scDFM's `predict_y` velocity `(B, T)`; in CCFM mode see [`Self::forward_cascaded`].
    ///
    /// * `gene_ids (T,)`: the vocabulary ids of the T genes, shared by every cell of the batch
    ///   (scDFM samples one gene subset per step), so the gene encoder runs once per call;
    /// * `x_t (B, T)`: the noisy state; `t (B,)`: its time;
    /// * `ctrl (B, T)`: the control cells (the condition);
    /// * `pert_ids (B, S)`: perturbation token ids (`control` token for an empty slot).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        gene_ids: Tensor<B, 1, Int>,
        x_t: Tensor<B, 2>,
        t: Tensor<B, 1>,
        ctrl: Tensor<B, 2>,
        pert_ids: Tensor<B, 2, Int>,
        mask: &CoexpressionMask<B>,
    ) -> Tensor<B, 2> {
        self.forward_traced(gene_ids, x_t, t, ctrl, pert_ids, None, mask, None)
            .0
    }

    /// The cascaded forward pass: `(v_expr (B, T), v_latent (B, T, scgpt_dim))`.
    /// The latent tokens `LatentEmbedder(z_t)` are added to the fused expression tokens, and
    /// `c = t_emb(t_expr) + t_latent_emb(t_latent) + pert_emb`.
    ///
    /// Panics in scDFM mode (no latent stream).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_cascaded(
        &self,
        gene_ids: Tensor<B, 1, Int>,
        x_t: Tensor<B, 2>,
        t_expr: Tensor<B, 1>,
        latent: LatentInput<B>,
        ctrl: Tensor<B, 2>,
        pert_ids: Tensor<B, 2, Int>,
        mask: &CoexpressionMask<B>,
    ) -> (Tensor<B, 2>, Tensor<B, 3>) {
        assert!(
            self.has_latent(),
            "forward_cascaded needs a model built with a latent stream"
        );
        let (v, z) = self.forward_traced(
            gene_ids,
            x_t,
            t_expr,
            ctrl,
            pert_ids,
            Some(latent),
            mask,
            None,
        );
        (v, z.expect("latent head present"))
    }

    /// The forward pass of either mode, recording intermediate values into `trace` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_traced(
        &self,
        gene_ids: Tensor<B, 1, Int>,
        x_t: Tensor<B, 2>,
        t: Tensor<B, 1>,
        ctrl: Tensor<B, 2>,
        pert_ids: Tensor<B, 2, Int>,
        latent: Option<LatentInput<B>>,
        mask: &CoexpressionMask<B>,
        mut trace: Option<&mut ModelTrace<B>>,
    ) -> (Tensor<B, 2>, Option<Tensor<B, 3>>) {
        let [b, t_len] = x_t.dims();
        let gene_emb = self.encoder.forward_shared(gene_ids, mask);
        let d = gene_emb.dims()[1];
        let gene_emb = gene_emb.unsqueeze_dim::<3>(0).expand([b, t_len, d]);
        let v1 = self.value_encoder_1.forward(x_t) + gene_emb.clone();
        let h_c = self.value_encoder_2.forward(ctrl) + gene_emb.clone();
        let mut h = self
            .fusion_layer
            .forward(Tensor::cat(vec![v1.clone(), h_c.clone()], 2));
        let t_emb = self.t_embedder.forward(t);
        let pert = self.perturbation_embedding(pert_ids, mask);
        let pert_tokens = pert.clone().unsqueeze_dim::<3>(1).expand([b, t_len, d]);
        if let Some(tr) = trace.as_deref_mut() {
            tr.gene_emb = Some(gene_emb.clone());
            tr.value_emb_1 = Some(v1);
            tr.value_emb_2 = Some(h_c.clone());
            tr.fusion = Some(h.clone());
            tr.t_emb = Some(t_emb.clone());
            tr.pert_emb = Some(pert.clone());
        }
        let c = match (&latent, &self.t_latent_embedder, &self.latent_embedder) {
            (Some(l), Some(t_lat), Some(embed)) => {
                h = h + embed.forward(l.z_t.clone());
                t_emb + t_lat.forward(l.t_latent.clone()) + pert
            }
            (None, None, None) => t_emb,
            (Some(_), _, _) => {
                panic!("a latent input was given to a model without a latent stream")
            }
            (None, _, _) => panic!("a CCFM model needs its latent input (z_t, t_latent)"),
        };
        for ((ada, adapter), block) in self
            .gene_adaLN
            .iter()
            .zip(&self.adapter_layer)
            .zip(&self.blocks)
        {
            let a = ada.forward(gene_emb.clone(), h);
            let p = adapter.forward(Tensor::cat(vec![a.clone(), pert_tokens.clone()], 2));
            h = block.forward(p.clone(), h_c.clone(), c.clone());
            if let Some(tr) = trace.as_deref_mut() {
                tr.layers.push([a, p, h.clone()]);
            }
        }
        let v_latent = self
            .latent_decoder
            .as_ref()
            .map(|dec| dec.forward(h.clone(), c.clone()));
        let decoder_in = Tensor::cat(vec![h, pert_tokens], 2);
        if let Some(tr) = trace {
            tr.decoder_in = Some(decoder_in.clone());
        }
        (self.final_layer.forward(decoder_in), v_latent)
    }
}
