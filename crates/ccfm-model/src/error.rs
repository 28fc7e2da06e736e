//! Errors of the model layer.

use ccfm_flow::FlowError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    /// A CCFM model (latent stream on) was given no scGPT target features.
    #[error(
        "the model has a latent stream: the batch needs `z_target` (B, T, scgpt_dim) features"
    )]
    MissingLatentTarget,
    /// A forward pass whose inputs do not fit the model's mode (scDFM or CCFM).
    #[error("{0}")]
    Mode(&'static str),
    /// Inputs whose shapes do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A tensor could not be read back from the device (a backend failure, not bad input).
    #[error("reading {what} back from the device: {detail}")]
    ReadBack { what: &'static str, detail: String },
    /// A setting out of range.
    #[error("invalid setting `{name}`: {detail}")]
    Config { name: &'static str, detail: String },
    #[error(transparent)]
    Flow(#[from] FlowError),
}
