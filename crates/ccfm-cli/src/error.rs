//! The binary's one error type: an error of a library below, or a message of the CLI's own.
//! `main` prints it on one line and exits with a failure code.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CliError {
    #[error(transparent)]
    Data(#[from] ccfm_data::DataError),
    #[error(transparent)]
    Eval(#[from] ccfm_eval::EvalError),
    #[error(transparent)]
    Flow(#[from] ccfm_flow::FlowError),
    #[error(transparent)]
    Scgpt(#[from] ccfm_scgpt::ScgptError),
    #[error(transparent)]
    Train(#[from] ccfm_train::TrainError),
    #[error(transparent)]
    Device(#[from] ccfm::backend::NoSuchDevice),
    /// A request the CLI itself refuses (arguments that do not fit together, a missing file).
    #[error("{0}")]
    Message(String),
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        Self::Message(message)
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> Self {
        Self::Message(message.to_string())
    }
}

impl CliError {
    /// The error on one line (errors of the libraries below, TOML's or the weights', can span
    /// several).
    pub fn one_line(&self) -> String {
        let message = self.to_string();
        let parts: Vec<&str> = message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        parts.join("; ")
    }
}

/// What every subcommand returns.
pub type CliResult<T = ()> = Result<T, CliError>;
