//! The closed sets of the run configuration that have no library type of their own.
//!
//! Each is an enum read and written by serde under its `snake_case` name; a wrong value is
//! refused with the key, the valid names and the closest one (see `keys::deserialize`).
//! The library types that are serde enums themselves (`ccfm_flow::OdeMethod`,
//! `ccfm_flow::TimeSampler`, `ccfm_model::Prediction`, `ccfm_scgpt::TieBreak`,
//! `ccfm_data::UnmeasuredPerturbations`) are used directly.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use ccfm_data::{Schema, ValueScale};
use ccfm_model::PerturbationKind;

/// `data.schema`: the file's layout, or `auto` to detect it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaChoice {
    #[default]
    Auto,
    Gears,
    Perturbench,
    #[serde(rename = "figshare-norman")]
    FigshareNorman,
    Combosciplex,
}

impl SchemaChoice {
    /// The schema, or `None` for detection.
    pub fn schema(self) -> Option<Schema> {
        match self {
            Self::Auto => None,
            Self::Gears => Some(Schema::Gears),
            Self::Perturbench => Some(Schema::PerturBench),
            Self::FigshareNorman => Some(Schema::FigshareNorman),
            Self::Combosciplex => Some(Schema::ComboSciPlex),
        }
    }
}

/// `data.scale`: what the stored values are, or `auto` to detect it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleChoice {
    #[default]
    Auto,
    Counts,
    Log1p,
}

impl ScaleChoice {
    /// The scale, or `None` for detection.
    pub fn scale(self) -> Option<ValueScale> {
        match self {
            Self::Auto => None,
            Self::Counts => Some(ValueScale::Counts),
            Self::Log1p => Some(ValueScale::Log1p),
        }
    }
}

/// `model.perturbation`: how perturbations are encoded, or `auto` (from the data's schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerturbationChoice {
    #[default]
    Auto,
    Crispr,
    Drug,
}

impl PerturbationChoice {
    /// The encoding, or `None` to follow the data.
    pub fn kind(self) -> Option<PerturbationKind> {
        match self {
            Self::Auto => None,
            Self::Crispr => Some(PerturbationKind::Crispr),
            Self::Drug => Some(PerturbationKind::Drug),
        }
    }
}

/// `train.optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// Adam (scDFM).
    #[default]
    #[serde(rename = "adam")]
    Adam,
    /// Adam with decoupled weight decay.
    #[serde(rename = "adamw")]
    AdamW,
}

impl OptimizerKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Adam => "adam",
            Self::AdamW => "adamw",
        }
    }
}

/// `output.progress`: the progress bar of `ccfm train`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    /// A bar when stderr is a terminal, log lines otherwise.
    #[default]
    Auto,
    Always,
    Never,
}

/// `data.split`: scDFM's additive split, the combinations split, or a split JSON file. Written
/// as a string: `"additive"`, `"combinations"` or the file's path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SplitChoice {
    #[default]
    Additive,
    Combinations,
    File(PathBuf),
}

impl SplitChoice {
    /// The split's name, or the file's path.
    pub fn text(&self) -> String {
        match self {
            Self::Additive => "additive".into(),
            Self::Combinations => "combinations".into(),
            Self::File(p) => p.display().to_string(),
        }
    }
}

impl Serialize for SplitChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

impl<'de> Deserialize<'de> for SplitChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match text.as_str() {
            "additive" => Self::Additive,
            "combinations" => Self::Combinations,
            // A bare word is a misspelt split name, not a file.
            word if !word.contains(['.', '/', '\\']) => {
                return Err(serde::de::Error::custom(format!(
                    "unknown variant `{word}`, expected `additive` or `combinations` \
                     (or a split JSON file)"
                )))
            }
            path => Self::File(PathBuf::from(path)),
        })
    }
}
