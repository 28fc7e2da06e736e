//! `ccfm evaluate`'s metric computation at the size issue #7 names: 37 perturbations,
//! 1,000 genes, 10,000 cells per side (250 per perturbation + 750 controls), 90% zeros.
//!
//! * `evaluate/full`: every metric of the full profile (DE for both sides, energy distances,
//!   MMD).
//! * `evaluate/minimal`: cell-eval's minimal profile.
//!
//! Run: `cargo bench --bench evaluate`.

use std::hint::black_box;
use std::time::Duration;

use ccfm::eval::{compute, CellSet, EvalPair, Profile};
use criterion::{criterion_group, criterion_main, Criterion};

const GENES: usize = 1000;
const PERTS: usize = 37;
const CELLS: usize = 250;
const CONTROLS: usize = 750;

/// A deterministic pseudo-random stream (SplitMix64).
struct Mix(u64);
impl Mix {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn side(seed: u64) -> CellSet {
    let mut r = Mix(seed);
    let (mut x, mut labels) = (Vec::new(), Vec::new());
    let mut push = |label: String, effect: usize, r: &mut Mix| {
        for g in 0..GENES {
            let shifted = g % 50 == effect % 50;
            let p = if shifted { 0.3 } else { 0.1 };
            x.push(if r.next() < p {
                (1.0 + 3.0 * r.next()) as f32
            } else {
                0.0
            });
        }
        labels.push(label);
    };
    for p in 0..PERTS {
        for _ in 0..CELLS {
            push(format!("P{p:02}+Q{p:02}"), p + 1, &mut r);
        }
    }
    for _ in 0..CONTROLS {
        push("control".into(), 0, &mut r);
    }
    CellSet { x, labels }
}

fn bench(c: &mut Criterion) {
    let genes: Vec<String> = (0..GENES).map(|g| format!("G{g:04}")).collect();
    let pair = EvalPair::new(genes.clone(), &genes, &genes, side(1), side(2), "control").unwrap();
    let mut group = c.benchmark_group("evaluate");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(40));
    group.bench_function("full", |b| {
        b.iter(|| black_box(compute(&pair, Profile::Full)))
    });
    group.bench_function("minimal", |b| {
        b.iter(|| black_box(compute(&pair, Profile::Minimal)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
