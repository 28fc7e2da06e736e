//! The training loop (`ccfm train`).
//!
//! Per step: draw a batch as scDFM does (uniform condition, cells with replacement, one random
//! gene subset), extract the target cells' scGPT features on the inner backend (CCFM), compute
//! the cascaded loss, stop on a non-finite loss, step the optimiser at the schedule's learning
//! rate, update the EMA. Logging, validation and checkpoints happen at their intervals.
//!
//! Exact resumption: the backend's random stream is re-seeded at every step from
//! `(train.seed, step)`, and the data sampler's and the extractor's streams are saved by
//! position, so a run resumed from a checkpoint draws exactly what the uninterrupted run drew.
//! Parameter ids are numbered in module order (Burn draws them at random), so two runs with the
//! same configuration write byte-identical checkpoints.

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{AutodiffModule, Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use ccfm_data::{SamplerState, TrainSampler};
use ccfm_layers::CoexpressionMask;
use ccfm_model::{CascadedDenoiser, CascadedFlowModel, StepNoise, TrainBatch};
use ccfm_scgpt::FrozenScgptExtractor;
use serde_json::json;

use crate::checkpoint::{
    checkpoint_name, load_model_weights, module_bytes, CheckpointState, RunDir, RunLock,
    CONFIG_FILE, MODEL_LAYOUT,
};
use crate::config::RunConfig;
use crate::distributed::{self, flat, GradSync, SingleProcess};
use crate::ema::update_ema;
use crate::error::TrainError;
use crate::events::{StepStats, StopReason, TrainEvent};
use crate::experiment::Experiment;
use crate::generate::{prediction_genes, Generator, ValidationMetrics};
use crate::optim::TrainOptimizer;
use crate::schedule::LrSchedule;

/// What a finished (or stopped) training run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub run: PathBuf,
    /// Completed steps (less than the configured steps when stopped early).
    pub steps: usize,
    /// The configured steps.
    pub total_steps: usize,
    pub resumed_from: Option<usize>,
    pub last_loss: f64,
    pub seconds: f64,
    pub steps_per_second: f64,
    pub validation: Option<ValidationMetrics>,
    pub checkpoint: PathBuf,
    /// Whether the run stopped because [`TrainOptions::stop`] was raised (a checkpoint of the
    /// last completed step was written).
    pub interrupted: bool,
}

/// Options of one `train` call.
pub struct TrainOptions<'a> {
    /// Receives every [`TrainEvent`] of the run (the CLI draws its progress bar from them).
    pub observer: &'a mut dyn FnMut(&TrainEvent),
    /// Stop after this many completed steps, without a final checkpoint, as if killed
    /// (for tests and time-boxed jobs; `--resume` continues from the last checkpoint).
    pub stop_after: Option<usize>,
    /// Raised from outside (the CLI's SIGINT / SIGTERM handler) to stop the run: the step in
    /// progress completes, a checkpoint of it is written, and the run returns.
    pub stop: Option<&'a AtomicBool>,
    /// Where the co-expression mask is cached (`None`: computed, not cached).
    pub cache_dir: Option<&'a Path>,
    /// The ranks of a data-parallel run (`None`: this process alone, [`SingleProcess`]).
    pub sync: Option<Rc<dyn GradSync>>,
}

impl TrainOptions<'_> {
    /// The ranks of the run: [`Self::sync`], or this process alone.
    fn ranks(&self) -> Rc<dyn GradSync> {
        self.sync.clone().unwrap_or_else(|| Rc::new(SingleProcess))
    }
}

/// Number the parameters `0, 1, ...` in module order.
pub fn number_params<B: Backend, M: Module<B>>(module: M) -> M {
    struct Numbering(u64);
    impl<B: Backend> ModuleMapper<B> for Numbering {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (_, tensor, mapper) = param.consume();
            self.0 += 1;
            Param::from_mapped_value(ParamId::from(self.0), tensor, mapper)
        }
    }
    module.map(&mut Numbering(0))
}

/// Mixed into the step seed of each rank's forward pass (dropout) in data-parallel runs.
const RANK_SALT: u64 = 0x5241_4e4b_5345_4544;

fn step_seed(seed: u64, step: usize) -> u64 {
    // SplitMix64 of (seed, step): independent-looking seeds for neighbouring steps.
    let mut z = seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn scalar<B: Backend>(t: &Tensor<B, 1>) -> f64 {
    t.clone().into_scalar().elem::<f64>()
}

/// Keep the log lines of steps up to `step` (a resumed run rewrites what followed).
fn truncate_log(path: &Path, step: usize) -> Result<(), TrainError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s as usize <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    ccfm_data::fs::write_atomic(path, kept.as_bytes())?;
    Ok(())
}

/// Start a new run in `out` (which must not exist or be empty).
pub fn train_new<B: AutodiffBackend>(
    config: RunConfig,
    out: &Path,
    device: &B::Device,
    opts: TrainOptions<'_>,
) -> Result<TrainSummary, TrainError> {
    let mut opts = opts;
    let trainer = Trainer::<B>::new(config, out, device, &mut opts)?;
    trainer.run(opts)
}

/// Continue the run in `dir` from its newest checkpoint.
pub fn train_resume<B: AutodiffBackend>(
    dir: &Path,
    device: &B::Device,
    opts: TrainOptions<'_>,
) -> Result<TrainSummary, TrainError> {
    let mut opts = opts;
    let trainer = Trainer::<B>::resume(dir, device, &mut opts)?;
    trainer.run(opts)
}

/// One step's batch, drawn by [`Trainer::next_batch`]: this rank's shard of the global batch
/// and its rows of the global batch's random draws.
pub struct StepBatch<B: Backend> {
    pub batch: TrainBatch<B>,
    pub noise: StepNoise<B>,
    /// The condition the batch was drawn from (named in a non-finite-loss error).
    pub condition: usize,
}

/// A step's figures as they travel after the gradients in the all-reduce (summed over ranks):
/// loss, expression loss, latent loss, MMD, ranks that had an MMD, expression samples, stop
/// requests.
struct Figures([f32; Figures::LEN]);

impl Figures {
    const LEN: usize = 7;

    fn of(s: &StepStats, stop: bool) -> Self {
        Self([
            s.loss as f32,
            s.loss_expr as f32,
            s.loss_latent.unwrap_or(0.0) as f32,
            s.mmd.unwrap_or(0.0) as f32,
            f32::from(u8::from(s.mmd.is_some())),
            s.expr_samples as f32,
            f32::from(u8::from(stop)),
        ])
    }

    /// Write the means over `world` ranks into `s`; whether any rank asked to stop.
    fn apply(&self, s: &mut StepStats, world: f64) -> bool {
        let [loss, expr, latent, mmd, with_mmd, samples, stop] = self.0.map(f64::from);
        s.loss = loss / world;
        s.loss_expr = expr / world;
        s.loss_latent = s.loss_latent.map(|_| latent / world);
        s.mmd = (with_mmd > 0.0).then(|| mmd / with_mmd);
        s.expr_samples = samples.round() as usize;
        stop > 0.0
    }
}

/// The conditions and genes of the validation pass.
struct ValidationPlan {
    conditions: Vec<String>,
    genes: Vec<usize>,
}

/// A training run between steps: the model, the optimiser, the data sampler and everything
/// a step, a validation pass and a checkpoint need.
pub struct Trainer<B: AutodiffBackend> {
    config: RunConfig,
    exp: Experiment,
    run_dir: RunDir,
    denoiser: CascadedDenoiser,
    schedule: LrSchedule,
    sampler: TrainSampler,
    extractor: Option<FrozenScgptExtractor<B::InnerBackend>>,
    model: CascadedFlowModel<B>,
    optim: TrainOptimizer<CascadedFlowModel<B>, B>,
    ema: Option<CascadedFlowModel<B::InnerBackend>>,
    mask: CoexpressionMask<B>,
    inner_mask: CoexpressionMask<B::InnerBackend>,
    validation: ValidationPlan,
    /// The resolved configuration (paths absolute), stored in the run and every checkpoint.
    resolved_text: String,
    model_json: serde_json::Value,
    device: B::Device,
    /// The step the loop started from, and the steps completed.
    start: usize,
    step: usize,
    last_checkpoint: Option<PathBuf>,
    /// The step of the newest checkpoint (written or resumed from).
    checkpoint_step: Option<usize>,
    last_loss: f64,
    /// Whether the run continues an earlier one ([`Self::resume`]).
    resumed: bool,
    log: Option<std::fs::File>,
    /// When the run was set up, and when its loop started (the step rate's clock).
    started: Instant,
    loop_start: Instant,
    /// Held by rank 0, which alone writes the run directory.
    _lock: Option<RunLock>,
    sync: Rc<dyn GradSync>,
    /// This process's stop request before the step, and the ranks' agreement after it.
    stop_local: bool,
    stop_agreed: bool,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// A new run in `out` (which must not exist or be empty): the run directory is created
    /// only after everything that can fail on bad input has been checked.
    pub fn new(
        config: RunConfig,
        out: &Path,
        device: &B::Device,
        opts: &mut TrainOptions<'_>,
    ) -> Result<Self, TrainError> {
        let sync = opts.ranks();
        let writer = sync.is_writer();
        let not_empty = || {
            out.exists()
                && std::fs::read_dir(out)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(true)
        };
        if writer && not_empty() {
            return Err(TrainError::Run {
                path: out.to_path_buf(),
                detail: "already exists and is not empty; continue it with `ccfm train \
                         --resume` or choose another --out"
                    .into(),
            });
        }
        let mut config = config;
        resolve_memory(&mut config, &*sync);
        let parts = Parts::<B>::build(&config, device, opts, &*sync)?;
        let run_dir = RunDir::new(out);
        let lock = match writer {
            true => {
                std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
                Some(run_dir.lock()?)
            }
            false => None,
        };
        let mut trainer = Self::assemble(config, parts, run_dir, lock, sync, device);
        if writer {
            trainer.write_run_files()?;
            trainer.open_log()?;
        }
        trainer.announce(opts.observer);
        Ok(trainer)
    }

    /// The run in `dir`, from its newest checkpoint (or from step 0 when it has none).
    pub fn resume(
        dir: &Path,
        device: &B::Device,
        opts: &mut TrainOptions<'_>,
    ) -> Result<Self, TrainError> {
        let sync = opts.ranks();
        let run_dir = RunDir::open(dir)?;
        let mut config = run_dir.config()?;
        resolve_memory(&mut config, &*sync);
        let lock = sync.is_writer().then(|| run_dir.lock()).transpose()?;
        let parts = Parts::<B>::build(&config, device, opts, &*sync)?;
        let observer = &mut *opts.observer;
        let mut trainer = Self::assemble(config, parts, run_dir, lock, sync, device);
        trainer.resumed = true;
        match trainer.run_dir.latest()? {
            Some(checkpoint) => {
                trainer.restore(&checkpoint)?;
                observer(&TrainEvent::Message(format!(
                    "resuming from {} (step {})",
                    checkpoint.display(),
                    trainer.start
                )));
            }
            None => observer(&TrainEvent::Message(
                "no checkpoint yet: starting from step 0".into(),
            )),
        }
        if trainer.sync.is_writer() {
            truncate_log(&trainer.run_dir.log(), trainer.start)?;
            trainer.open_log()?;
        }
        trainer.announce(observer);
        Ok(trainer)
    }

    fn assemble(
        config: RunConfig,
        parts: Parts<B>,
        run_dir: RunDir,
        lock: Option<RunLock>,
        sync: Rc<dyn GradSync>,
        device: &B::Device,
    ) -> Self {
        let t = &config.train;
        let mut resolved = config.clone();
        resolved.absolutize(&std::env::current_dir().unwrap_or_default());
        let exp = parts.exp;
        let validation = ValidationPlan {
            conditions: {
                let n = match t.val_conditions {
                    0 => exp.split.val.len(),
                    k => k.min(exp.split.val.len()),
                };
                exp.split.val[..n].to_vec()
            },
            genes: prediction_genes(&exp, config.sample.n_genes),
        };
        let blocked = exp.mask.clone();
        Self {
            schedule: LrSchedule {
                lr: t.lr,
                eta_min: t.eta_min,
                warmup_steps: t.warmup_steps,
                steps: t.steps,
            },
            mask: CoexpressionMask::from_blocked(blocked.clone(), exp.vocab.len(), device),
            inner_mask: CoexpressionMask::from_blocked(blocked, exp.vocab.len(), device),
            optim: TrainOptimizer::new(t),
            ema: (t.ema_decay > 0.0).then(|| parts.model.valid()),
            model: parts.model,
            denoiser: parts.denoiser,
            sampler: parts.sampler,
            extractor: parts.extractor,
            model_json: parts.model_json,
            resolved_text: resolved.to_toml(),
            validation,
            exp,
            run_dir,
            device: device.clone(),
            start: 0,
            step: 0,
            last_checkpoint: None,
            checkpoint_step: None,
            last_loss: f64::NAN,
            resumed: false,
            log: None,
            started: parts.started,
            loop_start: Instant::now(),
            _lock: lock,
            sync,
            stop_local: false,
            stop_agreed: false,
            config,
        }
    }

    /// The run directory's configuration, split and vocabulary (a new run).
    fn write_run_files(&self) -> Result<(), TrainError> {
        let out = &self.run_dir.path;
        ccfm_data::fs::write_atomic(&out.join(CONFIG_FILE), self.resolved_text.as_bytes())?;
        self.exp.split.write_json(&out.join("split.json"))?;
        self.exp
            .vocab
            .write_json(out.join("vocab.json"))
            .map_err(|e| TrainError::io(out.join("vocab.json"), e))
    }

    fn open_log(&mut self) -> Result<(), TrainError> {
        let path = self.run_dir.log();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        self.log = Some(file);
        Ok(())
    }

    /// Load the model, optimiser, EMA, sampler and extractor state of a checkpoint.
    fn restore(&mut self, dir: &Path) -> Result<(), TrainError> {
        let state = RunDir::read_state(dir)?;
        state.check_model(&self.model_json, dir)?;
        if state.world_size != self.sync.world() {
            return Err(TrainError::Incompatible {
                path: dir.join("state.json"),
                detail: format!(
                    "written by a run of {} rank(s), resumed with {}: the batch shards and \
                     their random draws differ; resume with the same number of ranks \
                     (mpirun -np {})",
                    state.world_size,
                    self.sync.world(),
                    state.world_size
                ),
            });
        }
        let bytes = RunDir::read_file(dir, "model.bin", &state)?;
        self.model = load_model_weights(self.model.clone(), bytes, &state, &self.device, dir)?;
        let bytes = RunDir::read_file(dir, "optimizer.bin", &state)?;
        self.optim = self
            .optim
            .clone()
            .load_bytes(bytes, &self.device)
            .map_err(|e| TrainError::Incompatible {
                path: dir.join("optimizer.bin"),
                detail: e,
            })?;
        if let Some(e) = self.ema.take() {
            let bytes = RunDir::read_file(dir, "ema.bin", &state)?;
            self.ema = Some(load_model_weights(e, bytes, &state, &self.device, dir)?);
        }
        self.restore_streams(dir, &state)?;
        self.start = state.step;
        self.step = state.step;
        self.last_checkpoint = Some(dir.to_path_buf());
        self.checkpoint_step = Some(state.step);
        Ok(())
    }

    /// The sampler's and the extractor's random streams and the extractor's statistics.
    fn restore_streams(&mut self, dir: &Path, state: &CheckpointState) -> Result<(), TrainError> {
        let damaged = |what: &str| TrainError::Run {
            path: dir.join("state.json"),
            detail: format!("damaged checkpoint state: {what}"),
        };
        let position = state
            .sampler_position
            .parse::<u128>()
            .map_err(|_| damaged("unreadable sampler position"))?;
        self.sampler.restore(SamplerState {
            seed: state.sampler_seed,
            word_pos: position,
        });
        if let Some(x) = self.extractor.as_mut() {
            // Both are needed for an exact resume; a CCFM checkpoint always has them.
            let stats = state
                .extractor_stats
                .as_ref()
                .ok_or_else(|| damaged("no extractor statistics"))?;
            x.stats = ccfm_scgpt::FeatureStats::from_json(stats)
                .ok_or_else(|| damaged("unreadable extractor statistics"))?;
            let position = state
                .extractor_position
                .as_ref()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| damaged("no readable extractor_position"))?;
            x.set_rng_position(position);
        }
        Ok(())
    }

    /// The model line, and a note when there is nothing left to do.
    fn announce(&self, observer: &mut dyn FnMut(&TrainEvent)) {
        let t = &self.config.train;
        observer(&TrainEvent::Message(format!(
            "model: {} ({} parameters), {} steps from step {}, batch {}{}, {} genes per step, \
             lr {} -> {} ({}), run directory {}",
            if self.model.has_latent() {
                "CCFM"
            } else {
                "scDFM"
            },
            self.model.num_params(),
            t.steps,
            self.start,
            t.batch_size,
            match self.sync.world() {
                1 => String::new(),
                n => format!(
                    " ({n} ranks x {} cells; {:.1} MiB all-reduced per step)",
                    t.batch_size / n,
                    self.all_reduce_bytes() as f64 / (1 << 20) as f64
                ),
            },
            self.config.data.genes_per_step.min(self.exp.data.n_genes()),
            t.lr,
            t.eta_min,
            t.optimizer.name(),
            self.run_dir.path.display()
        )));
        if self.start >= t.steps {
            observer(&TrainEvent::Message(format!(
                "the run is already complete ({} of {} steps); nothing to do",
                self.start, t.steps
            )));
        }
    }

    /// Steps completed so far.
    pub fn completed(&self) -> usize {
        self.step
    }

    /// Draw the next step's batch (and, in CCFM, its scGPT features) with its random draws:
    /// the global batch, of which this rank keeps its shard. The noise comes from the backend's
    /// stream seeded from `(train.seed, step)`, so a resumed run draws the same.
    pub fn next_batch(&mut self) -> Result<StepBatch<B>, TrainError> {
        let b = self.sampler.next_batch(&self.exp.data)?;
        let (tl, global) = (b.genes.len(), b.target_cells.len());
        let rows = distributed::shard(global, self.sync.world(), self.sync.rank());
        let z_target = self.latent_target(&b, rows.clone());
        let noise = {
            let seed = step_seed(self.config.train.seed, self.step);
            let _draws = ccfm_layers::rng::seeded::<B>(&self.device, seed);
            self.denoiser
                .draw_noise(&self.model, [global, tl], &self.device)
                .rows(rows.clone())
        };
        let ids: Vec<i64> = b.genes.iter().map(|&g| self.exp.gene_ids[g]).collect();
        let pert = self
            .exp
            .pert_ids(&self.exp.data.table.conditions[b.condition])?;
        let (slots, bs) = (pert.len(), rows.len());
        let cells = |v: &[f32]| v[rows.start * tl..rows.end * tl].to_vec();
        let device = &self.device;
        Ok(StepBatch {
            batch: TrainBatch {
                gene_ids: Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [tl]), device),
                control: Tensor::from_data(TensorData::new(cells(&b.control), [bs, tl]), device),
                target: Tensor::from_data(TensorData::new(cells(&b.target), [bs, tl]), device),
                pert_ids: Tensor::from_data(TensorData::new(pert.repeat(bs), [bs, slots]), device),
                z_target,
            },
            noise,
            condition: b.condition,
        })
    }

    /// The scGPT features of the cells `rows` of the global batch (CCFM). With several ranks
    /// the running statistics are updated with the moments of every rank's cells, so they stay
    /// those of the global batch and equal on every rank.
    fn latent_target(
        &mut self,
        b: &ccfm_data::SampledBatch,
        rows: Range<usize>,
    ) -> Option<Tensor<B, 3>> {
        let inner: burn::tensor::Device<B::InnerBackend> = self.device.clone();
        let x = self.extractor.as_mut()?;
        if self.sync.world() == 1 {
            return Some(Tensor::from_inner(x.extract(&b.target, &b.genes, &inner)));
        }
        let (feats, token) = x.raw_features_rows(&b.target, &b.genes, rows, &inner);
        if !x.stats.frozen {
            let mine = ccfm_scgpt::Moments::of_tokens(&feats, &token, x.dim());
            x.observe(&distributed::all_reduce_moments(&*self.sync, mine));
        }
        Some(Tensor::from_inner(x.normalise(
            feats,
            &token,
            b.genes.len(),
            &inner,
        )))
    }

    /// One optimiser step on `batch`; a non-finite loss is an error (nothing is updated). With
    /// several ranks the gradients, the loss figures and the stop requests are averaged over
    /// the ranks first, so every rank takes the same step and stops at the same one.
    pub fn step(&mut self, batch: StepBatch<B>) -> Result<StepStats, TrainError> {
        let step = self.step;
        if step >= self.config.train.steps {
            return Err(TrainError::Request(format!(
                "the run is complete ({step} of {} steps)",
                self.config.train.steps
            )));
        }
        let StepBatch {
            batch,
            noise,
            condition,
        } = batch;
        let parts = {
            // What the forward draws (dropout masks; nothing without dropout, and then the
            // stream is left to other threads) is this step's, and this rank's, own.
            let salt = RANK_SALT.wrapping_mul(self.sync.rank() as u64 + 1);
            let seed = step_seed(self.config.train.seed ^ salt, step);
            let _draws = (self.config.model.dropout > 0.0)
                .then(|| ccfm_layers::rng::seeded::<B>(&self.device, seed));
            self.denoiser
                .train_step_with(&self.model, &self.mask, batch, noise)?
        };
        let lr = self.schedule.at(step);
        // The step's numbers, with the fields the loop fills in after the update.
        let mut stats = StepStats {
            step: step + 1,
            total_steps: self.config.train.steps,
            loss: scalar(&parts.total),
            loss_expr: scalar(&parts.expr),
            loss_latent: parts.latent.as_ref().map(scalar),
            mmd: parts.mmd.as_ref().map(scalar),
            lr,
            expr_samples: parts.expr_samples,
            steps_per_second: 0.0,
            elapsed_seconds: 0.0,
            sync_seconds: None,
            logged: false,
        };
        let grads = if self.sync.world() == 1 {
            self.check_finite(&stats, condition)?;
            GradientsParams::from_grads(parts.total.backward(), &self.model)
        } else {
            let grads = GradientsParams::from_grads(parts.total.backward(), &self.model);
            let grads = self.all_reduce(grads, &mut stats);
            self.check_finite(&stats, condition)?;
            grads
        };
        self.model = self.optim.step(lr, self.model.clone(), grads);
        if let Some(e) = self.ema.take() {
            let decay = self.config.train.ema_decay;
            self.ema = Some(update_ema(e, &self.model.valid(), decay));
        }
        self.step = step + 1;
        self.last_loss = stats.loss;
        let elapsed = self.loop_start.elapsed().as_secs_f64();
        stats.steps_per_second = (self.step - self.start) as f64 / elapsed.max(1e-9);
        stats.elapsed_seconds = elapsed;
        stats.logged = self.step.is_multiple_of(self.config.output.log_every)
            || self.step == stats.total_steps
            || self.step == self.start + 1;
        Ok(stats)
    }

    fn check_finite(&self, stats: &StepStats, condition: usize) -> Result<(), TrainError> {
        if stats.loss.is_finite() {
            return Ok(());
        }
        Err(TrainError::NonFinite {
            step: stats.step,
            detail: format!(
                "loss {}, expression {}, latent {:?}, mmd {:?}, condition `{}`",
                stats.loss,
                stats.loss_expr,
                stats.loss_latent,
                stats.mmd,
                self.exp.data.table.conditions[condition].name()
            ),
            last_checkpoint: self.last_checkpoint.clone(),
        })
    }

    /// The mean over the ranks of the gradients and of the step's loss figures, in one
    /// all-reduce; the stop requests ride along (any rank's request stops every rank). The MMD
    /// figure is the mean over the ranks whose shard had one.
    fn all_reduce(&mut self, grads: GradientsParams, stats: &mut StepStats) -> GradientsParams {
        let mut buf = flat::grads_to_vec::<B, _>(&self.model, &grads);
        let n = buf.len();
        buf.extend(Figures::of(stats, self.stop_local).0);
        let started = Instant::now();
        self.sync.all_reduce_sum_f32(&mut buf);
        stats.sync_seconds = Some(started.elapsed().as_secs_f64());
        let world = self.sync.world() as f32;
        buf[..n].iter_mut().for_each(|v| *v /= world);
        let sums = Figures(
            buf[n..]
                .try_into()
                .expect("the figures follow the gradients"),
        );
        self.stop_agreed = sums.apply(stats, world as f64);
        flat::grads_from_slice::<B, _>(&self.model, &buf[..n])
    }

    /// Bytes each rank sends into the step's all-reduce: the gradients, a flag per parameter
    /// tensor and the loss figures, as `f32`.
    pub fn all_reduce_bytes(&self) -> usize {
        4 * (self.model.num_params() + flat::count_params(&self.model) + Figures::LEN)
    }

    /// Whether to stop now: this process's request, or with several ranks what they agreed
    /// in the last step (so that all stop after the same step).
    fn stop_now(&self, local: bool) -> bool {
        match self.sync.world() {
            1 => local,
            _ => self.stop_agreed,
        }
    }

    /// Whether the step just completed is due a validation pass.
    fn validation_due(&self) -> bool {
        let (t, done) = (&self.config.train, self.step);
        self.sync.is_writer()
            && !self.validation.conditions.is_empty()
            && ((t.validate_every > 0 && done % t.validate_every == 0) || done == t.steps)
    }

    /// Generate cells for the validation conditions with the current weights (the EMA when
    /// kept) and score them.
    pub fn validation_pass(&mut self) -> Result<TrainEvent, TrainError> {
        if self.step == 0 {
            return Err(TrainError::Request(
                "validation needs a trained step first".into(),
            ));
        }
        let t = &self.config.train;
        let started = Instant::now();
        let model = match &self.ema {
            Some(e) => e.clone(),
            None => self.model.valid(),
        };
        let generator = Generator {
            exp: &self.exp,
            model: &model,
            mask: &self.inner_mask,
            denoiser: &self.denoiser,
            genes: &self.validation.genes,
            batch_size: self.config.sample.batch_size,
            device: &self.device,
            seed: step_seed(t.seed ^ 0x5641_4c49_4441_5445, self.step - 1),
        };
        let metrics =
            generator.validation_metrics(&self.validation.conditions, t.val_cells, t.seed)?;
        Ok(TrainEvent::Validation {
            step: self.step,
            metrics,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Write a checkpoint of the step just completed.
    pub fn checkpoint(&mut self) -> Result<PathBuf, TrainError> {
        let (t, done) = (&self.config.train, self.step);
        let mut files = vec![
            ("model.bin", module_bytes::<B, _>(self.model.clone())),
            ("optimizer.bin", self.optim.to_bytes()),
            ("config.toml", self.resolved_text.clone().into_bytes()),
        ];
        if let Some(e) = &self.ema {
            files.push(("ema.bin", module_bytes::<B::InnerBackend, _>(e.clone())));
        }
        let s = self.sampler.state();
        let x = self.extractor.as_ref();
        let state = CheckpointState {
            step: done,
            steps: t.steps,
            next_lr: self.schedule.at(done.min(t.steps - 1)),
            optimizer: t.optimizer.name().to_string(),
            sampler_seed: s.seed,
            sampler_position: s.word_pos.to_string(),
            extractor_position: x.map(|x| x.rng_position().to_string()),
            extractor_stats: x.map(|x| x.stats.to_json()),
            model_config: self.model_json.clone(),
            has_ema: self.ema.is_some(),
            last_loss: self.last_loss,
            files: Default::default(),
            model_layout: MODEL_LAYOUT,
            world_size: self.sync.world(),
        };
        let written = self
            .run_dir
            .write_checkpoint(&state, &files, self.config.output.keep_checkpoints)
            .map_err(|e| TrainError::CheckpointWrite {
                step: done,
                run: self.run_dir.path.clone(),
                source: Box::new(e),
                last_checkpoint: self.last_checkpoint.clone(),
            })?;
        self.last_checkpoint = Some(written.clone());
        self.checkpoint_step = Some(done);
        Ok(written)
    }

    /// Append an event to the run's JSONL log (logged steps and validation passes).
    fn record(&mut self, event: &TrainEvent) -> Result<(), TrainError> {
        let line = match event {
            TrainEvent::Step(s) if s.logged => json!({"step": s.step, "loss": s.loss,
                "loss_expr": s.loss_expr, "loss_latent": s.loss_latent, "mmd": s.mmd,
                "lr": s.lr, "expr_samples": s.expr_samples,
                "steps_per_second": s.steps_per_second, "elapsed_seconds": s.elapsed_seconds,
                "sync_seconds": s.sync_seconds}),
            TrainEvent::Validation {
                step,
                metrics: m,
                seconds,
            } => json!({"step": step, "validation": {"conditions": m.conditions,
                "pearson_delta": m.pearson_delta, "mse": m.mse, "mse_delta": m.mse_delta,
                "seconds": seconds}}),
            _ => return Ok(()),
        };
        let path = self.run_dir.log();
        match self.log.as_mut() {
            Some(f) => writeln!(f, "{line}").map_err(|e| TrainError::io(&path, e)),
            None => Ok(()),
        }
    }

    /// Train to the configured steps (or until stopped), reporting every event.
    pub fn run(mut self, opts: TrainOptions<'_>) -> Result<TrainSummary, TrainError> {
        let observer = opts.observer;
        let stop_requested = || opts.stop.is_some_and(|f| f.load(Ordering::SeqCst));
        let writer = self.sync.is_writer();
        let total = self.config.train.steps;
        observer(&TrainEvent::Started {
            start_step: self.start,
            total_steps: total,
            progress: self.config.output.progress,
        });
        // Every rank continues from the same checkpoint, and stops at the same step.
        let resumed = [
            self.start as u64,
            self.last_loss.to_bits(),
            opts.stop_after.unwrap_or(0) as u64,
        ];
        distributed::agree(
            &*self.sync,
            distributed::checksum(&resumed),
            "the step to start from (resumed checkpoint) or --stop-after",
        )?;
        self.loop_start = Instant::now();
        let (mut validation, mut interrupted) = (None, false);
        while self.step < total {
            if self.stop_now(stop_requested()) {
                // Raised after the last step's check: its checkpoint is written now.
                if writer && self.step > self.start && self.checkpoint_step != Some(self.step) {
                    let path = self.checkpoint()?;
                    let step = self.step;
                    self.emit(TrainEvent::Checkpoint { step, path }, observer)?;
                }
                observer(&TrainEvent::Stopped {
                    step: self.step,
                    reason: StopReason::Requested,
                });
                interrupted = true;
                break;
            }
            let batch = self.next_batch()?;
            self.stop_local = stop_requested();
            let stats = self.step(batch)?;
            self.emit(TrainEvent::Step(stats), observer)?;
            if self.validation_due() {
                let event = self.validation_pass()?;
                if let TrainEvent::Validation { metrics, .. } = &event {
                    validation = Some(metrics.clone());
                }
                self.emit(event, observer)?;
            }
            let done = self.step;
            let stopping = self.stop_now(stop_requested()) && done < total;
            let due = done.is_multiple_of(self.config.output.checkpoint_every) || done == total;
            if writer && (due || stopping) {
                let path = self.checkpoint()?;
                self.emit(TrainEvent::Checkpoint { step: done, path }, observer)?;
            } else if due || stopping {
                // Rank 0 writes it; the others name it in their errors.
                let path = self.run_dir.checkpoints().join(checkpoint_name(done));
                self.last_checkpoint = Some(path);
            }
            let reason = if stopping {
                Some(StopReason::Requested)
            } else if opts.stop_after == Some(done) && done < total {
                Some(StopReason::StepLimit)
            } else {
                None
            };
            if let Some(reason) = reason {
                observer(&TrainEvent::Stopped { step: done, reason });
                interrupted = reason == StopReason::Requested;
                break;
            }
        }
        let trained = self.loop_start.elapsed().as_secs_f64();
        // Rank 0's last checkpoint is on disk before any rank returns.
        self.sync.barrier();
        let checkpoint = match writer {
            true => self.run_dir.latest()?,
            false => None,
        }
        .unwrap_or_else(|| self.run_dir.path.join("checkpoints"));
        Ok(TrainSummary {
            run: self.run_dir.path.clone(),
            steps: self.step,
            total_steps: total,
            resumed_from: self.resumed.then_some(self.start),
            last_loss: self.last_loss,
            seconds: self.started.elapsed().as_secs_f64(),
            steps_per_second: (self.step - self.start) as f64 / trained.max(1e-9),
            validation,
            checkpoint,
            interrupted,
        })
    }

    fn emit(
        &mut self,
        event: TrainEvent,
        observer: &mut dyn FnMut(&TrainEvent),
    ) -> Result<(), TrainError> {
        self.record(&event)?;
        observer(&event);
        Ok(())
    }
}

/// What [`Trainer::new`] and [`Trainer::resume`] build the same way from a configuration.
struct Parts<B: AutodiffBackend> {
    exp: Experiment,
    extractor: Option<FrozenScgptExtractor<B::InnerBackend>>,
    denoiser: CascadedDenoiser,
    sampler: TrainSampler,
    model: CascadedFlowModel<B>,
    model_json: serde_json::Value,
    started: Instant,
}

/// `data.max_memory = "auto"` made concrete, rank 0's value on every rank: all ranks then
/// decide alike between loading and streaming the data, and the run directory records the
/// bytes, so a resumed run and `ccfm predict` decide as the run did.
fn resolve_memory(config: &mut RunConfig, sync: &dyn GradSync) {
    if config.data.max_memory == ccfm_data::MemoryBudget::Auto {
        let mut bytes = [ccfm_data::MemoryBudget::Auto.bytes()];
        if sync.world() > 1 {
            sync.broadcast_u64(&mut bytes);
        }
        config.data.max_memory = ccfm_data::MemoryBudget::Bytes(bytes[0]);
    }
}

impl<B: AutodiffBackend> Parts<B> {
    fn build(
        config: &RunConfig,
        device: &B::Device,
        opts: &mut TrainOptions<'_>,
        sync: &dyn GradSync,
    ) -> Result<Self, TrainError> {
        let started = Instant::now();
        let observer = &mut *opts.observer;
        let mut say = |s: String| observer(&TrainEvent::Message(s));
        let exp = Experiment::new(config, opts.cache_dir, &mut say)?;
        let inner_device: burn::tensor::Device<B::InnerBackend> = device.clone();
        let extractor = exp.extractor::<B::InnerBackend>(&inner_device)?;
        if let Some(x) = &extractor {
            let (inv, n) = x.coverage();
            say(format!(
                "scGPT: {} ({} layers, d {}), {inv} of {n} genes in its vocabulary",
                config.latent.scgpt_dir.display(),
                x.model.args.nlayers,
                x.dim()
            ));
        }
        let model_cfg = exp.model_config();
        let t = &config.train;
        let sampler = TrainSampler::new(
            &exp.data,
            &exp.split,
            t.batch_size,
            config.data.genes_per_step,
            t.seed,
        )?;
        distributed::check_shards(t.batch_size, sync.world(), config.objective.gamma)?;
        if sync.world() > 1 {
            let data = distributed::fingerprint(config, &exp);
            distributed::agree(sync, data, "configuration or data file")?;
        }
        let model = {
            let _draws = ccfm_layers::rng::seeded::<B>(device, t.seed);
            model_cfg.init::<B>(device)
        };
        let model = distributed::broadcast_module(sync, number_params(model));
        Ok(Self {
            denoiser: CascadedDenoiser::new(config.denoiser())?,
            model_json: serde_json::to_value(&model_cfg).expect("config serialises"),
            exp,
            extractor,
            sampler,
            model,
            started,
        })
    }
}
