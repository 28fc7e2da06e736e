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

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use ccfm_data::{SamplerState, TrainSampler};
use ccfm_layers::CoexpressionMask;
use ccfm_model::{CascadedDenoiser, CascadedFlowModel, TrainBatch};
use serde_json::json;

use crate::checkpoint::{load_module, module_bytes, CheckpointState, RunDir, CONFIG_FILE};
use crate::config::RunConfig;
use crate::ema::update_ema;
use crate::error::TrainError;
use crate::experiment::Experiment;
use crate::generate::{prediction_genes, validate, ValidationMetrics};
use crate::optim::TrainOptimizer;
use crate::schedule::LrSchedule;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// Where progress lines go (the CLI prints them).
    pub say: &'a mut dyn FnMut(String),
    /// Stop after this many completed steps, without a final checkpoint, as if killed
    /// (for tests and time-boxed jobs; `--resume` continues from the last checkpoint).
    pub stop_after: Option<usize>,
    /// Raised from outside (the CLI's SIGINT / SIGTERM handler) to stop the run: the step in
    /// progress completes, a checkpoint of it is written, and the run returns.
    pub stop: Option<&'a AtomicBool>,
}

/// The cache directory for co-expression masks: `$CCFM_CACHE_DIR`, else `~/.cache/ccfm`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CCFM_CACHE_DIR") {
        return PathBuf::from(d);
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache").join("ccfm"),
        None => std::env::temp_dir().join("ccfm-cache"),
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

struct Progress {
    bar: bool,
    last_draw: Instant,
}

impl Progress {
    fn new(mode: &str) -> Self {
        let bar = match mode {
            "always" => true,
            "never" => false,
            _ => std::io::stderr().is_terminal(),
        };
        Self {
            bar,
            last_draw: Instant::now(),
        }
    }

    fn draw(&mut self, line: &str, force: bool) {
        if !self.bar || (!force && self.last_draw.elapsed().as_millis() < 200) {
            return;
        }
        self.last_draw = Instant::now();
        eprint!("\r\x1b[2K{line}");
        let _ = std::io::stderr().flush();
    }

    fn finish(&self) {
        if self.bar {
            eprintln!();
        }
    }
}

fn fmt_eta(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
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
    ccfm_data::split::write_atomic(path, kept.as_bytes())?;
    Ok(())
}

/// Start a new run in `out` (which must not exist or be empty).
pub fn train_new<B: AutodiffBackend>(
    config: RunConfig,
    out: &Path,
    device: &B::Device,
    opts: TrainOptions<'_>,
) -> Result<TrainSummary, TrainError> {
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(TrainError::Run {
            path: out.to_path_buf(),
            detail: "already exists and is not empty; continue it with `ccfm train --resume` \
                     or choose another --out"
                .into(),
        });
    }
    run::<B>(config, out, false, device, opts)
}

/// Continue the run in `dir` from its newest checkpoint.
pub fn train_resume<B: AutodiffBackend>(
    dir: &Path,
    device: &B::Device,
    opts: TrainOptions<'_>,
) -> Result<TrainSummary, TrainError> {
    let run_dir = RunDir::open(dir)?;
    let config = run_dir.config()?;
    run::<B>(config, dir, true, device, opts)
}

fn run<B: AutodiffBackend>(
    config: RunConfig,
    out: &Path,
    resume: bool,
    device: &B::Device,
    opts: TrainOptions<'_>,
) -> Result<TrainSummary, TrainError> {
    let say = opts.say;
    let started = Instant::now();
    let stop_requested = || opts.stop.is_some_and(|f| f.load(Ordering::SeqCst));
    let mut lock = resume.then(|| RunDir::new(out).lock()).transpose()?;
    // Everything that can fail on bad input happens before the run directory is created.
    let exp = Experiment::new(&config, &cache_dir(), say)?;
    let inner_device: burn::tensor::Device<B::InnerBackend> = device.clone();
    let mut extractor = exp.extractor::<B::InnerBackend>(&inner_device)?;
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
    let denoiser = CascadedDenoiser::new(config.denoiser())?;
    let t = &config.train;
    let schedule = LrSchedule {
        lr: t.lr,
        eta_min: t.eta_min,
        warmup_steps: t.warmup_steps,
        steps: t.steps,
    };
    let mut sampler = TrainSampler::new(
        &exp.data,
        &exp.split,
        t.batch_size,
        config.data.genes_per_step,
        t.seed,
    )?;
    let run_dir = RunDir::new(out);

    B::seed(device, t.seed);
    let mut model = number_params(model_cfg.init::<B>(device));
    let mut optim = TrainOptimizer::<CascadedFlowModel<B>, B>::new(t);
    let mut ema = (t.ema_decay > 0.0).then(|| model.valid());
    let model_json = serde_json::to_value(&model_cfg).expect("config serialises");
    let mut start = 0usize;
    let mut last_checkpoint: Option<PathBuf> = None;

    // The resolved configuration (paths absolute), stored in the run and in every checkpoint.
    let resolved_text = {
        let mut resolved = config.clone();
        resolved.absolutize(&std::env::current_dir().unwrap_or_default());
        resolved.to_toml()
    };
    if resume {
        if let Some(dir) = run_dir.latest()? {
            let state = RunDir::read_state(&dir)?;
            state.check_model(&model_json, &dir)?;
            model = load_module(
                model,
                RunDir::read_file(&dir, "model.bin", &state)?,
                device,
                &dir,
            )?;
            optim = optim
                .load_bytes(RunDir::read_file(&dir, "optimizer.bin", &state)?, device)
                .map_err(|e| TrainError::Incompatible {
                    path: dir.join("optimizer.bin"),
                    detail: e,
                })?;
            if let Some(e) = ema.take() {
                ema = Some(load_module(
                    e,
                    RunDir::read_file(&dir, "ema.bin", &state)?,
                    &inner_device,
                    &dir,
                )?);
            }
            let position = state
                .sampler_position
                .parse::<u128>()
                .map_err(|_| TrainError::Run {
                    path: dir.clone(),
                    detail: "damaged sampler position".into(),
                })?;
            sampler.restore(SamplerState {
                seed: state.sampler_seed,
                word_pos: position,
            });
            if let Some(x) = extractor.as_mut() {
                // Both are needed for an exact resume; a CCFM checkpoint always has them.
                let damaged = |what: &str| TrainError::Run {
                    path: dir.join("state.json"),
                    detail: format!("damaged checkpoint state: {what}"),
                };
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
            start = state.step;
            say(format!("resuming from {} (step {start})", dir.display()));
            last_checkpoint = Some(dir);
        } else {
            say("no checkpoint yet: starting from step 0".into());
        }
        truncate_log(&run_dir.log(), start)?;
    } else {
        std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
        lock = Some(run_dir.lock()?);
        ccfm_data::split::write_atomic(&out.join(CONFIG_FILE), resolved_text.as_bytes())?;
        exp.split.write_json(&out.join("split.json"))?;
        exp.vocab
            .write_json(out.join("vocab.json"))
            .map_err(|e| TrainError::io(out.join("vocab.json"), e))?;
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.log())
        .map_err(|e| TrainError::io(run_dir.log(), e))?;

    let mask = CoexpressionMask::<B>::from_blocked(exp.mask.clone(), exp.vocab.len(), device);
    let inner_mask = CoexpressionMask::<B::InnerBackend>::from_blocked(
        exp.mask.clone(),
        exp.vocab.len(),
        device,
    );
    let val_genes = prediction_genes(&exp, config.sample.n_genes);
    let val_names: Vec<String> = {
        let n = if t.val_conditions == 0 {
            exp.split.val.len()
        } else {
            t.val_conditions.min(exp.split.val.len())
        };
        exp.split.val[..n].to_vec()
    };
    say(format!(
        "model: {} ({} parameters), {} steps from step {start}, batch {}, {} genes per step, \
         lr {} -> {} ({}), run directory {}",
        if model_cfg.latent.is_some() {
            "CCFM"
        } else {
            "scDFM"
        },
        model.num_params(),
        t.steps,
        t.batch_size,
        config.data.genes_per_step.min(exp.data.n_genes()),
        t.lr,
        t.eta_min,
        t.optimizer,
        out.display()
    ));

    if start >= t.steps {
        say(format!(
            "the run is already complete ({start} of {} steps); nothing to do",
            t.steps
        ));
    }
    let mut progress = Progress::new(&config.output.progress);
    let loop_start = Instant::now();
    let mut last_loss = f64::NAN;
    let mut completed = start;
    let mut validation = None;
    let o = &config.output;
    let mut interrupted = false;
    for step in start..t.steps {
        if stop_requested() {
            interrupted = true;
            break;
        }
        let done = step + 1;
        B::seed(device, step_seed(t.seed, step));
        let b = sampler.next_batch(&exp.data);
        let tl = b.genes.len();
        let bs = b.target_cells.len();
        let z_target = extractor
            .as_mut()
            .map(|x| Tensor::<B, 3>::from_inner(x.extract(&b.target, &b.genes, &inner_device)));
        let ids: Vec<i64> = b.genes.iter().map(|&g| exp.gene_ids[g]).collect();
        let pert = exp.pert_ids(&exp.data.table.conditions[b.condition])?;
        let batch = TrainBatch {
            gene_ids: Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [tl]), device),
            control: Tensor::from_data(TensorData::new(b.control, [bs, tl]), device),
            target: Tensor::from_data(TensorData::new(b.target, [bs, tl]), device),
            pert_ids: Tensor::from_data(TensorData::new(pert.repeat(bs), [bs, 2]), device),
            z_target,
        };
        let parts = denoiser.train_step(&model, &mask, batch)?;
        let loss = scalar(&parts.total);
        let expr = scalar(&parts.expr);
        let latent = parts.latent.as_ref().map(scalar);
        let mmd = parts.mmd.as_ref().map(scalar);
        if !loss.is_finite() {
            progress.finish();
            return Err(TrainError::NonFinite {
                step: done,
                detail: format!(
                    "loss {loss}, expression {expr}, latent {latent:?}, mmd {mmd:?}, \
                     condition `{}`",
                    exp.data.table.conditions[b.condition].name()
                ),
                last_checkpoint,
            });
        }
        last_loss = loss;
        completed = done;
        let lr = schedule.at(step);
        let grads = GradientsParams::from_grads(parts.total.backward(), &model);
        model = optim.step(lr, model, grads);
        if let Some(e) = ema.take() {
            ema = Some(update_ema(e, &model.valid(), t.ema_decay));
        }

        let elapsed = loop_start.elapsed().as_secs_f64();
        let rate = (done - start) as f64 / elapsed.max(1e-9);
        let eta = (t.steps - done) as f64 / rate.max(1e-9);
        let parts_text = format!(
            "loss {loss:.4} (expr {expr:.4}{}{})",
            latent
                .map(|v| format!(", latent {v:.4}"))
                .unwrap_or_default(),
            mmd.map(|v| format!(", mmd {v:.4}")).unwrap_or_default()
        );
        progress.draw(
            &format!(
                "step {done}/{} {parts_text} lr {lr:.2e} {rate:.2} steps/s ETA {}",
                t.steps,
                fmt_eta(eta)
            ),
            done == t.steps,
        );
        if done % o.log_every == 0 || done == t.steps || done == start + 1 {
            let line = json!({"step": done, "loss": loss, "loss_expr": expr,
                "loss_latent": latent, "mmd": mmd, "lr": lr, "expr_samples": parts.expr_samples,
                "steps_per_second": rate, "elapsed_seconds": elapsed});
            writeln!(log, "{line}").map_err(|e| TrainError::io(run_dir.log(), e))?;
            if !progress.bar {
                say(format!(
                    "step {done}/{} {parts_text} lr {lr:.2e} {rate:.2} steps/s ETA {}",
                    t.steps,
                    fmt_eta(eta)
                ));
            }
        }
        let validate_now = !val_names.is_empty()
            && ((t.validate_every > 0 && done % t.validate_every == 0) || done == t.steps);
        if validate_now {
            B::seed(device, step_seed(t.seed ^ 0x5641_4c49_4441_5445, step));
            let started = Instant::now();
            let inner = match &ema {
                Some(e) => e.clone(),
                None => model.valid(),
            };
            let m = validate(
                &exp,
                &inner,
                &inner_mask,
                &denoiser,
                &val_names,
                &val_genes,
                t.val_cells,
                t.seed,
                &inner_device,
            )?;
            let line = json!({"step": done, "validation": {"conditions": m.conditions,
                "pearson_delta": m.pearson_delta, "mse": m.mse, "mse_delta": m.mse_delta,
                "seconds": started.elapsed().as_secs_f64()}});
            writeln!(log, "{line}").map_err(|e| TrainError::io(run_dir.log(), e))?;
            progress.finish();
            say(format!(
                "validation at step {done}: {} conditions, pearson_delta {}, mse {} ({:.1} s)",
                m.conditions,
                m.pearson_delta
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or("-".into()),
                m.mse.map(|v| format!("{v:.5}")).unwrap_or("-".into()),
                started.elapsed().as_secs_f64()
            ));
            validation = Some(m);
        }
        let stopping = stop_requested() && done < t.steps;
        if done % o.checkpoint_every == 0 || done == t.steps || stopping {
            let mut files = vec![
                ("model.bin", module_bytes::<B, _>(model.clone())),
                ("optimizer.bin", optim.to_bytes()),
                ("config.toml", resolved_text.clone().into_bytes()),
            ];
            if let Some(e) = &ema {
                files.push(("ema.bin", module_bytes::<B::InnerBackend, _>(e.clone())));
            }
            let s = sampler.state();
            let state = CheckpointState {
                step: done,
                steps: t.steps,
                next_lr: schedule.at(done.min(t.steps - 1)),
                optimizer: t.optimizer.clone(),
                sampler_seed: s.seed,
                sampler_position: s.word_pos.to_string(),
                extractor_position: extractor.as_ref().map(|x| x.rng_position().to_string()),
                extractor_stats: extractor.as_ref().map(|x| x.stats.to_json()),
                model_config: model_json.clone(),
                has_ema: ema.is_some(),
                last_loss: loss,
                files: Default::default(),
            };
            let written = run_dir
                .write_checkpoint(&state, &files, o.keep_checkpoints)
                .map_err(|e| TrainError::CheckpointWrite {
                    step: done,
                    run: out.to_path_buf(),
                    source: Box::new(e),
                    last_checkpoint: last_checkpoint.clone(),
                });
            if written.is_err() {
                progress.finish();
            }
            last_checkpoint = Some(written?);
        }
        if stopping {
            progress.finish();
            say(format!("stop requested: checkpoint of step {done} written"));
            interrupted = true;
            break;
        }
        if opts.stop_after == Some(done) && done < t.steps {
            progress.finish();
            say(format!("stopped after step {done} as asked"));
            break;
        }
    }
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    let trained = loop_start.elapsed().as_secs_f64();
    let checkpoint = run_dir.latest()?.unwrap_or_else(|| out.join("checkpoints"));
    drop(lock);
    Ok(TrainSummary {
        run: out.to_path_buf(),
        steps: completed.max(start),
        total_steps: t.steps,
        resumed_from: resume.then_some(start),
        last_loss,
        seconds,
        steps_per_second: (completed - start) as f64 / trained.max(1e-9),
        validation,
        checkpoint,
        interrupted,
    })
}
