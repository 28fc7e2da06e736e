//! One evaluation run: read the files, compute the model's metrics and the baselines', group
//! doubles by how many of their singles were trained on, and write the outputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::baselines::{baseline_pairs, seen_groups};
use crate::load::load_cells;
use crate::metrics::{compute, MetricTable, Profile};
use crate::output::{agg_csv, results_csv};
use crate::pair::{pseudobulk, EvalError, EvalPair};
use crate::report::{render_html, LossPoint, ReportInput};

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    pub control: String,
    pub pert_col: String,
    pub profile: Profile,
    /// Training data for the baselines and the seen groups.
    pub train: Option<PathBuf>,
    /// A training log (JSONL with `step` and `loss`) to plot.
    pub loss_log: Option<PathBuf>,
    pub seed: u64,
}

impl Default for EvaluateOptions {
    fn default() -> Self {
        Self {
            control: "control".into(),
            pert_col: "perturbation".into(),
            profile: Profile::Full,
            train: None,
            loss_log: None,
            seed: 0,
        }
    }
}

/// Everything a run computed.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub real_path: PathBuf,
    pub pred_path: PathBuf,
    pub n_genes: usize,
    pub model: MetricTable,
    pub baselines: Vec<(String, MetricTable)>,
    /// Perturbation -> `seen0/1/2` or `single` (when training data was given).
    pub groups: BTreeMap<String, String>,
    /// Per perturbation, the real and predicted mean effects (pseudobulk minus control).
    pub deltas: Vec<(String, Vec<f32>, Vec<f32>)>,
    pub loss: Vec<LossPoint>,
    pub seconds: f64,
}

fn read_loss(path: &Path) -> Result<Vec<LossPoint>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::Io {
        path: path.to_path_buf(),
        detail: format!("cannot read the training log: {e}"),
    })?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| EvalError::Io {
            path: path.to_path_buf(),
            detail: format!("line {}: not JSON ({e})", i + 1),
        })?;
        if let (Some(step), Some(loss)) = (v["step"].as_f64(), v["loss"].as_f64()) {
            out.push(LossPoint { step, loss });
        }
    }
    Ok(out)
}

/// Run the evaluation of `pred` against `real`.
pub fn evaluate(real: &Path, pred: &Path, opts: &EvaluateOptions) -> Result<Evaluation, EvalError> {
    evaluate_with_progress(real, pred, opts, &mut |_, _| {})
}

/// [`evaluate`], reporting `progress(done, total)` as the metric tables (the model's, then one
/// per baseline) are computed: `(0, total)` once the files are read, `(total, total)` at the end.
pub fn evaluate_with_progress(
    real: &Path,
    pred: &Path,
    opts: &EvaluateOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Evaluation, EvalError> {
    let start = Instant::now();
    let pair = load_pair(real, pred, opts)?;
    let Training { pairs, groups } = match &opts.train {
        Some(train_path) => training_baselines(&pair, train_path, opts)?,
        None => Training::default(),
    };
    let total = 1 + pairs.len();
    progress(0, total);
    let model = compute(&pair, opts.profile);
    progress(1, total);
    let mut baselines = Vec::with_capacity(pairs.len());
    for (name, bp) in pairs {
        baselines.push((name, compute(&bp, opts.profile)));
        progress(1 + baselines.len(), total);
    }
    let deltas = mean_effects(&pair);
    let loss = match &opts.loss_log {
        Some(path) => read_loss(path)?,
        None => Vec::new(),
    };
    Ok(Evaluation {
        real_path: real.to_path_buf(),
        pred_path: pred.to_path_buf(),
        n_genes: pair.n_genes(),
        model,
        baselines,
        groups,
        deltas,
        loss,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Read both sides and check them as a pair (an error names both files).
fn load_pair(real: &Path, pred: &Path, opts: &EvaluateOptions) -> Result<EvalPair, EvalError> {
    let r = load_cells(real, &opts.pert_col)?;
    let p = load_cells(pred, &opts.pert_col)?;
    EvalPair::new(
        r.genes.clone(),
        &r.genes,
        &p.genes,
        r.cells,
        p.cells,
        &opts.control,
    )
    .map_err(|e| EvalError::Pair {
        real: real.to_path_buf(),
        pred: pred.to_path_buf(),
        source: Box::new(e),
    })
}

/// What the training data gives a run: the baseline pairs and the seen groups.
#[derive(Default)]
struct Training {
    pairs: Vec<(String, EvalPair)>,
    groups: BTreeMap<String, String>,
}

/// The baseline pairs and the seen groups from the training file at `train_path`.
fn training_baselines(
    pair: &EvalPair,
    train_path: &Path,
    opts: &EvaluateOptions,
) -> Result<Training, EvalError> {
    let t = load_cells(train_path, &opts.pert_col)?;
    if t.genes != pair.genes {
        return Err(EvalError::GeneMismatch {
            detail: format!(
                "the training file {} has {} genes in a different order or set",
                train_path.display(),
                t.genes.len()
            ),
        });
    }
    let groups = seen_groups(&pair.perts, &t.cells.labels);
    let pairs = baseline_pairs(pair, &t.cells, opts.seed)?;
    Ok(Training { pairs, groups })
}

/// Per perturbation, the real and predicted mean effects (pseudobulk minus control).
fn mean_effects(pair: &EvalPair) -> Vec<(String, Vec<f32>, Vec<f32>)> {
    let g = pair.n_genes();
    let rc = pseudobulk(&pair.real.x, g, &pair.real_groups.control);
    let pc = pseudobulk(&pair.pred.x, g, &pair.pred_groups.control);
    let d = |x: &[f32], cells: &[usize], c: &[f32]| -> Vec<f32> {
        pseudobulk(x, g, cells)
            .iter()
            .zip(c)
            .map(|(a, b)| a - b)
            .collect()
    };
    pair.perts
        .iter()
        .map(|q| {
            (
                q.clone(),
                d(&pair.real.x, &pair.real_groups.by_pert[q], &rc),
                d(&pair.pred.x, &pair.pred_groups.by_pert[q], &pc),
            )
        })
        .collect()
}

impl Evaluation {
    /// Mean of `metric` per method (model first, then the baselines) over the perturbations in
    /// `group` (all when `None`); a method without such perturbations gets `None`.
    pub fn summary(&self, metric: &str, group: Option<&str>) -> Vec<(String, Option<f64>)> {
        let keep =
            |p: &str| group.is_none_or(|g| self.groups.get(p).map(String::as_str) == Some(g));
        self.methods()
            .map(|(name, t)| (name, t.mean_where(metric, &keep)))
            .collect()
    }

    /// The model's table (named `model`), then the baselines', in order.
    pub fn methods(&self) -> impl Iterator<Item = (String, &MetricTable)> {
        std::iter::once(("model".to_string(), &self.model))
            .chain(self.baselines.iter().map(|(n, t)| (n.clone(), t)))
    }

    /// Write `results.csv`, `agg_results.csv` (the model, cell-eval's layout), one
    /// `<baseline>_results.csv` per baseline, `summary.csv` (method x metric means, overall and
    /// per seen group) and `report.html` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, EvalError> {
        let io = |path: &Path, e: std::io::Error| EvalError::Io {
            path: path.to_path_buf(),
            detail: format!("writing: {e}"),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut files: Vec<(PathBuf, String)> = vec![
            (dir.join("results.csv"), results_csv(&self.model)),
            (dir.join("agg_results.csv"), agg_csv(&self.model)),
        ];
        for (name, t) in &self.baselines {
            files.push((dir.join(format!("{name}_results.csv")), results_csv(t)));
        }
        files.push((dir.join("summary.csv"), self.summary_csv()));
        let report = dir.join("report.html");
        files.push((report.clone(), render_html(&self.report_input())));
        for (path, text) in &files {
            ccfm_data::fs::write_atomic(path, text.as_bytes())?;
        }
        Ok(report)
    }

    fn group_names(&self) -> Vec<Option<String>> {
        let mut g: Vec<String> = self.groups.values().cloned().collect();
        g.sort();
        g.dedup();
        std::iter::once(None)
            .chain(g.into_iter().map(Some))
            .collect()
    }

    fn summary_csv(&self) -> String {
        let mut s = String::from("group,method");
        for (m, _) in &self.model.columns {
            s.push(',');
            s.push_str(m);
        }
        s.push('\n');
        for group in self.group_names() {
            let cols: Vec<Vec<(String, Option<f64>)>> = self
                .model
                .columns
                .iter()
                .map(|(m, _)| self.summary(m, group.as_deref()))
                .collect();
            for (k, (method, _)) in cols[0].iter().enumerate() {
                s.push_str(group.as_deref().unwrap_or("all"));
                s.push(',');
                s.push_str(method);
                for c in &cols {
                    s.push(',');
                    s.push_str(&crate::output::csv_number(c[k].1));
                }
                s.push('\n');
            }
        }
        s
    }

    fn report_input(&self) -> ReportInput<'_> {
        ReportInput {
            eval: self,
            groups: self.group_names(),
        }
    }
}
