//! The demonstration (`ccfm demo`): the whole pipeline on built-in data, no downloads.
//!
//! 1. Synthetic Norman-like data (`ccfm synth --preset norman`, known interaction types).
//! 2. A small scGPT model directory with **random** weights in the official layout (a real
//!    checkpoint cannot ship with the project; its features here carry no biology).
//! 3. CCFM and the scDFM baseline (latent stream off) trained briefly with `configs/demo.toml`.
//! 4. Both predict the held-out doubles; both are evaluated with cell-eval's metrics next to
//!    the control, mean, additive and noise-ceiling baselines; one page compares them all
//!    (`OUT/report.html`, by seen group and interaction type), each model keeps its own too.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use ccfm_data::synth::generate;
use ccfm_data::{Preset, Size, SynthConfig};
use ccfm_eval::{Comparison, Evaluation, Subset};
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
    pub seed: u64,
    /// Extra `section.key=value` overrides of the demo config (both models).
    pub overrides: Vec<String>,
    /// Where the co-expression masks are cached (`None`: computed, not cached).
    pub cache_dir: Option<PathBuf>,
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
    /// (method, mean pearson_delta), in the order of [`DemoSummary::rows`].
    pub pearson_delta: Vec<(String, Option<f64>)>,
}

#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub out: PathBuf,
    pub rows: Vec<DemoRow>,
    /// pearson_delta by interaction type (the synthetic data records the truth).
    pub by_interaction: Vec<InteractionRow>,
    /// `OUT/report.html`: both models and the baselines on one page.
    pub report: PathBuf,
    /// Each model's own evaluation page.
    pub reports: Vec<PathBuf>,
    pub test_conditions: usize,
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

/// Write synthetic Norman-like data (`dir/data/synthetic_norman.h5ad`) and a random-weight
/// scGPT directory over its genes (`dir/scgpt_random`).
pub fn write_inputs<B: burn::tensor::backend::Backend>(
    dir: &Path,
    size: Size,
    scgpt_args: &serde_json::Value,
    seed: u64,
    device: &B::Device,
) -> Result<DemoInputs, TrainError> {
    let data = dir.join("data").join("synthetic_norman.h5ad");
    let parent = data.parent().expect("has a parent");
    std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
    let synth = generate(&SynthConfig {
        preset: Preset::Norman,
        size,
        seed,
    });
    synth.write(&data)?;
    let genes: Vec<String> = synth.var.index.clone();
    let scgpt_dir = dir.join("scgpt_random");
    ccfm_scgpt::checkpoint::write_random_dir::<B>(&scgpt_dir, &genes, scgpt_args, seed, device)?;
    Ok(DemoInputs {
        data,
        scgpt_dir,
        cells: synth.obs.len(),
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

/// Run the demo.
pub fn run_demo<B: AutodiffBackend>(
    opts: &DemoOptions,
    device: &B::Device,
    say: &mut dyn FnMut(String),
) -> Result<DemoSummary, TrainError> {
    let started = Instant::now();
    let out = &opts.out;
    // Check the config (and overrides) before touching the output directory.
    let mut overrides = vec![
        "data.path=data/synthetic_norman.h5ad".to_string(),
        "latent.scgpt_dir=scgpt_random".to_string(),
    ];
    overrides.extend(opts.overrides.iter().cloned());
    RunConfig::parse(DEMO_CONFIG, "configs/demo.toml", &overrides)?;
    prepare_out(out)?;
    let out = &std::fs::canonicalize(out).map_err(|e| TrainError::io(out, e))?;

    say("1/3 synthetic Norman-like data, and a scGPT model directory with RANDOM weights (no download; its features carry no biology)".into());
    let inputs =
        write_inputs::<B::InnerBackend>(out, Size::Default, &demo_scgpt_args(), opts.seed, device)?;
    let (data_path, scgpt_dir) = (inputs.data, inputs.scgpt_dir);
    say(format!(
        "    {} cells x {} genes -> {}",
        inputs.cells,
        inputs.genes,
        data_path.display()
    ));
    say(format!(
        "    {} (args.json, vocab.json, best_model.safetensors)",
        scgpt_dir.display()
    ));

    let mut common = vec![
        format!("data.path={}", data_path.display()),
        format!("latent.scgpt_dir={}", scgpt_dir.display()),
    ];
    common.extend(opts.overrides.iter().cloned());
    let mut evaluated = Vec::new();
    for (i, (name, latent)) in [("ccfm", true), ("scdfm", false)].into_iter().enumerate() {
        let mut o = common.clone();
        o.push(format!("latent.enabled={latent}"));
        let cfg = RunConfig::parse(DEMO_CONFIG, "configs/demo.toml", &o)?;
        say(format!(
            "{}/3 training {} ({} steps), then predicting and evaluating",
            2 + i,
            if latent {
                "CCFM (scGPT latent stream)"
            } else {
                "the scDFM baseline (latent stream off)"
            },
            cfg.train.steps,
        ));
        let pipe = Pipeline {
            out,
            seed: opts.seed,
            cache_dir: opts.cache_dir.as_deref(),
        };
        evaluated.push(train_predict_evaluate::<B>(&cfg, name, &pipe, device, say)?.evaluated);
    }
    let cmp = comparison(
        "CCFM demo: held-out doubles of the synthetic Norman-like data",
        &evaluated,
    )?;
    let (report, _) = write_comparison(&cmp, out)?;
    let rows = method_rows(&evaluated);
    Ok(DemoSummary {
        out: out.clone(),
        by_interaction: by_interaction(&cmp, &rows),
        rows,
        report,
        reports: evaluated.iter().map(|r| r.report.clone()).collect(),
        test_conditions: evaluated[0].predict.conditions.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
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
