//! Comparing trained runs: each run predicts its test conditions, is evaluated with cell-eval's
//! metrics next to the control, mean, additive and noise-ceiling baselines, and one page
//! (`OUT/report.html`) shows every model and baseline side by side. `ccfm report --runs A,B`
//! and the demo both end here.

use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use ccfm_data::{write_h5ad, AnnData, AnnDataOut, DataFrame, MatrixOut};
use ccfm_eval::{evaluate, ComparedModel, Comparison, EvaluateOptions, Evaluation, Profile};

use crate::checkpoint::RunDir;
use crate::config::RunConfig;
use crate::error::TrainError;
use crate::experiment::Experiment;
use crate::generate::prediction_genes;
use crate::predict::{frame, predict, PredictOptions, PredictSummary};

/// One run, predicted and evaluated.
pub struct EvaluatedRun {
    /// The name used in file names and tables.
    pub name: String,
    pub run: PathBuf,
    pub config: RunConfig,
    pub predict: PredictSummary,
    pub evaluation: Evaluation,
    /// The run's own evaluation page (`OUT/eval/NAME/report.html`).
    pub report: PathBuf,
}

/// What [`report_runs`] wrote.
pub struct ReportSummary {
    /// `OUT/report.html`: all runs and the baselines.
    pub report: PathBuf,
    /// `OUT/comparison.json`: the page's means, per method and subset.
    pub json: PathBuf,
    pub runs: Vec<EvaluatedRun>,
    /// Per run: does its prediction depend on the perturbation?
    pub dependence: Vec<(String, ccfm_eval::Dependence)>,
    /// Every metric on which a run does not beat `mean` or `control`.
    pub shortfalls: Vec<ccfm_eval::Shortfall>,
}

/// Training cells (training conditions and controls) over the prediction genes, for the
/// evaluation's baselines.
fn write_training_cells(exp: &Experiment, genes: &[usize], path: &Path) -> Result<(), TrainError> {
    let by = exp.data.table.cells_by_condition();
    let mut cells = Vec::new();
    let mut labels = Vec::new();
    for (ci, cond) in exp.data.table.conditions.iter().enumerate() {
        let name = cond.name();
        if ci == ccfm_data::PerturbationTable::CONTROL_INDEX || exp.split.train.contains(&name) {
            cells.extend(by[ci].iter().copied());
            labels.extend(std::iter::repeat_n(name, by[ci].len()));
        }
    }
    let x = exp.data.gather(&cells, genes)?;
    let obs = frame(labels, "train_");
    let var = DataFrame {
        index: genes.iter().map(|&g| exp.data.genes[g].clone()).collect(),
        columns: Vec::new(),
    };
    write_h5ad(
        path,
        &AnnDataOut {
            x: MatrixOut::Dense(&x),
            layers: &[],
            obs: &obs,
            var: &var,
            uns: &[],
        },
    )?;
    Ok(())
}

/// Where a predict-and-evaluate pipeline writes (`OUT/predictions`, `OUT/eval`), its seed, and
/// where the co-expression mask is cached (`None`: computed, not cached).
#[derive(Debug, Clone, Copy)]
pub struct Pipeline<'a> {
    pub out: &'a Path,
    pub seed: u64,
    pub cache_dir: Option<&'a Path>,
}

/// Predict the test conditions of the run in `run` into `out/predictions/NAME.h5ad` (+ `_real`)
/// and evaluate them next to the baselines (training cells in
/// `out/predictions/NAME_train_cells.h5ad`) into `out/eval/NAME`.
pub fn predict_evaluate<B: AutodiffBackend>(
    run: &Path,
    name: &str,
    pipe: &Pipeline<'_>,
    device: &B::Device,
    say: &mut dyn FnMut(String),
) -> Result<EvaluatedRun, TrainError> {
    let Pipeline {
        out,
        seed,
        cache_dir,
    } = *pipe;
    let config = RunDir::open(run)?.config()?;
    let pred_dir = out.join("predictions");
    let pred = pred_dir.join(format!("{name}.h5ad"));
    let opts = PredictOptions {
        cache_dir: cache_dir.map(Path::to_path_buf),
        ..Default::default()
    };
    // Its lines are for `ccfm predict`; this pipeline says what it did in one line.
    let p = predict::<B>(run, &pred, &opts, device, &mut |_| {})?;
    say(format!(
        "    predicted {} conditions x {} cells with {} ({}) in {:.0} s -> {}",
        p.conditions.len(),
        p.cells_per_condition,
        p.checkpoint.display(),
        if p.ema { "EMA weights" } else { "weights" },
        p.seconds,
        pred.display()
    ));
    let real = p.real.clone().ok_or_else(|| {
        TrainError::Request(format!(
            "the test conditions of {} have no real cells to evaluate against",
            config.data.path.display()
        ))
    })?;
    let train_cells = pred_dir.join(format!("{name}_train_cells.h5ad"));
    let exp = Experiment::new(&config, cache_dir, &mut |_| {})?;
    write_training_cells(
        &exp,
        &prediction_genes(&exp, config.sample.n_genes),
        &train_cells,
    )?;
    let evaluation = evaluate(
        &real,
        &pred,
        &EvaluateOptions {
            profile: Profile::Full,
            train: Some(train_cells),
            loss_log: Some(RunDir::new(run).log()),
            seed,
            ..Default::default()
        },
    )?;
    let report = evaluation.write(&out.join("eval").join(name))?;
    say(format!(
        "    evaluated in {:.1} s -> {}",
        evaluation.seconds,
        report.display()
    ));
    Ok(EvaluatedRun {
        name: name.to_string(),
        run: run.to_path_buf(),
        config,
        predict: p,
        evaluation,
        report,
    })
}

/// The settings a comparison shows side by side.
pub fn settings(r: &EvaluatedRun) -> Vec<(String, String)> {
    let c = &r.config;
    let kv = |k: &str, v: String| (k.to_string(), v);
    vec![
        kv(
            "model",
            if c.latent.enabled {
                "CCFM (scGPT latent stream)".into()
            } else {
                "scDFM (no latent stream)".into()
            },
        ),
        kv("run", r.run.display().to_string()),
        kv("data.path", c.data.path.display().to_string()),
        kv(
            "model: d_model / nhead / nlayers",
            format!(
                "{} / {} / {}",
                c.model.d_model, c.model.nhead, c.model.nlayers
            ),
        ),
        kv("train.steps", c.train.steps.to_string()),
        kv("train.batch_size", c.train.batch_size.to_string()),
        kv("data.genes_per_step", c.data.genes_per_step.to_string()),
        kv(
            "train.lr (eta_min)",
            format!("{:e} ({:e})", c.train.lr, c.train.eta_min),
        ),
        kv("train.optimizer", c.train.optimizer.name().to_string()),
        kv(
            "sample: solver, time points (latent / expr)",
            format!(
                "{}, {} / {}",
                c.sample.solver.name(),
                c.sample.latent_time_points,
                c.sample.expr_time_points
            ),
        ),
        kv(
            "checkpoint",
            r.predict
                .checkpoint
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().to_string()),
        ),
    ]
}

/// The comparison of `runs` (every run and the baselines of the first). The interaction types
/// come from the first run's data file, when it records them.
pub fn comparison<'a>(title: &str, runs: &'a [EvaluatedRun]) -> Result<Comparison<'a>, TrainError> {
    let first = runs
        .first()
        .ok_or_else(|| TrainError::Request("no runs to compare".into()))?;
    let interactions = AnnData::open(&first.config.data.path)?.interaction_types()?;
    let models = runs
        .iter()
        .map(|r| ComparedModel {
            name: r.name.clone(),
            eval: &r.evaluation,
            settings: settings(r),
            config_text: r.config.to_toml(),
        })
        .collect();
    Ok(Comparison::new(title, models, interactions)?)
}

/// Write `out/report.html` and `out/comparison.json` (the page's means).
pub fn write_comparison(
    cmp: &Comparison<'_>,
    out: &Path,
) -> Result<(PathBuf, PathBuf), TrainError> {
    let html = out.join("report.html");
    cmp.write(&html)?;
    let json = out.join("comparison.json");
    let text = serde_json::to_string_pretty(&cmp.summary_json()).expect("plain JSON");
    ccfm_data::fs::write_atomic(&json, text.as_bytes())?;
    Ok((html, json))
}

/// Table names for the runs: each directory's name, made unique with `-2`, `-3`, ... (a
/// baseline's name counts as taken: a run directory called `mean` is shown as `mean-2`).
pub fn run_names(runs: &[PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in runs {
        let base = r
            .canonicalize()
            .unwrap_or_else(|_| r.clone())
            .file_name()
            .map_or("run".to_string(), |n| n.to_string_lossy().to_string());
        let mut name = base.clone();
        let mut k = 2;
        let taken = |n: &String, names: &[String]| {
            names.contains(n) || ccfm_eval::baselines::BASELINE_NAMES.contains(&n.as_str())
        };
        while taken(&name, &names) {
            name = format!("{base}-{k}");
            k += 1;
        }
        names.push(name);
    }
    names
}

/// `ccfm report`: predict and evaluate every run in `runs` into `out`, then compare them on one
/// page. The runs must share their test conditions.
pub fn report_runs<B: AutodiffBackend>(
    runs: &[PathBuf],
    pipe: &Pipeline<'_>,
    device: &B::Device,
    say: &mut dyn FnMut(String),
) -> Result<ReportSummary, TrainError> {
    let out = pipe.out;
    if runs.is_empty() {
        return Err(TrainError::Request(
            "give at least one run directory (--runs A,B)".into(),
        ));
    }
    // Every run must open before anything is written.
    for r in runs {
        RunDir::open(r)?.config()?;
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let mut done = Vec::new();
    for (i, (run, name)) in runs.iter().zip(run_names(runs)).enumerate() {
        say(format!(
            "{}/{} {name}: predicting its test conditions, then evaluating",
            i + 1,
            runs.len()
        ));
        done.push(predict_evaluate::<B>(run, &name, pipe, device, say)?);
    }
    let title = format!(
        "CCFM comparison: {}",
        done.iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let cmp = comparison(&title, &done)?;
    let (report, json) = write_comparison(&cmp, out)?;
    let (shortfalls, dependence) = (cmp.shortfalls(), cmp.dependence());
    drop(cmp);
    Ok(ReportSummary {
        report,
        json,
        runs: done,
        dependence,
        shortfalls,
    })
}

#[cfg(test)]
mod tests {
    use super::run_names;
    use std::path::PathBuf;

    #[test]
    fn run_names_are_unique_and_never_a_baseline_name() {
        let runs: Vec<PathBuf> = ["a/mine", "b/mine", "c/mean", "d/ceiling"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(run_names(&runs), ["mine", "mine-2", "mean-2", "ceiling-2"]);
    }
}
