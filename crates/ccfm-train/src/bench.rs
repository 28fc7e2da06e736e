//! `ccfm bench`: the configurations of the PyTorch reference benchmark (DEMO, DEMO_CCFM, SMALL,
//! SMALL_CCFM, and the paper's size) timed on this build's backend, so that the two can be put
//! side by side as a ratio.
//!
//! What is timed, as the reference times it (medians after warm-up, synthetic inputs):
//! - `train_step_s`: forward, the cascaded loss (+ 0.5 MMD² with median bandwidths), backward
//!   and an Adam step, dropout active;
//! - `infer_fwd_s`: one velocity evaluation on the inner backend (no autodiff);
//! - `generate_s` (DEMO configs): generating 48 cells with RK4 (3/8 rule) on `linspace(0, 1, 8)`,
//!   CCFM's two stages included: what `ccfm predict` does per condition in the demo.
//!
//! The scGPT features are random tensors (feature extraction is not timed), and the co-expression
//! mask lets each gene see `k` random others (both ways), itself, and nothing else.

use std::str::FromStr;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use ccfm_layers::CoexpressionMask;
use ccfm_model::{
    CascadedDenoiser, CascadedFlowModel, CascadedFlowModelConfig, DenoiserConfig, FlowInput,
    LatentInput, LatentStreamConfig, PerturbationKind, SamplerConfig, TrainBatch,
};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::TrainSection;
use crate::error::TrainError;
use crate::optim::TrainOptimizer;

/// A benchmark configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchConfig {
    Demo,
    DemoCcfm,
    Small,
    SmallCcfm,
    Paper,
    PaperCcfm,
}

impl BenchConfig {
    pub const ALL: [Self; 6] = [
        Self::Demo,
        Self::DemoCcfm,
        Self::Small,
        Self::SmallCcfm,
        Self::Paper,
        Self::PaperCcfm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Demo => "DEMO",
            Self::DemoCcfm => "DEMO_CCFM",
            Self::Small => "SMALL",
            Self::SmallCcfm => "SMALL_CCFM",
            Self::Paper => "PAPER",
            Self::PaperCcfm => "PAPER_CCFM",
        }
    }

    /// The shapes (the reference benchmark's table; PAPER: scDFM's Norman settings).
    fn shape(self) -> Shape {
        let demo = Shape {
            batch: 24,
            tokens: 64,
            d_model: 32,
            nhead: 4,
            nlayers: 2,
            vocab: 132,
            latent: None,
            dropout: 0.0,
            k: 16,
        };
        let small = Shape {
            batch: 16,
            tokens: 256,
            d_model: 128,
            nhead: 8,
            nlayers: 4,
            vocab: 1004,
            dropout: 0.1,
            k: 30,
            ..demo
        };
        let paper = Shape {
            batch: 48,
            tokens: 1000,
            vocab: 5004,
            ..small
        };
        let small_latent = Some((64, 32, 1));
        match self {
            Self::Demo => demo,
            Self::DemoCcfm => Shape {
                latent: small_latent,
                ..demo
            },
            Self::Small => small,
            Self::SmallCcfm => Shape {
                latent: small_latent,
                ..small
            },
            Self::Paper => paper,
            Self::PaperCcfm => Shape {
                latent: Some((512, 128, 2)),
                ..paper
            },
        }
    }
}

impl FromStr for BenchConfig {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let upper = s.to_ascii_uppercase();
        Self::ALL
            .into_iter()
            .find(|c| c.name() == upper)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown benchmark config `{s}`; choose one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The sizes of one configuration.
#[derive(Debug, Clone, Copy)]
struct Shape {
    batch: usize,
    tokens: usize,
    d_model: usize,
    nhead: usize,
    nlayers: usize,
    /// Vocabulary: 4 special tokens + the genes.
    vocab: usize,
    /// `(scgpt_dim, bottleneck_dim, dh_depth)` of the latent stream (CCFM).
    latent: Option<(usize, usize, usize)>,
    dropout: f64,
    /// Co-expression partners per gene.
    k: usize,
}

/// How many times each part runs: warm-up, then timed repetitions (the median is reported).
#[derive(Debug, Clone, Copy)]
pub struct Reps {
    pub warmup: usize,
    pub train: usize,
    pub infer: usize,
    pub generate: usize,
}

impl Reps {
    /// The reference's counts (3 + 15 train steps, 3 + 25 evaluations), 3 generations; fewer
    /// for the paper's size.
    pub fn default_for(config: BenchConfig) -> Self {
        match config {
            BenchConfig::Paper | BenchConfig::PaperCcfm => Self {
                warmup: 1,
                train: 3,
                infer: 3,
                generate: 1,
            },
            _ => Self {
                warmup: 3,
                train: 15,
                infer: 25,
                generate: 3,
            },
        }
    }
}

/// One configuration's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    pub config: &'static str,
    pub train_step_s: f64,
    pub infer_fwd_s: f64,
    /// DEMO configurations only.
    pub generate_s: Option<f64>,
    /// Peak resident memory of the whole process (`VmHWM`), when the system reports it.
    pub peak_rss_mib: Option<f64>,
    /// Threads of the CPU backends' pool (`RAYON_NUM_THREADS`, else the CPUs available).
    pub threads: usize,
}

impl BenchResult {
    /// The JSON line `ccfm bench --json` prints.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "config": self.config,
            "train_step_s": self.train_step_s,
            "infer_fwd_s": self.infer_fwd_s,
            "generate_s": self.generate_s,
            "peak_rss_mib": self.peak_rss_mib,
            "threads": self.threads,
        })
    }
}

/// Run one configuration on `B` (training) and its inner backend (inference, generation).
pub fn run_bench<B: AutodiffBackend>(
    config: BenchConfig,
    reps: Reps,
    device: &B::Device,
) -> Result<BenchResult, TrainError> {
    let shape = config.shape();
    // The whole run draws from one seeded stream (inputs, weights, noise, dropout).
    let _draws = ccfm_layers::rng::seeded::<B>(device, 0);
    let bench = Bench::<B>::new(shape, device);
    let train_step_s = bench.time_training(reps)?;
    let inner = bench.model.valid();
    let infer_fwd_s = bench.time_inference(&inner, reps)?;
    let generate_s = match config {
        BenchConfig::Demo | BenchConfig::DemoCcfm => Some(bench.time_generation(&inner, reps)?),
        _ => None,
    };
    Ok(BenchResult {
        config: config.name(),
        train_step_s,
        infer_fwd_s,
        generate_s,
        peak_rss_mib: peak_rss_mib(),
        threads: threads(),
    })
}

/// The model, its mask, a training batch and the denoiser of one configuration.
struct Bench<B: AutodiffBackend> {
    shape: Shape,
    model: CascadedFlowModel<B>,
    mask: CoexpressionMask<B>,
    inner_mask: CoexpressionMask<B::InnerBackend>,
    batch: TrainBatch<B>,
    device: B::Device,
}

impl<B: AutodiffBackend> Bench<B> {
    fn new(shape: Shape, device: &B::Device) -> Self {
        let mut cfg = CascadedFlowModelConfig::new(shape.vocab, PerturbationKind::Crispr)
            .with_d_model(shape.d_model)
            .with_nhead(shape.nhead)
            .with_nlayers(shape.nlayers)
            .with_dropout(shape.dropout);
        if let Some((scgpt_dim, bottleneck, dh_depth)) = shape.latent {
            cfg = cfg.with_latent(Some(
                LatentStreamConfig::new()
                    .with_scgpt_dim(scgpt_dim)
                    .with_bottleneck_dim(bottleneck)
                    .with_dh_depth(dh_depth),
            ));
        }
        let blocked = random_mask(shape.vocab, shape.k, 0);
        Self {
            model: cfg.init::<B>(device),
            mask: CoexpressionMask::from_blocked(blocked.clone(), shape.vocab, device),
            inner_mask: CoexpressionMask::from_blocked(blocked, shape.vocab, device),
            batch: batch::<B>(&shape, shape.batch, device),
            device: device.clone(),
            shape,
        }
    }

    /// Median seconds of forward + loss + backward + Adam step.
    fn time_training(&self, reps: Reps) -> Result<f64, TrainError> {
        let denoiser = CascadedDenoiser::new(DenoiserConfig::default())?;
        let mut optim = TrainOptimizer::<CascadedFlowModel<B>, B>::new(&TrainSection::default());
        // Taken for each step and put back, so the optimiser owns the only handle to the weights.
        let mut model = Some(self.model.clone());
        median_seconds(reps.warmup, reps.train, || {
            let m = model.take().expect("put back after every step");
            let parts = denoiser.train_step(&m, &self.mask, self.batch.clone())?;
            let grads = GradientsParams::from_grads(parts.total.backward(), &m);
            model = Some(optim.step(1e-4, m, grads));
            // Wait for the device: read one value back.
            let _ = parts.expr.into_data();
            Ok(())
        })
    }

    /// Median seconds of one velocity evaluation on the inner backend.
    fn time_inference(
        &self,
        model: &CascadedFlowModel<B::InnerBackend>,
        reps: Reps,
    ) -> Result<f64, TrainError> {
        let b = self.batch.target.clone().inner();
        let [n, t] = b.dims();
        let device = &self.device;
        let latent = self.shape.latent.map(|(dim, _, _)| LatentInput {
            z_t: Tensor::random([n, t, dim], Distribution::Normal(0.0, 1.0), device),
            t_latent: Tensor::random([n], Distribution::Uniform(0.0, 1.0), device),
        });
        let input = FlowInput {
            gene_ids: self.batch.gene_ids.clone().inner(),
            x_t: Tensor::random([n, t], Distribution::Normal(0.0, 1.0), device),
            t: Tensor::random([n], Distribution::Uniform(0.0, 1.0), device),
            ctrl: self.batch.control.clone().inner(),
            pert_ids: self.batch.pert_ids.clone().inner(),
            latent,
        };
        median_seconds(reps.warmup, reps.infer, || {
            let out = model.forward(input.clone(), &self.inner_mask)?;
            let _ = out.expr.into_data();
            Ok(())
        })
    }

    /// Median seconds of generating 48 cells (RK4 3/8 on 8 points, both stages in CCFM).
    fn time_generation(
        &self,
        model: &CascadedFlowModel<B::InnerBackend>,
        reps: Reps,
    ) -> Result<f64, TrainError> {
        const CELLS: usize = 48;
        let denoiser = CascadedDenoiser::new(DenoiserConfig {
            sampler: SamplerConfig {
                latent_time_points: 8,
                expr_time_points: 8,
                ..Default::default()
            },
            ..Default::default()
        })?;
        let cells = batch::<B::InnerBackend>(&self.shape, CELLS, &self.device);
        // One warm-up at most: a generation is many evaluations.
        median_seconds(reps.warmup.min(1), reps.generate, || {
            let g = denoiser.generate(
                model,
                &self.inner_mask,
                cells.gene_ids.clone(),
                cells.control.clone(),
                cells.pert_ids.clone(),
            )?;
            let _ = g.expression.into_data();
            Ok(())
        })
    }
}

/// A training batch of `n` cells over `shape.tokens` random genes, log1p-like values.
fn batch<B: Backend>(shape: &Shape, n: usize, device: &B::Device) -> TrainBatch<B> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut genes: Vec<i64> = (4..shape.vocab as i64).collect();
    genes.shuffle(&mut rng);
    genes.truncate(shape.tokens);
    let t = genes.len();
    let pert = [genes[0], genes[1 % t]];
    let values = |device: &B::Device| {
        Tensor::<B, 2>::random([n, t], Distribution::Uniform(0.0, 1.0), device)
            .powi_scalar(4)
            .mul_scalar(3.0)
    };
    TrainBatch {
        gene_ids: Tensor::<B, 1, Int>::from_data(TensorData::new(genes, [t]), device),
        control: values(device),
        target: values(device),
        pert_ids: Tensor::from_data(TensorData::new(pert.repeat(n), [n, 2]), device),
        z_target: shape
            .latent
            .map(|(dim, _, _)| Tensor::random([n, t, dim], Distribution::Normal(0.0, 1.0), device)),
    }
}

/// `(m, m)` blocked flags: each gene (after the 4 special tokens) sees `k` random other genes
/// (symmetrised) and itself; a special token sees only itself.
pub fn random_mask(m: usize, k: usize, seed: u64) -> Vec<bool> {
    const SPECIALS: usize = 4;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut blocked = vec![true; m * m];
    for i in 0..m {
        blocked[i * m + i] = false;
    }
    let genes: Vec<usize> = (SPECIALS..m).collect();
    for &g in &genes {
        let others: Vec<usize> = genes.iter().copied().filter(|&o| o != g).collect();
        for &o in others.choose_multiple(&mut rng, k.min(others.len())) {
            blocked[g * m + o] = false;
            blocked[o * m + g] = false;
        }
    }
    blocked
}

/// Run `f` `warmup` times untimed, then `reps` times timed; the median seconds.
fn median_seconds(
    warmup: usize,
    reps: usize,
    mut f: impl FnMut() -> Result<(), TrainError>,
) -> Result<f64, TrainError> {
    let mut times = Vec::with_capacity(reps);
    for i in 0..warmup + reps {
        let started = Instant::now();
        f()?;
        if i >= warmup {
            times.push(started.elapsed().as_secs_f64());
        }
    }
    Ok(median(times))
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `VmHWM` of /proc/self/status in MiB (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
