//! Run directories and checkpoints.
//!
//! ```text
//! RUN/config.toml        the resolved configuration (every field)
//! RUN/split.json         the split's condition lists
//! RUN/vocab.json         the model's token vocabulary
//! RUN/log.jsonl          one JSON object per logged step and per validation
//! RUN/checkpoints/latest the name of the newest complete checkpoint
//! RUN/checkpoints/step-00001000/
//!     model.bin          weights (Burn bincode record, full precision)
//!     ema.bin            EMA weights (when train.ema_decay > 0)
//!     optimizer.bin      optimiser moments and step counts
//!     config.toml        the resolved configuration (as RUN/config.toml)
//!     state.json         step, schedule, sampler and extractor RNG positions, extractor
//!                        statistics, the model settings the weights belong to
//! ```
//!
//! A checkpoint is written into a temporary directory and renamed into place, then `latest` is
//! replaced atomically, so a run killed at any moment leaves only complete checkpoints.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::TrainError;

pub const CONFIG_FILE: &str = "config.toml";
pub const LOG_FILE: &str = "log.jsonl";

/// What a checkpoint holds besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Completed optimiser steps.
    pub step: usize,
    /// Steps of the whole run.
    pub steps: usize,
    /// Learning rate of the next step.
    pub next_lr: f64,
    pub optimizer: String,
    pub sampler_seed: u64,
    /// The sampler's stream position (a u128, as a decimal string).
    pub sampler_position: String,
    /// The extractor's tie-break stream position (CCFM runs).
    pub extractor_position: Option<String>,
    /// The extractor's feature statistics (CCFM runs).
    pub extractor_stats: Option<serde_json::Value>,
    /// The model settings the weights belong to.
    pub model_config: serde_json::Value,
    pub has_ema: bool,
    /// Total loss of the last step.
    pub last_loss: f64,
}

impl CheckpointState {
    /// Refuse the checkpoint in `dir` unless its weights belong to the model `expected` (the
    /// serialised model settings that the run's configuration and data give).
    pub fn check_model(&self, expected: &serde_json::Value, dir: &Path) -> Result<(), TrainError> {
        if &self.model_config == expected {
            return Ok(());
        }
        Err(TrainError::Incompatible {
            path: dir.to_path_buf(),
            detail: format!(
                "its weights are of a model {} but the run's {CONFIG_FILE} and data give {}",
                self.model_config, expected
            ),
        })
    }
}

/// The record of a module as bytes.
pub fn module_bytes<B: Backend, M: Module<B>>(module: M) -> Vec<u8> {
    let rec = BinBytesRecorder::<FullPrecisionSettings>::default();
    Recorder::<B>::record(&rec, module.into_record(), ()).expect("in-memory record")
}

/// Load weights written by [`module_bytes`] into `module`.
pub fn load_module<B: Backend, M: Module<B>>(
    module: M,
    bytes: Vec<u8>,
    device: &B::Device,
    path: &Path,
) -> Result<M, TrainError> {
    let rec = BinBytesRecorder::<FullPrecisionSettings>::default();
    let record =
        Recorder::<B>::load(&rec, bytes, device).map_err(|e| TrainError::Incompatible {
            path: path.to_path_buf(),
            detail: format!("the weights do not decode for this model ({e})"),
        })?;
    Ok(module.load_record(record))
}

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    /// Open an existing run directory (it must hold `config.toml`).
    pub fn open(path: &Path) -> Result<Self, TrainError> {
        if !path.is_dir() {
            return Err(TrainError::Run {
                path: path.to_path_buf(),
                detail: "no such directory; pass the --out directory of `ccfm train`".into(),
            });
        }
        if !path.join(CONFIG_FILE).is_file() {
            return Err(TrainError::Run {
                path: path.to_path_buf(),
                detail: format!(
                    "it has no {CONFIG_FILE}; pass the --out directory of `ccfm train`"
                ),
            });
        }
        Ok(Self::new(path))
    }

    pub fn config(&self) -> Result<RunConfig, TrainError> {
        RunConfig::read(&self.path.join(CONFIG_FILE), &[])
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    pub fn log(&self) -> PathBuf {
        self.path.join(LOG_FILE)
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> Result<Option<PathBuf>, TrainError> {
        let latest = self.checkpoints().join("latest");
        if !latest.exists() {
            return Ok(None);
        }
        let name = std::fs::read_to_string(&latest).map_err(|e| TrainError::io(&latest, e))?;
        let dir = self.checkpoints().join(name.trim());
        if !dir.join("state.json").is_file() {
            return Err(TrainError::Run {
                path: self.path.clone(),
                detail: format!(
                    "checkpoints/latest names `{}`, which is missing or incomplete",
                    name.trim()
                ),
            });
        }
        Ok(Some(dir))
    }

    /// A checkpoint by name (`latest`, `step-00001000` or a step number).
    pub fn checkpoint(&self, which: &str) -> Result<PathBuf, TrainError> {
        if which == "latest" {
            return self.latest()?.ok_or_else(|| TrainError::Run {
                path: self.path.clone(),
                detail: "it has no checkpoint yet (training wrote none)".into(),
            });
        }
        let name = match which.parse::<usize>() {
            Ok(step) => format!("step-{step:08}"),
            Err(_) => which.to_string(),
        };
        let dir = self.checkpoints().join(&name);
        if dir.join("state.json").is_file() {
            Ok(dir)
        } else {
            Err(TrainError::Run {
                path: self.path.clone(),
                detail: format!(
                    "no checkpoint `{name}` (see {})",
                    self.checkpoints().display()
                ),
            })
        }
    }

    /// Write a checkpoint atomically and keep only the newest `keep`.
    pub fn write_checkpoint(
        &self,
        state: &CheckpointState,
        files: &[(&str, Vec<u8>)],
        keep: usize,
    ) -> Result<PathBuf, TrainError> {
        let root = self.checkpoints();
        std::fs::create_dir_all(&root).map_err(|e| TrainError::io(&root, e))?;
        let name = format!("step-{:08}", state.step);
        let tmp = root.join(format!(".{name}.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        let mut all: Vec<(&str, Vec<u8>)> = files.to_vec();
        all.push((
            "state.json",
            serde_json::to_vec_pretty(state).expect("state serialises"),
        ));
        for (file, bytes) in &all {
            std::fs::write(tmp.join(file), bytes).map_err(|e| TrainError::io(tmp.join(file), e))?;
        }
        let dir = root.join(&name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| TrainError::io(&dir, e))?;
        ccfm_data::split::write_atomic(&root.join("latest"), name.as_bytes())?;
        // Prune older checkpoints.
        let mut steps: Vec<String> = std::fs::read_dir(&root)
            .map_err(|e| TrainError::io(&root, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("step-"))
            .collect();
        steps.sort();
        let n = steps.len();
        for old in steps.into_iter().take(n.saturating_sub(keep)) {
            let _ = std::fs::remove_dir_all(root.join(old));
        }
        Ok(dir)
    }

    pub fn read_state(dir: &Path) -> Result<CheckpointState, TrainError> {
        let p = dir.join("state.json");
        let text = std::fs::read_to_string(&p).map_err(|e| TrainError::io(&p, e))?;
        serde_json::from_str(&text).map_err(|e| TrainError::Run {
            path: p,
            detail: format!("damaged checkpoint state: {e}"),
        })
    }

    pub fn read_file(dir: &Path, name: &str) -> Result<Vec<u8>, TrainError> {
        let p = dir.join(name);
        std::fs::read(&p).map_err(|e| TrainError::io(&p, e))
    }
}
