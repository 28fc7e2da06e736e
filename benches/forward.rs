//! Forward (and forward + backward) passes on the backend this build selects
//! (`cargo bench` = flex; `cargo bench --no-default-features --features ndarray` = ndarray).
//!
//! * `block/*`: one pre-LN transformer encoder block, B=16, T=256, d=128, 8 heads, d_ff=512:
//!   the backend comparison recorded in docs/backends.md.
//! * `mmd/*`: scDFM's unbiased multi-bandwidth MMD² at its training shape (B=48, T=1000).
//! * `ode/*`: one RK4 (3/8) step of a small velocity MLP over a (48, 1000) state.

use std::hint::black_box;
use std::time::Duration;

use burn::module::Module;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use ccfm::backend::{Selected, SelectedAutodiff, NAME};
use ccfm::flow::{
    integrate, median_sigmas, mmd2_unbiased_multi_sigma, OdeMethod, TimeGrid, SCDFM_SIGMA_SCALES,
};
use criterion::{criterion_group, criterion_main, Criterion};

const BATCH: usize = 16;
const TOKENS: usize = 256;
const DIM: usize = 128;

fn block<B: Backend>(device: &B::Device) -> TransformerEncoder<B> {
    TransformerEncoderConfig::new(DIM, 4 * DIM, 8, 1)
        .with_dropout(0.0)
        .with_norm_first(true)
        .init(device)
}

fn bench_block(c: &mut Criterion) {
    let device = Default::default();
    <Selected as Backend>::seed(&device, 0);
    let mut g = c.benchmark_group(format!("block/{NAME}"));
    g.sample_size(10).measurement_time(Duration::from_secs(10));

    let model = block::<Selected>(&device);
    let x = Tensor::<Selected, 3>::random(
        [BATCH, TOKENS, DIM],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    g.bench_function("forward B16 T256 d128", |b| {
        b.iter(|| {
            let y = model.forward(TransformerEncoderInput::new(x.clone()));
            black_box(y.into_data());
        })
    });

    let model = block::<SelectedAutodiff>(&device);
    let x = Tensor::<SelectedAutodiff, 3>::random(
        [BATCH, TOKENS, DIM],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    g.bench_function("forward+backward B16 T256 d128", |b| {
        b.iter(|| {
            let y = model.forward(TransformerEncoderInput::new(x.clone()));
            let grads = y.powi_scalar(2).mean().backward();
            black_box(grads);
        })
    });
    g.finish();
}

fn bench_mmd(c: &mut Criterion) {
    let device = Default::default();
    let mut g = c.benchmark_group(format!("mmd/{NAME}"));
    g.sample_size(10);
    let x =
        Tensor::<SelectedAutodiff, 2>::random([48, 1000], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
    let y =
        Tensor::<SelectedAutodiff, 2>::random([48, 1000], Distribution::Normal(0.2, 1.0), &device);
    g.bench_function("unbiased multi-sigma B48 T1000 (+backward)", |b| {
        b.iter(|| {
            let s = median_sigmas(y.clone().inner(), &SCDFM_SIGMA_SCALES).unwrap();
            let loss = mmd2_unbiased_multi_sigma(x.clone(), y.clone(), &s.sigmas).unwrap();
            black_box(loss.backward());
        })
    });
    g.finish();
}

#[derive(Module, Debug)]
struct Mlp<B: Backend> {
    a: Linear<B>,
    b: Linear<B>,
}

fn bench_ode(c: &mut Criterion) {
    let device = Default::default();
    let mut g = c.benchmark_group(format!("ode/{NAME}"));
    g.sample_size(10);
    let mlp = Mlp::<Selected> {
        a: LinearConfig::new(1000, 256).init(&device),
        b: LinearConfig::new(256, 1000).init(&device),
    };
    let x0 = Tensor::<Selected, 2>::random([48, 1000], Distribution::Normal(0.0, 1.0), &device);
    let grid = TimeGrid::uniform(1).unwrap();
    g.bench_function("rk4 3/8 step, MLP 1000-256-1000, B48", |b| {
        b.iter(|| {
            let s = integrate(
                |x, _| mlp.b.forward(mlp.a.forward(x).tanh()),
                x0.clone(),
                &grid,
                OdeMethod::Rk4ThreeEighths,
                false,
            );
            black_box(s.final_state.into_data());
        })
    });
    g.finish();
}

criterion_group!(benches, bench_block, bench_mmd, bench_ode);
criterion_main!(benches);
