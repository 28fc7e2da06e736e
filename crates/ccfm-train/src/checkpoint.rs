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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, Recorder, RecorderError};
use burn::tensor::backend::Backend;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use ccfm_model::legacy::CascadedFlowModelV1;
use ccfm_model::CascadedFlowModel;

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
    /// Length and CRC-32 of each other file of the checkpoint, checked before it is decoded
    /// (empty in checkpoints written before checksums were kept).
    #[serde(default)]
    pub files: BTreeMap<String, FileSum>,
    /// The layout of the model's record ([`MODEL_LAYOUT`]; 1 in checkpoints written before
    /// the field existed, read through `ccfm_model::legacy`).
    #[serde(default = "first_layout")]
    pub model_layout: u32,
    /// Ranks of the data-parallel run that wrote it (1 in checkpoints written before the
    /// field existed); a resume needs the same number.
    #[serde(default = "one_rank")]
    pub world_size: usize,
}

fn one_rank() -> usize {
    1
}

/// The directory name of the checkpoint of `step` under `checkpoints/`.
pub fn checkpoint_name(step: usize) -> String {
    format!("step-{step:08}")
}

/// The layout of the model's record that this version writes: 2 = the latent stream as one
/// optional sub-module. Layout 1 (three optional latent fields) is still read.
pub const MODEL_LAYOUT: u32 = 2;

fn first_layout() -> u32 {
    1
}

/// A file's length and CRC-32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub bytes: u64,
    pub crc32: u32,
}

impl FileSum {
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        }
    }
}

/// Burn's bincode record format (as `BinBytesRecorder` writes it), except that bytes which do
/// not decode are an error instead of a panic.
#[derive(Debug, Default, Clone)]
pub struct CheckpointRecorder;

impl<B: Backend> Recorder<B> for CheckpointRecorder {
    type Settings = FullPrecisionSettings;
    type RecordArgs = ();
    type RecordOutput = Vec<u8>;
    type LoadArgs = Vec<u8>;

    fn save_item<I: Serialize>(&self, item: I, _args: ()) -> Result<Vec<u8>, RecorderError> {
        bincode::serde::encode_to_vec(item, bincode::config::standard())
            .map_err(|e| RecorderError::Unknown(e.to_string()))
    }

    fn load_item<I: DeserializeOwned>(&self, args: &mut Vec<u8>) -> Result<I, RecorderError> {
        // Borrowed decoding checks every length against the bytes left before allocating.
        bincode::borrow_decode_from_slice::<bincode::serde::BorrowCompat<I>, _>(
            args,
            bincode::config::standard(),
        )
        .map(|(item, _)| item.0)
        .map_err(|e| RecorderError::DeserializeError(e.to_string()))
    }
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
    Recorder::<B>::record(&CheckpointRecorder, module.into_record(), ()).expect("in-memory record")
}

/// Load weights written by [`module_bytes`] into `module`.
pub fn load_module<B: Backend, M: Module<B>>(
    module: M,
    bytes: Vec<u8>,
    device: &B::Device,
    path: &Path,
) -> Result<M, TrainError> {
    let record = Recorder::<B>::load(&CheckpointRecorder, bytes, device).map_err(|e| {
        TrainError::Incompatible {
            path: path.to_path_buf(),
            detail: format!("the weights do not decode for this model ({e})"),
        }
    })?;
    Ok(module.load_record(record))
}

/// Load a checkpoint's model weights (`model.bin` or `ema.bin`) into `model`, whatever layout
/// the checkpoint's `state.model_layout` names.
pub fn load_model_weights<B: Backend>(
    model: CascadedFlowModel<B>,
    bytes: Vec<u8>,
    state: &CheckpointState,
    device: &B::Device,
    path: &Path,
) -> Result<CascadedFlowModel<B>, TrainError> {
    match state.model_layout {
        1 => {
            let v1 = CascadedFlowModelV1::from(model);
            Ok(load_module(v1, bytes, device, path)?.into_model())
        }
        MODEL_LAYOUT => load_module(model, bytes, device, path),
        other => Err(TrainError::Incompatible {
            path: path.to_path_buf(),
            detail: if other > MODEL_LAYOUT {
                format!(
                    "model layout {other} is newer than this ccfm reads ({MODEL_LAYOUT}); \
                     use the ccfm version that wrote the run"
                )
            } else {
                format!("state.json names model layout {other}, which no ccfm wrote (1 or 2)")
            },
        }),
    }
}

/// The first setting (`section.key`) in which the run's configuration `text` differs from the
/// checkpoint's `saved` one, ignoring those that may change after training; `(file)` when
/// `text` is not TOML.
fn config_drift(text: &[u8], saved: &[u8]) -> Option<String> {
    let parse = |b: &[u8]| -> Option<toml::Table> { std::str::from_utf8(b).ok()?.parse().ok() };
    let (Some(mut now), Some(mut then)) = (parse(text), parse(saved)) else {
        return (text != saved).then(|| "(file)".to_string());
    };
    for t in [&mut now, &mut then] {
        // A run of an earlier version, resumed by this one: its files use the old key names.
        crate::config::keys::migrate(t);
        t.remove("sample");
        t.remove("output");
    }
    let sections: std::collections::BTreeSet<&String> = now.keys().chain(then.keys()).collect();
    for section in sections {
        let empty = toml::Table::new();
        let table = |t: &toml::Table| match t.get(section.as_str()) {
            Some(toml::Value::Table(m)) => Some(m.clone()),
            Some(_) => None,
            None => Some(empty.clone()),
        };
        let (a, b) = (table(&now), table(&then));
        let (Some(a), Some(b)) = (a, b) else {
            return Some(section.clone());
        };
        let keys: std::collections::BTreeSet<String> = a.keys().chain(b.keys()).cloned().collect();
        let changed = keys.into_iter().find(|k| a.get(k) != b.get(k));
        if let Some(k) = changed {
            return Some(format!("{section}.{k}"));
        }
    }
    None
}

/// The lock of a run directory, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
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

    /// The run's configuration, checked against the copy in its newest checkpoint: only the
    /// settings of generation ([sample], inference_dropout included) and of output ([output]) may
    /// change after training; anything else edited or damaged in `config.toml` is refused.
    pub fn config(&self) -> Result<RunConfig, TrainError> {
        let path = self.path.join(CONFIG_FILE);
        if let Some(dir) = self.latest()? {
            let state = Self::read_state(&dir)?;
            if state.files.contains_key(CONFIG_FILE) {
                let saved = Self::read_file(&dir, CONFIG_FILE, &state)?;
                let text = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
                if let Some(key) = config_drift(&text, &saved) {
                    return Err(TrainError::Run {
                        path: self.path.clone(),
                        detail: format!(
                            "{CONFIG_FILE}: `{key}` differs from the configuration checkpoint \
                             {} was trained with; after training only [sample] and [output] may \
                             change: restore it from {} or start a new run with --config",
                            dir.display(),
                            dir.join(CONFIG_FILE).display()
                        ),
                    });
                }
            }
        }
        RunConfig::read(&path, &[])
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
                    name.trim().escape_debug()
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

    /// Take the run's lock (`RUN/.lock`, an advisory lock held while this process lives, so a
    /// run that crashed leaves none behind). A second `ccfm train` on the same run is refused.
    pub fn lock(&self) -> Result<RunLock, TrainError> {
        use std::io::Write;
        let p = self.path.join(".lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .map_err(|e| TrainError::io(&p, e))?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = write!(file, "{}", std::process::id());
                Ok(RunLock { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&p).unwrap_or_default();
                Err(TrainError::Run {
                    path: self.path.clone(),
                    detail: format!(
                        "is in use by another `ccfm train` (process {}); wait for it to finish \
                         or stop it, then resume",
                        pid.trim()
                    ),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(TrainError::io(&p, e)),
        }
    }

    /// Write a checkpoint atomically and keep only the newest `keep`. The files go into a
    /// temporary directory that is renamed into place, then `latest` is replaced; a write that
    /// fails (a full disk) removes the temporary directory and leaves the previous checkpoint
    /// and `latest` as they were.
    pub fn write_checkpoint(
        &self,
        state: &CheckpointState,
        files: &[(&str, Vec<u8>)],
        keep: usize,
    ) -> Result<PathBuf, TrainError> {
        let root = self.checkpoints();
        std::fs::create_dir_all(&root).map_err(|e| TrainError::io(&root, e))?;
        let name = checkpoint_name(state.step);
        let tmp = root.join(format!(".{name}.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let written = Self::write_files(&tmp, state, files);
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let dir = root.join(&name);
        // A checkpoint of the same step (a resumed run that repeats it) moves aside first, so
        // that a failed rename loses nothing.
        let old = root.join(format!(".{name}.old{}", std::process::id()));
        if dir.exists() {
            std::fs::rename(&dir, &old).map_err(|e| TrainError::io(&dir, e))?;
        }
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            let _ = std::fs::rename(&old, &dir);
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(TrainError::io(&dir, e));
        }
        let _ = std::fs::remove_dir_all(&old);
        ccfm_data::fs::write_atomic(&root.join("latest"), name.as_bytes())?;
        self.prune(keep)?;
        Ok(dir)
    }

    /// `files` and `state.json` (with the files' checksums) into the new directory `tmp`.
    fn write_files(
        tmp: &Path,
        state: &CheckpointState,
        files: &[(&str, Vec<u8>)],
    ) -> Result<(), TrainError> {
        std::fs::create_dir(tmp).map_err(|e| TrainError::io(tmp, e))?;
        let mut state = state.clone();
        state.files = files
            .iter()
            .map(|(f, b)| (f.to_string(), FileSum::of(b)))
            .collect();
        let state_bytes = serde_json::to_vec_pretty(&state).expect("state serialises");
        let all = files
            .iter()
            .map(|(f, b)| (*f, b.as_slice()))
            .chain([("state.json", state_bytes.as_slice())]);
        for (file, bytes) in all {
            let p = tmp.join(file);
            std::fs::write(&p, bytes).map_err(|e| TrainError::io(&p, e))?;
        }
        Ok(())
    }

    /// Keep the newest `keep` checkpoints.
    fn prune(&self, keep: usize) -> Result<(), TrainError> {
        let root = self.checkpoints();
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
        Ok(())
    }

    /// The state of the checkpoint in `dir`, checked against the directory's name.
    pub fn read_state(dir: &Path) -> Result<CheckpointState, TrainError> {
        let p = dir.join("state.json");
        let text = std::fs::read_to_string(&p).map_err(|e| TrainError::io(&p, e))?;
        let state: CheckpointState = serde_json::from_str(&text).map_err(|e| TrainError::Run {
            path: p.clone(),
            detail: format!("damaged checkpoint state: {e}"),
        })?;
        let named = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|n| n.parse::<usize>().ok());
        if named.is_some_and(|n| n != state.step) || state.step > state.steps {
            return Err(TrainError::Run {
                path: p,
                detail: format!(
                    "damaged checkpoint state: step {} of {} in directory {}",
                    state.step,
                    state.steps,
                    dir.display()
                ),
            });
        }
        Ok(state)
    }

    /// The file `name` of the checkpoint in `dir`, checked against the length and CRC-32 that
    /// `state` recorded for it.
    pub fn read_file(
        dir: &Path,
        name: &str,
        state: &CheckpointState,
    ) -> Result<Vec<u8>, TrainError> {
        let p = dir.join(name);
        let bytes = std::fs::read(&p).map_err(|e| TrainError::io(&p, e))?;
        match state.files.get(name) {
            Some(sum) if *sum != FileSum::of(&bytes) => Err(TrainError::Run {
                path: p,
                detail: format!(
                    "damaged checkpoint file: {} bytes with CRC-32 {:08x}, state.json recorded \
                     {} bytes with {:08x}; resume from an earlier checkpoint \
                     (ccfm predict --checkpoint STEP) or retrain",
                    bytes.len(),
                    crc32fast::hash(&bytes),
                    sum.bytes,
                    sum.crc32
                ),
            }),
            None if !state.files.is_empty() => Err(TrainError::Run {
                path: p,
                detail: "not listed in the checkpoint's state.json".into(),
            }),
            _ => Ok(bytes),
        }
    }
}
