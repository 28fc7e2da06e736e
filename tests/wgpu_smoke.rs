//! WGPU runtime smoke test: the same small programs on the WGPU backend and on the CPU
//! backend must give the same numbers. CI runs it on the lavapipe CPU Vulkan driver:
//! `cargo test --features wgpu --test wgpu_smoke`.
#![cfg(feature = "wgpu")]

use burn::backend::{Autodiff, Flex, Wgpu};
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use ccfm::flow::{
    integrate, median_sigmas, mmd2_unbiased_multi_sigma, AffineProbPath, CondOt, OdeMethod,
    TimeGrid, SCDFM_SIGMA_SCALES,
};
use ccfm::layers::CoexpressionMask;
use ccfm::model::{
    CascadedDenoiser, CascadedFlowModel, CascadedFlowModelConfig, DenoiserConfig, FlowInput,
    LatentInput, LatentStreamConfig, PerturbationKind, SamplerConfig, TrainBatch,
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

const NTOKEN: usize = 14;
const T: usize = 6;
const BATCH: usize = 4;
const ZDIM: usize = 8;

fn tiny() -> CascadedFlowModelConfig {
    CascadedFlowModelConfig::new(NTOKEN, PerturbationKind::Crispr)
        .with_d_model(16)
        .with_nhead(2)
        .with_nlayers(2)
        .with_dropout(0.0)
        .with_latent(Some(
            LatentStreamConfig::new()
                .with_scgpt_dim(ZDIM)
                .with_bottleneck_dim(4)
                .with_dh_depth(1),
        ))
}

struct Inputs<B: Backend> {
    mask: CoexpressionMask<B>,
    gene_ids: Tensor<B, 1, Int>,
    x: Tensor<B, 2>,
    ctrl: Tensor<B, 2>,
    z: Tensor<B, 3>,
    pert: Tensor<B, 2, Int>,
}

fn inputs<B: Backend>(device: &B::Device) -> Inputs<B> {
    // Each token may attend to itself and its two neighbours in the vocabulary.
    let blocked = (0..NTOKEN * NTOKEN)
        .map(|k| (k / NTOKEN).abs_diff(k % NTOKEN) > 1)
        .collect();
    Inputs {
        mask: CoexpressionMask::from_blocked(blocked, NTOKEN, device),
        gene_ids: Tensor::from_data(TensorData::new(vec![4i64, 6, 7, 9, 11, 13], [T]), device),
        x: Tensor::from_data(TensorData::new(data(BATCH * T, 0.5), [BATCH, T]), device),
        ctrl: Tensor::from_data(
            TensorData::new(
                data(BATCH * T, 0.6)
                    .iter()
                    .map(|v| v.abs() * 2.0)
                    .collect::<Vec<_>>(),
                [BATCH, T],
            ),
            device,
        ),
        z: Tensor::from_data(
            TensorData::new(data(BATCH * T * ZDIM, 0.7), [BATCH, T, ZDIM]),
            device,
        ),
        pert: Tensor::from_data(TensorData::new([5i64, 3].repeat(BATCH), [BATCH, 2]), device),
    }
}

/// The CPU model's parameters, moved to WGPU through a safetensors round trip.
fn to_wgpu(model: &CascadedFlowModel<Flex>) -> CascadedFlowModel<Wgpu> {
    let mut out = SafetensorsStore::from_bytes(None);
    model.save_into(&mut out).unwrap();
    let mut inp = SafetensorsStore::from_bytes(Some(out.get_bytes().unwrap()));
    let mut gpu = tiny().init::<Wgpu>(&Default::default());
    let report = gpu.load_from(&mut inp).unwrap();
    assert!(
        report.missing.is_empty() && report.errors.is_empty(),
        "{:?}",
        report.missing
    );
    gpu
}

fn forward<B: Backend>(
    model: &CascadedFlowModel<B>,
    i: &Inputs<B>,
    device: &B::Device,
) -> (Vec<f32>, Vec<f32>) {
    let t = Tensor::<B, 1>::from_data(
        TensorData::new(vec![0.1f32, 0.4, 0.0, 0.9], [BATCH]),
        device,
    );
    let tl = Tensor::<B, 1>::from_data(
        TensorData::new(vec![1.0f32, 0.3, 0.7, 1.0], [BATCH]),
        device,
    );
    let input = FlowInput {
        gene_ids: i.gene_ids.clone(),
        x_t: i.x.clone(),
        t,
        ctrl: i.ctrl.clone(),
        pert_ids: i.pert.clone(),
        latent: Some(LatentInput {
            z_t: i.z.clone(),
            t_latent: tl,
        }),
    };
    let out = model.forward(input, &i.mask).unwrap();
    (values(out.expr), values(out.latent.unwrap()))
}

#[test]
fn tiny_ccfm_model_agrees_with_cpu_and_trains_and_generates_on_wgpu() {
    let cpu_dev = Default::default();
    let gpu_dev = Default::default();
    let cpu = tiny().init::<Flex>(&cpu_dev);
    let gpu = to_wgpu(&cpu);
    let (v_cpu, z_cpu) = forward(&cpu, &inputs::<Flex>(&cpu_dev), &cpu_dev);
    let (v_gpu, z_gpu) = forward(&gpu, &inputs::<Wgpu>(&gpu_dev), &gpu_dev);
    assert_close("v_expr wgpu vs cpu", &v_gpu, &v_cpu, 1e-4);
    assert_close("v_latent wgpu vs cpu", &z_gpu, &z_cpu, 1e-4);
    println!(
        "tiny CCFM forward: wgpu and cpu agree to 1e-4 ({} + {} values)",
        v_cpu.len(),
        z_cpu.len()
    );

    // Train on WGPU: the loss on a fixed batch goes down.
    type AD = Autodiff<Wgpu>;
    let i = inputs::<AD>(&gpu_dev);
    let batch = TrainBatch {
        gene_ids: i.gene_ids.clone(),
        control: i.ctrl.clone(),
        target: i.x.clone().abs().add_scalar(0.5),
        pert_ids: i.pert.clone(),
        z_target: Some(i.z.clone()),
    };
    let den = CascadedDenoiser::new(DenoiserConfig {
        sampler: SamplerConfig {
            latent_time_points: 3,
            expr_time_points: 3,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    // A seeded initialisation: the loss drop is then the same on every run.
    AD::seed(&gpu_dev, 11);
    let mut model = tiny().init::<AD>(&gpu_dev);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let eval = |m: &CascadedFlowModel<AD>| {
        AD::seed(&gpu_dev, 5);
        (0..4)
            .map(|_| values(den.train_step(m, &i.mask, batch.clone()).unwrap().total)[0])
            .sum::<f32>()
            / 4.0
    };
    let before = eval(&model);
    for _ in 0..40 {
        let loss = den.train_step(&model, &i.mask, batch.clone()).unwrap();
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        model = optim.step(3e-3, model, grads);
    }
    let after = eval(&model);
    println!("tiny CCFM training on wgpu: loss {before:.4} -> {after:.4}");
    assert!(after < 0.8 * before, "{before} -> {after}");

    // Generate on WGPU.
    let model = model.valid();
    let i = inputs::<Wgpu>(&gpu_dev);
    let g = den
        .generate(&model, &i.mask, i.gene_ids, i.ctrl, i.pert)
        .unwrap();
    let cells = values(g.expression);
    assert_eq!(cells.len(), BATCH * T);
    assert!(cells.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert_eq!(g.latent.unwrap().dims(), [BATCH, T, ZDIM]);
}
