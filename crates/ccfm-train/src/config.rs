//! The run configuration: one TOML file with the sections `[data]`, `[model]`, `[latent]`,
//! `[train]`, `[sample]` and `[output]`.
//!
//! Every field has a default (the reference settings of scDFM and of CCFM's latent stream, listed
//! in docs/training.md); a file only states what differs. Unknown sections and keys are errors that
//! name the closest valid key. `section.key=value` overrides (the CLI's `--set`) are applied to
//! the parsed TOML before it is checked, so they obey the same rules. The resolved config
//! (every field, paths made absolute) is what a run directory stores.
//!
//! Switches that have no natural "off" value in TOML use a sentinel: `clamp = 0` (no clamp),
//! `grad_clip = 0` (no clipping), `ema_decay = 0` (no EMA), `warmup_steps = 0`,
//! `n_top_genes = 0` (all genes).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Value;

use crate::error::TrainError;

/// `[data]`: the file, how to read it, the genes and the split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// The `.h5ad` file (relative paths are taken from the working directory).
    pub path: PathBuf,
    /// auto | gears | perturbench | figshare-norman | combosciplex.
    pub schema: String,
    /// `obs['dataset']` value to keep (PerturBench's mixed file), or "".
    pub dataset: String,
    /// auto | X | a layer name (ComboSciPlex: counts).
    pub layer: String,
    /// auto | counts | log1p.
    pub scale: String,
    /// `normalize_total` target for counts: 0 = the median (scDFM), else this sum.
    pub target_sum: f64,
    /// Seurat highly-variable genes kept (scDFM `n_top_genes` 5000); 0 keeps every gene.
    pub n_top_genes: usize,
    /// Add the measured perturbed genes to the HVGs (scDFM does).
    pub force_include_perturbed: bool,
    /// error | vocabulary: what to do with perturbed genes that the file does not measure.
    pub unmeasured_perturbations: String,
    /// Genes per training step, `randperm(G)[:T]` (scDFM `infer_top_gene` 1000).
    pub genes_per_step: usize,
    /// additive | combinations | a split JSON file.
    pub split: String,
    pub fold: u64,
    pub split_seed: u64,
    pub test_fraction: f64,
    pub holdout_doubles: usize,
    /// Fraction of the training doubles held out for validation.
    pub val_fraction: f64,
    /// Co-expression partners per gene in the gene encoder's mask (scDFM 30).
    pub coexpression_top_k: usize,
    pub use_negative_edge: bool,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            schema: "auto".into(),
            dataset: String::new(),
            layer: "auto".into(),
            scale: "auto".into(),
            target_sum: 0.0,
            n_top_genes: 5000,
            force_include_perturbed: true,
            unmeasured_perturbations: "error".into(),
            genes_per_step: 1000,
            split: "additive".into(),
            fold: 1,
            split_seed: 42,
            test_fraction: 0.3,
            holdout_doubles: 15,
            val_fraction: 0.1,
            coexpression_top_k: 30,
            use_negative_edge: true,
        }
    }
}

/// `[model]`: the expression network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// auto (from the data) | crispr | drug.
    pub perturbation: String,
    pub d_model: usize,
    pub nhead: usize,
    pub nlayers: usize,
    pub dropout: f64,
    pub mlp_ratio: f64,
    /// velocity (scDFM) | data (Latent Forcing's x-prediction).
    pub prediction: String,
    /// Divisor clamp of data prediction.
    pub min_sigma: f64,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            perturbation: "auto".into(),
            d_model: 128,
            nhead: 8,
            nlayers: 4,
            dropout: 0.1,
            mlp_ratio: 4.0,
            prediction: "velocity".into(),
            min_sigma: 0.05,
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
    /// lambda: weight of the latent velocity loss.
    pub latent_weight: f64,
    /// Probability that a sample trains the latent stream.
    pub choose_latent_p: f64,
    /// Expression samples see the latent at `t ~ U(latent_noise_min, 1)` (1 = clean).
    pub latent_noise_min: f64,
    /// Batches whose scGPT features build the normalisation statistics before they freeze.
    pub norm_warmup_batches: usize,
    /// Clamp of the normalised features (0 = none; the architecture suggests 5).
    pub clamp: f64,
    pub target_std: f64,
    /// left (deterministic) | random (scgpt 0.2.4) tie-break of the value binning.
    pub binning: String,
    /// uniform | logit_normal time sampling of the latent stream.
    pub time_sampler: String,
    pub time_mean: f64,
    pub time_std: f64,
}

impl Default for LatentSection {
    fn default() -> Self {
        Self {
            enabled: true,
            scgpt_dir: PathBuf::new(),
            bottleneck_dim: 128,
            dh_depth: 2,
            latent_weight: 1.0,
            choose_latent_p: 0.4,
            latent_noise_min: 1.0,
            norm_warmup_batches: 100,
            clamp: 0.0,
            target_std: 1.0,
            binning: "left".into(),
            time_sampler: "uniform".into(),
            time_mean: -1.2,
            time_std: 1.0,
        }
    }
}

/// `[train]`: objective, optimiser and schedule.
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
    /// adam (scDFM) | adamw.
    pub optimizer: String,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    /// Decoupled weight decay of AdamW (ignored by Adam).
    pub weight_decay: f64,
    /// Clip each parameter's gradient to this L2 norm (0 = off).
    pub grad_clip: f64,
    /// Exponential moving average of the weights (0 = off; e.g. 0.999).
    pub ema_decay: f64,
    /// gamma: weight of the MMD² term (0 = off; scDFM 0.5).
    pub gamma: f64,
    /// uniform | logit_normal time sampling of the expression stream.
    pub time_sampler: String,
    pub time_mean: f64,
    pub time_std: f64,
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
            optimizer: "adam".into(),
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            grad_clip: 0.0,
            ema_decay: 0.0,
            gamma: 0.5,
            time_sampler: "uniform".into(),
            time_mean: -0.4,
            time_std: 0.8,
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
    /// euler | midpoint | heun | rk4 | torchdiffeq_rk4 (scDFM).
    pub solver: String,
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
    /// Keep dropout active while generating (scDFM did; architecture decision 3 turns it off).
    pub inference_dropout: bool,
    pub seed: u64,
}

impl Default for SampleSection {
    fn default() -> Self {
        Self {
            solver: "torchdiffeq_rk4".into(),
            latent_time_points: 20,
            expr_time_points: 20,
            cells_per_condition: 128,
            batch_size: 48,
            n_genes: 1000,
            use_ema: true,
            inference_dropout: false,
            seed: 0,
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
    /// auto (on a terminal) | always | never.
    pub progress: String,
}

impl Default for OutputSection {
    fn default() -> Self {
        Self {
            log_every: 100,
            checkpoint_every: 5000,
            keep_checkpoints: 2,
            progress: "auto".into(),
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
    pub train: TrainSection,
    pub sample: SampleSection,
    pub output: OutputSection,
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The valid key closest to `key`.
pub fn closest<'a>(key: &str, valid: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    valid
        .into_iter()
        .map(|v| (distance(key, v), v))
        .min()
        .map(|(_, v)| v)
}

fn default_tree() -> toml::Table {
    match Value::try_from(RunConfig::default()) {
        Ok(Value::Table(t)) => t,
        _ => unreachable!("the default config serialises to a table"),
    }
}

/// Every `section.key` of the configuration.
pub fn known_keys() -> Vec<String> {
    let mut out = Vec::new();
    for (section, v) in default_tree() {
        if let Value::Table(t) = v {
            out.extend(t.keys().map(|k| format!("{section}.{k}")));
        }
    }
    out
}

/// Check that every section and key of `tree` exists; the error names the closest valid one.
fn check_keys(tree: &toml::Table, source: &str) -> Result<(), TrainError> {
    let defaults = default_tree();
    for (section, value) in tree {
        let Some(Value::Table(known)) = defaults.get(section) else {
            let hint = closest(section, defaults.keys().map(String::as_str)).unwrap_or("data");
            return Err(TrainError::Config {
                source_name: source.to_string(),
                key: section.clone(),
                detail: format!("unknown section [{section}]; did you mean [{hint}]?"),
            });
        };
        let Value::Table(given) = value else {
            return Err(TrainError::Config {
                source_name: source.to_string(),
                key: section.clone(),
                detail: format!("`{section}` must be a section ([{section}]), not a value"),
            });
        };
        for (key, v) in given {
            let Some(default) = known.get(key) else {
                let hint = closest(key, known.keys().map(String::as_str)).unwrap_or_default();
                return Err(TrainError::Config {
                    source_name: source.to_string(),
                    key: format!("{section}.{key}"),
                    detail: format!("unknown key; did you mean `{section}.{hint}`?"),
                });
            };
            if v.type_str() != default.type_str() {
                let expected = match default {
                    Value::Integer(_) => "a whole number",
                    Value::Float(_) => "a number",
                    Value::Boolean(_) => "true or false",
                    Value::String(_) => "a quoted string",
                    _ => default.type_str(),
                };
                return Err(TrainError::Config {
                    source_name: source.to_string(),
                    key: format!("{section}.{key}"),
                    detail: format!("{v} is {}, expected {expected}", v.type_str()),
                });
            }
        }
    }
    Ok(())
}

/// Parse a `--set` value as a TOML value, or take it as a string.
fn parse_value(text: &str) -> Value {
    let doc = format!("v = {text}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or(Value::String(text.to_string())),
        Err(_) => Value::String(text.to_string()),
    }
}

/// Apply `section.key=value` overrides to a parsed tree.
pub fn apply_overrides(tree: &mut toml::Table, overrides: &[String]) -> Result<(), TrainError> {
    let defaults = default_tree();
    for o in overrides {
        let bad = |detail: String| TrainError::Config {
            source_name: "--set".into(),
            key: o.clone(),
            detail,
        };
        let (key, value) = o
            .split_once('=')
            .ok_or_else(|| bad("expected section.key=value, e.g. train.steps=500".into()))?;
        let (section, field) = key
            .trim()
            .split_once('.')
            .ok_or_else(|| bad("the key needs its section, e.g. train.steps=500".into()))?;
        let entry = tree
            .entry(section.to_string())
            .or_insert_with(|| Value::Table(toml::Table::new()));
        let Value::Table(t) = entry else {
            return Err(bad(format!("`{section}` is not a section")));
        };
        let mut v = parse_value(value.trim());
        // A string field given something that parsed as another type stays a string.
        let expected = defaults.get(section).and_then(|s| s.get(field));
        if let (Some(Value::String(_)), false) = (expected, v.is_str()) {
            v = Value::String(value.trim().to_string());
        }
        t.insert(field.to_string(), v);
    }
    Ok(())
}

impl RunConfig {
    /// Parse TOML text (with overrides) into a checked configuration. `source` names the text
    /// in errors (the file path).
    pub fn parse(text: &str, source: &str, overrides: &[String]) -> Result<Self, TrainError> {
        let mut tree: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| TrainError::Config {
                    source_name: source.to_string(),
                    key: "(file)".into(),
                    detail: format!("not valid TOML: {}", e.message()),
                })?;
        apply_overrides(&mut tree, overrides)?;
        // Integers given for float fields are accepted (lr = 1 means 1.0), in the file and in
        // overrides alike.
        let defaults = default_tree();
        for (section, v) in tree.iter_mut() {
            if let (Value::Table(t), Some(Value::Table(d))) = (v, defaults.get(section)) {
                for (k, val) in t.iter_mut() {
                    if let (Some(Value::Float(_)), Value::Integer(i)) = (d.get(k), &val) {
                        *val = Value::Float(*i as f64);
                    }
                }
            }
        }
        check_keys(&tree, source)?;
        let cfg: RunConfig = Value::Table(tree)
            .try_into()
            .map_err(|e: toml::de::Error| TrainError::Config {
                source_name: source.to_string(),
                key: "(value)".into(),
                detail: e.message().to_string(),
            })?;
        cfg.validate(source)?;
        Ok(cfg)
    }

    /// Read a config file, apply overrides.
    pub fn read(path: &Path, overrides: &[String]) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::Io {
            path: path.to_path_buf(),
            detail: format!("cannot read the config: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string(), overrides)
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
        let split = PathBuf::from(&self.data.split);
        if !matches!(self.data.split.as_str(), "additive" | "combinations") && split.is_relative() {
            self.data.split = base.join(split).display().to_string();
        }
    }

    fn validate(&self, source: &str) -> Result<(), TrainError> {
        let bad = |key: &str, detail: String| TrainError::Config {
            source_name: source.to_string(),
            key: key.to_string(),
            detail,
        };
        let one_of = |key: &str, v: &str, allowed: &[&str]| -> Result<(), TrainError> {
            if allowed.contains(&v) {
                Ok(())
            } else {
                let hint = closest(v, allowed.iter().copied()).unwrap_or_default();
                Err(bad(
                    key,
                    format!(
                        "`{v}` is not one of {}; did you mean `{hint}`?",
                        allowed.join(", ")
                    ),
                ))
            }
        };
        let (d, m, l, t, s, o) = (
            &self.data,
            &self.model,
            &self.latent,
            &self.train,
            &self.sample,
            &self.output,
        );
        one_of(
            "data.schema",
            &d.schema,
            &[
                "auto",
                "gears",
                "perturbench",
                "figshare-norman",
                "combosciplex",
            ],
        )?;
        one_of("data.scale", &d.scale, &["auto", "counts", "log1p"])?;
        one_of(
            "data.unmeasured_perturbations",
            &d.unmeasured_perturbations,
            &["error", "vocabulary"],
        )?;
        one_of(
            "model.perturbation",
            &m.perturbation,
            &["auto", "crispr", "drug"],
        )?;
        one_of("model.prediction", &m.prediction, &["velocity", "data"])?;
        one_of("latent.binning", &l.binning, &["left", "random"])?;
        for (key, v) in [
            ("latent.time_sampler", &l.time_sampler),
            ("train.time_sampler", &t.time_sampler),
        ] {
            one_of(key, v, &["uniform", "logit_normal"])?;
        }
        one_of("train.optimizer", &t.optimizer, &["adam", "adamw"])?;
        one_of(
            "sample.solver",
            &s.solver,
            &["euler", "midpoint", "heun", "rk4", "torchdiffeq_rk4"],
        )?;
        one_of("output.progress", &o.progress, &["auto", "always", "never"])?;
        for (key, v) in [
            ("data.genes_per_step", d.genes_per_step),
            ("model.d_model", m.d_model),
            ("model.nhead", m.nhead),
            ("model.nlayers", m.nlayers),
            ("train.steps", t.steps),
            ("sample.cells_per_condition", s.cells_per_condition),
            ("sample.batch_size", s.batch_size),
            ("output.log_every", o.log_every),
            ("output.checkpoint_every", o.checkpoint_every),
            ("output.keep_checkpoints", o.keep_checkpoints),
            ("latent.bottleneck_dim", l.bottleneck_dim),
            ("latent.norm_warmup_batches", l.norm_warmup_batches),
            ("train.val_cells", t.val_cells),
        ] {
            if v == 0 {
                return Err(bad(key, "must be at least 1".into()));
            }
        }
        // Sizes far above any real run and far below what would overflow an allocation: a
        // damaged or mistyped number is an error here, not a crash later.
        const M: usize = 1 << 20;
        for (key, v, max) in [
            ("data.n_top_genes", d.n_top_genes, 1 << 22),
            ("data.genes_per_step", d.genes_per_step, M),
            ("data.holdout_doubles", d.holdout_doubles, 1 << 22),
            ("data.coexpression_top_k", d.coexpression_top_k, 1 << 16),
            ("model.d_model", m.d_model, 1 << 16),
            ("model.nhead", m.nhead, 1024),
            ("model.nlayers", m.nlayers, 256),
            ("latent.bottleneck_dim", l.bottleneck_dim, 1 << 16),
            ("latent.dh_depth", l.dh_depth, 256),
            ("latent.norm_warmup_batches", l.norm_warmup_batches, M),
            ("train.steps", t.steps, 1 << 40),
            ("train.batch_size", t.batch_size, M),
            ("train.warmup_steps", t.warmup_steps, 1 << 40),
            ("train.val_conditions", t.val_conditions, M),
            ("train.val_cells", t.val_cells, M),
            ("sample.latent_time_points", s.latent_time_points, M),
            ("sample.expr_time_points", s.expr_time_points, M),
            ("sample.cells_per_condition", s.cells_per_condition, 1 << 24),
            ("sample.batch_size", s.batch_size, M),
            ("sample.n_genes", s.n_genes, 1 << 22),
        ] {
            if v > max {
                return Err(bad(
                    key,
                    format!("{v} is more than the largest allowed ({max})"),
                ));
            }
        }
        if t.batch_size < 2 {
            return Err(bad(
                "train.batch_size",
                "must be at least 2 (the MMD term compares cells of a batch)".into(),
            ));
        }
        if !m.d_model.is_multiple_of(m.nhead) || !m.d_model.is_multiple_of(8) {
            return Err(bad(
                "model.d_model",
                format!(
                    "{} must be divisible by model.nhead ({}) and by 8 (the gene encoder's heads)",
                    m.d_model, m.nhead
                ),
            ));
        }
        for (key, v, lo, hi) in [
            ("data.test_fraction", d.test_fraction, 0.0, 1.0),
            ("data.val_fraction", d.val_fraction, 0.0, 1.0),
            ("model.dropout", m.dropout, 0.0, 1.0),
            ("latent.choose_latent_p", l.choose_latent_p, 0.0, 1.0),
            ("latent.latent_noise_min", l.latent_noise_min, 0.0, 1.0),
            ("train.ema_decay", t.ema_decay, 0.0, 1.0),
            ("train.beta1", t.beta1, 0.0, 1.0),
            ("train.beta2", t.beta2, 0.0, 1.0),
        ] {
            if !(v.is_finite() && (lo..=hi).contains(&v)) || (key == "train.ema_decay" && v >= 1.0)
            {
                return Err(bad(key, format!("{v} must be in [{lo}, {hi}]")));
            }
        }
        for (key, v) in [
            ("train.lr", t.lr),
            ("train.epsilon", t.epsilon),
            ("latent.target_std", l.target_std),
            ("model.mlp_ratio", m.mlp_ratio),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(key, format!("{v} must be a number > 0")));
            }
        }
        for (key, v) in [
            ("train.eta_min", t.eta_min),
            ("train.weight_decay", t.weight_decay),
            ("train.grad_clip", t.grad_clip),
            ("train.gamma", t.gamma),
            ("latent.latent_weight", l.latent_weight),
            ("latent.clamp", l.clamp),
            ("data.target_sum", d.target_sum),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(key, format!("{v} must be a number >= 0")));
            }
        }
        if t.eta_min > t.lr {
            return Err(bad(
                "train.eta_min",
                format!("{} is above train.lr ({})", t.eta_min, t.lr),
            ));
        }
        if t.warmup_steps >= t.steps {
            return Err(bad(
                "train.warmup_steps",
                format!("{} must be below train.steps ({})", t.warmup_steps, t.steps),
            ));
        }
        if d.path.as_os_str().is_empty() {
            return Err(bad(
                "data.path",
                "missing: the .h5ad file to train on (e.g. --set data.path=norman.h5ad)".into(),
            ));
        }
        if l.enabled && l.scgpt_dir.as_os_str().is_empty() {
            return Err(bad(
                "latent.scgpt_dir",
                "missing: CCFM needs a scGPT model directory (args.json, vocab.json, \
                 best_model.pt); or set latent.enabled = false for plain scDFM"
                    .into(),
            ));
        }
        for (key, v) in [
            ("sample.latent_time_points", s.latent_time_points),
            ("sample.expr_time_points", s.expr_time_points),
        ] {
            if v < 2 {
                return Err(bad(key, format!("{v} must be at least 2")));
            }
        }
        // The libraries' own checks of the objective, here so that they fail before any file
        // is read (they used to surface only after the data had been loaded).
        let d = self.denoiser();
        for (section, sampler) in [("train", &d.times.expr), ("latent", &d.times.latent)] {
            sampler.validate().map_err(|e| match e {
                ccfm_flow::FlowError::InvalidParameter {
                    name,
                    value,
                    expected,
                } => bad(
                    &format!("{section}.time_{name}"),
                    format!("{value}: {expected}"),
                ),
                other => bad(&format!("{section}.time_sampler"), other.to_string()),
            })?;
        }
        d.validate().map_err(|e| match e {
            ccfm_model::ModelError::Config { name, detail } => {
                let key = match name {
                    "min_sigma" => "model.min_sigma",
                    "gamma" => "train.gamma",
                    "latent_weight" => "latent.latent_weight",
                    other => other,
                };
                bad(key, detail)
            }
            other => bad("(objective)", other.to_string()),
        })?;
        Ok(())
    }

    /// The objective and sampler settings.
    pub fn denoiser(&self) -> ccfm_model::DenoiserConfig {
        use ccfm_flow::{CascadedTimeSampler, OdeMethod, TimeSampler};
        let sampler = |kind: &str, mean: f64, std: f64| match kind {
            "logit_normal" => TimeSampler::LogitNormal { mean, std },
            _ => TimeSampler::Uniform,
        };
        ccfm_model::DenoiserConfig {
            times: CascadedTimeSampler {
                choose_latent_p: self.latent.choose_latent_p,
                expr: sampler(
                    &self.train.time_sampler,
                    self.train.time_mean,
                    self.train.time_std,
                ),
                latent: sampler(
                    &self.latent.time_sampler,
                    self.latent.time_mean,
                    self.latent.time_std,
                ),
                latent_noise_min: self.latent.latent_noise_min,
            },
            latent_weight: self.latent.latent_weight,
            gamma: self.train.gamma,
            prediction: match self.model.prediction.as_str() {
                "data" => ccfm_model::Prediction::Data,
                _ => ccfm_model::Prediction::Velocity,
            },
            min_sigma: self.model.min_sigma,
            solver: OdeMethod::from_name(&self.sample.solver).expect("validated"),
            latent_time_points: self.sample.latent_time_points,
            expr_time_points: self.sample.expr_time_points,
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
        assert_eq!(c.train.optimizer, "adam");
        assert_eq!(c.train.gamma, 0.5);
        assert_eq!(c.latent.choose_latent_p, 0.4);
    }

    #[test]
    fn objective_settings_are_checked_when_the_config_is_read() {
        for (set, key) in [
            ("model.min_sigma=0", "model.min_sigma"),
            ("model.min_sigma=1.5", "model.min_sigma"),
            ("train.time_std=-1", "train.time_std"),
            ("latent.time_std=0", "latent.time_std"),
        ] {
            let sampler = if set.starts_with("latent") {
                "latent.time_sampler=\"logit_normal\""
            } else {
                "train.time_sampler=\"logit_normal\""
            };
            let e = RunConfig::parse(MINIMAL, "t", &[set.to_string(), sampler.to_string()])
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
        assert_eq!(c.model.perturbation, "drug");
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
        let c = RunConfig::parse(MINIMAL, "t", &["train.steps=9".into()]).unwrap();
        let back = RunConfig::parse(&c.to_toml(), "resolved", &[]).unwrap();
        assert_eq!(c, back);
        assert!(known_keys().contains(&"sample.cells_per_condition".to_string()));
    }
}
