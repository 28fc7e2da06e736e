//! The run configuration: one TOML file with the sections `[data]`, `[model]`, `[latent]`,
//! `[objective]`, `[train]`, `[sample]` and `[output]`.
//!
//! Every field has a default (the reference settings of scDFM and of CCFM's latent stream, listed
//! in docs/training.md); a file only states what differs. The sections embed the library types
//! they configure: `[objective]` is `ccfm_model::ObjectiveConfig` (with the cascaded time sampler
//! `ccfm_flow::CascadedTimeSampler` as `[objective.times]`), `sample.solver` is
//! `ccfm_flow::OdeMethod`, and every other closed set is an enum of [`choices`]. Unknown keys and
//! values are errors that name the closest valid one; keys of earlier versions are moved to their
//! current place ([`keys::RENAMED`]). `path=value` overrides (the CLI's `--set`) are applied to the
//! parsed TOML before it is checked, so they obey the same rules. Everything is checked once, in
//! [`RunConfig::parse`], before any file is read. The resolved config (every field, paths made
//! absolute) is what a run directory stores.
//!
//! Switches that have no natural "off" value in TOML use a sentinel: `clamp = 0` (no clamp),
//! `grad_clip = 0` (no clipping), `ema_decay = 0` (no EMA), `warmup_steps = 0`,
//! `n_top_genes = 0` (all genes).

pub mod choices;
pub mod keys;
mod validate;

use std::path::{Path, PathBuf};

use ccfm_data::{MemoryBudget, UnmeasuredPerturbations};
use ccfm_flow::OdeMethod;
use ccfm_model::{DenoiserConfig, ObjectiveConfig, SamplerConfig};
use ccfm_scgpt::TieBreak;
use serde::{Deserialize, Serialize};

pub use choices::{
    OptimizerKind, PerturbationChoice, Progress, ScaleChoice, SchemaChoice, SplitChoice,
};
pub use keys::{closest, known_keys};

use crate::error::TrainError;

/// `[data]`: the file, how to read it, the genes and the split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// The `.h5ad` file (relative paths are taken from the working directory).
    pub path: PathBuf,
    pub schema: SchemaChoice,
    /// `obs['dataset']` value to keep (PerturBench's mixed file), or "".
    pub dataset: String,
    /// auto | X | a layer name (ComboSciPlex: counts).
    pub layer: String,
    pub scale: ScaleChoice,
    /// `normalize_total` target for counts: 0 = the median (scDFM), else this sum.
    pub target_sum: f64,
    /// Seurat highly-variable genes kept (scDFM `n_top_genes` 5000); 0 keeps every gene.
    pub n_top_genes: usize,
    /// Add the measured perturbed genes to the HVGs (scDFM does).
    pub force_include_perturbed: bool,
    pub unmeasured_perturbations: UnmeasuredPerturbations,
    /// Genes per training step, `randperm(G)[:T]` (scDFM `infer_top_gene` 1000).
    pub genes_per_step: usize,
    pub split: SplitChoice,
    pub fold: u64,
    pub split_seed: u64,
    pub test_fraction: f64,
    pub holdout_doubles: usize,
    /// Fraction of the training doubles held out for validation.
    pub val_fraction: f64,
    /// Co-expression partners per gene in the gene encoder's mask (scDFM 30).
    pub coexpression_top_k: usize,
    pub use_negative_edge: bool,
    /// Memory the prepared expression may take ("2GiB", "512MiB", or "auto" = a quarter of the
    /// machine's memory): loaded when it fits, else streamed from the file block by block.
    pub max_memory: MemoryBudget,
    /// Cells per streamed block: a streamed batch draws its cells from one block of its
    /// condition and one of the controls.
    pub block_cells: usize,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            schema: SchemaChoice::Auto,
            dataset: String::new(),
            layer: "auto".into(),
            scale: ScaleChoice::Auto,
            target_sum: 0.0,
            n_top_genes: 5000,
            force_include_perturbed: true,
            unmeasured_perturbations: UnmeasuredPerturbations::Error,
            genes_per_step: 1000,
            split: SplitChoice::Additive,
            fold: 1,
            split_seed: 42,
            test_fraction: 0.3,
            holdout_doubles: 15,
            val_fraction: 0.1,
            coexpression_top_k: 30,
            use_negative_edge: true,
            max_memory: MemoryBudget::Auto,
            block_cells: ccfm_data::dataset::BLOCK_CELLS,
        }
    }
}

/// `[model]`: the expression network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    pub perturbation: PerturbationChoice,
    pub d_model: usize,
    pub nhead: usize,
    pub nlayers: usize,
    pub dropout: f64,
    pub mlp_ratio: f64,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            perturbation: PerturbationChoice::Auto,
            d_model: 128,
            nhead: 8,
            nlayers: 4,
            dropout: 0.1,
            mlp_ratio: 4.0,
        }
    }
}

/// `[latent]`: the scGPT latent stream (CCFM). `enabled = false` is plain scDFM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatentSection {
    pub enabled: bool,
    /// scGPT model directory (args.json, vocab.json, best_model.pt or .safetensors).
    pub scgpt_dir: PathBuf,
    /// `LatentEmbedder` bottleneck.
    pub bottleneck_dim: usize,
    /// AdaLN blocks of the latent head.
    pub dh_depth: usize,
    /// Batches whose scGPT features build the normalisation statistics before they freeze.
    pub norm_warmup_batches: usize,
    /// Clamp of the normalised features (0 = none; docs/model.md suggests 5).
    pub clamp: f64,
    pub target_std: f64,
    /// The tie-break of scGPT's value binning (`left`; `random` as scgpt 0.2.4).
    pub binning: TieBreak,
}

impl Default for LatentSection {
    fn default() -> Self {
        Self {
            enabled: true,
            scgpt_dir: PathBuf::new(),
            bottleneck_dim: 128,
            dh_depth: 2,
            norm_warmup_batches: 100,
            clamp: 0.0,
            target_std: 1.0,
            binning: TieBreak::Left,
        }
    }
}

/// `[train]`: optimiser and schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Optimiser steps; the schedule ends exactly here.
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Cosine schedule floor.
    pub eta_min: f64,
    /// Linear warm-up from 0 over these steps (0 = none, as scDFM).
    pub warmup_steps: usize,
    pub optimizer: OptimizerKind,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    /// Decoupled weight decay of AdamW (ignored by Adam).
    pub weight_decay: f64,
    /// Clip each parameter's gradient to this L2 norm (0 = off).
    pub grad_clip: f64,
    /// Exponential moving average of the weights (0 = off; e.g. 0.999).
    pub ema_decay: f64,
    pub seed: u64,
    /// Validate every this many steps (0 = only at the end).
    pub validate_every: usize,
    /// Validation conditions evaluated (0 = all of them).
    pub val_conditions: usize,
    /// Cells generated per validation condition.
    pub val_cells: usize,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            steps: 200_000,
            batch_size: 48,
            lr: 5e-5,
            eta_min: 1e-6,
            warmup_steps: 0,
            optimizer: OptimizerKind::Adam,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            grad_clip: 0.0,
            ema_decay: 0.0,
            seed: 0,
            validate_every: 5000,
            val_conditions: 0,
            val_cells: 64,
        }
    }
}

/// `[sample]`: generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleSection {
    /// The ODE method (scDFM: torchdiffeq_rk4).
    pub solver: OdeMethod,
    /// Points of the stage-1 (latent) time grid, `linspace(0, 1, n)`.
    pub latent_time_points: usize,
    /// Points of the stage-2 (expression) time grid.
    pub expr_time_points: usize,
    /// Cells generated per condition, one per control cell (scDFM 128).
    pub cells_per_condition: usize,
    /// Cells per generation batch.
    pub batch_size: usize,
    /// Genes predicted: the top seurat HVGs of the prepared genes (scDFM 1000); 0 = all.
    pub n_genes: usize,
    /// Generate with the EMA weights when the run kept them.
    pub use_ema: bool,
    /// Keep dropout active while generating (scDFM did; docs/model.md explains why not).
    pub inference_dropout: bool,
    pub seed: u64,
}

impl Default for SampleSection {
    fn default() -> Self {
        let ode = SamplerConfig::default();
        Self {
            solver: ode.solver,
            latent_time_points: ode.latent_time_points,
            expr_time_points: ode.expr_time_points,
            cells_per_condition: 128,
            batch_size: 48,
            n_genes: 1000,
            use_ema: true,
            inference_dropout: false,
            seed: 0,
        }
    }
}

impl SampleSection {
    /// The ODE settings of the two-stage sampler.
    pub fn sampler(&self) -> SamplerConfig {
        SamplerConfig {
            solver: self.solver,
            latent_time_points: self.latent_time_points,
            expr_time_points: self.expr_time_points,
        }
    }
}

/// `[output]`: logging and checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Log (JSONL, and the terminal when not a progress bar) every this many steps.
    pub log_every: usize,
    /// Write a checkpoint every this many steps (the last step always gets one).
    pub checkpoint_every: usize,
    /// Checkpoints kept (the newest ones).
    pub keep_checkpoints: usize,
    pub progress: Progress,
}

impl Default for OutputSection {
    fn default() -> Self {
        Self {
            log_every: 100,
            checkpoint_every: 5000,
            keep_checkpoints: 2,
            progress: Progress::Auto,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub data: DataSection,
    pub model: ModelSection,
    pub latent: LatentSection,
    /// The training objective, read straight into the model crate's type.
    pub objective: ObjectiveConfig,
    pub train: TrainSection,
    pub sample: SampleSection,
    pub output: OutputSection,
}

impl RunConfig {
    /// Parse TOML text (with overrides) into a checked configuration. `source` names the text
    /// in errors (the file path).
    pub fn parse(text: &str, source: &str, overrides: &[String]) -> Result<Self, TrainError> {
        Ok(Self::parse_with_notes(text, source, overrides)?.0)
    }

    /// [`Self::parse`], with one line per key of an earlier version that was moved.
    pub fn parse_with_notes(
        text: &str,
        source: &str,
        overrides: &[String],
    ) -> Result<(Self, Vec<String>), TrainError> {
        let mut tree: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| TrainError::Config {
                    source_name: source.to_string(),
                    key: "(file)".into(),
                    detail: format!("not valid TOML: {}", e.message()),
                })?;
        let mut moved = keys::migrate(&mut tree);
        keys::apply_overrides(&mut tree, overrides)?;
        moved.extend(keys::migrate(&mut tree));
        keys::coerce_floats(&mut tree, &keys::default_tree());
        let checked = keys::check_keys(&tree, source)
            .and_then(|()| keys::deserialize(tree, source))
            .and_then(|cfg| cfg.validate(source).map(|()| cfg));
        let cfg = checked.map_err(|e| keys::name_old_key(e, &moved))?;
        Ok((cfg, moved.iter().map(ToString::to_string).collect()))
    }

    /// Read a config file, apply overrides.
    pub fn read(path: &Path, overrides: &[String]) -> Result<Self, TrainError> {
        Ok(Self::read_with_notes(path, overrides)?.0)
    }

    /// [`Self::read`], with one line per key of an earlier version that was moved.
    pub fn read_with_notes(
        path: &Path,
        overrides: &[String],
    ) -> Result<(Self, Vec<String>), TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::Io {
            path: path.to_path_buf(),
            detail: format!("cannot read the config: {e}"),
        })?;
        Self::parse_with_notes(&text, &path.display().to_string(), overrides)
    }

    /// The resolved TOML (every field).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the config serialises")
    }

    /// Make the data and scGPT paths absolute (relative to `base`).
    pub fn absolutize(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if !p.as_os_str().is_empty() && p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.data.path);
        abs(&mut self.latent.scgpt_dir);
        if let SplitChoice::File(p) = &mut self.data.split {
            abs(p);
        }
    }

    /// The objective and sampler settings of the denoiser.
    pub fn denoiser(&self) -> DenoiserConfig {
        DenoiserConfig {
            objective: self.objective.clone(),
            sampler: self.sample.sampler(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[data]\npath = \"x.h5ad\"\n[latent]\nenabled = false\n";

    #[test]
    fn defaults_are_the_reference_settings() {
        let c = RunConfig::parse(MINIMAL, "t.toml", &[]).unwrap();
        assert_eq!(c.model.d_model, 128);
        assert_eq!(c.train.batch_size, 48);
        assert_eq!(c.data.genes_per_step, 1000);
        assert_eq!(c.train.lr, 5e-5);
        assert_eq!(c.train.eta_min, 1e-6);
        assert_eq!(c.train.steps, 200_000);
        assert_eq!(c.train.optimizer, OptimizerKind::Adam);
        assert_eq!(c.objective.gamma, 0.5);
        assert_eq!(c.objective.times.choose_latent_p, 0.4);
    }

    #[test]
    fn objective_settings_are_checked_when_the_config_is_read() {
        for (set, key) in [
            ("objective.min_sigma=0", "objective.min_sigma"),
            ("objective.min_sigma=1.5", "objective.min_sigma"),
            (
                "objective.times.choose_latent_p=1.5",
                "objective.times.choose_latent_p",
            ),
            (
                "objective.times.expr={kind=\"logit_normal\",mean=0,std=-1}",
                "objective.times.expr.std",
            ),
            (
                "objective.times.latent={kind=\"logit_normal\",mean=0,std=0}",
                "objective.times.latent.std",
            ),
            ("objective.gamma=-1", "objective.gamma"),
        ] {
            let e = RunConfig::parse(MINIMAL, "t", &[set.to_string()])
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("`{key}`")), "{set}: {e}");
        }
    }

    #[test]
    fn absurd_sizes_are_refused_before_anything_is_allocated() {
        for (set, key) in [
            ("train.batch_size=9223372036854775807", "train.batch_size"),
            (
                "sample.latent_time_points=4294967296",
                "sample.latent_time_points",
            ),
            ("model.nlayers=100000", "model.nlayers"),
        ] {
            let e = RunConfig::parse(MINIMAL, "t", &[set.to_string()])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(key) && e.contains("more than the largest allowed"),
                "{e}"
            );
        }
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let e = RunConfig::parse(
            &format!("{MINIMAL}[train]\nlearning_rat = 1e-3\n"),
            "t",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("train.learning_rat"), "{e}");
        let e = RunConfig::parse(&format!("{MINIMAL}[train]\nstep = 3\n"), "t", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `train.steps`"), "{e}");
        let e = RunConfig::parse(&format!("{MINIMAL}[trian]\nsteps = 3\n"), "t", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean [train]"), "{e}");
    }

    #[test]
    fn overrides_apply_and_are_checked() {
        let c = RunConfig::parse(
            MINIMAL,
            "t",
            &[
                "train.steps=7".into(),
                "train.lr=1".into(),
                "model.perturbation=drug".into(),
                "data.dataset=norman19".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.train.steps, 7);
        assert_eq!(c.train.lr, 1.0);
        assert_eq!(c.model.perturbation, PerturbationChoice::Drug);
        assert_eq!(c.data.dataset, "norman19");
        let e = RunConfig::parse(MINIMAL, "t", &["train.stepz=7".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("train.steps"), "{e}");
        assert!(RunConfig::parse(MINIMAL, "t", &["steps=7".into()]).is_err());
        assert!(RunConfig::parse(MINIMAL, "t", &["train.steps".into()]).is_err());
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = RunConfig::parse(&format!("{MINIMAL}[train]\nsteps = \"many\"\n"), "t", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train.steps") && e.contains("whole number"),
            "{e}"
        );
        let e = RunConfig::parse(MINIMAL, "t", &["train.lr=abc".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train.lr") && e.contains("expected a number"),
            "{e}"
        );
        let e = RunConfig::parse(MINIMAL, "t", &["latent.enabled=yes".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("latent.enabled"), "{e}");
    }

    #[test]
    fn bad_values_are_refused() {
        for (set, key) in [
            ("train.optimizer=sgd", "train.optimizer"),
            ("train.batch_size=1", "train.batch_size"),
            ("model.d_model=100", "model.d_model"),
            ("train.warmup_steps=300000", "train.warmup_steps"),
            ("latent.enabled=true", "latent.scgpt_dir"),
            ("train.lr=-1", "train.lr"),
            ("data.max_memory=two", "data.max_memory"),
            ("data.block_cells=0", "data.block_cells"),
        ] {
            let e = RunConfig::parse(MINIMAL, "t", &[set.into()])
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{set}: {e}");
        }
        let e = RunConfig::parse("[latent]\nenabled = false\n", "t", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("data.path"), "{e}");
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = RunConfig::parse(
            MINIMAL,
            "t",
            &["train.steps=9".into(), "data.max_memory=\"1.5GiB\"".into()],
        )
        .unwrap();
        assert_eq!(
            c.data.max_memory,
            ccfm_data::MemoryBudget::Bytes(3 << 29),
            "a memory size as written"
        );
        let back = RunConfig::parse(&c.to_toml(), "resolved", &[]).unwrap();
        assert_eq!(c, back);
        assert!(known_keys().contains(&"sample.cells_per_condition".to_string()));
    }
    #[test]
    fn wrong_enum_values_name_the_key_and_the_choices() {
        for (set, key, hint) in [
            ("train.optimizer=adamx", "train.optimizer", "adam"),
            ("sample.solver=rk5", "sample.solver", "rk4"),
            ("objective.prediction=dat", "objective.prediction", "data"),
            ("data.schema=gear", "data.schema", "gears"),
            ("output.progress=sometimes", "output.progress", "never"),
            ("data.split=additiv", "data.split", "additive"),
            (
                "objective.times.expr={kind=\"logit_norma\",mean=0,std=1}",
                "objective.times.expr",
                "logit_normal",
            ),
        ] {
            let e = RunConfig::parse(MINIMAL, "t", &[set.into()])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("`{key}`")) && e.contains(&format!("did you mean `{hint}`")),
                "{set}: {e}"
            );
            assert!(e.contains("is not one of"), "{set}: {e}");
        }
        let e = RunConfig::parse(MINIMAL, "t", &["train.optimizer=adamx".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("adam, adamw"), "{e}");
    }

    #[test]
    fn keys_of_earlier_versions_move_to_their_place() {
        let old = format!(
            "{MINIMAL}[model]\nprediction = \"data\"\nmin_sigma = 0.1\n\
             [train]\ngamma = 0\ntime_sampler = \"logit_normal\"\ntime_std = 0.5\n"
        );
        let (c, notes) =
            RunConfig::parse_with_notes(&old, "old.toml", &["latent.choose_latent_p=0.25".into()])
                .unwrap();
        assert_eq!(c.objective.prediction, ccfm_model::Prediction::Data);
        assert_eq!(c.objective.min_sigma, 0.1);
        assert_eq!(c.objective.gamma, 0.0);
        assert_eq!(c.objective.times.choose_latent_p, 0.25);
        assert_eq!(
            c.objective.times.expr,
            ccfm_flow::TimeSampler::LogitNormal {
                mean: -0.4,
                std: 0.5
            }
        );
        assert!(notes
            .iter()
            .any(|n| n.contains("`train.gamma` is now `objective.gamma`")));
        // An old-style override still wins over a current file.
        let c = RunConfig::parse(
            &c.to_toml(),
            "new.toml",
            &["train.time_sampler=uniform".into()],
        )
        .unwrap();
        assert_eq!(c.objective.times.expr, ccfm_flow::TimeSampler::Uniform);
    }
}
