//! `CascadedDenoiser`: the training objective and the two-stage sampler around
//! [`CascadedFlowModel`].
//!
//! Training (one batch): draw the cascaded times, noise both streams along the CondOT path,
//! predict, and combine `w_expr MSE(v_expr) + latent_weight w_latent MSE(v_latent) +
//! gamma MMD²(expression samples)`, each masked MSE averaged over the whole batch.
//!
//! Generation: stage 1 integrates the latent from noise with the expression input held at the
//! noise `x0` and `t_expr = 0`; stage 2 integrates the expression from that same `x0` with the
//! generated latent held clean (`t_latent = 1`); the result is clamped at 0. In scDFM mode only
//! stage 2 runs, without a latent.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use ccfm_flow::{
    gaussian_like, integrate, median_sigmas, mmd2_unbiased_multi_sigma, AffineProbPath,
    CascadedTimeSampler, CondOt, OdeMethod, TimeGrid, SCDFM_SIGMA_SCALES,
};
use ccfm_layers::CoexpressionMask;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::model::{CascadedFlowModel, LatentInput};

/// What the network's outputs mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    /// The velocity `x1 - x0` (scDFM).
    #[default]
    Velocity,
    /// The clean target `x1` (Latent Forcing); the loss is on the implied velocity
    /// `(x1_hat - x_t) / max(1 - t, min_sigma)`.
    Data,
}

/// The training objective: cascaded times, loss weights and what the network predicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectiveConfig {
    /// Cascaded time sampling (`choose_latent_p`, per-stream samplers, `latent_noise_min`).
    /// In scDFM mode only `times.expr` is used.
    pub times: CascadedTimeSampler,
    /// lambda: weight of the latent velocity loss.
    pub latent_weight: f64,
    /// gamma: weight of the MMD² term on expression samples (0 turns it off).
    pub gamma: f64,
    pub prediction: Prediction,
    /// Divisor clamp for data prediction.
    pub min_sigma: f64,
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        Self {
            times: CascadedTimeSampler::default(),
            latent_weight: 1.0,
            gamma: 0.5,
            prediction: Prediction::Velocity,
            min_sigma: 0.05,
        }
    }
}

impl ObjectiveConfig {
    pub fn validate(&self) -> Result<(), ModelError> {
        self.times.validate()?;
        for (name, v) in [("latent_weight", self.latent_weight), ("gamma", self.gamma)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ModelError::Config {
                    name,
                    detail: format!("{v} must be finite and >= 0"),
                });
            }
        }
        if !(self.min_sigma > 0.0 && self.min_sigma < 1.0) {
            return Err(ModelError::Config {
                name: "min_sigma",
                detail: format!("{} must be in (0, 1)", self.min_sigma),
            });
        }
        Ok(())
    }
}

/// The two-stage sampler: the ODE method and the points of each stage's time grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplerConfig {
    pub solver: OdeMethod,
    /// Points of the stage-1 time grid, `linspace(0, 1, n)` (scDFM: 20 = 19 steps).
    pub latent_time_points: usize,
    /// Points of the stage-2 time grid.
    pub expr_time_points: usize,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            solver: OdeMethod::Rk4ThreeEighths,
            latent_time_points: 20,
            expr_time_points: 20,
        }
    }
}

impl SamplerConfig {
    pub fn validate(&self) -> Result<(), ModelError> {
        TimeGrid::linspace(0.0, 1.0, self.latent_time_points)?;
        TimeGrid::linspace(0.0, 1.0, self.expr_time_points)?;
        Ok(())
    }
}

/// Objective and sampler settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenoiserConfig {
    pub objective: ObjectiveConfig,
    pub sampler: SamplerConfig,
}

impl DenoiserConfig {
    pub fn validate(&self) -> Result<(), ModelError> {
        self.objective.validate()?;
        self.sampler.validate()
    }
}

/// One training batch: `B` target cells and `B` control cells over the same `T` genes.
#[derive(Debug, Clone)]
pub struct TrainBatch<B: Backend> {
    /// `(T,)` vocabulary ids of the genes, shared by all cells.
    pub gene_ids: Tensor<B, 1, Int>,
    /// `(B, T)` control cells (the condition).
    pub control: Tensor<B, 2>,
    /// `(B, T)` perturbed cells (the flow's target).
    pub target: Tensor<B, 2>,
    /// `(B, S)` perturbation token ids.
    pub pert_ids: Tensor<B, 2, Int>,
    /// `(B, T, scgpt_dim)` normalised scGPT features of `target`; required in CCFM mode.
    pub z_target: Option<Tensor<B, 3>>,
}

/// The loss and its parts, each `(1,)`, for logging.
#[derive(Debug, Clone)]
pub struct LossParts<B: Backend> {
    pub total: Tensor<B, 1>,
    pub expr: Tensor<B, 1>,
    pub latent: Option<Tensor<B, 1>>,
    pub mmd: Option<Tensor<B, 1>>,
    /// How many samples of the batch trained the expression stream.
    pub expr_samples: usize,
}

/// Generated cells.
#[derive(Debug, Clone)]
pub struct Generated<B: Backend> {
    /// `(B, T)`, clamped at 0.
    pub expression: Tensor<B, 2>,
    /// `(B, T, scgpt_dim)` stage-1 latent (CCFM mode).
    pub latent: Option<Tensor<B, 3>>,
}

/// The objective and sampler; holds only settings, the model is passed in.
#[derive(Debug, Clone, Default)]
pub struct CascadedDenoiser {
    pub config: DenoiserConfig,
}

impl CascadedDenoiser {
    pub fn new(config: DenoiserConfig) -> Result<Self, ModelError> {
        config.validate()?;
        Ok(Self { config })
    }

    fn velocity<B: Backend, const D: usize>(
        &self,
        out: Tensor<B, D>,
        x_t: Tensor<B, D>,
        t: Tensor<B, 1>,
    ) -> Tensor<B, D> {
        match self.config.objective.prediction {
            Prediction::Velocity => out,
            Prediction::Data => AffineProbPath::new(CondOt).velocity_from_data_prediction(
                out,
                x_t,
                t,
                self.config.objective.min_sigma,
            ),
        }
    }

    /// The network's estimate of the clean endpoint: the data prediction itself, or the
    /// one-step estimate `x_t + (1 - t) v` from a velocity (scDFM's MMD input).
    fn endpoint<B: Backend>(
        &self,
        out: Tensor<B, 2>,
        x_t: Tensor<B, 2>,
        t: Tensor<B, 1>,
    ) -> Tensor<B, 2> {
        match self.config.objective.prediction {
            Prediction::Velocity => AffineProbPath::new(CondOt).endpoint_from_velocity(out, x_t, t),
            Prediction::Data => out,
        }
    }

    /// The loss of one batch (backpropagate `total` on an autodiff backend).
    pub fn train_step<B: Backend>(
        &self,
        model: &CascadedFlowModel<B>,
        mask: &CoexpressionMask<B>,
        batch: TrainBatch<B>,
    ) -> Result<LossParts<B>, ModelError> {
        let [b, t_len] = batch.target.dims();
        if batch.control.dims() != [b, t_len]
            || batch.gene_ids.dims() != [t_len]
            || batch.pert_ids.dims()[0] != b
        {
            return Err(ModelError::Shape(format!(
                "target {:?}, control {:?}, gene_ids {:?}, pert_ids {:?}",
                batch.target.dims(),
                batch.control.dims(),
                batch.gene_ids.dims(),
                batch.pert_ids.dims()
            )));
        }
        let device = batch.target.device();
        let path = AffineProbPath::new(CondOt);
        let x0 = gaussian_like(&batch.target);

        let (x1_hat, w_expr, v_err, loss_z) = if model.has_latent() {
            let z_target = batch
                .z_target
                .clone()
                .ok_or(ModelError::MissingLatentTarget)?;
            let times = self.config.objective.times.sample::<B>(b, &device);
            let s_e = path.sample(x0, batch.target.clone(), times.t_expr.clone());
            let z0 = gaussian_like(&z_target);
            let s_z = path.sample(z0, z_target, times.t_latent.clone());
            let (out_e, out_z) = model.forward_cascaded(
                batch.gene_ids,
                s_e.x_t.clone(),
                times.t_expr.clone(),
                LatentInput {
                    z_t: s_z.x_t.clone(),
                    t_latent: times.t_latent.clone(),
                },
                batch.control,
                batch.pert_ids,
                mask,
            );
            let x1_hat = self.endpoint(out_e.clone(), s_e.x_t.clone(), times.t_expr.clone());
            let v_e = self.velocity(out_e, s_e.x_t, times.t_expr);
            let v_z = self.velocity(out_z, s_z.x_t, times.t_latent);
            let w = times.w_latent.reshape([b, 1, 1]);
            let loss_z = (v_z - s_z.dx_t).powi_scalar(2).mul(w).mean();
            let v_err = (v_e - s_e.dx_t).powi_scalar(2);
            (x1_hat, times.w_expr, v_err, Some(loss_z))
        } else {
            let t = self.config.objective.times.expr.sample::<B>(b, &device);
            let s_e = path.sample(x0, batch.target.clone(), t.clone());
            let out = model.forward(
                batch.gene_ids,
                s_e.x_t.clone(),
                t.clone(),
                batch.control,
                batch.pert_ids,
                mask,
            );
            let x1_hat = self.endpoint(out.clone(), s_e.x_t.clone(), t.clone());
            let v_e = self.velocity(out, s_e.x_t, t);
            let v_err = (v_e - s_e.dx_t).powi_scalar(2);
            let w = Tensor::ones([b], &device);
            (x1_hat, w, v_err, None)
        };
        let loss_e = v_err.mul(w_expr.clone().reshape([b, 1])).mean();
        let mut total = loss_e.clone();
        if let Some(loss_z) = &loss_z {
            total = total
                + loss_z
                    .clone()
                    .mul_scalar(self.config.objective.latent_weight);
        }

        // MMD over the expression samples only.
        let rows: Vec<i64> = w_expr
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| ModelError::ReadBack {
                what: "the expression-sample weights",
                detail: format!("{e:?}"),
            })?
            .iter()
            .enumerate()
            .filter(|(_, &w)| w > 0.5)
            .map(|(i, _)| i as i64)
            .collect();
        let expr_samples = rows.len();
        let mmd = if self.config.objective.gamma > 0.0 && expr_samples >= 2 {
            let idx =
                Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [expr_samples]), &device);
            let x1_hat = x1_hat.select(0, idx.clone());
            let target = batch.target.select(0, idx);
            let sigmas = median_sigmas(target.clone(), &SCDFM_SIGMA_SCALES)?.sigmas;
            let mmd = mmd2_unbiased_multi_sigma(x1_hat, target, &sigmas)?;
            total = total + mmd.clone().mul_scalar(self.config.objective.gamma);
            Some(mmd)
        } else {
            None
        };
        Ok(LossParts {
            total,
            expr: loss_e,
            latent: loss_z,
            mmd,
            expr_samples,
        })
    }

    /// Generate one cell per control cell. Noise is drawn from the backend's stream in this
    /// order: the expression noise `x0 (B, T)`, then (CCFM) the latent noise `(B, T, scgpt_dim)`.
    pub fn generate<B: Backend>(
        &self,
        model: &CascadedFlowModel<B>,
        mask: &CoexpressionMask<B>,
        gene_ids: Tensor<B, 1, Int>,
        control: Tensor<B, 2>,
        pert_ids: Tensor<B, 2, Int>,
    ) -> Result<Generated<B>, ModelError> {
        let [b, t_len] = control.dims();
        let device = control.device();
        let x0 = gaussian_like(&control);
        let expr_grid = TimeGrid::linspace(0.0, 1.0, self.config.sampler.expr_time_points)?;
        let method = self.config.sampler.solver;
        let latent = match &model.latent_decoder {
            None => None,
            Some(_) => {
                let scgpt_dim = model
                    .latent_embedder
                    .as_ref()
                    .map(|e| e.proj_0.weight.dims()[0])
                    .expect("latent embedder present with the decoder");
                let z0 = gaussian_like(&Tensor::<B, 3>::zeros([b, t_len, scgpt_dim], &device));
                let grid = TimeGrid::linspace(0.0, 1.0, self.config.sampler.latent_time_points)?;
                let t_zero = Tensor::<B, 1>::zeros([b], &device);
                let sol = integrate(
                    |z: Tensor<B, 3>, t| {
                        let t_lat = Tensor::<B, 1>::full([b], t, &device);
                        let (_, out_z) = model.forward_cascaded(
                            gene_ids.clone(),
                            x0.clone(),
                            t_zero.clone(),
                            LatentInput {
                                z_t: z.clone(),
                                t_latent: t_lat.clone(),
                            },
                            control.clone(),
                            pert_ids.clone(),
                            mask,
                        );
                        self.velocity(out_z, z, t_lat)
                    },
                    z0,
                    &grid,
                    method,
                    false,
                );
                Some(sol.final_state)
            }
        };
        let t_one = Tensor::<B, 1>::ones([b], &device);
        let sol = integrate(
            |x: Tensor<B, 2>, t| {
                let t_e = Tensor::<B, 1>::full([b], t, &device);
                let out = match &latent {
                    Some(z) => {
                        model
                            .forward_cascaded(
                                gene_ids.clone(),
                                x.clone(),
                                t_e.clone(),
                                LatentInput {
                                    z_t: z.clone(),
                                    t_latent: t_one.clone(),
                                },
                                control.clone(),
                                pert_ids.clone(),
                                mask,
                            )
                            .0
                    }
                    None => model.forward(
                        gene_ids.clone(),
                        x.clone(),
                        t_e.clone(),
                        control.clone(),
                        pert_ids.clone(),
                        mask,
                    ),
                };
                self.velocity(out, x, t_e)
            },
            x0,
            &expr_grid,
            method,
            false,
        );
        Ok(Generated {
            expression: sol.final_state.clamp_min(0.0),
            latent,
        })
    }
}
