//! The `CascadedFlowModel` (scDFM's expression stream plus the scGPT latent stream) and the
//! `CascadedDenoiser` (cascaded time sampling, losses, two-stage generation).
//!
//! Written and parity-tested in the issue "ccfm-layers + ccfm-model".
