//! AnnData (`.h5ad`) I/O and dataset handling for CCFM.
//!
//! HDF5 comes from the `hdf5-metno` crate built from its bundled source (no system library).
//! This crate will hold the readers and writers, dataset schemas, preprocessing, vocabularies,
//! co-expression masks and splits. Today: reading `.h5ad` ([`anndata`]; its layout alone,
//! [`h5ad::H5adSummary`], is what `ccfm inspect` prints), writing it ([`writer`]), scDFM's
//! co-expression attention mask ([`coexpression`]) and gene vocabulary ([`vocab`]).

pub mod anndata;
pub mod coexpression;
pub mod error;
pub mod h5ad;
pub mod hvg;
pub mod vocab;
pub mod writer;

pub use anndata::{AnnData, Column, CsrRows, DataFrame, MatrixEncoding};
pub use coexpression::{coexpression_mask, CoexpressionConfig};
pub use error::DataError;
pub use h5ad::H5adSummary;
pub use hvg::{highly_variable_seurat, GeneMoments};
pub use vocab::{GeneVocab, VocabError};
pub use writer::{write_h5ad, AnnDataOut, MatrixOut, UnsValue};
