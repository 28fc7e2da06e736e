//! scGPT's `args.json` and `vocab.json`.
//!
//! `embed_data` reads `embsize`, `nheads`, `d_hid`, `nlayers`, `n_layers_cls`, `dropout`,
//! `pad_token` and `pad_value` from `args.json` (a missing one is an error there too); the
//! value-encoder style defaults to `continuous` (`embed_data` never passes it), `n_bins` to 51
//! and the maximum sequence length to 1200, as the code's defaults are. Other keys
//! (training settings) are kept as they are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::ScgptError;

/// How expression values are embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEmbStyle {
    /// Linear(1 -> d), ReLU, Linear(d -> d), LayerNorm, values clamped at 512.
    Continuous,
    /// An embedding of the integer bin, then LayerNorm.
    Category,
    /// The gene embedding times the value.
    Scaling,
}

/// The settings of a scGPT model directory.
#[derive(Debug, Clone, PartialEq)]
pub struct ScgptArgs {
    pub embsize: usize,
    pub nheads: usize,
    pub d_hid: usize,
    pub nlayers: usize,
    pub n_layers_cls: usize,
    pub dropout: f64,
    pub pad_token: String,
    pub pad_value: f32,
    pub input_emb_style: InputEmbStyle,
    /// Number of value bins (51).
    pub n_bins: usize,
    /// Tokens per cell including `<cls>` (1200).
    pub max_seq_len: usize,
    /// Every key of the file, as read.
    pub raw: BTreeMap<String, Value>,
}

fn bad(path: &Path, key: &str, detail: String) -> ScgptError {
    ScgptError::Config {
        path: path.to_path_buf(),
        key: key.to_string(),
        detail,
    }
}

impl ScgptArgs {
    pub fn read(path: &Path) -> Result<Self, ScgptError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScgptError::Io {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ScgptError> {
        let raw: BTreeMap<String, Value> = serde_json::from_str(text)
            .map_err(|e| bad(path, "(file)", format!("not a JSON object: {e}")))?;
        let uint = |k: &str| -> Result<usize, ScgptError> {
            let v = raw
                .get(k)
                .ok_or_else(|| bad(path, k, "missing (scGPT's embed_data requires it)".into()))?;
            v.as_u64()
                .filter(|&n| n > 0)
                .map(|n| n as usize)
                .ok_or_else(|| bad(path, k, format!("{v} is not a positive integer")))
        };
        let num = |k: &str| -> Result<f64, ScgptError> {
            let v = raw
                .get(k)
                .ok_or_else(|| bad(path, k, "missing (scGPT's embed_data requires it)".into()))?;
            v.as_f64()
                .ok_or_else(|| bad(path, k, format!("{v} is not a number")))
        };
        let opt_uint = |k: &str, default: usize| -> Result<usize, ScgptError> {
            match raw.get(k) {
                None | Some(Value::Null) => Ok(default),
                Some(_) => uint(k),
            }
        };
        let input_emb_style = match raw.get("input_emb_style").and_then(Value::as_str) {
            None | Some("continuous") => InputEmbStyle::Continuous,
            Some("category") => InputEmbStyle::Category,
            Some("scaling") => InputEmbStyle::Scaling,
            Some(other) => {
                return Err(bad(
                    path,
                    "input_emb_style",
                    format!("`{other}` is not one of continuous, category, scaling"),
                ))
            }
        };
        let pad_token = raw
            .get("pad_token")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(path, "pad_token", "missing or not a string".into()))?
            .to_string();
        let args = Self {
            embsize: uint("embsize")?,
            nheads: uint("nheads")?,
            d_hid: uint("d_hid")?,
            nlayers: uint("nlayers")?,
            n_layers_cls: uint("n_layers_cls")?,
            dropout: num("dropout")?,
            pad_token,
            pad_value: num("pad_value")? as f32,
            input_emb_style,
            n_bins: opt_uint("n_bins", 51)?,
            max_seq_len: opt_uint("max_seq_len", 1200)?,
            raw,
        };
        if !args.embsize.is_multiple_of(args.nheads) {
            return Err(bad(
                path,
                "nheads",
                format!(
                    "embsize {} is not divisible by nheads {}",
                    args.embsize, args.nheads
                ),
            ));
        }
        Ok(args)
    }
}

/// scGPT's gene vocabulary: token -> id, with `<pad>`, `<cls>` and `<eoc>` added (appended
/// after the largest id, in that order) when missing, as `GeneVocab.from_file` + `embed_data`
/// do.
#[derive(Debug, Clone, PartialEq)]
pub struct ScgptVocab {
    pub path: PathBuf,
    ids: BTreeMap<String, usize>,
}

pub const SPECIALS: [&str; 3] = ["<pad>", "<cls>", "<eoc>"];

impl ScgptVocab {
    pub fn read(path: &Path) -> Result<Self, ScgptError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScgptError::Io {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let raw: BTreeMap<String, Value> = serde_json::from_str(&text).map_err(|e| {
            bad(
                path,
                "(file)",
                format!("not a JSON object of token -> id: {e}"),
            )
        })?;
        let mut ids = BTreeMap::new();
        let mut seen = std::collections::HashMap::new();
        for (tok, v) in raw {
            let id = v
                .as_u64()
                .ok_or_else(|| bad(path, &tok, format!("id {v} is not a non-negative integer")))?
                as usize;
            if let Some(prev) = seen.insert(id, tok.clone()) {
                return Err(bad(path, &tok, format!("id {id} is also used by `{prev}`")));
            }
            ids.insert(tok, id);
        }
        let mut next = ids.values().max().map_or(0, |m| m + 1);
        for s in SPECIALS {
            if !ids.contains_key(s) {
                ids.insert(s.to_string(), next);
                next += 1;
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            ids,
        })
    }

    /// Number of embedding rows the model needs (largest id + 1).
    pub fn len(&self) -> usize {
        self.ids.values().max().map_or(0, |m| m + 1)
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn id(&self, token: &str) -> Option<usize> {
        self.ids.get(token).copied()
    }
}
