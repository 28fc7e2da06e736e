//! The CCFM model.
//!
//! [`CascadedFlowModel`] is scDFM's expression model (gene encoder with the co-expression masked
//! cross-attention, two value encoders and their fusion, per-layer GeneadaLN + perturbation
//! adapter + differential perceiver block, expression decoder). With the latent stream off it
//! *is* scDFM, checked against the official modules to 1e-5.
//!
//! The latent stream (scGPT features embedded and added to the tokens, a second time embedder in
//! the conditioning, a latent decoder head) and the `CascadedDenoiser` are being added in the
//! issue "ccfm-layers + ccfm-model".

pub mod config;
pub mod model;

pub use config::{CascadedFlowModelConfig, PerturbationKind};
pub use model::{CascadedFlowModel, ModelTrace};
