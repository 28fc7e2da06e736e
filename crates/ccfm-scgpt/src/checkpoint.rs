//! Loading a scGPT model directory: `args.json`, `vocab.json` and the weights, from
//! `best_model.pt` (a torch zip pickle, read without Python) or `best_model.safetensors`.
//!
//! Both attention namings load: flash-attn's `self_attn.Wqkv.{weight,bias}` (the released
//! checkpoints) and torch's `self_attn.in_proj_{weight,bias}` (a model saved without
//! flash-attn). Keys `_encode` does not use (`flag_encoder`, `decoder`, `mvc_decoder`,
//! `cls_decoder`) are listed in the report; a missing parameter or a shape that differs is an
//! error naming it.

use std::path::{Path, PathBuf};

use burn::store::{KeyRemapper, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::backend::Backend;
use burn_store::PytorchStore;
use ccfm_layers::checkpoint::{load_from_store, LoadError, LoadReport};

use crate::config::{ScgptArgs, ScgptVocab};
use crate::error::ScgptError;
use crate::model::{ScgptEncoder, ScgptEncoderConfig};

fn remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(vec![(
        r"self_attn\.in_proj_(weight|bias)$".to_string(),
        "self_attn.Wqkv.$1".to_string(),
    )])
    .expect("valid pattern")
}

fn convert(e: LoadError) -> ScgptError {
    match e {
        LoadError::Read { path, message } => ScgptError::Io {
            path,
            detail: format!(
                "cannot read the weights ({message}); expected a torch zip checkpoint \
                 (best_model.pt) or a .safetensors file"
            ),
        },
        LoadError::Missing { path, keys } => ScgptError::MissingKey {
            path,
            key: keys.join(", "),
        },
        LoadError::Mismatch { path, errors } => ScgptError::Weights { path, errors },
    }
}

/// Load weights into `model` from a `.pt` or `.safetensors` file.
pub fn load_weights<B: Backend>(
    model: &mut ScgptEncoder<B>,
    path: &Path,
) -> Result<LoadReport, ScgptError> {
    if !path.exists() {
        return Err(ScgptError::Io {
            path: path.to_path_buf(),
            detail: "no such file".into(),
        });
    }
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    let result = if is_safetensors {
        let mut store = SafetensorsStore::from_file(path)
            .remap(remapper())
            .with_from_adapter(PyTorchToBurnAdapter)
            .allow_partial(true)
            .validate(true);
        load_from_store(model, &mut store, path)
    } else {
        let mut store = PytorchStore::from_file(path)
            .remap(remapper())
            .allow_partial(true)
            .validate(true);
        load_from_store(model, &mut store, path)
    };
    result.map_err(convert)
}

/// A loaded model directory.
pub struct ScgptModel<B: Backend> {
    pub dir: PathBuf,
    pub args: ScgptArgs,
    pub vocab: ScgptVocab,
    pub encoder: ScgptEncoder<B>,
    pub report: LoadReport,
}

impl<B: Backend> ScgptModel<B> {
    /// Read `dir/args.json`, `dir/vocab.json` and `dir/best_model.pt` (or
    /// `dir/best_model.safetensors` when there is no `.pt`).
    pub fn from_dir(dir: &Path, device: &B::Device) -> Result<Self, ScgptError> {
        let need = |name: &str| -> Result<PathBuf, ScgptError> {
            let p = dir.join(name);
            if p.exists() {
                Ok(p)
            } else {
                Err(ScgptError::Io {
                    path: p,
                    detail: "missing: a scGPT model directory holds args.json, vocab.json and \
                             best_model.pt (as downloaded, e.g. scGPT_human)"
                        .into(),
                })
            }
        };
        let args = ScgptArgs::read(&need("args.json")?)?;
        let vocab = ScgptVocab::read(&need("vocab.json")?)?;
        if vocab.id(&args.pad_token).is_none() {
            return Err(ScgptError::Config {
                path: dir.join("args.json"),
                key: "pad_token".into(),
                detail: format!(
                    "`{}` is not in vocab.json (scGPT pads with `<pad>`)",
                    args.pad_token
                ),
            });
        }
        let weights = need("best_model.pt").or_else(|e| {
            let st = dir.join("best_model.safetensors");
            if st.exists() {
                Ok(st)
            } else {
                Err(e)
            }
        })?;
        let (encoder, report) = {
            // Whatever the init and the load draw comes from the backend's one random stream:
            // hold it, so that another thread's seeded section is not shifted by these draws.
            let _draws = ccfm_layers::rng::seeded::<B>(device, 0);
            let mut encoder = ScgptEncoderConfig::from_args(&args, vocab.len()).init::<B>(device);
            let report = load_weights(&mut encoder, &weights)?;
            (encoder, report)
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            args,
            vocab,
            encoder,
            report,
        })
    }
}

/// Write a scGPT model directory with **random** weights in the layout `from_dir` reads:
/// `args.json` (the given settings), `vocab.json` (`genes` in byte order, then `<pad>`,
/// `<cls>`, `<eoc>`) and `best_model.safetensors` (PyTorch names and layouts). For demos and
/// tests that must run without downloads; such a model's features carry no biology.
pub fn write_random_dir<B: Backend>(
    dir: &Path,
    genes: &[String],
    args: &serde_json::Value,
    seed: u64,
    device: &B::Device,
) -> Result<ScgptModel<B>, ScgptError> {
    use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot};
    let io = |path: &Path, e: &dyn std::fmt::Display| ScgptError::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
    let args_path = dir.join("args.json");
    let args_text = serde_json::to_string_pretty(args).expect("JSON value");
    let parsed = ScgptArgs::parse(&args_text, &args_path)?;
    let mut tokens: Vec<&str> = genes.iter().map(String::as_str).collect();
    tokens.sort_unstable();
    tokens.dedup();
    tokens.retain(|t| !matches!(*t, "<pad>" | "<cls>" | "<eoc>"));
    tokens.extend(["<pad>", "<cls>", "<eoc>"]);
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), serde_json::Value::from(i)))
        .collect();
    let encoder = {
        // Burn draws a parameter's initial values when it is first read: `materialize` reads
        // them all while the stream is held, so nothing else draws between the seed and them.
        let _draws = ccfm_layers::rng::seeded::<B>(device, seed);
        ccfm_layers::materialize(
            ScgptEncoderConfig::from_args(&parsed, tokens.len()).init::<B>(device),
        )
    };
    let weights = dir.join("best_model.safetensors");
    let mut store = SafetensorsStore::from_file(&weights).with_to_adapter(BurnToPyTorchAdapter);
    encoder
        .save_into(&mut store)
        .map_err(|e| io(&weights, &format!("writing the weights: {e}")))?;
    std::fs::write(&args_path, args_text).map_err(|e| io(&args_path, &e))?;
    let vocab_path = dir.join("vocab.json");
    std::fs::write(
        &vocab_path,
        serde_json::to_string(&serde_json::Value::Object(vocab)).expect("JSON"),
    )
    .map_err(|e| io(&vocab_path, &e))?;
    ScgptModel::from_dir(dir, device)
}
