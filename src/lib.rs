//! CCFM — Cascaded Conditioned Flow Matching for single-cell perturbation prediction.
//!
//! This root crate re-exports the workspace's library crates under short names and owns the
//! top-level examples, benches and end-to-end tests:
//!
//! | path | crate | what it holds |
//! |---|---|---|
//! | [`flow`] | `ccfm-flow` | probability paths, time samplers, noise, ODE solvers, MMD |
//! | [`layers`] | `ccfm-layers` | tensor layers (scDFM blocks, latent embedder/decoder) |
//! | [`scgpt`] | `ccfm-scgpt` | the scGPT encoder port and its checkpoints |
//! | [`data`] | `ccfm-data` | `.h5ad` I/O, schemas, preprocessing, splits |
//! | [`model`] | `ccfm-model` | `CascadedFlowModel` and `CascadedDenoiser` |
//! | [`eval`] | `ccfm-eval` | metrics, baselines, reports |
//! | [`train`] | `ccfm-train` | the training loop and checkpoints |
//!
//! Every tensor type is generic over a Burn backend; [`backend`] names the one this build was
//! compiled for (cargo features `flex` (default), `ndarray`, `wgpu`, `cuda`), for the examples,
//! benches and tests.

pub use ccfm_data as data;
pub use ccfm_eval as eval;
pub use ccfm_flow as flow;
pub use ccfm_layers as layers;
pub use ccfm_model as model;
pub use ccfm_scgpt as scgpt;
pub use ccfm_train as train;

pub mod backend;
pub mod cache;
