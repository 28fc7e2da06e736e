//! Training, prediction and the demo of CCFM.
//!
//! - [`config`]: the run configuration (TOML sections, did-you-mean errors, `--set`).
//! - [`experiment`]: data, split, vocabulary, mask and model settings from a configuration.
//! - [`schedule`], [`optim`], [`ema`]: learning rate, Adam/AdamW, weight averaging.
//! - [`checkpoint`]: run directories and atomic checkpoints.
//! - [`train`]: the [`Trainer`] (step, validation, checkpoint), with exact resumption.
//! - [`distributed`]: data-parallel training ([`distributed::GradSync`], MPI with `mpi`).
//! - [`events`]: what a run reports to its observer ([`TrainEvent`]).
//! - [`generate`]: generating cells and validation metrics.
//! - [`predict`]: predicted and real cells as `.h5ad`.
//! - [`report`]: runs predicted, evaluated and compared on one page (`ccfm report`).
//! - [`demo`]: the one-command demonstration on synthetic data.
//!
//! Everything is generic over the Burn backend; training needs an autodiff backend.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod demo;
pub mod distributed;
pub mod ema;
pub mod error;
pub mod events;
pub mod experiment;
pub mod generate;
pub mod optim;
pub mod predict;
pub mod report;
pub mod schedule;
pub mod train;

pub use checkpoint::{CheckpointState, RunDir};
pub use config::RunConfig;
pub use error::TrainError;
pub use events::{StepStats, StopReason, TrainEvent};
pub use experiment::Experiment;
pub use predict::{predict, predict_with_progress, PredictOptions, PredictSummary};
pub use report::{report_runs, EvaluatedRun, Pipeline, ReportSummary};
pub use schedule::LrSchedule;
pub use train::{train_new, train_resume, StepBatch, TrainOptions, TrainSummary, Trainer};
