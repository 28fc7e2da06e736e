//! A Burn port of the scGPT encoder: vocabulary and `args.json` ([`config`]), checkpoint
//! loading from `best_model.pt` and `.safetensors` ([`checkpoint`]), the encoder itself
//! ([`model`], field names mirroring the checkpoint), scGPT's value binning ([`binning`])
//! `embed_data`'s tokenisation and embedding ([`embed`]), and the `FrozenScGPTExtractor`
//! that turns expression into CCFM's normalised per-gene latent ([`extractor`]).
//!
//! Reference: bowang-lab/scGPT (`scgpt/model/model.py`, `scgpt/tasks/cell_emb.py`); docs/scgpt.md.
//! Parity: `tools/gen_scgpt_fixture.py` (scgpt 0.2.4) ->
//! `tests/fixtures/scgpt/`.

pub mod binning;
pub mod checkpoint;
pub mod config;
pub mod embed;
pub mod error;
pub mod extractor;
pub mod model;

pub use binning::{bin_cell, quantile_edges, TieBreak};
pub use checkpoint::{load_weights, ScgptModel};
pub use config::{InputEmbStyle, ScgptArgs, ScgptVocab};
pub use embed::{embed_cells, tokenize, EmbedOptions, Embeddings, TokenBatch, TokenizeOptions};
pub use error::ScgptError;
pub use extractor::{ExtractorConfig, FeatureStats, FrozenScgptExtractor, Moments};
pub use model::{ScgptEncoder, ScgptEncoderConfig};
