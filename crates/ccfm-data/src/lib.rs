//! AnnData (`.h5ad`) I/O and dataset handling for CCFM.
//!
//! HDF5 comes from the `hdf5-metno` crate built from its bundled source (no system library).
//! This crate will hold the readers and writers, dataset schemas, preprocessing, vocabularies,
//! co-expression masks and splits; today it reads the layout of an `.h5ad` file
//! ([`h5ad::H5adSummary`]), which is what `ccfm inspect` prints.

pub mod error;
pub mod h5ad;

pub use error::DataError;
pub use h5ad::H5adSummary;
