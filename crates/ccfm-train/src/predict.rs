//! Prediction (`ccfm predict`): generate cells for conditions from a trained run and write them
//! as an `.h5ad` that cell-eval and `ccfm evaluate` read directly.
//!
//! The predicted file holds one generated cell per control cell for every condition plus the
//! control cells themselves (`obs['perturbation'] = "control"`). When the conditions have real
//! cells in the data, a second file holds those real cells with the same control cells.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};
use ccfm_data::anndata::AnnData;
use ccfm_data::preprocess::{check_values, detect_scale, log1p, normalize_total};
use ccfm_data::sampler::draw_from_pool;
use ccfm_data::{
    write_h5ad, AnnDataOut, Column, Condition, DataFrame, MatrixOut, TargetSum, UnsValue,
    ValueScale,
};
use ccfm_layers::CoexpressionMask;
use ccfm_model::{CascadedDenoiser, CascadedFlowModel};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{load_model_weights, RunDir};
use crate::config::RunConfig;
use crate::error::TrainError;
use crate::experiment::Experiment;
use crate::generate::{prediction_genes, Generator};

/// What to predict.
#[derive(Debug, Clone, Default)]
pub struct PredictOptions {
    /// Condition names (`A+B`); default: the split's test conditions.
    pub conditions: Option<Vec<String>>,
    /// Control cells of the user's own (`.h5ad`; the model's genes must be among its var).
    pub controls: Option<PathBuf>,
    /// Default: `sample.cells_per_condition` of the run's config.
    pub cells_per_condition: Option<usize>,
    /// `latest` (default), a step number or a checkpoint directory name.
    pub checkpoint: Option<String>,
    /// Use the EMA weights when the run has them (default: `sample.use_ema`).
    pub use_ema: Option<bool>,
    /// Default: `sample.seed`.
    pub seed: Option<u64>,
    /// Where the co-expression mask is cached (`None`: computed, not cached).
    pub cache_dir: Option<PathBuf>,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct PredictSummary {
    pub predicted: PathBuf,
    /// The real cells of the predicted conditions (when the data has them).
    pub real: Option<PathBuf>,
    pub conditions: Vec<String>,
    pub cells_per_condition: usize,
    pub genes: usize,
    pub checkpoint: PathBuf,
    /// Whether the EMA weights generated the cells.
    pub ema: bool,
    pub seconds: f64,
}

/// The companion file of the real cells: `P.h5ad` -> `P_real.h5ad`.
pub fn real_path(pred: &Path) -> PathBuf {
    let stem = pred
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "predicted".into());
    pred.with_file_name(format!("{stem}_real.h5ad"))
}

/// Read the user's control cells over `genes` (symbols), as log1p values.
fn read_controls(path: &Path, genes: &[String]) -> Result<Vec<f32>, TrainError> {
    let ad = AnnData::open(path)?;
    let names: Vec<String> = ["gene_name", "feature_name", "gene_symbols"]
        .iter()
        .find_map(|c| ad.var.column(c).map(|col| col.as_labels()))
        .map(|v| v.into_iter().map(Option::unwrap_or_default).collect())
        .unwrap_or_else(|| ad.var.index.clone());
    let pos: std::collections::HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let missing: Vec<&String> = genes
        .iter()
        .filter(|g| !pos.contains_key(g.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(TrainError::Request(format!(
            "{}: {} of the model's {} genes are not in its var (e.g. {}); the control cells \
             must measure the genes the model was trained on",
            path.display(),
            missing.len(),
            genes.len(),
            missing
                .iter()
                .take(5)
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let rows: Vec<usize> = (0..ad.n_obs()).collect();
    if rows.is_empty() {
        return Err(TrainError::Request(format!(
            "{}: it holds no cells",
            path.display()
        )));
    }
    let mut m = ad.read_rows_sparse("X", &rows)?;
    let stats = check_values(path, "X", &m, &ad.obs.index)?;
    if detect_scale(path, "X", &stats, ad.exists("uns/log1p"))? == ValueScale::Counts {
        normalize_total(&mut m, TargetSum::Median);
        log1p(&mut m);
    }
    let cols: Vec<usize> = genes.iter().map(|g| pos[g.as_str()]).collect();
    let mut dense_row = vec![0f32; ad.n_vars()];
    let mut out = Vec::with_capacity(rows.len() * genes.len());
    for r in 0..rows.len() {
        dense_row.iter_mut().for_each(|v| *v = 0.0);
        for p in m.indptr[r]..m.indptr[r + 1] {
            dense_row[m.indices[p]] = m.data[p] as f32;
        }
        out.extend(cols.iter().map(|&c| dense_row[c]));
    }
    Ok(out)
}

/// An obs table: `prefix0, prefix1, ...` with the labels in `obs['perturbation']`.
pub(crate) fn frame(labels: Vec<String>, prefix: &str) -> DataFrame {
    DataFrame {
        index: (0..labels.len()).map(|i| format!("{prefix}{i}")).collect(),
        columns: vec![("perturbation".into(), Column::Strings(labels))],
    }
}

/// Load a run's model (EMA weights when asked and present) on backend `B`.
pub fn load_model<B: Backend>(
    exp: &Experiment,
    run: &RunDir,
    which: &str,
    use_ema: bool,
    device: &B::Device,
) -> Result<(CascadedFlowModel<B>, PathBuf, bool), TrainError> {
    let dir = run.checkpoint(which)?;
    let state = RunDir::read_state(&dir)?;
    let cfg = exp.model_config();
    let expected = serde_json::to_value(&cfg).expect("config serialises");
    state.check_model(&expected, &dir)?;
    let ema = use_ema && state.has_ema;
    let file = if ema { "ema.bin" } else { "model.bin" };
    let fresh = {
        // The initial values are replaced by the checkpoint's, but drawing them takes from the
        // backend's one random stream: hold it, so that a seeded section of another thread
        // (`ccfm demo` trains while it predicts) is not shifted by these draws.
        let _draws = ccfm_layers::rng::seeded::<B>(device, 0);
        cfg.init::<B>(device)
    };
    let model = load_model_weights(
        fresh,
        RunDir::read_file(&dir, file, &state)?,
        &state,
        device,
        &dir,
    )?;
    Ok((model, dir, ema))
}

/// Predict with the run in `run_path`, writing `out` (and its `_real` companion). Generation
/// runs on the inner backend (dropout off, docs/model.md) unless the run's config
/// sets `sample.inference_dropout`, which generates on `B` itself with dropout active, as the
/// reference scDFM did.
pub fn predict<B: AutodiffBackend>(
    run_path: &Path,
    out: &Path,
    opts: &PredictOptions,
    device: &B::Device,
    say: &mut dyn FnMut(String),
) -> Result<PredictSummary, TrainError> {
    predict_with_progress::<B>(run_path, out, opts, device, say, &mut |_, _| {})
}

/// [`predict`], reporting `progress(conditions done, conditions)` as each condition's cells
/// are generated (from `(0, n)` once the model is loaded).
pub fn predict_with_progress<B: AutodiffBackend>(
    run_path: &Path,
    out: &Path,
    opts: &PredictOptions,
    device: &B::Device,
    say: &mut dyn FnMut(String),
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PredictSummary, TrainError> {
    let run = RunDir::open(run_path)?;
    let config = run.config()?;
    let job = PredictJob {
        run: &run,
        out,
        opts,
    };
    if config.sample.inference_dropout {
        predict_on::<B>(&job, config, device, say, progress)
    } else {
        predict_on::<B::InnerBackend>(&job, config, device, say, progress)
    }
}

/// What one prediction reads and writes.
struct PredictJob<'a> {
    run: &'a RunDir,
    out: &'a Path,
    opts: &'a PredictOptions,
}

fn predict_on<B: Backend>(
    job: &PredictJob<'_>,
    config: RunConfig,
    device: &B::Device,
    say: &mut dyn FnMut(String),
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PredictSummary, TrainError> {
    let PredictJob { run, out, opts } = *job;
    let started = Instant::now();
    let exp = Experiment::new(&config, opts.cache_dir.as_deref(), say)?;
    let s = &config.sample;
    let which = opts.checkpoint.as_deref().unwrap_or("latest");
    let (model, checkpoint, ema) =
        load_model::<B>(&exp, run, which, opts.use_ema.unwrap_or(s.use_ema), device)?;
    // No gradient is needed: on an autodiff backend this keeps only dropout active.
    let model = model.no_grad();
    let request = Request::of(opts, &exp)?;
    let genes = prediction_genes(&exp, s.n_genes);
    let gene_names: Vec<String> = genes.iter().map(|&g| exp.data.genes[g].clone()).collect();
    say(format!(
        "predicting {} conditions x {} cells over {} genes with {} ({})",
        request.conditions.len(),
        request.cells,
        genes.len(),
        checkpoint.display(),
        if ema { "EMA weights" } else { "weights" }
    ));
    let pool = ControlPool::new(opts, &exp, &genes, &gene_names)?;
    let mask = CoexpressionMask::<B>::from_blocked(exp.mask.clone(), exp.vocab.len(), device);
    let denoiser = CascadedDenoiser::new(config.denoiser())?;
    let generator = Generator {
        exp: &exp,
        model: &model,
        mask: &mask,
        denoiser: &denoiser,
        genes: &genes,
        batch_size: s.batch_size,
        device,
        seed: request.seed,
    };
    let cells = generate_all(&generator, &request, &pool, say, progress)?;
    let uns = vec![
        (
            "ccfm_run".to_string(),
            UnsValue::Text(run.path.display().to_string()),
        ),
        (
            "ccfm_checkpoint".to_string(),
            UnsValue::Text(checkpoint.display().to_string()),
        ),
        (
            "ccfm_controls".to_string(),
            UnsValue::Text(pool.source.clone()),
        ),
        (
            "ccfm_seed".to_string(),
            UnsValue::Number(request.seed as f64),
        ),
    ];
    let real = write_outputs(out, cells, gene_names, &uns)?;
    Ok(PredictSummary {
        predicted: out.to_path_buf(),
        real,
        conditions: request.conditions.iter().map(Condition::name).collect(),
        cells_per_condition: request.cells,
        genes: genes.len(),
        checkpoint,
        ema,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The conditions, cells per condition and seed of one prediction.
struct Request {
    conditions: Vec<Condition>,
    cells: usize,
    seed: u64,
}

impl Request {
    fn of(opts: &PredictOptions, exp: &Experiment) -> Result<Self, TrainError> {
        let s = &exp.config.sample;
        let conditions: Vec<Condition> = match &opts.conditions {
            Some(names) => exp.parse_conditions(names)?,
            None => exp.split.test.iter().map(|n| Condition::parse(n)).collect(),
        };
        if conditions.is_empty() {
            return Err(TrainError::Request(
                "no conditions to predict: the split has no test conditions; name them with \
                 --conditions"
                    .into(),
            ));
        }
        let cells = opts.cells_per_condition.unwrap_or(s.cells_per_condition);
        if cells == 0 {
            return Err(TrainError::Request(
                "--cells-per-condition must be at least 1".into(),
            ));
        }
        Ok(Self {
            conditions,
            cells,
            seed: opts.seed.unwrap_or(s.seed),
        })
    }
}

/// The control cells generation starts from: the user's cells or the data's control cells,
/// as row-major `(cells, genes)` values, drawn with a seeded stream.
struct ControlPool {
    values: Vec<f32>,
    genes: usize,
    source: String,
}

impl ControlPool {
    fn new(
        opts: &PredictOptions,
        exp: &Experiment,
        genes: &[usize],
        gene_names: &[String],
    ) -> Result<Self, TrainError> {
        let (values, source) = match &opts.controls {
            Some(p) => (read_controls(p, gene_names)?, p.display().to_string()),
            None => {
                let by = exp.data.table.cells_by_condition();
                let cells = &by[ccfm_data::PerturbationTable::CONTROL_INDEX];
                (
                    exp.data.gather(cells, genes)?,
                    "the data's control cells".into(),
                )
            }
        };
        Ok(Self {
            values,
            genes: genes.len(),
            source,
        })
    }

    fn len(&self) -> usize {
        self.values.len() / self.genes
    }

    /// The values of the pool's rows `idx`.
    fn rows(&self, idx: &[usize]) -> Vec<f32> {
        let t = self.genes;
        let mut v = Vec::with_capacity(idx.len() * t);
        for &i in idx {
            v.extend_from_slice(&self.values[i * t..(i + 1) * t]);
        }
        v
    }
}

/// Predicted and real cells with their labels.
struct Cells {
    pred_x: Vec<f32>,
    pred_labels: Vec<String>,
    real_x: Vec<f32>,
    real_labels: Vec<String>,
    /// Conditions with real cells in the data.
    with_real: usize,
}

/// Generate every condition's cells (after the shared control rows, written with both files).
fn generate_all<B: Backend>(
    generator: &Generator<'_, B>,
    request: &Request,
    pool: &ControlPool,
    say: &mut dyn FnMut(String),
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Cells, TrainError> {
    let exp = generator.exp;
    let (n, total) = (request.cells, request.conditions.len());
    let mut rng = ChaCha8Rng::seed_from_u64(request.seed);
    let all: Vec<usize> = (0..pool.len()).collect();
    let control_rows = draw_from_pool(&all, n.min(pool.len()), &mut rng);
    let x = pool.rows(&control_rows);
    let labels = vec!["control".to_string(); control_rows.len()];
    let mut c = Cells {
        pred_x: x.clone(),
        pred_labels: labels.clone(),
        real_x: x,
        real_labels: labels,
        with_real: 0,
    };
    let by_condition = exp.data.table.cells_by_condition();
    progress(0, total);
    for (i, cond) in request.conditions.iter().enumerate() {
        let name = cond.name();
        let controls = pool.rows(&draw_from_pool(&all, n, &mut rng));
        let c0 = Instant::now();
        c.pred_x.extend(generator.condition(cond, &controls)?);
        c.pred_labels.extend(std::iter::repeat_n(name.clone(), n));
        if let Some(ci) = exp.data.table.condition_index(&name) {
            let cells = &by_condition[ci];
            c.real_x.extend(exp.data.gather(cells, generator.genes)?);
            c.real_labels
                .extend(std::iter::repeat_n(name.clone(), cells.len()));
            c.with_real += 1;
        }
        say(format!(
            "  [{}/{total}] {name}: {n} cells in {:.1} s",
            i + 1,
            c0.elapsed().as_secs_f64()
        ));
        progress(i + 1, total);
    }
    Ok(c)
}

/// Write the predicted file and, when some conditions have real cells, its `_real` companion
/// (neither is left behind when the second fails).
fn write_outputs(
    out: &Path,
    cells: Cells,
    gene_names: Vec<String>,
    uns: &[(String, UnsValue)],
) -> Result<Option<PathBuf>, TrainError> {
    let var = DataFrame {
        index: gene_names,
        columns: Vec::new(),
    };
    if let Some(p) = &out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p).map_err(|e| TrainError::io(*p, e))?;
    }
    let file =
        |x: &[f32], labels: Vec<String>, prefix: &str, uns: &[(String, UnsValue)], path: &Path| {
            write_h5ad(
                path,
                &AnnDataOut {
                    x: MatrixOut::Dense(x),
                    layers: &[],
                    obs: &frame(labels, prefix),
                    var: &var,
                    uns,
                },
            )
        };
    file(&cells.pred_x, cells.pred_labels, "pred_", uns, out)?;
    if cells.with_real == 0 {
        return Ok(None);
    }
    let rp = real_path(out);
    if let Err(e) = file(&cells.real_x, cells.real_labels, "real_", &uns[..1], &rp) {
        let _ = std::fs::remove_file(out);
        return Err(e.into());
    }
    Ok(Some(rp))
}
