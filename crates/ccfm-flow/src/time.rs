//! Time samplers: how training draws `t` per sample.

use burn::tensor::{activation::sigmoid, backend::Backend, Bool, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::FlowError;

/// How one stream draws its training times in `[0, 1]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TimeSampler {
    /// `t ~ U(0, 1)` (scDFM, and CCFM's default).
    #[default]
    Uniform,
    /// `t = sigmoid(n)`, `n ~ N(mean, std^2)` (Latent Forcing: expression -0.4/0.8, latent -1.2/1.0).
    LogitNormal { mean: f64, std: f64 },
}

impl TimeSampler {
    /// Check the parameters; call once when a configuration is loaded.
    pub fn validate(&self) -> Result<(), FlowError> {
        match *self {
            Self::Uniform => Ok(()),
            Self::LogitNormal { mean, std } => {
                if !mean.is_finite() {
                    return Err(FlowError::InvalidParameter {
                        name: "mean",
                        value: mean,
                        expected: "a finite number",
                    });
                }
                if !(std.is_finite() && std > 0.0) {
                    return Err(FlowError::InvalidParameter {
                        name: "std",
                        value: std,
                        expected: "a finite number > 0",
                    });
                }
                Ok(())
            }
        }
    }

    /// Draw `n` times from the backend's random stream (seed it with `B::seed`).
    pub fn sample<B: Backend>(&self, n: usize, device: &B::Device) -> Tensor<B, 1> {
        match *self {
            Self::Uniform => Tensor::random([n], Distribution::Uniform(0.0, 1.0), device),
            Self::LogitNormal { mean, std } => {
                sigmoid(Tensor::random([n], Distribution::Normal(mean, std), device))
            }
        }
    }
}

/// The times and loss weights of one cascaded training batch.
#[derive(Debug, Clone)]
pub struct CascadedTimes<B: Backend> {
    /// Expression-stream time, `(B,)`; exactly 0 on latent samples.
    pub t_expr: Tensor<B, 1>,
    /// Latent-stream time, `(B,)`; 1 (or `U(latent_noise_min, 1)`) on expression samples.
    pub t_latent: Tensor<B, 1>,
    /// 1 on expression samples, 0 on latent samples.
    pub w_expr: Tensor<B, 1>,
    /// 1 on latent samples, 0 on expression samples.
    pub w_latent: Tensor<B, 1>,
}

impl<B: Backend> CascadedTimes<B> {
    /// True where the sample trains the latent stream (`w_latent == 1`).
    pub fn latent_mask(&self) -> Tensor<B, 1, Bool> {
        self.w_latent.clone().greater_elem(0.5)
    }
}

/// CCFM's cascaded sampler (Latent Forcing's `dino_first_cascaded` modes).
///
/// Each sample is a *latent sample* with probability `choose_latent_p`: its latent time is drawn
/// from `latent`, its expression time is 0 (the expression input is pure noise) and only the
/// latent loss counts. Otherwise it is an *expression sample*: its expression time is drawn from
/// `expr`, its latent is clean (`t_latent = 1`) when `latent_noise_min = 1`, or lightly noised,
/// `t_latent ~ U(latent_noise_min, 1)`, and only the expression loss counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CascadedTimeSampler {
    pub choose_latent_p: f64,
    pub expr: TimeSampler,
    pub latent: TimeSampler,
    pub latent_noise_min: f64,
}

impl Default for CascadedTimeSampler {
    /// CCFM's defaults: p = 0.4, uniform times, clean latent on expression samples.
    fn default() -> Self {
        Self {
            choose_latent_p: 0.4,
            expr: TimeSampler::Uniform,
            latent: TimeSampler::Uniform,
            latent_noise_min: 1.0,
        }
    }
}

impl CascadedTimeSampler {
    /// Check every parameter; call once when a configuration is loaded.
    pub fn validate(&self) -> Result<(), FlowError> {
        if !(0.0..=1.0).contains(&self.choose_latent_p) {
            return Err(FlowError::InvalidParameter {
                name: "choose_latent_p",
                value: self.choose_latent_p,
                expected: "a probability in [0, 1]",
            });
        }
        if !(0.0..=1.0).contains(&self.latent_noise_min) {
            return Err(FlowError::InvalidParameter {
                name: "latent_noise_min",
                value: self.latent_noise_min,
                expected: "a time in [0, 1] (1 = clean latent)",
            });
        }
        // The parameter is named with its stream (`expr.std`, `latent.mean`).
        let within = |stream: &'static str| {
            move |e: FlowError| match e {
                FlowError::InvalidParameter {
                    name,
                    value,
                    expected,
                } => FlowError::InvalidParameter {
                    name: match (stream, name) {
                        ("expr", "mean") => "expr.mean",
                        ("expr", "std") => "expr.std",
                        ("latent", "mean") => "latent.mean",
                        ("latent", "std") => "latent.std",
                        _ => name,
                    },
                    value,
                    expected,
                },
                other => other,
            }
        };
        self.expr.validate().map_err(within("expr"))?;
        self.latent.validate().map_err(within("latent"))
    }

    /// Draw the times and weights for a batch of `n` samples.
    pub fn sample<B: Backend>(&self, n: usize, device: &B::Device) -> CascadedTimes<B> {
        let choose: Tensor<B, 1> = Tensor::random([n], Distribution::Uniform(0.0, 1.0), device);
        let latent_mask = choose.lower_elem(self.choose_latent_p);
        let t_latent_draw = self.latent.sample::<B>(n, device);
        let t_expr_draw = self.expr.sample::<B>(n, device);
        let t_latent_cond = if self.latent_noise_min >= 1.0 {
            Tensor::ones([n], device)
        } else {
            Tensor::random(
                [n],
                Distribution::Uniform(self.latent_noise_min, 1.0),
                device,
            )
        };
        let t_latent = t_latent_cond.mask_where(latent_mask.clone(), t_latent_draw);
        let t_expr = t_expr_draw.mask_fill(latent_mask.clone(), 0.0);
        let w_latent = latent_mask.float();
        let w_expr = w_latent.ones_like() - w_latent.clone();
        CascadedTimes {
            t_expr,
            t_latent,
            w_expr,
            w_latent,
        }
    }
}
