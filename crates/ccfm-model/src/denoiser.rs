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

use burn::tensor::{backend::Backend, Distribution, Int, Tensor, TensorData};
use ccfm_flow::{
    gaussian_like, integrate, median_sigmas, mmd2_unbiased_multi_sigma, AffineProbPath,
    CascadedTimeSampler, CondOt, OdeMethod, Scheduler, TimeGrid, SCDFM_SIGMA_SCALES,
};
use ccfm_layers::CoexpressionMask;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::model::{CascadedFlowModel, FlowInput, LatentInput};

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

/// What generation conditions on: the genes, one control cell per generated cell, and the
/// perturbation tokens.
#[derive(Debug, Clone)]
pub struct GenerationInput<B: Backend> {
    /// `(T,)` vocabulary ids of the genes generated.
    pub gene_ids: Tensor<B, 1, Int>,
    /// `(B, T)` control cells.
    pub control: Tensor<B, 2>,
    /// `(B, slots)` perturbation tokens.
    pub pert_ids: Tensor<B, 2, Int>,
}

/// The starting noise of a generation.
#[derive(Debug, Clone)]
pub struct GenerationNoise<B: Backend> {
    /// `(B, T)` expression noise.
    pub x0: Tensor<B, 2>,
    /// `(B, T, scgpt_dim)` latent noise (CCFM mode).
    pub z0: Option<Tensor<B, 3>>,
}

/// Generated cells.
#[derive(Debug, Clone)]
pub struct Generated<B: Backend> {
    /// `(B, T)`, clamped at 0.
    pub expression: Tensor<B, 2>,
    /// `(B, T, scgpt_dim)` stage-1 latent (CCFM mode).
    pub latent: Option<Tensor<B, 3>>,
}

/// The objective and sampler over the probability path `AffineProbPath<S>` (scDFM and CCFM
/// use CondOT); holds only settings, the model is passed in.
#[derive(Debug, Clone)]
pub struct CascadedDenoiser<S: Scheduler = CondOt> {
    pub config: DenoiserConfig,
    pub path: AffineProbPath<S>,
}

impl Default for CascadedDenoiser<CondOt> {
    fn default() -> Self {
        Self {
            config: DenoiserConfig::default(),
            path: AffineProbPath::new(CondOt),
        }
    }
}

/// The random draws of one training batch: expression noise `(B, T)`, the cascaded times
/// and, in CCFM, latent noise `(B, T, d)`.
#[derive(Debug, Clone)]
pub struct StepNoise<B: Backend> {
    pub x0: Tensor<B, 2>,
    pub times: ccfm_flow::CascadedTimes<B>,
    pub z0: Option<Tensor<B, 3>>,
}

impl<B: Backend> StepNoise<B> {
    /// The draws of the cells `rows` (one data-parallel rank's shard of the global batch).
    pub fn rows(self, rows: std::ops::Range<usize>) -> Self {
        let t = self.times;
        Self {
            x0: self.x0.slice(rows.clone()),
            times: ccfm_flow::CascadedTimes {
                t_expr: t.t_expr.slice(rows.clone()),
                t_latent: t.t_latent.slice(rows.clone()),
                w_expr: t.w_expr.slice(rows.clone()),
                w_latent: t.w_latent.slice(rows.clone()),
            },
            z0: self.z0.map(|z| z.slice(rows)),
        }
    }
}

/// What the MMD term compares: the estimated and the true endpoints, and which samples of the
/// batch are expression samples (`w_expr`).
struct MmdInput<B: Backend> {
    x1_hat: Tensor<B, 2>,
    target: Tensor<B, 2>,
    w_expr: Tensor<B, 1>,
}

/// One stream's noisy sample: the network input `x_t`, its time and the target velocity.
struct Noised<B: Backend, const D: usize> {
    x_t: Tensor<B, D>,
    t: Tensor<B, 1>,
    dx_t: Tensor<B, D>,
}

impl CascadedDenoiser<CondOt> {
    /// The denoiser on scDFM's CondOT path.
    pub fn new(config: DenoiserConfig) -> Result<Self, ModelError> {
        Self::with_scheduler(config, CondOt)
    }
}

impl<S: Scheduler> CascadedDenoiser<S> {
    /// The denoiser on the path of `scheduler`.
    pub fn with_scheduler(config: DenoiserConfig, scheduler: S) -> Result<Self, ModelError> {
        config.validate()?;
        Ok(Self {
            config,
            path: AffineProbPath::new(scheduler),
        })
    }

    fn velocity<B: Backend, const D: usize>(
        &self,
        out: Tensor<B, D>,
        x_t: Tensor<B, D>,
        t: Tensor<B, 1>,
    ) -> Tensor<B, D> {
        match self.config.objective.prediction {
            Prediction::Velocity => out,
            Prediction::Data => self.path.velocity_from_data_prediction(
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
            Prediction::Velocity => self.path.endpoint_from_velocity(out, x_t, t),
            Prediction::Data => out,
        }
    }

    /// `x1` noised along the path at `t` from the noise `x0`.
    fn noised<B: Backend, const D: usize>(
        &self,
        x0: Tensor<B, D>,
        x1: Tensor<B, D>,
        t: Tensor<B, 1>,
    ) -> Noised<B, D> {
        let s = self.path.sample(x0, x1, t.clone());
        Noised {
            x_t: s.x_t,
            t,
            dx_t: s.dx_t,
        }
    }

    /// The random draws of a batch of `b` cells over `t` genes, in their fixed order:
    /// expression noise, times, latent noise (CCFM only). In scDFM mode every sample is an
    /// expression sample; in CCFM the cascaded sampler decides.
    pub fn draw_noise<B: Backend>(
        &self,
        model: &CascadedFlowModel<B>,
        [b, t]: [usize; 2],
        device: &B::Device,
    ) -> StepNoise<B> {
        let normal = Distribution::Normal(0.0, 1.0);
        let x0 = Tensor::random([b, t], normal, device);
        let times = match model.has_latent() {
            true => self.config.objective.times.sample::<B>(b, device),
            false => {
                let t = self.config.objective.times.expr.sample::<B>(b, device);
                ccfm_flow::CascadedTimes {
                    t_latent: t.ones_like(),
                    w_expr: t.ones_like(),
                    w_latent: t.zeros_like(),
                    t_expr: t,
                }
            }
        };
        let z0 = model
            .latent_dim()
            .map(|d| Tensor::random([b, t, d], normal, device));
        StepNoise { x0, times, z0 }
    }

    /// The loss of one batch (backpropagate `total` on an autodiff backend), with the batch's
    /// random draws made here ([`Self::draw_noise`]).
    pub fn train_step<B: Backend>(
        &self,
        model: &CascadedFlowModel<B>,
        mask: &CoexpressionMask<B>,
        batch: TrainBatch<B>,
    ) -> Result<LossParts<B>, ModelError> {
        let shape = check_batch(&batch)?;
        let noise = self.draw_noise(model, shape, &batch.target.device());
        self.train_step_with(model, mask, batch, noise)
    }

    /// The loss of one batch with given random draws (a data-parallel rank passes its rows of
    /// the global batch's draws, [`StepNoise::rows`]).
    pub fn train_step_with<B: Backend>(
        &self,
        model: &CascadedFlowModel<B>,
        mask: &CoexpressionMask<B>,
        batch: TrainBatch<B>,
        noise: StepNoise<B>,
    ) -> Result<LossParts<B>, ModelError> {
        let [b, _] = check_batch(&batch)?;
        let StepNoise { x0, times, z0 } = noise;
        if x0.dims() != batch.target.dims() {
            return Err(ModelError::Shape(format!(
                "noise {:?} for a batch of {:?}",
                x0.dims(),
                batch.target.dims()
            )));
        }
        let expr = self.noised(x0, batch.target.clone(), times.t_expr.clone());
        let latent = match (z0, batch.z_target.clone()) {
            (None, _) => None,
            (Some(z0), Some(z)) if z0.dims() == z.dims() => {
                Some(self.noised(z0, z, times.t_latent.clone()))
            }
            (Some(z0), Some(z)) => {
                return Err(ModelError::Shape(format!(
                    "latent noise {:?} for a latent target of {:?}",
                    z0.dims(),
                    z.dims()
                )))
            }
            (Some(_), None) => return Err(ModelError::MissingLatentTarget),
        };
        let out = model.forward(
            FlowInput {
                gene_ids: batch.gene_ids.clone(),
                x_t: expr.x_t.clone(),
                t: expr.t.clone(),
                ctrl: batch.control.clone(),
                pert_ids: batch.pert_ids.clone(),
                latent: latent.as_ref().map(|z| LatentInput {
                    z_t: z.x_t.clone(),
                    t_latent: z.t.clone(),
                }),
            },
            mask,
        )?;
        let x1_hat = self.endpoint(out.expr.clone(), expr.x_t.clone(), expr.t.clone());
        let v_e = self.velocity(out.expr, expr.x_t, expr.t);
        let loss_e = (v_e - expr.dx_t)
            .powi_scalar(2)
            .mul(times.w_expr.clone().reshape([b, 1]))
            .mean();
        let loss_z = match (out.latent, latent) {
            (Some(out_z), Some(z)) => {
                let v_z = self.velocity(out_z, z.x_t, z.t);
                let w = times.w_latent.clone().reshape([b, 1, 1]);
                Some((v_z - z.dx_t).powi_scalar(2).mul(w).mean())
            }
            _ => None,
        };
        let mmd_input = MmdInput {
            x1_hat,
            target: batch.target,
            w_expr: times.w_expr,
        };
        self.combine(loss_e, loss_z, mmd_input)
    }

    /// `loss_e + latent_weight loss_z + gamma MMD²(x1_hat, target)` over the expression samples.
    fn combine<B: Backend>(
        &self,
        loss_e: Tensor<B, 1>,
        loss_z: Option<Tensor<B, 1>>,
        mmd_input: MmdInput<B>,
    ) -> Result<LossParts<B>, ModelError> {
        let MmdInput {
            x1_hat,
            target,
            w_expr,
        } = mmd_input;
        let o = &self.config.objective;
        let mut total = loss_e.clone();
        if let Some(loss_z) = &loss_z {
            total = total + loss_z.clone().mul_scalar(o.latent_weight);
        }
        let rows = expression_rows(w_expr)?;
        let expr_samples = rows.len();
        let mmd = if o.gamma > 0.0 && expr_samples >= 2 {
            let device = target.device();
            let idx =
                Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [expr_samples]), &device);
            let x1_hat = x1_hat.select(0, idx.clone());
            let target = target.select(0, idx);
            let sigmas = median_sigmas(target.clone(), &SCDFM_SIGMA_SCALES)?.sigmas;
            let mmd = mmd2_unbiased_multi_sigma(x1_hat, target, &sigmas)?;
            total = total + mmd.clone().mul_scalar(o.gamma);
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
    /// On an inference backend what does not depend on the state (gene embeddings, control
    /// tokens, perturbation embedding: [`crate::FlowContext`]) is computed once for the batch; on an
    /// autodiff backend, where dropout is active (scDFM's generation), every evaluation runs the
    /// whole network with fresh dropout.
    pub fn generate<B: Backend>(
        &self,
        model: &CascadedFlowModel<B>,
        mask: &CoexpressionMask<B>,
        gene_ids: Tensor<B, 1, Int>,
        control: Tensor<B, 2>,
        pert_ids: Tensor<B, 2, Int>,
    ) -> Result<Generated<B>, ModelError> {
        let noise = self.draw_generation_noise(model, &control);
        let input = GenerationInput {
            gene_ids,
            control,
            pert_ids,
        };
        self.generate_from(model, mask, input, noise)
    }

    /// The noise [`Self::generate`] starts from, drawn from the backend's stream: `x0` shaped
    /// like `control`, then (CCFM) the latent noise `(B, T, scgpt_dim)`.
    pub fn draw_generation_noise<B: Backend>(
        &self,
        model: &CascadedFlowModel<B>,
        control: &Tensor<B, 2>,
    ) -> GenerationNoise<B> {
        let [b, t_len] = control.dims();
        let x0 = gaussian_like(control);
        let z0 = model
            .latent_dim()
            .map(|dim| gaussian_like(&Tensor::<B, 3>::zeros([b, t_len, dim], &control.device())));
        GenerationNoise { x0, z0 }
    }

    /// [`Self::generate`] from noise drawn beforehand ([`Self::draw_generation_noise`]): on an
    /// inference backend this draws nothing, so it may run while other threads use the
    /// backend's random stream.
    pub fn generate_from<B: Backend>(
        &self,
        model: &CascadedFlowModel<B>,
        mask: &CoexpressionMask<B>,
        input: GenerationInput<B>,
        noise: GenerationNoise<B>,
    ) -> Result<Generated<B>, ModelError> {
        let GenerationInput {
            gene_ids,
            control,
            pert_ids,
        } = input;
        let GenerationNoise { x0, z0 } = noise;
        let [b, _] = control.dims();
        let device = control.device();
        let ctx = (!B::ad_enabled(&device))
            .then(|| model.context(gene_ids.clone(), control.clone(), pert_ids.clone(), mask));
        let evaluate = |x_t: Tensor<B, 2>, t: f64, latent: Option<LatentInput<B>>| {
            let t = Tensor::<B, 1>::full([b], t, &device);
            match &ctx {
                Some(ctx) => model.forward_in(ctx, x_t, t, latent),
                None => {
                    let input = FlowInput {
                        gene_ids: gene_ids.clone(),
                        x_t,
                        t,
                        ctrl: control.clone(),
                        pert_ids: pert_ids.clone(),
                        latent,
                    };
                    model.forward(input, mask)
                }
            }
        };
        // Stage 1 (CCFM): the latent from noise, the expression input held at x0, t_expr = 0.
        let latent = match z0 {
            None => None,
            Some(z0) => {
                let stage1 = |z: Tensor<B, 3>, t: f64| -> Result<Tensor<B, 3>, ModelError> {
                    let t_lat = Tensor::<B, 1>::full([b], t, &device);
                    let li = LatentInput {
                        z_t: z.clone(),
                        t_latent: t_lat.clone(),
                    };
                    let out = evaluate(x0.clone(), 0.0, Some(li))?;
                    let v = out
                        .latent
                        .ok_or(ModelError::Mode("a CCFM model returns its latent"))?;
                    Ok(self.velocity(v, z, t_lat))
                };
                Some(self.integrate(stage1, z0, self.config.sampler.latent_time_points)?)
            }
        };
        // Stage 2: the expression from the same x0, the generated latent held clean.
        let one = Tensor::<B, 1>::ones([b], &device);
        let stage2 = |x: Tensor<B, 2>, t: f64| -> Result<Tensor<B, 2>, ModelError> {
            let li = latent.clone().map(|z_t| LatentInput {
                z_t,
                t_latent: one.clone(),
            });
            let out = evaluate(x.clone(), t, li)?;
            Ok(self.velocity(out.expr, x, Tensor::<B, 1>::full([b], t, &device)))
        };
        let x1 = self.integrate(stage2, x0, self.config.sampler.expr_time_points)?;
        Ok(Generated {
            expression: x1.clamp_min(0.0),
            latent,
        })
    }

    /// Integrate a fallible velocity over `linspace(0, 1, points)` with the configured method;
    /// after the first error the remaining evaluations return zeros without running the
    /// network, and the error is returned.
    fn integrate<B: Backend, const D: usize>(
        &self,
        velocity: impl Fn(Tensor<B, D>, f64) -> Result<Tensor<B, D>, ModelError>,
        x0: Tensor<B, D>,
        points: usize,
    ) -> Result<Tensor<B, D>, ModelError> {
        let grid = TimeGrid::linspace(0.0, 1.0, points)?;
        let mut failure = None;
        let sol = integrate(
            |x: Tensor<B, D>, t| {
                if failure.is_some() {
                    return x.zeros_like();
                }
                velocity(x.clone(), t).unwrap_or_else(|e| {
                    failure = Some(e);
                    x.zeros_like()
                })
            },
            x0,
            &grid,
            self.config.sampler.solver,
            false,
        );
        match failure {
            Some(e) => Err(e),
            None => Ok(sol.final_state),
        }
    }
}

/// The batch's `[B, T]`, checked against the other inputs.
fn check_batch<B: Backend>(batch: &TrainBatch<B>) -> Result<[usize; 2], ModelError> {
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
    Ok([b, t_len])
}

/// The indices of the expression samples (`w_expr > 0.5`).
fn expression_rows<B: Backend>(w_expr: Tensor<B, 1>) -> Result<Vec<i64>, ModelError> {
    let w = w_expr
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| ModelError::ReadBack {
            what: "the expression-sample weights",
            detail: format!("{e:?}"),
        })?;
    Ok(w.iter()
        .enumerate()
        .filter(|(_, &w)| w > 0.5)
        .map(|(i, _)| i as i64)
        .collect())
}
