//! WGPU runtime smoke test: the same small tensor program on the WGPU backend and on the CPU
//! backend must give the same numbers. CI runs it on the lavapipe CPU Vulkan driver:
//! `cargo test --features wgpu --test wgpu_smoke`.
#![cfg(feature = "wgpu")]

use burn::backend::{Flex, Wgpu};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use ccfm::flow::{
    integrate, median_sigmas, mmd2_unbiased_multi_sigma, AffineProbPath, CondOt, OdeMethod,
    TimeGrid, SCDFM_SIGMA_SCALES,
};
use ccfm_testkit::{assert_close, values};

/// Deterministic inputs (no backend RNG: random streams differ between backends).
fn data(n: usize, salt: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 * 0.7311 + salt).sin() * 1.3).fract())
        .collect()
}

/// attention-like matmul + softmax, a CondOT path sample, the MMD loss and an RK4 solve.
fn program<B: Backend>(device: &B::Device) -> Vec<Vec<f32>> {
    let t2 = |v: Vec<f32>, r: usize, c: usize| {
        Tensor::<B, 2>::from_data(TensorData::new(v, [r, c]), device)
    };
    let q = t2(data(6 * 12, 0.1), 6, 12);
    let k = t2(data(6 * 12, 0.2), 6, 12);
    let v = t2(data(6 * 12, 0.3), 6, 12);
    let attn = softmax(
        q.clone()
            .matmul(k.clone().transpose())
            .div_scalar(12f64.sqrt()),
        1,
    )
    .matmul(v);

    let t = Tensor::<B, 1>::from_data(
        TensorData::new(vec![0.0f32, 1.0, 0.2, 0.4, 0.6, 0.8], [6]),
        device,
    );
    let s = AffineProbPath::new(CondOt).sample(q.clone(), k.clone(), t);

    let sigmas = median_sigmas(k.clone(), &SCDFM_SIGMA_SCALES)
        .unwrap()
        .sigmas;
    let mmd = mmd2_unbiased_multi_sigma(q.clone(), k.clone(), &sigmas).unwrap();

    let w = t2(data(12 * 12, 0.4), 12, 12).mul_scalar(0.2);
    let grid = TimeGrid::uniform(5).unwrap();
    let sol = integrate(
        |x, t| x.matmul(w.clone()).tanh().mul_scalar(1.0 + t),
        q,
        &grid,
        OdeMethod::Rk4ThreeEighths,
        true,
    );

    vec![
        values(attn),
        values(s.x_t),
        values(s.dx_t),
        values(mmd),
        values(sol.final_state),
        values(sol.trajectory[2].clone()),
    ]
}

#[test]
fn wgpu_matches_cpu_on_a_small_program() {
    let gpu = program::<Wgpu>(&Default::default());
    let cpu = program::<Flex>(&Default::default());
    let names = [
        "matmul+softmax",
        "path x_t",
        "path dx_t",
        "mmd2",
        "rk4 final",
        "rk4 trajectory[2]",
    ];
    for ((name, g), c) in names.iter().zip(&gpu).zip(&cpu) {
        assert_close(name, g, c, 1e-5);
        println!(
            "{name}: {} values agree to 1e-5 (first: wgpu {} / cpu {})",
            g.len(),
            g[0],
            c[0]
        );
    }
}
