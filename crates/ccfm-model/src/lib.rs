//! The CCFM model.
//!
//! [`CascadedFlowModel`] is scDFM's expression model (gene encoder with the co-expression masked
//! cross-attention, two value encoders and their fusion, per-layer GeneadaLN + perturbation
//! adapter + differential perceiver block, expression decoder). With the latent stream off it
//! *is* scDFM, checked against the official modules to 1e-5.
//!
//! With the latent stream on (CCFM), `LatentEmbedder(z_t)` is added to the fused expression
//! tokens, the conditioning becomes `c = t_expr_emb + t_latent_emb + pert_emb`, and a
//! `LatentDecoder` head predicts the latent velocity. [`CascadedDenoiser`] holds the training
//! objective (cascaded times, masked losses, MMD) and the two-stage sampler.

pub mod config;
pub mod denoiser;
pub mod error;
pub mod legacy;
pub mod model;

pub use config::{CascadedFlowModelConfig, LatentStreamConfig, PerturbationKind};
pub use denoiser::{
    CascadedDenoiser, DenoiserConfig, Generated, GenerationInput, GenerationNoise, LossParts,
    ObjectiveConfig, Prediction, SamplerConfig, StepNoise, TrainBatch,
};
pub use error::ModelError;
pub use model::{
    CascadedFlowModel, FlowContext, FlowInput, FlowOutput, LatentInput, LatentStream, LayerOutput,
};
