//! Model configuration.

use burn::config::Config;
use serde::{Deserialize, Serialize};

/// How a perturbation is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerturbationKind {
    /// CRISPR gene targets: gene tokens through the gene encoder, mean over the slots
    /// (scDFM's `perturbation_function = "crisper"`).
    Crispr,
    /// Drug labels: `BatchLabelEncoder` (embedding + LayerNorm), mean over the slots.
    Drug,
}

/// The expression model. Defaults are the architecture's (d_model 128, 8 heads, 4 layers).
#[derive(Config, Debug)]
pub struct CascadedFlowModelConfig {
    /// Vocabulary size: 4 specials + the genes (or drug labels).
    pub ntoken: usize,
    pub perturbation: PerturbationKind,
    #[config(default = 128)]
    pub d_model: usize,
    /// Heads of the differential attention blocks (the gene encoder always uses 8).
    #[config(default = 8)]
    pub nhead: usize,
    #[config(default = 4)]
    pub nlayers: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// The scGPT latent stream; `None` makes the model plain scDFM (`c = t_emb`, no latent
    /// embedder or head).
    #[config(default = "None")]
    pub latent: Option<LatentStreamConfig>,
}

/// The latent stream of CCFM (docs/model.md).
#[derive(Config, Debug)]
pub struct LatentStreamConfig {
    /// Width of the per-gene scGPT features.
    #[config(default = 512)]
    pub scgpt_dim: usize,
    /// `LatentEmbedder` bottleneck.
    #[config(default = 128)]
    pub bottleneck_dim: usize,
    /// AdaLN blocks in the latent decoder head.
    #[config(default = 2)]
    pub dh_depth: usize,
}
