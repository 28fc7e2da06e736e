//! AnnData (`.h5ad`) I/O and dataset handling for CCFM.
//!
//! HDF5 comes from the `hdf5-metno` crate built from its bundled source (no system library).
//! This crate will hold the readers and writers, dataset schemas, preprocessing, vocabularies,
//! co-expression masks and splits. Today it reads the layout of an `.h5ad` file
//! ([`h5ad::H5adSummary`], what `ccfm inspect` prints) and builds scDFM's co-expression
//! attention mask ([`coexpression`]) and its gene vocabulary ([`vocab`]).

pub mod anndata;
pub mod coexpression;
pub mod error;
pub mod h5ad;
pub mod vocab;

pub use anndata::{AnnData, Column, DataFrame, MatrixEncoding};
pub use coexpression::{coexpression_mask, CoexpressionConfig};
pub use error::DataError;
pub use h5ad::H5adSummary;
pub use vocab::{GeneVocab, VocabError};
