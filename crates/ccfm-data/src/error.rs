//! Errors of the data layer. Every variant names the file and, where it applies, the HDF5 path.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataError {
    /// The file does not exist.
    #[error("{path}: no such file")]
    NotFound { path: PathBuf },
    /// The file is unreadable or not HDF5.
    #[error("cannot open {path}: {source}. Check the path; an .h5ad file is written by anndata's `write_h5ad`.")]
    Open {
        path: PathBuf,
        #[source]
        source: hdf5::Error,
    },
    /// A group or dataset the AnnData layout requires is absent.
    #[error("{path}: missing `{field}` ({hint})")]
    Missing {
        path: PathBuf,
        field: String,
        hint: &'static str,
    },
    /// An element is stored with an encoding this version does not read.
    #[error("{path}: `{field}` has encoding-type `{encoding}`, which is not supported (supported: {supported}); re-save it with anndata >= 0.8")]
    UnsupportedEncoding {
        path: PathBuf,
        field: String,
        encoding: String,
        supported: &'static str,
    },
    /// A field exists but its content is not what the layout says.
    #[error("{path}: `{field}` is malformed: {detail}")]
    Malformed {
        path: PathBuf,
        field: String,
        detail: String,
    },
    /// The file is readable but its content cannot be used; `fix` says what to change.
    #[error("{path}: {problem}. Fix: {fix}")]
    Invalid {
        path: PathBuf,
        problem: String,
        fix: String,
    },
    /// A file next to the data (split, cache) could not be read or written.
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
}
