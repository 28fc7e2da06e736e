//! `ccfm`: the command-line tool. Thin: it parses arguments, picks the backend
//! (see [`backend`]) and calls the library crates.

mod backend;
mod progress;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::{Tensor, TensorData};
use ccfm_data::synth::{additive_check, generate};
use ccfm_data::{
    prepare, H5adSummary, PrepareOptions, Preset, Schema, SchemaOptions, Size, SynthConfig,
    UnmeasuredPerturbations,
};
use ccfm_flow::{integrate, OdeMethod, TimeGrid};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "ccfm",
    about = "Cascaded Conditioned Flow Matching for single-cell perturbation prediction"
)]
struct Cli {
    /// GPU number for the wgpu / cuda backends (the CPU backends have only device 0).
    #[arg(long, global = true)]
    device: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole pipeline on built-in synthetic data, no downloads: writes the data and a
    /// random-weight scGPT directory, trains CCFM and the scDFM baseline briefly, predicts the
    /// held-out doubles, evaluates them next to the control/mean/additive baselines and writes
    /// one report that compares them all (OUT/report.html).
    #[command(after_help = "Example:\n  ccfm demo --out ccfm-demo --seed 1")]
    Demo {
        /// Output directory (replaced if it holds an earlier demo).
        #[arg(long, default_value = "ccfm-demo")]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Override a setting of configs/demo.toml (section.key=value); repeatable.
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        set: Vec<String>,
    },
    /// Train CCFM (or scDFM with latent.enabled = false) from a TOML config into a run
    /// directory; `--resume RUN` continues a stopped run exactly where its last checkpoint left
    /// off.
    #[command(
        after_help = "Example:\n  ccfm train --config configs/demo.toml --out runs/mine --set data.path=norman.h5ad --set latent.enabled=false"
    )]
    Train {
        /// The configuration (see configs/norman.toml).
        #[arg(long, required_unless_present = "resume")]
        config: Option<PathBuf>,
        /// The run directory to create.
        #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
        out: Option<PathBuf>,
        /// Continue the run in this directory from its newest checkpoint.
        #[arg(long, conflicts_with = "config")]
        resume: Option<PathBuf>,
        /// Override a config setting (section.key=value, e.g. train.steps=500); repeatable.
        #[arg(
            long = "set",
            value_name = "SECTION.KEY=VALUE",
            conflicts_with = "resume"
        )]
        set: Vec<String>,
        /// Stop after this many steps, as if interrupted (resume later with --resume).
        #[arg(long)]
        stop_after: Option<usize>,
    },
    /// Predict cells with a trained run: an .h5ad of predicted cells (obs['perturbation'],
    /// control cells included) and, when the conditions have real cells, PRED_real.h5ad.
    #[command(
        after_help = "Example:\n  ccfm predict --run runs/mine --out pred.h5ad --cells-per-condition 100"
    )]
    Predict {
        /// The run directory written by `ccfm train`.
        #[arg(long)]
        run: PathBuf,
        /// Output .h5ad path.
        #[arg(long)]
        out: PathBuf,
        /// Conditions to predict, comma-separated (e.g. "KLF1+MAP2K6,SET+KLF1"); default: the
        /// split's test conditions.
        #[arg(long, value_delimiter = ',')]
        conditions: Option<Vec<String>>,
        /// Your own control cells (.h5ad with the model's genes); default: the data's.
        #[arg(long)]
        controls: Option<PathBuf>,
        /// Cells per condition (default: sample.cells_per_condition of the run).
        #[arg(long)]
        cells_per_condition: Option<usize>,
        /// Checkpoint: latest, or a step number.
        #[arg(long, default_value = "latest")]
        checkpoint: String,
        /// Use the raw weights even when the run kept an EMA.
        #[arg(long)]
        no_ema: bool,
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Show the version, the compiled backends, and check that the selected backend computes.
    #[command(after_help = "Example:\n  ccfm info")]
    Info,
    /// Show an .h5ad file's layout and its perturbation design (schema, control cells,
    /// singles, doubles), running the validation training runs; exits non-zero if it fails.
    #[command(after_help = "Example:\n  ccfm inspect norman.h5ad --json")]
    Inspect {
        /// The .h5ad file to read.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Print the seurat highly-variable genes (scanpy's default flavour), one per line, in var
    /// order.
    #[command(after_help = "Example:\n  ccfm hvg norman.h5ad --n-top 2000 > hvg.txt")]
    Hvg {
        /// The .h5ad file to read.
        file: PathBuf,
        /// Number of genes to select (ties may select more, as in scanpy).
        #[arg(long)]
        n_top: usize,
        /// Matrix to use: X or layers/NAME. Counts are normalised and log1p'd first.
        #[arg(long, default_value = "X")]
        layer: String,
        /// Keep only cells with this obs['dataset'] value.
        #[arg(long)]
        dataset: Option<String>,
    },
    /// Evaluate predicted cells against real cells with cell-eval's metrics, next to the
    /// control, mean, additive and noise-ceiling baselines when training data is given; writes
    /// results.csv, agg_results.csv, summary.csv and report.html.
    #[command(
        after_help = "Example:\n  ccfm evaluate --real pred_real.h5ad --pred pred.h5ad --baselines train.h5ad --out eval/"
    )]
    Evaluate {
        /// Real cells (.h5ad, log1p or counts).
        #[arg(long)]
        real: PathBuf,
        /// Predicted cells (.h5ad, same genes in the same order, control cells included).
        #[arg(long)]
        pred: PathBuf,
        /// Label of the control cells.
        #[arg(long, default_value = "control")]
        control: String,
        /// obs column holding the perturbation labels.
        #[arg(long, default_value = "perturbation")]
        pert_col: String,
        /// full or minimal (as cell-eval's profiles).
        #[arg(long, default_value = "full")]
        profile: ccfm_eval::Profile,
        /// Training cells (.h5ad, same genes and label column) for the baselines.
        #[arg(long)]
        baselines: Option<PathBuf>,
        /// A training log (JSONL with step and loss) to plot in the report.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Seed of the baselines' control-cell draws and half splits.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Embed cells with a scGPT model directory (args.json, vocab.json, best_model.pt) as
    /// scGPT's embed_data does; writes cell_embedding (cells, d; L2-normalised) and
    /// gene_features (cells, genes, d; the file's genes in var order, zero where a gene is not
    /// expressed or not in the vocabulary) to a .safetensors file.
    #[command(
        after_help = "Example:\n  ccfm embed --scgpt scGPT_human --input cells.h5ad --out cells.safetensors --gene-col feature_name"
    )]
    Embed(EmbedArgs),
    /// Write a synthetic dataset with a known ground truth (GEARS schema for norman, pertpy
    /// schema for combosciplex).
    #[command(
        after_help = "Example:\n  ccfm synth --preset combosciplex --seed 3 --out combosciplex.h5ad"
    )]
    Synth {
        /// norman or combosciplex.
        #[arg(long, default_value = "norman")]
        preset: Preset,
        /// tiny (unit tests) or default (about 500 genes, 10k cells).
        #[arg(long, default_value = "default")]
        size: Size,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output .h5ad path.
        #[arg(long)]
        out: PathBuf,
    },
    /// Compare trained runs on one page: each run predicts its test conditions, is evaluated
    /// next to the control, mean, additive and noise-ceiling baselines, and DIR/report.html
    /// shows every run and baseline side by side (overall, per seen group, per interaction type
    /// when the data records them), with the training curves and the run settings.
    #[command(after_help = "Example:\n  ccfm report --runs runs/ccfm,runs/scdfm --out report/")]
    Report {
        /// Run directories written by `ccfm train`, comma-separated; they must share their test
        /// conditions.
        #[arg(long, value_delimiter = ',', required = true)]
        runs: Vec<PathBuf>,
        /// Output directory (report.html, comparison.json, predictions/, eval/).
        #[arg(long)]
        out: PathBuf,
        /// Seed of the baselines' control-cell draws and half splits.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Print a shell completion script for ccfm.
    #[command(
        after_help = "Example:\n  ccfm completions bash > ~/.local/share/bash-completion/completions/ccfm"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// How to read a perturbation file.
#[derive(clap::Args)]
struct DataArgs {
    /// Schema: gears, perturbench, figshare-norman or combosciplex (default: detected).
    #[arg(long)]
    schema: Option<Schema>,
    /// Keep only cells with this obs['dataset'] value (PerturBench mixes datasets).
    #[arg(long)]
    dataset: Option<String>,
    /// Matrix to read: X or layers/NAME (default: layers/counts for ComboSciPlex, else X).
    #[arg(long)]
    layer: Option<String>,
    /// Accept perturbed genes that are not among the file's genes (vocabulary-only tokens).
    #[arg(long)]
    allow_unmeasured: bool,
}

impl DataArgs {
    fn options(&self) -> PrepareOptions {
        PrepareOptions {
            schema: SchemaOptions {
                schema: self.schema,
                dataset: self.dataset.clone(),
            },
            element: self.layer.clone(),
            unmeasured: if self.allow_unmeasured {
                UnmeasuredPerturbations::Vocabulary
            } else {
                UnmeasuredPerturbations::Error
            },
            ..Default::default()
        }
    }
}

/// `ccfm embed`'s arguments.
#[derive(Args)]
struct EmbedArgs {
    /// The scGPT model directory.
    #[arg(long)]
    scgpt: PathBuf,
    /// Cells to embed (.h5ad).
    #[arg(long)]
    input: PathBuf,
    /// Output .safetensors path.
    #[arg(long)]
    out: PathBuf,
    /// Matrix to read: X or counts (layers['counts']).
    #[arg(long, default_value = "X")]
    genes_layer: String,
    /// var column holding gene symbols (default: the var index).
    #[arg(long)]
    gene_col: Option<String>,
    /// Tie-break of the binning: left (deterministic) or random (scgpt 0.2.4).
    #[arg(long, value_enum, default_value_t = Binning::Left)]
    binning: Binning,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
}

/// scGPT's binning tie-break, as `--binning` spells it.
#[derive(Clone, Copy, ValueEnum)]
enum Binning {
    Left,
    Random,
}

impl From<Binning> for ccfm_scgpt::TieBreak {
    fn from(b: Binning) -> Self {
        match b {
            Binning::Left => ccfm_scgpt::TieBreak::Left,
            Binning::Random => ccfm_scgpt::TieBreak::Random,
        }
    }
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let version: &'static str = Box::leak(backend::version().into_boxed_str());
    let matches = Cli::command().version(version).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // A file-size limit (`ulimit -f`) makes writes fail with an error, not kill the process:
    // the checkpoint writer then keeps the previous checkpoint and says so.
    // SAFETY: setting a signal's disposition to "ignore" before any thread is started.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let device = cli.device;
    let result = match cli.command {
        Command::Info => info(),
        Command::Demo { out, seed, set } => run::demo(&out, seed, set, device),
        Command::Train {
            config,
            out,
            resume,
            set,
            stop_after,
        } => run::train(config, out, resume, set, stop_after, device),
        Command::Predict {
            run,
            out,
            conditions,
            controls,
            cells_per_condition,
            checkpoint,
            no_ema,
            seed,
        } => run::predict(
            &run,
            &out,
            ccfm_train::PredictOptions {
                conditions,
                controls,
                cells_per_condition,
                checkpoint: Some(checkpoint),
                use_ema: no_ema.then_some(false),
                seed,
            },
            device,
        ),
        Command::Inspect { file, json, data } => inspect(&file, json, &data),
        Command::Hvg {
            file,
            n_top,
            layer,
            dataset,
        } => ccfm_data::dataset::highly_variable_genes(&file, &layer, dataset.as_deref(), n_top)
            .map(|genes| {
                for g in genes {
                    println!("{g}");
                }
            })
            .map_err(|e| e.to_string()),
        Command::Synth {
            preset,
            size,
            seed,
            out,
        } => synth(preset, size, seed, &out),
        Command::Embed(args) => embed(&args),
        Command::Report { runs, out, seed } => run::report(&runs, &out, seed, device),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ccfm", &mut std::io::stdout());
            Ok(())
        }
        Command::Evaluate {
            real,
            pred,
            control,
            pert_col,
            profile,
            baselines,
            log,
            seed,
            out,
        } => evaluate(
            &real,
            &pred,
            &ccfm_eval::EvaluateOptions {
                control,
                pert_col,
                profile,
                train: baselines,
                loss_log: log,
                seed,
            },
            &out,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // One line: errors of the libraries below (TOML, weights) can span several.
            let line: Vec<&str> = message
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!("error: {}", line.join("; "));
            ExitCode::FAILURE
        }
    }
}

fn info() -> Result<(), String> {
    println!("ccfm {}", env!("CARGO_PKG_VERSION"));
    println!("backends compiled: {}", backend::compiled().join(", "));
    println!("backend selected:  {}", backend::NAME);
    // A check that the device computes: integrate dx/dt = -x from 1 over [0, 1] with RK4.
    let device = Default::default();
    let x0 = Tensor::<backend::Selected, 1>::from_data(TensorData::new(vec![1.0f32], [1]), &device);
    let grid = TimeGrid::uniform(10).map_err(|e| e.to_string())?;
    let sol = integrate(|x, _| x.neg(), x0, &grid, OdeMethod::Rk4, false);
    let got: f32 = sol
        .final_state
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| format!("reading the result back from the device: {e:?}"))?[0];
    let want = (-1.0f64).exp() as f32;
    if (got - want).abs() > 1e-5 {
        return Err(format!(
            "device self-check failed: exp(-1) computed as {got}, expected {want}"
        ));
    }
    println!("device self-check: ok (exp(-1) = {got:.6} by RK4 on {device:?})");
    Ok(())
}

fn inspect(file: &PathBuf, json: bool, args: &DataArgs) -> Result<(), String> {
    let s = H5adSummary::read(file).map_err(|e| e.to_string())?;
    // The same validation and preparation a training run does.
    let prepared = prepare(file, &args.options());
    if json {
        let data = prepared.map_err(|e| e.to_string())?;
        let t = &data.table;
        let (singles, doubles) = t.singles_doubles();
        let v = serde_json::json!({
            "file": file.display().to_string(),
            "n_obs": s.n_obs,
            "n_vars": s.n_vars,
            "x": {"encoding": s.x_encoding, "dtype": s.x_dtype, "stored": s.x_stored,
                  "density": s.density()},
            "layers": s.layers,
            "obs_columns": s.obs_columns,
            "var_columns": s.var_columns,
            "schema": t.schema.name(),
            "perturbation_kind": format!("{:?}", t.kind).to_lowercase(),
            "matrix": data.report.element,
            "scale": data.report.scale.to_string(),
            "cells": t.n_cells(),
            "control_cells": t.cells_by_condition()[0].len(),
            "conditions": t.conditions.len(),
            "singles": singles,
            "doubles": doubles,
            "condition_cells": t.conditions.iter().zip(t.cells_by_condition())
                .map(|(c, cells)| (c.name(), cells.len()))
                .collect::<std::collections::BTreeMap<_, _>>(),
            "unmeasured_perturbed_genes": data.report.unmeasured_genes,
            "has_doses": t.doses.is_some(),
            "load_seconds": data.report.seconds,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("plain JSON"));
        return Ok(());
    }
    println!("{}", file.display());
    println!("  cells x genes: {} x {}", s.n_obs, s.n_vars);
    println!(
        "  X: {} {} ({} stored values, density {:.3})",
        s.x_encoding,
        s.x_dtype,
        s.x_stored,
        s.density()
    );
    println!("  obs columns: {}", s.obs_columns.join(", "));
    println!("  var columns: {}", s.var_columns.join(", "));
    let layers = if s.layers.is_empty() {
        "(none)".to_string()
    } else {
        s.layers.join(", ")
    };
    println!("  layers: {layers}");
    let data = prepared.map_err(|e| e.to_string())?;
    let t = &data.table;
    let (singles, doubles) = t.singles_doubles();
    let by = t.cells_by_condition();
    println!(
        "  schema: {} ({} perturbations), values from {} ({})",
        t.schema,
        format!("{:?}", t.kind).to_lowercase(),
        data.report.element,
        data.report.scale
    );
    println!(
        "  cells used: {} ({} control); conditions: {} singles, {} doubles",
        t.n_cells(),
        by[0].len(),
        singles,
        doubles
    );
    let sizes: Vec<usize> = by[1..].iter().map(Vec::len).collect();
    if let (Some(lo), Some(hi)) = (sizes.iter().min(), sizes.iter().max()) {
        println!("  cells per perturbation: {lo} to {hi}");
    }
    if !data.report.unmeasured_genes.is_empty() {
        println!(
            "  perturbed genes not measured (vocabulary-only): {}",
            data.report.unmeasured_genes.len()
        );
    }
    if t.doses.is_some() {
        println!("  doses: per cell (Dose1/Dose2 or dose_val)");
    }
    println!("  validation: ok (loaded in {:.3} s)", data.report.seconds);
    Ok(())
}

fn evaluate(
    real: &std::path::Path,
    pred: &std::path::Path,
    opts: &ccfm_eval::EvaluateOptions,
    out: &std::path::Path,
) -> Result<(), String> {
    let mut bar = progress::Bar::new("evaluating", "metric tables");
    let e = ccfm_eval::evaluate_with_progress(real, pred, opts, &mut |d, n| bar.update(d, n))
        .map_err(|e| e.to_string())?;
    bar.finish();
    let report = e.write(out).map_err(|e| e.to_string())?;
    println!(
        "evaluated {} perturbations x {} genes in {:.2} s",
        e.model.perts.len(),
        e.n_genes,
        e.seconds
    );
    let metrics = [
        "pearson_delta",
        "mse",
        "discrimination_score_l1",
        "overlap_at_N",
        "mmd",
    ];
    print!("{:<10}", "method");
    for m in metrics {
        print!(" {m:>24}");
    }
    println!();
    let cols: Vec<Vec<(String, Option<f64>)>> =
        metrics.iter().map(|m| e.summary(m, None)).collect();
    for (k, (method, _)) in cols[0].iter().enumerate() {
        print!("{method:<10}");
        for c in &cols {
            match c[k].1 {
                Some(v) if v != 0.0 && v.abs() < 1e-3 => print!(" {v:>24.3e}"),
                Some(v) => print!(" {v:>24.4}"),
                None => print!(" {:>24}", "-"),
            }
        }
        println!();
    }
    println!("report: {}", report.display());
    Ok(())
}

fn embed(args: &EmbedArgs) -> Result<(), String> {
    let (scgpt, input, out) = (&args.scgpt, &args.input, &args.out);
    let element = match args.genes_layer.as_str() {
        "X" => "X".to_string(),
        name => format!("layers/{name}"),
    };
    let gene_col = args.gene_col.as_deref();
    let device = Default::default();
    let model = ccfm_scgpt::ScgptModel::<backend::Selected>::from_dir(scgpt, &device)
        .map_err(|e| e.to_string())?;
    let ad = ccfm_data::AnnData::open(input).map_err(|e| e.to_string())?;
    let genes: Vec<String> = match gene_col {
        None => ad.var.index.clone(),
        Some(c) => ad
            .var
            .column(c)
            .ok_or_else(|| {
                format!(
                    "{}: var has no column `{c}` (var columns: {})",
                    input.display(),
                    ad.var
                        .columns
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?
            .as_labels()
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect(),
    };
    let rows: Vec<usize> = (0..ad.n_obs()).collect();
    let x = ad
        .read_matrix(&element, &rows, None)
        .map_err(|e| e.to_string())?;
    let opts = ccfm_scgpt::EmbedOptions {
        tie_break: args.binning.into(),
        seed: args.seed,
        batch_size: args.batch_size,
    };
    let mut bar = progress::Bar::new("embedding", "cells");
    let e = ccfm_scgpt::embed_cells(&model, &genes, &x, &opts, &device, &mut |d, n| {
        bar.update(d, n)
    })
    .map_err(|e| format!("{}: {e}", input.display()))?;
    bar.finish();
    e.write_safetensors(out, genes.len())
        .map_err(|e| e.to_string())?;
    println!(
        "embedded {} cells with {} ({} of {} genes in its vocabulary of {}; unused checkpoint keys: {}); wrote {}",
        ad.n_obs(),
        scgpt.display(),
        e.genes_in_vocab,
        genes.len(),
        model.vocab.len(),
        model.report.unused.len(),
        out.display()
    );
    Ok(())
}

fn synth(preset: Preset, size: Size, seed: u64, out: &PathBuf) -> Result<(), String> {
    let cfg = SynthConfig { preset, size, seed };
    let data = generate(&cfg);
    data.write(out).map_err(|e| e.to_string())?;
    println!(
        "wrote {}: synthetic {preset} ({size}, seed {seed}), {} cells x {} genes; raw counts in \
         layers['counts'], X = log1p(normalize_total 1e4); truth in uns (true_mean, true_delta, \
         gi_type)",
        out.display(),
        data.n_obs(),
        data.n_vars()
    );
    // The additive baseline on the written data, by interaction type.
    let prepared = prepare(out, &PrepareOptions::default()).map_err(|e| e.to_string())?;
    let mut by: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for (name, r, _) in additive_check(&prepared) {
        let t = data
            .gi_type
            .iter()
            .find(|(k, _)| ccfm_data::Condition::parse(k).name() == name)
            .map_or("unknown".to_string(), |(_, t)| t.clone());
        by.entry(t).or_default().push(r);
    }
    if !by.is_empty() {
        println!("additive baseline (control + dA + dB), mean pearson_delta per interaction type:");
        for (t, v) in by {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            println!("  {t:<12} {:>3} doubles  {mean:.3}", v.len());
        }
    }
    Ok(())
}
