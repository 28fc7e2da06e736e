//! The demonstration (`ccfm demo`): the whole pipeline on built-in data, no downloads.
//!
//! 1. Per preset, synthetic data with known interaction types (`ccfm synth --preset norman`:
//!    CRISPRa gene pairs; `--preset combosciplex`: drug pairs at doses) and a small scGPT model
//!    directory with **random** weights in the official layout (a real checkpoint cannot ship
//!    with the project; its features here carry no biology).
//! 2. CCFM and the scDFM baseline (latent stream off) trained with `configs/demo.toml` on each
//!    preset, several models at once (one thread each, [`DemoOptions::jobs`]); each predicts the
//!    held-out doubles and is evaluated with cell-eval's metrics next to the control, mean,
//!    additive and noise-ceiling baselines.
//! 3. Per preset one page compares them all (`OUT/PRESET/report.html`, by seen group and
//!    interaction type, with the guard rails of [`ccfm_eval::guard`]); `OUT/summary.json` holds
//!    every preset's means.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use ccfm_data::synth::generate;
use ccfm_data::{Preset, Size, SynthConfig};
use ccfm_eval::{Comparison, Dependence, Evaluation, Shortfall, Subset};
use serde_json::json;

use crate::config::RunConfig;
use crate::error::TrainError;
use crate::events::TrainEvent;
use crate::report::{comparison, predict_evaluate, write_comparison, EvaluatedRun, Pipeline};
use crate::train::{train_new, TrainOptions, TrainSummary};

/// The demo's configuration (configs/demo.toml).
pub const DEMO_CONFIG: &str = include_str!("../../../configs/demo.toml");

const MARKER: &str = "DEMO.txt";

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub out: PathBuf,
    /// Seeds the synthetic data (and the random scGPT weights).
    pub seed: u64,
    /// The synthetic datasets, each with its own models and table.
    pub presets: Vec<Preset>,
    /// The size of each dataset (`Size::Default` for the demo, `Size::Tiny` in tests).
    pub size: Size,
    /// Extra `section.key=value` overrides of the demo config (every model).
    pub overrides: Vec<String>,
    /// Where the co-expression masks are cached (`None`: computed, not cached).
    pub cache_dir: Option<PathBuf>,
    /// Models trained at once, one thread each (0: one per CPU core). The results do not depend
    /// on it: each model's random draws come from its own seeds.
    pub jobs: usize,
}

/// The presets `ccfm demo` runs when none is named.
pub const PRESETS: [Preset; 2] = [Preset::Norman, Preset::ComboSciPlex];

/// What `configs/demo.toml` becomes for a preset's data (Norman-like data needs nothing).
pub fn preset_overrides(preset: Preset) -> &'static [&'static str] {
    match preset {
        Preset::Norman => &[],
        Preset::ComboSciPlex => &["data.schema=combosciplex", "model.perturbation=drug"],
    }
}

/// A preset's data in words.
pub fn preset_title(preset: Preset) -> &'static str {
    match preset {
        Preset::Norman => "synthetic Norman-like data (CRISPRa gene pairs)",
        Preset::ComboSciPlex => "synthetic ComboSciPlex-like data (drug pairs)",
    }
}

/// One model's result on the test doubles.
#[derive(Debug, Clone)]
pub struct DemoRow {
    pub method: String,
    pub pearson_delta: Option<f64>,
    pub mse: Option<f64>,
    pub discrimination_l1: Option<f64>,
}

/// Mean pearson_delta per method over the test doubles of one interaction type.
#[derive(Debug, Clone)]
pub struct InteractionRow {
    pub interaction: String,
    pub doubles: usize,
    /// (method, mean pearson_delta), in the order of [`PresetSummary::rows`].
    pub pearson_delta: Vec<(String, Option<f64>)>,
}

/// One preset's results.
#[derive(Debug, Clone)]
pub struct PresetSummary {
    pub preset: Preset,
    /// `OUT/PRESET`.
    pub dir: PathBuf,
    pub rows: Vec<DemoRow>,
    /// pearson_delta by interaction type (the synthetic data records the truth).
    pub by_interaction: Vec<InteractionRow>,
    /// Per model: does its prediction depend on the perturbation?
    pub dependence: Vec<(String, Dependence)>,
    /// Every metric on which a model does not beat `mean` or `control`.
    pub shortfalls: Vec<Shortfall>,
    /// `OUT/PRESET/report.html`: both models and the baselines on one page.
    pub report: PathBuf,
    /// Each model's own evaluation page.
    pub reports: Vec<PathBuf>,
    pub test_conditions: usize,
}

#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub out: PathBuf,
    pub presets: Vec<PresetSummary>,
    /// `OUT/summary.json`.
    pub json: PathBuf,
    pub seconds: f64,
}

fn prepare_out(out: &Path) -> Result<(), TrainError> {
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty && !out.join(MARKER).exists() {
            return Err(TrainError::Run {
                path: out.to_path_buf(),
                detail: "exists and is not an earlier demo's directory; choose another --out"
                    .into(),
            });
        }
        std::fs::remove_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    std::fs::write(
        out.join(MARKER),
        "Written by `ccfm demo`; the next demo run with this --out replaces it.\n",
    )
    .map_err(|e| TrainError::io(out.join(MARKER), e))
}

/// The demo's scGPT settings: a small encoder (2 layers, d 64) in scGPT's args.json keys.
pub fn demo_scgpt_args() -> serde_json::Value {
    json!({"embsize": 64, "nheads": 4, "d_hid": 128, "nlayers": 2,
        "n_layers_cls": 3, "dropout": 0.0, "pad_token": "<pad>", "pad_value": -2,
        "input_emb_style": "continuous", "n_bins": 51, "max_seq_len": 1200,
        "note": "random weights written by `ccfm demo`, not a trained scGPT"})
}

/// Inputs written by [`write_inputs`].
#[derive(Debug, Clone)]
pub struct DemoInputs {
    pub data: PathBuf,
    pub scgpt_dir: PathBuf,
    pub cells: usize,
    pub genes: usize,
}

/// Write a preset's synthetic data (`dir/data/synthetic_PRESET.h5ad`) and a random-weight
/// scGPT directory over its genes (`dir/scgpt_random`).
pub fn write_inputs<B: burn::tensor::backend::Backend>(
    dir: &Path,
    synth: &SynthConfig,
    scgpt_args: &serde_json::Value,
    device: &B::Device,
) -> Result<DemoInputs, TrainError> {
    let data = dir
        .join("data")
        .join(format!("synthetic_{}.h5ad", synth.preset));
    let parent = data.parent().expect("has a parent");
    std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
    let written = generate(synth);
    written.write(&data)?;
    let genes: Vec<String> = written.var.index.clone();
    let scgpt_dir = dir.join("scgpt_random");
    ccfm_scgpt::checkpoint::write_random_dir::<B>(
        &scgpt_dir, &genes, scgpt_args, synth.seed, device,
    )?;
    Ok(DemoInputs {
        data,
        scgpt_dir,
        cells: written.obs.len(),
        genes: genes.len(),
    })
}

/// What [`train_predict_evaluate`] produced.
pub struct PipelineResult {
    pub train: TrainSummary,
    /// The predictions, their evaluation and the run's own report.
    pub evaluated: EvaluatedRun,
}

/// Train `cfg` into `out/runs/NAME`, then predict its test conditions and evaluate them next
/// to the baselines ([`predict_evaluate`]: `out/predictions/NAME.h5ad`, `out/eval/NAME`).
pub fn train_predict_evaluate<B: AutodiffBackend>(
    cfg: &RunConfig,
    name: &str,
    pipe: &Pipeline<'_>,
    device: &B::Device,
    say: &mut dyn FnMut(String),
) -> Result<PipelineResult, TrainError> {
    let run = pipe.out.join("runs").join(name);
    let mut observer = |e: &TrainEvent| {
        if let Some(line) = e.line() {
            say(format!("    {line}"))
        }
    };
    let train = train_new::<B>(
        cfg.clone(),
        &run,
        device,
        TrainOptions {
            observer: &mut observer,
            stop_after: None,
            stop: None,
            cache_dir: pipe.cache_dir,
            sync: None,
        },
    )?;
    say(format!(
        "    trained in {:.0} s ({:.2} steps/s), last loss {:.4} -> {}",
        train.seconds,
        train.steps_per_second,
        train.last_loss,
        run.display()
    ));
    let evaluated = predict_evaluate::<B>(&run, name, pipe, device, say)?;
    Ok(PipelineResult { train, evaluated })
}

/// Method rows (model first, then the baselines) of an evaluation: mean pearson_delta, mse and
/// discrimination_score_l1 over the perturbations.
pub fn summary_rows(eval: &Evaluation, model_name: &str) -> Vec<DemoRow> {
    let get = |metric: &str| eval.summary(metric, None);
    let (pd, mse, disc) = (
        get("pearson_delta"),
        get("mse"),
        get("discrimination_score_l1"),
    );
    pd.iter()
        .enumerate()
        .map(|(k, (method, v))| DemoRow {
            method: if method == "model" {
                model_name.to_string()
            } else {
                method.clone()
            },
            pearson_delta: *v,
            mse: mse.get(k).and_then(|x| x.1),
            discrimination_l1: disc.get(k).and_then(|x| x.1),
        })
        .collect()
}

/// The rows as an aligned text table (header line first).
pub fn format_table(rows: &[DemoRow]) -> String {
    let f = |v: Option<f64>, p: usize| v.map(|x| format!("{x:.p$}")).unwrap_or("-".into());
    let mut out = format!(
        "{:<12} {:>14} {:>10} {:>18}\n",
        "method", "pearson_delta", "mse", "discrimination_l1"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<12} {:>14} {:>10} {:>18}\n",
            r.method,
            f(r.pearson_delta, 4),
            f(r.mse, 5),
            f(r.discrimination_l1, 4)
        ));
    }
    out
}

/// pearson_delta by interaction type as an aligned text table (header line first).
pub fn format_interactions(rows: &[InteractionRow]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let mut out = format!("{:<12} {:>7}", "interaction", "doubles");
    for (method, _) in &first.pearson_delta {
        out.push_str(&format!(" {method:>9}"));
    }
    out.push('\n');
    for r in rows {
        out.push_str(&format!("{:<12} {:>7}", r.interaction, r.doubles));
        for (_, v) in &r.pearson_delta {
            let cell = v.map(|x| format!("{x:.3}")).unwrap_or("-".into());
            out.push_str(&format!(" {cell:>9}"));
        }
        out.push('\n');
    }
    out
}

/// One model of the demo: a preset's data, with or without the latent stream.
struct Job {
    preset: Preset,
    /// `ccfm` or `scdfm`.
    name: &'static str,
    config: RunConfig,
    /// `OUT/PRESET`.
    dir: PathBuf,
}

/// The models, the longest first (CCFM): `ccfm` then `scdfm` for each preset.
fn plan_jobs(
    opts: &DemoOptions,
    out: &Path,
    inputs: &[(Preset, DemoInputs)],
) -> Result<Vec<Job>, TrainError> {
    let mut jobs = Vec::new();
    for (name, latent) in [("ccfm", true), ("scdfm", false)] {
        for (preset, input) in inputs {
            let config = demo_config(*preset, Some(input), latent, &opts.overrides)?;
            jobs.push(Job {
                preset: *preset,
                name,
                config,
                dir: out.join(preset.to_string()),
            });
        }
    }
    Ok(jobs)
}

/// `configs/demo.toml` for a preset (its data and scGPT paths when written), the latent stream
/// on or off, then the user's overrides.
fn demo_config(
    preset: Preset,
    inputs: Option<&DemoInputs>,
    latent: bool,
    user: &[String],
) -> Result<RunConfig, TrainError> {
    let (data, scgpt) = match inputs {
        Some(i) => (
            i.data.display().to_string(),
            i.scgpt_dir.display().to_string(),
        ),
        None => (
            format!("data/synthetic_{preset}.h5ad"),
            "scgpt_random".into(),
        ),
    };
    let mut o = vec![
        format!("data.path={data}"),
        format!("latent.scgpt_dir={scgpt}"),
    ];
    o.extend(preset_overrides(preset).iter().map(|s| s.to_string()));
    o.push(format!("latent.enabled={latent}"));
    o.extend(user.iter().cloned());
    RunConfig::parse(DEMO_CONFIG, "configs/demo.toml", &o)
}

/// Train, predict and evaluate one job into its preset's directory.
fn run_job<B: AutodiffBackend>(
    job: &Job,
    opts: &DemoOptions,
    device: &B::Device,
    say: &mut dyn FnMut(String),
) -> Result<EvaluatedRun, TrainError> {
    let pipe = Pipeline {
        out: &job.dir,
        seed: opts.seed,
        cache_dir: opts.cache_dir.as_deref(),
    };
    say(format!(
        "training {} ({} steps), then predicting and evaluating",
        if job.config.latent.enabled {
            "CCFM (scGPT latent stream)"
        } else {
            "the scDFM baseline (latent stream off)"
        },
        job.config.train.steps
    ));
    Ok(train_predict_evaluate::<B>(&job.config, job.name, &pipe, device, say)?.evaluated)
}

/// The jobs of [`run_jobs`], taken in order by its worker threads.
struct Queue<'a> {
    jobs: &'a [Job],
    next: AtomicUsize,
    failed: AtomicBool,
    results: Vec<Mutex<Option<Result<EvaluatedRun, TrainError>>>>,
    say: Mutex<&'a mut (dyn FnMut(String) + Send)>,
}

impl Queue<'_> {
    /// Run jobs until none is left or one has failed.
    fn drain<B: AutodiffBackend>(&self, opts: &DemoOptions, device: &B::Device) {
        while !self.failed.load(Ordering::SeqCst) {
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            let Some(job) = self.jobs.get(i) else { break };
            let mut line = |l: String| {
                let mut say = self.say.lock().unwrap_or_else(|e| e.into_inner());
                (*say)(format!("    [{} {}] {l}", job.preset, job.name))
            };
            // A panic (a bug) ends this job with an error, so the others stop and the demo
            // returns it instead of unwinding through the thread scope.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_job::<B>(job, opts, device, &mut line)
            }))
            .unwrap_or_else(|_| {
                Err(TrainError::Request(format!(
                    "the {} {} job panicked (a bug; its message is above)",
                    job.preset, job.name
                )))
            });
            self.failed.fetch_or(r.is_err(), Ordering::SeqCst);
            *self.results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        }
    }
}

/// Run `jobs` on `workers` threads; each line a job says starts with `[PRESET NAME]`. After
/// the first failure no new job starts; the first failed job's error (in job order) is
/// returned.
fn run_jobs<B: AutodiffBackend>(
    jobs: &[Job],
    workers: usize,
    opts: &DemoOptions,
    device: &B::Device,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<Vec<EvaluatedRun>, TrainError> {
    let queue = Queue {
        jobs,
        next: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
        results: jobs.iter().map(|_| Mutex::new(None)).collect(),
        say: Mutex::new(say),
    };
    let workers = workers.clamp(1, jobs.len().max(1));
    // Each worker computes on its own share of the cores: with one pool for all, the kernels of
    // two jobs wait on each other's work (docs/training.md: 4.9 vs 8.1-8.2 steps/s per CCFM model).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = (cores / workers).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                match rayon::ThreadPoolBuilder::new().num_threads(share).build() {
                    Ok(pool) => pool.install(|| queue.drain::<B>(opts, device)),
                    // No pool of its own: the shared one computes the same, only slower.
                    Err(_) => queue.drain::<B>(opts, device),
                }
            });
        }
    });
    let mut done = Vec::new();
    for r in queue.results {
        match r.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(r) => done.push(r?),
            None => break,
        }
    }
    if done.len() < jobs.len() {
        return Err(TrainError::Request(
            "a demo job stopped before the others finished".into(),
        ));
    }
    Ok(done)
}

/// How many jobs run at once: `jobs`, or one per CPU core when 0.
fn workers(jobs: usize) -> usize {
    match jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// The guard rails as text: one dependence line per model, then a WARNING line per shortfall.
pub fn format_guard_rails(dependence: &[(String, Dependence)], shortfalls: &[Shortfall]) -> String {
    let mut s = String::from("does the prediction depend on the perturbation?\n");
    for (model, d) in dependence {
        s.push_str(&format!("  {model}: {}\n", d.line()));
    }
    for f in shortfalls {
        s.push_str(&format!("WARNING: {f}\n"));
    }
    s
}

/// One preset's text report: its table, pearson_delta by interaction type, the guard rails,
/// a WARNING line per metric where a model does not beat `mean` or `control`, and the pages.
pub fn format_preset(p: &PresetSummary) -> String {
    let mut s = format!(
        "\nHeld-out doubles of the {}: mean over {} conditions\n{}",
        preset_title(p.preset),
        p.test_conditions,
        format_table(&p.rows)
    );
    if !p.by_interaction.is_empty() {
        s.push_str("pearson_delta by interaction type of the held-out doubles:\n");
        s.push_str(&format_interactions(&p.by_interaction));
    }
    s.push_str(&format_guard_rails(&p.dependence, &p.shortfalls));
    s.push_str(&format!(
        "report (all methods on one page): {}\n",
        p.report.display()
    ));
    for r in &p.reports {
        s.push_str(&format!("per-model evaluation: {}\n", r.display()));
    }
    s
}

/// Refuse options the demo cannot run, before it touches the output directory: no preset or
/// one given twice (both would write `OUT/PRESET`), an override of `latent.enabled` (the demo
/// trains one model with the latent stream and one without), a config that does not parse.
fn check_options(opts: &DemoOptions) -> Result<(), TrainError> {
    if opts.presets.is_empty() {
        return Err(TrainError::Request(
            "the demo needs at least one preset".into(),
        ));
    }
    for (i, p) in opts.presets.iter().enumerate() {
        if opts.presets[..i].contains(p) {
            return Err(TrainError::Request(format!(
                "preset `{p}` is given twice; give each preset once"
            )));
        }
    }
    if let Some(o) = opts
        .overrides
        .iter()
        .find(|o| o.split('=').next().map(str::trim) == Some("latent.enabled"))
    {
        return Err(TrainError::Request(format!(
            "--set {o}: the demo trains CCFM (latent.enabled=true) and scDFM \
             (latent.enabled=false) itself; use `ccfm train` for one of them"
        )));
    }
    for &preset in &opts.presets {
        demo_config(preset, None, true, &opts.overrides)?;
    }
    Ok(())
}

/// Run the demo.
pub fn run_demo<B: AutodiffBackend>(
    opts: &DemoOptions,
    device: &B::Device,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<DemoSummary, TrainError> {
    let started = Instant::now();
    check_options(opts)?;
    let out = &opts.out;
    prepare_out(out)?;
    let out = &std::fs::canonicalize(out).map_err(|e| TrainError::io(out, e))?;

    say("1/3 synthetic data with known interaction types, and a scGPT model directory with RANDOM weights per preset (no download; its features carry no biology)".into());
    let mut inputs = Vec::new();
    for &preset in &opts.presets {
        let synth = SynthConfig {
            preset,
            size: opts.size,
            seed: opts.seed,
        };
        let dir = out.join(preset.to_string());
        let i = write_inputs::<B::InnerBackend>(&dir, &synth, &demo_scgpt_args(), device)?;
        say(format!(
            "    {}: {} cells x {} genes -> {}",
            preset_title(preset),
            i.cells,
            i.genes,
            i.data.display()
        ));
        inputs.push((preset, i));
    }
    let jobs = plan_jobs(opts, out, &inputs)?;
    let workers = workers(opts.jobs).min(jobs.len());
    say(format!(
        "2/3 training, predicting and evaluating {} models, {workers} at a time (each line names its preset and model)",
        jobs.len()
    ));
    let runs = run_jobs::<B>(&jobs, workers, opts, device, say)?;
    say("3/3 one comparison page per preset".into());
    let mut by_preset: Vec<Vec<EvaluatedRun>> = opts.presets.iter().map(|_| Vec::new()).collect();
    for (job, run) in jobs.iter().zip(runs) {
        let k = opts.presets.iter().position(|&p| p == job.preset);
        by_preset[k.expect("a job of a preset")].push(run);
    }
    let mut presets = Vec::new();
    for (&preset, runs) in opts.presets.iter().zip(&by_preset) {
        presets.push(preset_summary(preset, &out.join(preset.to_string()), runs)?);
    }
    let json = out.join("summary.json");
    let text = serde_json::to_string_pretty(&summary_json(&presets, opts.seed)).expect("JSON");
    ccfm_data::fs::write_atomic(&json, text.as_bytes())?;
    Ok(DemoSummary {
        out: out.clone(),
        presets,
        json,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A preset's comparison page (`dir/report.html`, `dir/comparison.json`) and its figures.
fn preset_summary(
    preset: Preset,
    dir: &Path,
    runs: &[EvaluatedRun],
) -> Result<PresetSummary, TrainError> {
    let title = format!(
        "CCFM demo: held-out doubles of the {}",
        preset_title(preset)
    );
    let cmp = comparison(&title, runs)?;
    let (report, _) = write_comparison(&cmp, dir)?;
    let rows = method_rows(runs);
    Ok(PresetSummary {
        preset,
        dir: dir.to_path_buf(),
        by_interaction: by_interaction(&cmp, &rows),
        shortfalls: cmp.shortfalls(),
        dependence: cmp.dependence(),
        rows,
        report,
        reports: runs.iter().map(|r| r.report.clone()).collect(),
        test_conditions: runs.first().map_or(0, |r| r.predict.conditions.len()),
    })
}

/// `OUT/summary.json`: per preset, per method the means over the held-out doubles and
/// pearson_delta by interaction type; per model the guard rails; the shortfalls.
pub fn summary_json(presets: &[PresetSummary], seed: u64) -> serde_json::Value {
    let num = |v: Option<f64>| {
        v.filter(|x| x.is_finite())
            .map_or(json!(null), |x| json!(x))
    };
    let mut all = serde_json::Map::new();
    for p in presets {
        let mut methods = serde_json::Map::new();
        for (k, r) in p.rows.iter().enumerate() {
            let mut by = serde_json::Map::new();
            for i in &p.by_interaction {
                by.insert(i.interaction.clone(), num(i.pearson_delta[k].1));
            }
            methods.insert(
                r.method.clone(),
                json!({"pearson_delta": num(r.pearson_delta), "mse": num(r.mse),
                    "discrimination_score_l1": num(r.discrimination_l1), "by_interaction": by}),
            );
        }
        let guard: serde_json::Map<String, serde_json::Value> = p
            .dependence
            .iter()
            .map(|(m, d)| {
                let v = json!({"cross_condition_correlation": num(d.cross_corr_pred),
                    "cross_condition_correlation_real": num(d.cross_corr_real),
                    "effect_spread": num(d.spread_ratio), "own_nearest": num(d.own_nearest)});
                (m.clone(), v)
            })
            .collect();
        let shortfalls: Vec<String> = p.shortfalls.iter().map(|f| f.to_string()).collect();
        all.insert(
            p.preset.to_string(),
            json!({"test_conditions": p.test_conditions, "methods": methods,
                "guard_rails": guard, "shortfalls": shortfalls}),
        );
    }
    json!({"seed": seed, "presets": all})
}

/// The models' rows, then the baselines' (the first run's: the same for runs that share their
/// data and test conditions), each method once.
pub fn method_rows(runs: &[EvaluatedRun]) -> Vec<DemoRow> {
    let mut rows: Vec<DemoRow> = Vec::new();
    for r in runs {
        for row in summary_rows(&r.evaluation, &r.name) {
            if !rows.iter().any(|x| x.method == row.method) {
                rows.push(row);
            }
        }
    }
    let models: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    rows.sort_by_key(|r| !models.contains(&r.method.as_str()));
    rows
}

/// pearson_delta per method and interaction type, methods in the order of `rows`.
fn by_interaction(cmp: &Comparison<'_>, rows: &[DemoRow]) -> Vec<InteractionRow> {
    let mut out = Vec::new();
    for subset in cmp.subsets() {
        let Subset::Interaction(t) = &subset else {
            continue;
        };
        let means = cmp.summary("pearson_delta", &subset);
        let pearson_delta = rows
            .iter()
            .map(|r| {
                let v = means.iter().find(|(m, _)| *m == r.method).and_then(|m| m.1);
                (r.method.clone(), v)
            })
            .collect();
        out.push(InteractionRow {
            interaction: t.clone(),
            doubles: cmp.count(&subset),
            pearson_delta,
        });
    }
    out
}
