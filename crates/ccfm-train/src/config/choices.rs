//! The closed sets of the run configuration that have no library type of their own.
//!
//! Each is an enum read and written by serde under its `snake_case` name; a wrong value is
//! refused with the key, the valid names and the closest one (see `keys::describe_error`).
//! The library types that already are serde enums (`ccfm_flow::OdeMethod`,
//! `ccfm_flow::TimeSampler`, `ccfm_model::Prediction`) are used directly.

use serde::{Deserialize, Serialize};

use ccfm_data::{Schema, UnmeasuredPerturbations, ValueScale};
use ccfm_model::PerturbationKind;
use ccfm_scgpt::TieBreak;

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

/// `data.unmeasured_perturbations`: perturbed genes the file does not measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmeasuredPolicy {
    /// Refuse the file (catches typos in condition labels).
    #[default]
    Error,
    /// Give them vocabulary tokens of their own.
    Vocabulary,
}

impl From<UnmeasuredPolicy> for UnmeasuredPerturbations {
    fn from(p: UnmeasuredPolicy) -> Self {
        match p {
            UnmeasuredPolicy::Error => Self::Error,
            UnmeasuredPolicy::Vocabulary => Self::Vocabulary,
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

/// `latent.binning`: the tie-break of scGPT's value binning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Binning {
    /// Deterministic: tied values take the lowest bin.
    #[default]
    Left,
    /// scgpt 0.2.4: tied values spanning several edges get uniformly random bins.
    Random,
}

impl From<Binning> for TieBreak {
    fn from(b: Binning) -> Self {
        match b {
            Binning::Left => TieBreak::Left,
            Binning::Random => TieBreak::Random,
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
