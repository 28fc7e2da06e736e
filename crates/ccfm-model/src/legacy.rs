//! The model as checkpoints of model layout 1 recorded it, before the latent stream became one
//! sub-module: the three latent parts as separate optional fields and a `crispr` flag. Loading
//! such a checkpoint goes through this type (`CascadedFlowModelV1::from(model)`, load the
//! record, `.into_model()`); the checkpoint keys (field names) are the same.

// Field names mirror scDFM's state-dict keys (`gene_adaLN`).
#![allow(non_snake_case)]

use burn::module::Module;
use burn::tensor::backend::Backend;
use ccfm_layers::{
    AdapterLayer, BatchLabelEncoder, ContinuousValueEncoder, DiffPerceiverBlock, ExprDecoder,
    FusionLayer, GeneEncoder, GeneadaLN, LatentDecoder, LatentEmbedder, TimestepEmbedder,
};

use crate::config::PerturbationKind;
use crate::model::{CascadedFlowModel, LatentStream};

/// The first layout of [`CascadedFlowModel`]'s record (same fields, same order).
#[derive(Module, Debug)]
pub struct CascadedFlowModelV1<B: Backend> {
    pub t_embedder: TimestepEmbedder<B>,
    pub perturbation_embedder: BatchLabelEncoder<B>,
    pub fusion_layer: FusionLayer<B>,
    pub value_encoder_1: ContinuousValueEncoder<B>,
    pub value_encoder_2: ContinuousValueEncoder<B>,
    pub encoder: GeneEncoder<B>,
    pub blocks: Vec<DiffPerceiverBlock<B>>,
    pub gene_adaLN: Vec<GeneadaLN<B>>,
    pub adapter_layer: Vec<AdapterLayer<B>>,
    pub final_layer: ExprDecoder<B>,
    pub crispr: bool,
    pub t_latent_embedder: Option<TimestepEmbedder<B>>,
    pub latent_embedder: Option<LatentEmbedder<B>>,
    pub latent_decoder: Option<LatentDecoder<B>>,
}

impl<B: Backend> From<CascadedFlowModel<B>> for CascadedFlowModelV1<B> {
    fn from(m: CascadedFlowModel<B>) -> Self {
        let (t_latent_embedder, latent_embedder, latent_decoder) = match m.latent {
            Some(l) => (
                Some(l.t_latent_embedder),
                Some(l.latent_embedder),
                Some(l.latent_decoder),
            ),
            None => (None, None, None),
        };
        Self {
            t_embedder: m.t_embedder,
            perturbation_embedder: m.perturbation_embedder,
            fusion_layer: m.fusion_layer,
            value_encoder_1: m.value_encoder_1,
            value_encoder_2: m.value_encoder_2,
            encoder: m.encoder,
            blocks: m.blocks,
            gene_adaLN: m.gene_adaLN,
            adapter_layer: m.adapter_layer,
            final_layer: m.final_layer,
            crispr: m.perturbation == PerturbationKind::Crispr,
            t_latent_embedder,
            latent_embedder,
            latent_decoder,
        }
    }
}

impl<B: Backend> CascadedFlowModelV1<B> {
    /// The model of the current layout (all three latent parts, or none, as built).
    pub fn into_model(self) -> CascadedFlowModel<B> {
        let latent = match (
            self.t_latent_embedder,
            self.latent_embedder,
            self.latent_decoder,
        ) {
            (Some(t_latent_embedder), Some(latent_embedder), Some(latent_decoder)) => {
                Some(LatentStream {
                    t_latent_embedder,
                    latent_embedder,
                    latent_decoder,
                })
            }
            _ => None,
        };
        CascadedFlowModel {
            t_embedder: self.t_embedder,
            perturbation_embedder: self.perturbation_embedder,
            fusion_layer: self.fusion_layer,
            value_encoder_1: self.value_encoder_1,
            value_encoder_2: self.value_encoder_2,
            encoder: self.encoder,
            blocks: self.blocks,
            gene_adaLN: self.gene_adaLN,
            adapter_layer: self.adapter_layer,
            final_layer: self.final_layer,
            perturbation: if self.crispr {
                PerturbationKind::Crispr
            } else {
                PerturbationKind::Drug
            },
            latent,
        }
    }
}
