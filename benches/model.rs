//! The CCFM model on the backend this build selects (`cargo bench --bench model`).
//!
//! SMALL: B=16, T=256, d=128, 4 layers, 8 heads, vocabulary 1004, scgpt_dim 64, bottleneck 32,
//! dh_depth 1 — main blocks, whole-model forward with the latent stream off (scDFM) and on
//! (CCFM), and one training step (forward + backward) of each.
//! PAPER (only with `CCFM_BENCH_PAPER=1`): B=48, T=1000, d=128, scgpt_dim 512, the whole-model
//! forward in both modes.

use std::hint::black_box;
use std::time::Duration;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use ccfm::backend::{Selected, SelectedAutodiff, NAME};
use ccfm::layers::{CoexpressionMask, DiffPerceiverBlockConfig};
use ccfm::model::{
    CascadedDenoiser, CascadedFlowModel, CascadedFlowModelConfig, FlowInput, LatentInput,
    LatentStreamConfig, PerturbationKind, TrainBatch,
};
use criterion::{criterion_group, criterion_main, Criterion};

struct Size {
    name: &'static str,
    batch: usize,
    tokens: usize,
    vocab: usize,
    scgpt_dim: usize,
    bottleneck: usize,
    dh_depth: usize,
}

const SMALL: Size = Size {
    name: "small",
    batch: 16,
    tokens: 256,
    vocab: 1004,
    scgpt_dim: 64,
    bottleneck: 32,
    dh_depth: 1,
};
const PAPER: Size = Size {
    name: "paper",
    batch: 48,
    tokens: 1000,
    vocab: 5033,
    scgpt_dim: 512,
    bottleneck: 128,
    dh_depth: 2,
};

fn config(s: &Size, latent: bool) -> CascadedFlowModelConfig {
    let c = CascadedFlowModelConfig::new(s.vocab, PerturbationKind::Crispr);
    if latent {
        c.with_latent(Some(
            LatentStreamConfig::new()
                .with_scgpt_dim(s.scgpt_dim)
                .with_bottleneck_dim(s.bottleneck)
                .with_dh_depth(s.dh_depth),
        ))
    } else {
        c
    }
}

/// A co-expression-like mask: every token sees itself and 20 pseudo-random others.
fn mask<B: Backend>(m: usize, device: &B::Device) -> CoexpressionMask<B> {
    let mut blocked = vec![true; m * m];
    for r in 0..m {
        blocked[r * m + r] = false;
        for k in 0..20 {
            blocked[r * m + (r * 7919 + k * 104_729) % m] = false;
        }
    }
    CoexpressionMask::from_blocked(blocked, m, device)
}

struct Inputs<B: Backend> {
    gene_ids: Tensor<B, 1, Int>,
    x: Tensor<B, 2>,
    t: Tensor<B, 1>,
    ctrl: Tensor<B, 2>,
    z: Tensor<B, 3>,
    pert: Tensor<B, 2, Int>,
}

fn inputs<B: Backend>(s: &Size, device: &B::Device) -> Inputs<B> {
    let ids: Vec<i64> = (0..s.tokens)
        .map(|i| 4 + ((i * 37) % (s.vocab - 4)) as i64)
        .collect();
    Inputs {
        gene_ids: Tensor::from_data(TensorData::new(ids, [s.tokens]), device),
        x: Tensor::random([s.batch, s.tokens], Distribution::Normal(0.0, 1.0), device),
        t: Tensor::random([s.batch], Distribution::Uniform(0.0, 1.0), device),
        ctrl: Tensor::random([s.batch, s.tokens], Distribution::Uniform(0.0, 3.0), device),
        z: Tensor::random(
            [s.batch, s.tokens, s.scgpt_dim],
            Distribution::Normal(0.0, 1.0),
            device,
        ),
        pert: Tensor::from_data(
            TensorData::new([10i64, 3].repeat(s.batch), [s.batch, 2]),
            device,
        ),
    }
}

fn run_forward<B: Backend>(
    model: &CascadedFlowModel<B>,
    i: &Inputs<B>,
    mask: &CoexpressionMask<B>,
) {
    let latent = model.has_latent().then(|| LatentInput {
        z_t: i.z.clone(),
        t_latent: i.t.clone(),
    });
    let input = FlowInput {
        gene_ids: i.gene_ids.clone(),
        x_t: i.x.clone(),
        t: i.t.clone(),
        ctrl: i.ctrl.clone(),
        pert_ids: i.pert.clone(),
        latent,
    };
    let out = model.forward(input, mask).expect("inputs match the model");
    black_box((out.expr.into_data(), out.latent.map(|z| z.into_data())));
}

fn bench_small(c: &mut Criterion) {
    let device = Default::default();
    <Selected as Backend>::seed(&device, 0);
    let s = SMALL;
    let mut g = c.benchmark_group(format!("model-{}/{NAME}", s.name));
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    let m = mask::<Selected>(s.vocab, &device);
    let i = inputs::<Selected>(&s, &device);

    let block = DiffPerceiverBlockConfig::new(128, 8, 0).init::<Selected>(&device);
    let y = Tensor::<Selected, 3>::random(
        [s.batch, s.tokens, 128],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let cond =
        Tensor::<Selected, 2>::random([s.batch, 128], Distribution::Normal(0.0, 1.0), &device);
    g.bench_function("DiffPerceiverBlock forward", |b| {
        b.iter(|| {
            black_box(
                block
                    .forward(y.clone(), y.clone(), cond.clone())
                    .into_data(),
            )
        })
    });
    let scdfm = config(&s, false).init::<Selected>(&device);
    g.bench_function("GeneEncoder forward (shared over the batch)", |b| {
        b.iter(|| {
            black_box(
                scdfm
                    .encoder
                    .forward_shared(i.gene_ids.clone(), &m)
                    .into_data(),
            )
        })
    });
    g.bench_function("model forward, latent off (scDFM)", |b| {
        b.iter(|| run_forward(&scdfm, &i, &m))
    });
    let ccfm = config(&s, true).init::<Selected>(&device);
    g.bench_function("model forward, latent on (CCFM)", |b| {
        b.iter(|| run_forward(&ccfm, &i, &m))
    });

    let m_ad = mask::<SelectedAutodiff>(s.vocab, &device);
    let i_ad = inputs::<SelectedAutodiff>(&s, &device);
    let den = CascadedDenoiser::default();
    for latent in [false, true] {
        let model = config(&s, latent).init::<SelectedAutodiff>(&device);
        let batch = TrainBatch {
            gene_ids: i_ad.gene_ids.clone(),
            control: i_ad.ctrl.clone(),
            target: i_ad.ctrl.clone().add_scalar(0.5),
            pert_ids: i_ad.pert.clone(),
            z_target: latent.then(|| i_ad.z.clone()),
        };
        let name = if latent {
            "train step (fwd+bwd), CCFM"
        } else {
            "train step (fwd+bwd), scDFM"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let loss = den.train_step(&model, &m_ad, batch.clone()).unwrap();
                black_box(loss.total.backward());
            })
        });
    }
    g.finish();
}

fn bench_paper(c: &mut Criterion) {
    if std::env::var("CCFM_BENCH_PAPER").as_deref() != Ok("1") {
        return;
    }
    let device = Default::default();
    let s = PAPER;
    let mut g = c.benchmark_group(format!("model-{}/{NAME}", s.name));
    g.sample_size(10).measurement_time(Duration::from_secs(60));
    let m = mask::<Selected>(s.vocab, &device);
    let i = inputs::<Selected>(&s, &device);
    for latent in [false, true] {
        let model = config(&s, latent).init::<Selected>(&device);
        let name = if latent {
            "model forward, latent on (CCFM)"
        } else {
            "model forward, latent off (scDFM)"
        };
        g.bench_function(name, |b| b.iter(|| run_forward(&model, &i, &m)));
    }
    g.finish();
}

criterion_group!(benches, bench_small, bench_paper);
criterion_main!(benches);
