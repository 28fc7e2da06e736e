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
        let f = Fields { raw: &raw, path };
        let input_emb_style = f.input_emb_style()?;
        let pad_token = f.pad_token()?;
        let args = Self {
            embsize: f.uint("embsize")?,
            nheads: f.uint("nheads")?,
            d_hid: f.uint("d_hid")?,
            nlayers: f.uint("nlayers")?,
            n_layers_cls: f.uint("n_layers_cls")?,
            dropout: f.num("dropout")?,
            pad_token,
            pad_value: f.num("pad_value")? as f32,
            input_emb_style,
            n_bins: f.opt_uint("n_bins", 51)?,
            max_seq_len: f.opt_uint("max_seq_len", 1200)?,
            raw,
        };
        args.check_consistent(path)?;
        Ok(args)
    }

    /// The checks across keys: at least 2 bins, and `embsize` divisible by `nheads`.
    fn check_consistent(&self, path: &Path) -> Result<(), ScgptError> {
        if self.n_bins < 2 {
            return Err(bad(
                path,
                "n_bins",
                format!(
                    "{} bins: binning needs at least 2 (scGPT uses 51)",
                    self.n_bins
                ),
            ));
        }
        if !self.embsize.is_multiple_of(self.nheads) {
            return Err(bad(
                path,
                "nheads",
                format!(
                    "embsize {} is not divisible by nheads {}",
                    self.embsize, self.nheads
                ),
            ));
        }
        Ok(())
    }
}

/// The largest value accepted for a size key. Far above any published scGPT (whole-human: 12
/// layers, 512 wide, 8 heads), far below sizes whose layers could not be allocated: a damaged
/// number is an error here.
fn size_limit(key: &str) -> u64 {
    match key {
        "nlayers" | "n_layers_cls" => 256,
        "nheads" => 1024,
        "max_seq_len" => 1 << 22,
        _ => 1 << 16,
    }
}

/// The keys of an `args.json` being read, with the file's path for the errors.
struct Fields<'a> {
    raw: &'a BTreeMap<String, Value>,
    path: &'a Path,
}

impl Fields<'_> {
    /// The value of a key `embed_data` requires.
    fn required(&self, k: &str) -> Result<&Value, ScgptError> {
        self.raw.get(k).ok_or_else(|| {
            bad(
                self.path,
                k,
                "missing (scGPT's embed_data requires it)".into(),
            )
        })
    }

    /// A required positive integer, at most [`size_limit`].
    fn uint(&self, k: &str) -> Result<usize, ScgptError> {
        let v = self.required(k)?;
        let n = v
            .as_u64()
            .filter(|&n| n > 0)
            .ok_or_else(|| bad(self.path, k, format!("{v} is not a positive integer")))?;
        if n > size_limit(k) {
            return Err(bad(
                self.path,
                k,
                format!("{n} is beyond the largest supported ({})", size_limit(k)),
            ));
        }
        Ok(n as usize)
    }

    /// A required number.
    fn num(&self, k: &str) -> Result<f64, ScgptError> {
        let v = self.required(k)?;
        v.as_f64()
            .ok_or_else(|| bad(self.path, k, format!("{v} is not a number")))
    }

    /// A positive integer as [`Fields::uint`], `default` when missing or null.
    fn opt_uint(&self, k: &str, default: usize) -> Result<usize, ScgptError> {
        match self.raw.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => self.uint(k),
        }
    }

    /// `input_emb_style`, `continuous` when missing (or not a string).
    fn input_emb_style(&self) -> Result<InputEmbStyle, ScgptError> {
        match self.raw.get("input_emb_style").and_then(Value::as_str) {
            None | Some("continuous") => Ok(InputEmbStyle::Continuous),
            Some("category") => Ok(InputEmbStyle::Category),
            Some("scaling") => Ok(InputEmbStyle::Scaling),
            Some(other) => Err(bad(
                self.path,
                "input_emb_style",
                format!("`{other}` is not one of continuous, category, scaling"),
            )),
        }
    }

    /// The required `pad_token` string.
    fn pad_token(&self) -> Result<String, ScgptError> {
        Ok(self
            .raw
            .get("pad_token")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(self.path, "pad_token", "missing or not a string".into()))?
            .to_string())
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
        // torchtext vocabularies number their tokens 0..n-1; an id beyond that is damage, and
        // would size the embedding by a number the weights cannot hold.
        if let Some((tok, &id)) = ids.iter().find(|(_, &id)| id >= ids.len()) {
            return Err(bad(
                path,
                tok,
                format!(
                    "id {id} is beyond the {} tokens; ids run 0..n-1 (one per token)",
                    ids.len()
                ),
            ));
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

#[cfg(test)]
mod tests {
    use super::*;

    const ARGS: &str = r#"{"embsize": 16, "nheads": 2, "d_hid": 16, "nlayers": 1,
        "n_layers_cls": 1, "dropout": 0.0, "pad_token": "<pad>", "pad_value": -2}"#;

    fn parse_with(key: &str, value: &str) -> Result<ScgptArgs, ScgptError> {
        let mut raw: BTreeMap<String, Value> = serde_json::from_str(ARGS).unwrap();
        raw.insert(key.into(), serde_json::from_str(value).unwrap());
        ScgptArgs::parse(
            &serde_json::to_string(&raw).unwrap(),
            Path::new("args.json"),
        )
    }

    #[test]
    fn damaged_sizes_are_refused_by_key() {
        assert!(parse_with("nlayers", "2").is_ok());
        for (key, value, needle) in [
            (
                "nlayers",
                "2147483648",
                "beyond the largest supported (256)",
            ),
            (
                "embsize",
                "9223372036854775807",
                "beyond the largest supported",
            ),
            ("n_bins", "1", "at least 2"),
            ("nheads", "3", "not divisible"),
            ("d_hid", "-4", "not a positive integer"),
        ] {
            let e = parse_with(key, value).unwrap_err().to_string();
            assert!(e.contains("args.json") && e.contains(key), "{e}");
            assert!(e.contains(needle), "{key} = {value}: {e}");
        }
    }

    #[test]
    fn vocabulary_ids_beyond_the_tokens_are_refused() {
        let dir = std::env::temp_dir().join(format!("ccfm-vocab-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("vocab.json");
        std::fs::write(&p, r#"{"A": 0, "B": 1, "<pad>": 2}"#).unwrap();
        assert_eq!(ScgptVocab::read(&p).unwrap().len(), 5); // <cls>, <eoc> added
        std::fs::write(&p, r#"{"A": 0, "B": 2147483648, "<pad>": 2}"#).unwrap();
        let e = ScgptVocab::read(&p).unwrap_err().to_string();
        assert!(
            e.contains("vocab.json") && e.contains("id 2147483648"),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
