//! The scGPT encoder forward at whole-human size (d=512, 12 layers, 8 heads, d_hid 512,
//! vocabulary 60,697; random weights) for B=4 cells of L=1201 tokens, on the backend this build
//! selects. Cells per second = 4 / time.
//!
//! Run: `cargo bench --bench scgpt`.

use std::hint::black_box;
use std::time::Duration;

use burn::tensor::{Bool, Distribution, Int, Tensor, TensorData};
use ccfm::backend::{Selected, NAME};
use ccfm::scgpt::ScgptEncoderConfig;
use criterion::{criterion_group, criterion_main, Criterion};

const B: usize = 4;
const L: usize = 1201;

fn bench(c: &mut Criterion) {
    let dev = Default::default();
    let model = ScgptEncoderConfig::new(60697, 512, 8, 512, 12).init::<Selected>(&dev);
    let ids: Vec<i64> = (0..B * L).map(|i| ((i * 7919) % 60690) as i64).collect();
    let genes = Tensor::<Selected, 2, Int>::from_data(TensorData::new(ids, [B, L]), &dev);
    let values = Tensor::<Selected, 2>::random([B, L], Distribution::Uniform(1.0, 50.0), &dev);
    let pad =
        Tensor::<Selected, 2, Bool>::from_data(TensorData::new(vec![false; B * L], [B, L]), &dev);
    let mut group = c.benchmark_group(format!("scgpt/{NAME}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(120));
    group.bench_function("encode_whole_human_b4_l1201", |b| {
        b.iter(|| {
            let out = model.forward(genes.clone(), values.clone(), pad.clone());
            black_box(out.into_data())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
