//! Errors of training, prediction and the demo.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    /// A configuration problem: the source (file or `--set`), the key and what is wrong.
    #[error("{source_name}: `{key}`: {detail}")]
    Config {
        source_name: String,
        key: String,
        detail: String,
    },
    #[error("{}: {detail}", path.display())]
    Io { path: PathBuf, detail: String },
    /// A path given as a run directory is not one, or is damaged.
    #[error("{}: not a usable run directory: {detail}", path.display())]
    Run { path: PathBuf, detail: String },
    /// A checkpoint that does not fit the run's configuration.
    #[error("{}: checkpoint does not fit the configuration: {detail}", path.display())]
    Incompatible { path: PathBuf, detail: String },
    /// The loss became NaN or infinite.
    #[error(
        "the loss is not finite at step {step} ({detail}); training stopped. Last good checkpoint: {}",
        last_checkpoint.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none (no checkpoint was written yet)".into())
    )]
    NonFinite {
        step: usize,
        detail: String,
        last_checkpoint: Option<PathBuf>,
    },
    /// A checkpoint could not be written (a full disk, a file-size limit); the previous one
    /// is intact and `latest` still names it.
    #[error(
        "could not write the checkpoint of step {step} ({source}); training stopped. {}",
        match last_checkpoint {
            Some(p) => format!("The previous checkpoint {} is intact: free some space, then resume with `ccfm train --resume {}`", p.display(), run.display()),
            None => "No checkpoint was written yet: free some space and start again".into(),
        }
    )]
    CheckpointWrite {
        step: usize,
        run: PathBuf,
        source: Box<TrainError>,
        last_checkpoint: Option<PathBuf>,
    },
    /// A user request that cannot be met (e.g. an unknown condition).
    #[error("{0}")]
    Request(String),
    #[error(transparent)]
    Data(#[from] ccfm_data::DataError),
    #[error(transparent)]
    Scgpt(#[from] ccfm_scgpt::ScgptError),
    #[error(transparent)]
    Model(#[from] ccfm_model::ModelError),
    #[error(transparent)]
    Eval(#[from] ccfm_eval::EvalError),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, detail: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.into(),
            detail: detail.to_string(),
        }
    }
}
