//! scDFM's gene vocabulary: four special tokens (`<pad>`, `<cls>`, `<mask>`, `control`, ids
//! 0-3), then the genes in byte order (Python's string order: upper case before lower case).
//! Read and written in the JSON format of scDFM's `*_5000_highly_vocab.json`
//! (`{"token": id, ...}`, 2-space indent, ids in order).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The special tokens, in id order.
pub const SPECIALS: [&str; 4] = ["<pad>", "<cls>", "<mask>", "control"];
/// The id of the `control` token, which fills an empty perturbation slot.
pub const CONTROL_ID: usize = 3;

#[derive(Debug, Error)]
pub enum VocabError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a vocabulary JSON object of token -> id: {detail}")]
    Format { path: PathBuf, detail: String },
    #[error("{path}: ids must be 0..{n} with each id used once; {detail}")]
    Ids {
        path: PathBuf,
        n: usize,
        detail: String,
    },
    #[error("gene `{0}` is not in the vocabulary")]
    Unknown(String),
}

/// Token <-> id mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneVocab {
    tokens: Vec<String>,
    ids: HashMap<String, usize>,
}

impl GeneVocab {
    fn from_tokens(tokens: Vec<String>) -> Self {
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect();
        Self { tokens, ids }
    }

    /// The specials followed by the distinct `genes` in byte order.
    pub fn from_genes<S: AsRef<str>>(genes: &[S]) -> Self {
        let mut g: Vec<String> = genes.iter().map(|s| s.as_ref().to_string()).collect();
        g.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        g.dedup();
        g.retain(|t| !SPECIALS.contains(&t.as_str()));
        let mut tokens: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
        tokens.extend(g);
        Self::from_tokens(tokens)
    }

    /// Read a vocabulary JSON (any key order; ids must be exactly 0..n).
    pub fn read_json(path: impl AsRef<Path>) -> Result<Self, VocabError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| VocabError::Io {
            path: path.into(),
            source,
        })?;
        let map: HashMap<String, i64> =
            serde_json::from_str(&text).map_err(|e| VocabError::Format {
                path: path.into(),
                detail: e.to_string(),
            })?;
        let n = map.len();
        let mut tokens = vec![None; n];
        for (tok, id) in map {
            let slot =
                usize::try_from(id)
                    .ok()
                    .filter(|&i| i < n)
                    .ok_or_else(|| VocabError::Ids {
                        path: path.into(),
                        n,
                        detail: format!("`{tok}` has id {id}"),
                    })?;
            if let Some(other) = tokens[slot].replace(tok.clone()) {
                return Err(VocabError::Ids {
                    path: path.into(),
                    n,
                    detail: format!("`{other}` and `{tok}` share id {slot}"),
                });
            }
        }
        // n keys in n slots with no collision fill every slot.
        Ok(Self::from_tokens(
            tokens
                .into_iter()
                .map(|t| t.expect("every slot filled"))
                .collect(),
        ))
    }

    /// The JSON text, in scDFM's layout.
    pub fn to_json(&self) -> String {
        let lines: Vec<String> = self
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                format!(
                    "  {}: {i}",
                    serde_json::to_string(t).expect("strings serialise")
                )
            })
            .collect();
        format!("{{\n{}\n}}", lines.join(",\n"))
    }

    /// Write the JSON atomically (a temporary file in the same folder, then a rename).
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<(), VocabError> {
        let path = path.as_ref();
        crate::fs::write_atomic_io(path, self.to_json().as_bytes()).map_err(|source| {
            VocabError::Io {
                path: path.into(),
                source,
            }
        })
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Gene tokens (after the specials), in id order.
    pub fn genes(&self) -> &[String] {
        &self.tokens[SPECIALS.len().min(self.tokens.len())..]
    }

    pub fn token(&self, id: usize) -> Option<&str> {
        self.tokens.get(id).map(String::as_str)
    }

    pub fn id(&self, token: &str) -> Option<usize> {
        self.ids.get(token).copied()
    }

    /// Ids of `tokens`; an unknown token is an error naming it.
    pub fn encode<S: AsRef<str>>(&self, tokens: &[S]) -> Result<Vec<usize>, VocabError> {
        tokens
            .iter()
            .map(|t| {
                self.id(t.as_ref())
                    .ok_or_else(|| VocabError::Unknown(t.as_ref().to_string()))
            })
            .collect()
    }
}
