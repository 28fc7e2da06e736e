//! AnnData (`.h5ad`) I/O and dataset handling for CCFM.
//!
//! HDF5 comes from the `hdf5-metno` crate built from its bundled source (no system library).
//!
//! - [`anndata`] reads `.h5ad` (obs/var dataframes, X or layers from dense/CSR/CSC storage,
//!   selecting cells and genes from sparse storage); [`writer`] writes it atomically;
//!   [`h5ad::H5adSummary`] is the bare layout.
//! - [`schema`] turns GEARS, PerturBench, figshare-Norman and ComboSciPlex layouts into one form;
//!   [`preprocess`] and [`dataset`] run the reference preprocessing (value checks, counts or
//!   log1p, `normalize_total`, seurat HVGs from [`hvg`], forced perturbed genes).
//! - [`split`] and [`sampler`] choose conditions and draw batches as scDFM does.
//! - [`vocab`] and [`coexpression`] are scDFM's gene vocabulary and attention mask.
//! - [`synth`] generates Norman-like and ComboSciPlex-like data with a known ground truth.

pub mod anndata;
pub mod blocks;
pub mod coexpression;
pub mod dataset;
pub mod error;
pub mod fs;
pub mod h5ad;
pub mod heapcheck;
pub mod hvg;
pub mod preprocess;
pub mod sampler;
pub mod schema;
pub mod split;
pub mod stream;
pub mod synth;
pub mod vocab;
pub mod writer;

pub use anndata::{AnnData, Column, CsrRows, DataFrame, MatrixEncoding};
pub use coexpression::{coexpression_mask, CoexpressionConfig};
pub use dataset::{
    prepare, PrepareOptions, PrepareReport, PreparedData, StorageReport, UnmeasuredPerturbations,
};
pub use error::DataError;
pub use h5ad::H5adSummary;
pub use hvg::{highly_variable_seurat, GeneMoments};
pub use preprocess::{TargetSum, ValueScale};
pub use sampler::{test_cases, SampledBatch, SamplerState, TestCase, TrainSampler};
pub use schema::{Condition, Perturbagen, PerturbationTable, Schema, SchemaOptions};
pub use split::{Split, SplitConfig, SplitMethod};
pub use stream::{Expression, MemoryBudget, StreamedMatrix};
pub use synth::{Preset, Size, SynthConfig, SynthData};
pub use vocab::{GeneVocab, VocabError};
pub use writer::{write_h5ad, AnnDataOut, MatrixOut, UnsValue};
