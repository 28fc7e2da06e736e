//! Errors of the scGPT port; each names the file and the key or field.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ScgptError {
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("{path}: `{key}`: {detail}")]
    Config {
        path: PathBuf,
        key: String,
        detail: String,
    },
    #[error("{path}: parameter `{key}` is missing from the checkpoint")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path}: {}", .errors.join("; "))]
    Weights { path: PathBuf, errors: Vec<String> },
}
