//! The checks of a parsed configuration that serde cannot express: sizes, ranges, required
//! paths, and the libraries' own `validate()` of the objective and the sampler, all run when
//! the configuration is read, before any file is opened. (The denoiser checks its settings
//! again when it is built, as every library type does for callers that skip the config.)

use ccfm_flow::FlowError;
use ccfm_model::ModelError;

use super::RunConfig;
use crate::error::TrainError;

/// Sizes far above any real run and far below what would overflow an allocation: a damaged or
/// mistyped number is an error here, not a crash later.
const M: usize = 1 << 20;

impl RunConfig {
    pub(super) fn validate(&self, source: &str) -> Result<(), TrainError> {
        let bad = |key: &str, detail: String| TrainError::Config {
            source_name: source.to_string(),
            key: key.to_string(),
            detail,
        };
        self.check_sizes().map_err(|(k, d)| bad(k, d))?;
        self.check_numbers().map_err(|(k, d)| bad(k, d))?;
        self.check_required().map_err(|(k, d)| bad(k, d))?;
        self.check_objective().map_err(|(k, d)| bad(&k, d))
    }

    /// Every size: at least 1 where 0 means nothing, at most its bound.
    fn check_sizes(&self) -> Result<(), (&'static str, String)> {
        let (d, m, l, t, s, o) = (
            &self.data,
            &self.model,
            &self.latent,
            &self.train,
            &self.sample,
            &self.output,
        );
        // (key, value, minimum, maximum)
        let sizes = [
            ("data.n_top_genes", d.n_top_genes, 0, 1 << 22),
            ("data.genes_per_step", d.genes_per_step, 1, M),
            ("data.holdout_doubles", d.holdout_doubles, 0, 1 << 22),
            ("data.coexpression_top_k", d.coexpression_top_k, 0, 1 << 16),
            ("data.block_cells", d.block_cells, 1, 1 << 24),
            ("model.d_model", m.d_model, 1, 1 << 16),
            ("model.nhead", m.nhead, 1, 1024),
            ("model.nlayers", m.nlayers, 1, 256),
            ("latent.bottleneck_dim", l.bottleneck_dim, 1, 1 << 16),
            ("latent.dh_depth", l.dh_depth, 0, 256),
            ("latent.norm_warmup_batches", l.norm_warmup_batches, 1, M),
            ("train.steps", t.steps, 1, 1 << 40),
            ("train.batch_size", t.batch_size, 0, M),
            ("train.warmup_steps", t.warmup_steps, 0, 1 << 40),
            ("train.val_conditions", t.val_conditions, 0, M),
            ("train.val_cells", t.val_cells, 1, M),
            ("sample.latent_time_points", s.latent_time_points, 0, M),
            ("sample.expr_time_points", s.expr_time_points, 0, M),
            (
                "sample.cells_per_condition",
                s.cells_per_condition,
                1,
                1 << 24,
            ),
            ("sample.batch_size", s.batch_size, 1, M),
            ("sample.n_genes", s.n_genes, 0, 1 << 22),
            ("output.log_every", o.log_every, 1, usize::MAX),
            ("output.checkpoint_every", o.checkpoint_every, 1, usize::MAX),
            ("output.keep_checkpoints", o.keep_checkpoints, 1, usize::MAX),
        ];
        for (key, v, min, max) in sizes {
            if v < min {
                return Err((key, "must be at least 1".into()));
            }
            if v > max {
                return Err((key, format!("{v} is more than the largest allowed ({max})")));
            }
        }
        if t.batch_size < 2 {
            return Err((
                "train.batch_size",
                "must be at least 2 (the MMD term compares cells of a batch)".into(),
            ));
        }
        if !m.d_model.is_multiple_of(m.nhead) || !m.d_model.is_multiple_of(8) {
            return Err((
                "model.d_model",
                format!(
                    "{} must be divisible by model.nhead ({}) and by 8 (the gene encoder's heads)",
                    m.d_model, m.nhead
                ),
            ));
        }
        if t.warmup_steps >= t.steps {
            return Err((
                "train.warmup_steps",
                format!("{} must be below train.steps ({})", t.warmup_steps, t.steps),
            ));
        }
        Ok(())
    }

    /// Fractions in [0, 1], rates > 0, weights >= 0.
    fn check_numbers(&self) -> Result<(), (&'static str, String)> {
        let (d, m, l, t) = (&self.data, &self.model, &self.latent, &self.train);
        for (key, v) in [
            ("data.test_fraction", d.test_fraction),
            ("data.val_fraction", d.val_fraction),
            ("model.dropout", m.dropout),
            ("train.beta1", t.beta1),
            ("train.beta2", t.beta2),
        ] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return Err((key, format!("{v} must be in [0, 1]")));
            }
        }
        if !(t.ema_decay.is_finite() && (0.0..1.0).contains(&t.ema_decay)) {
            return Err((
                "train.ema_decay",
                format!("{} must be in [0, 1)", t.ema_decay),
            ));
        }
        for (key, v) in [
            ("train.lr", t.lr),
            ("train.epsilon", t.epsilon),
            ("latent.target_std", l.target_std),
            ("model.mlp_ratio", m.mlp_ratio),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err((key, format!("{v} must be a number > 0")));
            }
        }
        for (key, v) in [
            ("train.eta_min", t.eta_min),
            ("train.weight_decay", t.weight_decay),
            ("train.grad_clip", t.grad_clip),
            ("latent.clamp", l.clamp),
            ("data.target_sum", d.target_sum),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err((key, format!("{v} must be a number >= 0")));
            }
        }
        if t.eta_min > t.lr {
            return Err((
                "train.eta_min",
                format!("{} is above train.lr ({})", t.eta_min, t.lr),
            ));
        }
        Ok(())
    }

    /// The data file, and the scGPT model of a CCFM run.
    fn check_required(&self) -> Result<(), (&'static str, String)> {
        if self.data.path.as_os_str().is_empty() {
            return Err((
                "data.path",
                "missing: the .h5ad file to train on (e.g. --set data.path=norman.h5ad)".into(),
            ));
        }
        if self.latent.enabled && self.latent.scgpt_dir.as_os_str().is_empty() {
            return Err((
                "latent.scgpt_dir",
                "missing: CCFM needs a scGPT model directory (args.json, vocab.json, \
                 best_model.pt); or set latent.enabled = false for plain scDFM"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The libraries' own checks of `[objective]` and the sampler, with their keys.
    fn check_objective(&self) -> Result<(), (String, String)> {
        self.objective.validate().map_err(|e| match e {
            ModelError::Config { name, detail } => (format!("objective.{name}"), detail),
            ModelError::Flow(f) => flow_error("objective.times", f),
            other => ("objective".into(), other.to_string()),
        })?;
        self.sample.sampler().validate().map_err(|e| {
            let key = if self.sample.latent_time_points < 2 {
                "sample.latent_time_points"
            } else {
                "sample.expr_time_points"
            };
            (
                key.into(),
                format!("{e}; a time grid needs at least 2 points"),
            )
        })
    }
}

/// A sampler parameter's error under its key.
fn flow_error(prefix: &str, e: FlowError) -> (String, String) {
    match e {
        FlowError::InvalidParameter {
            name,
            value,
            expected,
        } => (format!("{prefix}.{name}"), format!("{value}: {expected}")),
        other => (prefix.to_string(), other.to_string()),
    }
}
