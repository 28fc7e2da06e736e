//! The command line: one `clap` struct per subcommand (`ccfm <command> --help` prints their
//! docs). Nothing here does work; `main` dispatches each to its function.

use std::path::PathBuf;

use ccfm_data::{PrepareOptions, Preset, Schema, SchemaOptions, Size, UnmeasuredPerturbations};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "ccfm",
    about = "Cascaded Conditioned Flow Matching for single-cell perturbation prediction"
)]
pub struct Cli {
    /// GPU number for the wgpu / cuda backends (the CPU backends have only device 0).
    #[arg(long, global = true)]
    pub device: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// The whole pipeline on built-in synthetic data, no downloads: for the Norman-like (gene
    /// pairs) and the ComboSciPlex-like (drug pairs) preset, writes the data and a random-weight
    /// scGPT directory, trains CCFM and the scDFM baseline briefly, predicts the held-out
    /// doubles, evaluates them next to the control/mean/additive baselines and writes one report
    /// per preset that compares them all (OUT/PRESET/report.html) and OUT/summary.json.
    #[command(after_help = "Example:\n  ccfm demo --out ccfm-demo --preset norman --seed 1")]
    Demo(DemoArgs),
    /// Train CCFM (or scDFM with latent.enabled = false) from a TOML config into a run
    /// directory; `--resume RUN` continues a stopped run exactly where its last checkpoint left
    /// off.
    #[command(
        after_help = "Example:\n  ccfm train --config configs/demo.toml --out runs/mine --set data.path=norman.h5ad --set latent.enabled=false"
    )]
    Train(TrainArgs),
    /// Predict cells with a trained run: an .h5ad of predicted cells (obs['perturbation'],
    /// control cells included) and, when the conditions have real cells, PRED_real.h5ad.
    #[command(
        after_help = "Example:\n  ccfm predict --run runs/mine --out pred.h5ad --cells-per-condition 100"
    )]
    Predict(PredictArgs),
    /// Show the version, the compiled backends, and check that the selected backend computes.
    #[command(after_help = "Example:\n  ccfm info")]
    Info,
    /// Show an .h5ad file's layout and its perturbation design (schema, control cells,
    /// singles, doubles), running the validation training runs; exits non-zero if it fails.
    #[command(after_help = "Example:\n  ccfm inspect norman.h5ad --json")]
    Inspect(InspectArgs),
    /// Print the seurat highly-variable genes (scanpy's default flavour), one per line, in var
    /// order.
    #[command(after_help = "Example:\n  ccfm hvg norman.h5ad --n-top 2000 > hvg.txt")]
    Hvg(HvgArgs),
    /// Evaluate predicted cells against real cells with cell-eval's metrics, next to the
    /// control, mean, additive and noise-ceiling baselines when training data is given; writes
    /// results.csv, agg_results.csv, summary.csv and report.html.
    #[command(
        after_help = "Example:\n  ccfm evaluate --real pred_real.h5ad --pred pred.h5ad --baselines train.h5ad --out eval/"
    )]
    Evaluate(EvaluateArgs),
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
    Synth(SynthArgs),
    /// Compare trained runs on one page: each run predicts its test conditions, is evaluated
    /// next to the control, mean, additive and noise-ceiling baselines, and DIR/report.html
    /// shows every run and baseline side by side (overall, per seen group, per interaction type
    /// when the data records them), with the training curves and the run settings.
    #[command(after_help = "Example:\n  ccfm report --runs runs/ccfm,runs/scdfm --out report/")]
    Report(ReportArgs),
    /// Print a shell completion script for ccfm.
    #[command(
        after_help = "Example:\n  ccfm completions bash > ~/.local/share/bash-completion/completions/ccfm"
    )]
    Completions(CompletionsArgs),
    /// Time the reference benchmark's configurations on this build's backend: a training step
    /// (forward, loss, backward, Adam), one velocity evaluation, and (DEMO configs) generating 48
    /// cells. Synthetic inputs; compare with the PyTorch reference (docs/performance.md).
    Bench(BenchArgs),
}

/// How to read a perturbation file.
#[derive(clap::Args)]
pub struct DataArgs {
    /// Schema: gears, perturbench, figshare-norman or combosciplex (default: detected).
    #[arg(long)]
    pub schema: Option<Schema>,
    /// Keep only cells with this obs['dataset'] value (PerturBench mixes datasets).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Matrix to read: X or layers/NAME (default: layers/counts for ComboSciPlex, else X).
    #[arg(long)]
    pub layer: Option<String>,
    /// Accept perturbed genes that are not among the file's genes (vocabulary-only tokens).
    #[arg(long)]
    pub allow_unmeasured: bool,
    /// Memory the expression may take, e.g. 2GiB: loaded when it fits, else read from the file
    /// block by block (default: auto, a quarter of the machine's memory).
    #[arg(long, default_value = "auto")]
    pub max_memory: ccfm_data::MemoryBudget,
}

impl DataArgs {
    pub fn options(&self) -> PrepareOptions {
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
            max_memory: self.max_memory,
            ..Default::default()
        }
    }
}

/// `ccfm embed`'s arguments.
#[derive(Args)]
pub struct EmbedArgs {
    /// The scGPT model directory.
    #[arg(long)]
    pub scgpt: PathBuf,
    /// Cells to embed (.h5ad).
    #[arg(long)]
    pub input: PathBuf,
    /// Output .safetensors path.
    #[arg(long)]
    pub out: PathBuf,
    /// Matrix to read: X or counts (layers['counts']).
    #[arg(long, default_value = "X")]
    pub genes_layer: String,
    /// var column holding gene symbols (default: the var index).
    #[arg(long)]
    pub gene_col: Option<String>,
    /// Tie-break of the binning: left (deterministic) or random (scgpt 0.2.4).
    #[arg(long, value_enum, default_value_t = Binning::Left)]
    pub binning: Binning,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
}

/// scGPT's binning tie-break, as `--binning` spells it.
#[derive(Clone, Copy, ValueEnum)]
pub enum Binning {
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

/// `ccfm demo`'s arguments.
#[derive(Args)]
pub struct DemoArgs {
    /// Output directory (replaced if it holds an earlier demo).
    #[arg(long, default_value = "ccfm-demo")]
    pub out: PathBuf,
    /// Seeds the synthetic data: another seed, other genes, programs and interactions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run one preset only (default: both, each with its own table).
    #[arg(long, value_name = "norman|combosciplex")]
    pub preset: Option<Preset>,
    /// Models trained at once, one thread each (default: one per CPU core); the results are
    /// the same for any value.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Override a setting of configs/demo.toml (section.key=value); repeatable.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
}

/// `ccfm train`'s arguments.
#[derive(Args)]
pub struct TrainArgs {
    /// The configuration (see configs/norman.toml).
    #[arg(long, required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// The run directory to create.
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its newest checkpoint.
    #[arg(long, conflicts_with = "config")]
    pub resume: Option<PathBuf>,
    /// Override a config setting (section.key=value, e.g. train.steps=500); repeatable.
    #[arg(
        long = "set",
        value_name = "SECTION.KEY=VALUE",
        conflicts_with = "resume"
    )]
    pub set: Vec<String>,
    /// Stop after this many steps, as if interrupted (resume later with --resume).
    #[arg(long)]
    pub stop_after: Option<usize>,
}

/// `ccfm predict`'s arguments.
#[derive(Args)]
pub struct PredictArgs {
    /// The run directory written by `ccfm train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Output .h5ad path.
    #[arg(long)]
    pub out: PathBuf,
    /// Conditions to predict, comma-separated (e.g. "KLF1+MAP2K6,SET+KLF1"); default: the
    /// split's test conditions.
    #[arg(long, value_delimiter = ',')]
    pub conditions: Option<Vec<String>>,
    /// Your own control cells (.h5ad with the model's genes); default: the data's.
    #[arg(long)]
    pub controls: Option<PathBuf>,
    /// Cells per condition (default: sample.cells_per_condition of the run).
    #[arg(long)]
    pub cells_per_condition: Option<usize>,
    /// Checkpoint: latest, or a step number.
    #[arg(long, default_value = "latest")]
    pub checkpoint: String,
    /// Use the raw weights even when the run kept an EMA.
    #[arg(long)]
    pub no_ema: bool,
    #[arg(long)]
    pub seed: Option<u64>,
}

/// `ccfm inspect`'s arguments.
#[derive(Args)]
pub struct InspectArgs {
    /// The .h5ad file to read.
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

/// `ccfm hvg`'s arguments.
#[derive(Args)]
pub struct HvgArgs {
    /// The .h5ad file to read.
    pub file: PathBuf,
    /// Number of genes to select (ties may select more, as in scanpy).
    #[arg(long)]
    pub n_top: usize,
    /// Matrix to use: X or layers/NAME. Counts are normalised and log1p'd first.
    #[arg(long, default_value = "X")]
    pub layer: String,
    /// Keep only cells with this obs['dataset'] value.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Memory the matrix may take, e.g. 2GiB: loaded when it fits, else read in blocks of
    /// rows (the same genes either way; default: auto, a quarter of the machine's memory).
    #[arg(long, default_value = "auto")]
    pub max_memory: ccfm_data::MemoryBudget,
}

/// `ccfm evaluate`'s arguments.
#[derive(Args)]
pub struct EvaluateArgs {
    /// Real cells (.h5ad, log1p or counts).
    #[arg(long)]
    pub real: PathBuf,
    /// Predicted cells (.h5ad, same genes in the same order, control cells included).
    #[arg(long)]
    pub pred: PathBuf,
    /// Label of the control cells.
    #[arg(long, default_value = "control")]
    pub control: String,
    /// obs column holding the perturbation labels.
    #[arg(long, default_value = "perturbation")]
    pub pert_col: String,
    /// full or minimal (as cell-eval's profiles).
    #[arg(long, default_value = "full")]
    pub profile: ccfm_eval::Profile,
    /// Training cells (.h5ad, same genes and label column) for the baselines.
    #[arg(long)]
    pub baselines: Option<PathBuf>,
    /// A training log (JSONL with step and loss) to plot in the report.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Seed of the baselines' control-cell draws and half splits.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
}

/// `ccfm synth`'s arguments.
#[derive(Args)]
pub struct SynthArgs {
    /// norman or combosciplex.
    #[arg(long, default_value = "norman")]
    pub preset: Preset,
    /// tiny (unit tests) or default (about 500 genes, 10k cells).
    #[arg(long, default_value = "default")]
    pub size: Size,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output .h5ad path.
    #[arg(long)]
    pub out: PathBuf,
    /// About this many cells (the default design scaled; at least 1000), written in blocks so
    /// that a file larger than memory can be made. Replaces --size.
    #[arg(long, conflicts_with = "size")]
    pub cells: Option<usize>,
    /// Genes of a --cells file (at least 50; default 500).
    #[arg(long, requires = "cells")]
    pub genes: Option<usize>,
}

impl SynthArgs {
    /// The size asked for: --size, or --cells (with --genes).
    pub fn size(&self) -> Result<Size, crate::error::CliError> {
        let Some(cells) = self.cells else {
            return Ok(self.size);
        };
        let genes = self.genes.unwrap_or(500);
        if !(1000..=1_000_000_000).contains(&cells) || !(50..=100_000).contains(&genes) {
            return Err(crate::error::CliError::Message(format!(
                "--cells {cells} --genes {genes}: a scaled synthetic file has 1000 to \
                 1,000,000,000 cells and 50 to 100,000 genes (use --size tiny for a small one)"
            )));
        }
        Ok(Size::Cells { cells, genes })
    }
}

/// `ccfm bench`'s arguments.
#[derive(Args)]
pub struct BenchArgs {
    /// DEMO, DEMO_CCFM, SMALL, SMALL_CCFM, PAPER or PAPER_CCFM.
    #[arg(long)]
    pub config: ccfm_train::bench::BenchConfig,
    /// Print one JSON line {config, train_step_s, infer_fwd_s, generate_s, peak_rss_mib, threads}.
    #[arg(long)]
    pub json: bool,
    /// Timed repetitions of each part (default: the reference's, 15 training steps and 25
    /// evaluations, 3 generations; fewer at the paper's size), after the warm-up.
    #[arg(long)]
    pub reps: Option<usize>,
}

/// `ccfm report`'s arguments.
#[derive(Args)]
pub struct ReportArgs {
    /// Run directories written by `ccfm train`, comma-separated; they must share their test
    /// conditions.
    #[arg(long, value_delimiter = ',', required = true)]
    pub runs: Vec<PathBuf>,
    /// Output directory (report.html, comparison.json, predictions/, eval/).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the baselines' control-cell draws and half splits.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `ccfm completions`'s arguments.
#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}
