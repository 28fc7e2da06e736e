//! The cascaded model and denoiser on a tiny configuration: shapes, where gradients go,
//! that training reduces the loss, and the two-stage sampling protocol.

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use ccfm_flow::{gaussian_like, integrate, CascadedTimeSampler, OdeMethod, TimeGrid};
use ccfm_layers::CoexpressionMask;
use ccfm_model::*;
use ccfm_testkit::values;

type B = Flex;
type AD = Autodiff<Flex>;

const NTOKEN: usize = 14; // 4 specials + 10 genes
const T: usize = 6;
const BATCH: usize = 6;
const ZDIM: usize = 8;

fn config(latent: bool) -> CascadedFlowModelConfig {
    let c = CascadedFlowModelConfig::new(NTOKEN, PerturbationKind::Crispr)
        .with_d_model(16)
        .with_nhead(2)
        .with_nlayers(2)
        .with_dropout(0.0);
    if latent {
        c.with_latent(Some(
            LatentStreamConfig::new()
                .with_scgpt_dim(ZDIM)
                .with_bottleneck_dim(4)
                .with_dh_depth(1),
        ))
    } else {
        c
    }
}

/// A mask that lets every token attend to every vocabulary token.
fn open_mask<Bk: Backend>(device: &Bk::Device) -> CoexpressionMask<Bk> {
    CoexpressionMask::from_blocked(vec![false; NTOKEN * NTOKEN], NTOKEN, device)
}

fn batch<Bk: Backend>(latent: bool, device: &Bk::Device) -> TrainBatch<Bk> {
    Bk::seed(device, 1);
    let gene_ids =
        Tensor::<Bk, 1, Int>::from_data(TensorData::new(vec![4i64, 6, 7, 9, 11, 13], [T]), device);
    let control = Tensor::<Bk, 2>::random([BATCH, T], Distribution::Uniform(0.0, 2.0), device);
    // The perturbation raises genes 0-2 of the target.
    let shift = Tensor::<Bk, 2>::from_data(
        TensorData::new(vec![1.5f32, 1.5, 1.5, 0.0, 0.0, 0.0], [1, T]),
        device,
    );
    let target =
        Tensor::<Bk, 2>::random([BATCH, T], Distribution::Uniform(0.0, 2.0), device) + shift;
    let pert_ids = Tensor::<Bk, 2, Int>::from_data(
        TensorData::new([4i64, 3].repeat(BATCH), [BATCH, 2]),
        device,
    );
    let z_target = latent
        .then(|| Tensor::<Bk, 3>::random([BATCH, T, ZDIM], Distribution::Normal(0.0, 1.0), device));
    TrainBatch {
        gene_ids,
        control,
        target,
        pert_ids,
        z_target,
    }
}

#[test]
fn shapes_of_both_modes() {
    let _rng = ccfm_testkit::rng_lock();
    let device = Default::default();
    let mask = open_mask::<B>(&device);
    let b = batch::<B>(true, &device);
    let ccfm = config(true).init::<B>(&device);
    assert!(ccfm.has_latent());
    let z = b.z_target.clone().unwrap();
    let input = FlowInput {
        gene_ids: b.gene_ids.clone(),
        x_t: b.target.clone(),
        t: Tensor::zeros([BATCH], &device),
        ctrl: b.control.clone(),
        pert_ids: b.pert_ids.clone(),
        latent: Some(LatentInput {
            z_t: z,
            t_latent: Tensor::ones([BATCH], &device),
        }),
    };
    let out = ccfm.forward(input.clone(), &mask).unwrap();
    assert_eq!(out.expr.dims(), [BATCH, T]);
    assert_eq!(out.latent.unwrap().dims(), [BATCH, T, ZDIM]);
    assert_eq!(ccfm.latent_dim(), Some(ZDIM));
    // A mode mismatch is an error, not a panic.
    let scdfm_input = FlowInput {
        latent: None,
        ..input.clone()
    };
    assert!(matches!(
        ccfm.forward(scdfm_input.clone(), &mask),
        Err(ModelError::Mode(_))
    ));

    let scdfm = config(false).init::<B>(&device);
    assert!(!scdfm.has_latent());
    assert!(scdfm.latent.is_none() && scdfm.latent_dim().is_none());
    let out = scdfm.forward(scdfm_input, &mask).unwrap();
    assert_eq!(out.expr.dims(), [BATCH, T]);
    assert!(out.latent.is_none());
    assert!(matches!(
        scdfm.forward(input, &mask),
        Err(ModelError::Mode(_))
    ));
}

/// Sum of |grad| per top-level module of the model (the latent stream per part).
struct GradNorms<'a, Bk: AutodiffBackend> {
    grads: &'a Bk::Gradients,
    path: Vec<String>,
    out: std::collections::BTreeMap<String, f64>,
}

impl<Bk: AutodiffBackend> ModuleVisitor<Bk> for GradNorms<'_, Bk> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Bk, D>>) {
        // The latent stream's parts are counted under their own names.
        let top = match self.path.as_slice() {
            [first, rest @ ..] if first == "latent" => rest.first().cloned().unwrap_or_default(),
            [first, ..] => first.clone(),
            [] => String::new(),
        };
        let g = p
            .val()
            .grad(self.grads)
            .map(|g| values(g).iter().map(|v| v.abs() as f64).sum::<f64>());
        *self.out.entry(top).or_insert(0.0) += g.unwrap_or(0.0);
    }
}

fn grad_norms(p: f64) -> std::collections::BTreeMap<String, f64> {
    let device = Default::default();
    let mask = open_mask::<AD>(&device);
    let model = config(true).init::<AD>(&device);
    let den = CascadedDenoiser::new(DenoiserConfig {
        objective: ObjectiveConfig {
            times: CascadedTimeSampler {
                choose_latent_p: p,
                ..Default::default()
            },
            gamma: 0.5,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let loss = den
        .train_step(&model, &mask, batch::<AD>(true, &device))
        .unwrap();
    assert_eq!(loss.expr_samples, if p == 1.0 { 0 } else { BATCH });
    let grads = loss.total.backward();
    let mut v = GradNorms::<AD> {
        grads: &grads,
        path: vec![],
        out: Default::default(),
    };
    model.visit(&mut v);
    v.out
}

#[test]
fn latent_samples_train_only_the_latent_head_and_expression_samples_only_the_decoder() {
    let _rng = ccfm_testkit::rng_lock();
    // All latent samples: the expression decoder gets exactly zero gradient.
    let g = grad_norms(1.0);
    assert_eq!(g["final_layer"], 0.0, "{g:?}");
    assert!(
        g["latent_decoder"] > 0.0 && g["latent_embedder"] > 0.0 && g["t_latent_embedder"] > 0.0,
        "{g:?}"
    );
    // All expression samples: the latent head gets exactly zero gradient.
    let g = grad_norms(0.0);
    assert_eq!(g["latent_decoder"], 0.0, "{g:?}");
    assert!(
        g["final_layer"] > 0.0 && g["latent_embedder"] > 0.0,
        "{g:?}"
    );
    // The drug-label encoder is unused by a CRISPR model.
    assert_eq!(g["perturbation_embedder"], 0.0);
}

fn overfit(latent: bool, prediction: Prediction) -> (f32, f32) {
    let device = Default::default();
    AD::seed(&device, 3);
    let mask = open_mask::<AD>(&device);
    let mut model = config(latent).init::<AD>(&device);
    let den = CascadedDenoiser::new(DenoiserConfig {
        objective: ObjectiveConfig {
            prediction,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let b = batch::<AD>(latent, &device);
    let eval = |model: &CascadedFlowModel<AD>| {
        // Average over several draws of times and noise.
        AD::seed(&device, 99);
        (0..8)
            .map(|_| values(den.train_step(model, &mask, b.clone()).unwrap().total)[0])
            .sum::<f32>()
            / 8.0
    };
    let before = eval(&model);
    for _ in 0..60 {
        let loss = den.train_step(&model, &mask, b.clone()).unwrap();
        assert!(values(loss.total.clone())[0].is_finite());
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        model = optim.step(3e-3, model, grads);
    }
    (before, eval(&model))
}

#[test]
fn training_reduces_the_loss_in_every_mode() {
    let _rng = ccfm_testkit::rng_lock();
    for (latent, pred) in [
        (false, Prediction::Velocity),
        (true, Prediction::Velocity),
        (true, Prediction::Data),
    ] {
        let (before, after) = overfit(latent, pred);
        assert!(
            after < 0.8 * before,
            "latent {latent} {pred:?}: {before} -> {after}"
        );
    }
}

#[test]
fn ccfm_needs_latent_targets() {
    let _rng = ccfm_testkit::rng_lock();
    let device = Default::default();
    let mask = open_mask::<B>(&device);
    let model = config(true).init::<B>(&device);
    let mut b = batch::<B>(true, &device);
    b.z_target = None;
    let err = CascadedDenoiser::default()
        .train_step(&model, &mask, b)
        .unwrap_err();
    assert!(matches!(err, ModelError::MissingLatentTarget), "{err}");
}

#[test]
fn bad_settings_are_rejected() {
    let _rng = ccfm_testkit::rng_lock();
    let bad = DenoiserConfig {
        objective: ObjectiveConfig {
            gamma: -1.0,
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(matches!(
        CascadedDenoiser::new(bad),
        Err(ModelError::Config { name: "gamma", .. })
    ));
    let bad = DenoiserConfig {
        sampler: SamplerConfig {
            expr_time_points: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(CascadedDenoiser::new(bad).is_err());
}

#[test]
fn generation_is_two_staged_from_one_noise_and_clamped() {
    let _rng = ccfm_testkit::rng_lock();
    let device = Default::default();
    let mask = open_mask::<B>(&device);
    let model = config(true).init::<AD>(&device).valid();
    let b = batch::<B>(true, &device);
    let den = CascadedDenoiser::new(DenoiserConfig {
        sampler: SamplerConfig {
            solver: OdeMethod::Heun,
            latent_time_points: 4,
            expr_time_points: 5,
        },
        ..Default::default()
    })
    .unwrap();
    B::seed(&device, 42);
    let out = den
        .generate(
            &model,
            &mask,
            b.gene_ids.clone(),
            b.control.clone(),
            b.pert_ids.clone(),
        )
        .unwrap();
    assert_eq!(out.expression.dims(), [BATCH, T]);
    assert!(values(out.expression.clone()).iter().all(|&v| v >= 0.0));
    let z = out.latent.clone().unwrap();
    assert_eq!(z.dims(), [BATCH, T, ZDIM]);

    // The same protocol written out by hand: x0 first, then z0; stage 1 holds x0 at t_expr=0;
    // stage 2 starts from that same x0 with the generated latent at t_latent=1.
    B::seed(&device, 42);
    let x0 = gaussian_like(&b.control);
    let z0 = gaussian_like(&Tensor::<B, 3>::zeros([BATCH, T, ZDIM], &device));
    let zero = Tensor::<B, 1>::zeros([BATCH], &device);
    let one = Tensor::<B, 1>::ones([BATCH], &device);
    let stage1 = integrate(
        |z: Tensor<B, 3>, t| {
            let tl = Tensor::full([BATCH], t, &device);
            let li = LatentInput {
                z_t: z,
                t_latent: tl,
            };
            let input = FlowInput {
                gene_ids: b.gene_ids.clone(),
                x_t: x0.clone(),
                t: zero.clone(),
                ctrl: b.control.clone(),
                pert_ids: b.pert_ids.clone(),
                latent: Some(li),
            };
            model.forward(input, &mask).unwrap().latent.unwrap()
        },
        z0,
        &TimeGrid::linspace(0.0, 1.0, 4).unwrap(),
        OdeMethod::Heun,
        false,
    )
    .final_state;
    let stage2 = integrate(
        |x: Tensor<B, 2>, t| {
            let te = Tensor::full([BATCH], t, &device);
            let li = LatentInput {
                z_t: stage1.clone(),
                t_latent: one.clone(),
            };
            let input = FlowInput {
                gene_ids: b.gene_ids.clone(),
                x_t: x,
                t: te,
                ctrl: b.control.clone(),
                pert_ids: b.pert_ids.clone(),
                latent: Some(li),
            };
            model.forward(input, &mask).unwrap().expr
        },
        x0,
        &TimeGrid::linspace(0.0, 1.0, 5).unwrap(),
        OdeMethod::Heun,
        false,
    )
    .final_state
    .clamp_min(0.0);
    ccfm_testkit::assert_close("stage 1", &values(z), &values(stage1), 1e-5);
    ccfm_testkit::assert_close("stage 2", &values(out.expression), &values(stage2), 1e-5);

    // scDFM mode generates without a latent.
    let scdfm = config(false).init::<B>(&device);
    let out = den
        .generate(&scdfm, &mask, b.gene_ids, b.control, b.pert_ids)
        .unwrap();
    assert!(out.latent.is_none());
    assert_eq!(out.expression.dims(), [BATCH, T]);
}

#[test]
fn generation_is_deterministic_for_a_seed() {
    let _rng = ccfm_testkit::rng_lock();
    let device = Default::default();
    let mask = open_mask::<B>(&device);
    let model = config(true).init::<B>(&device);
    let b = batch::<B>(true, &device);
    let den = CascadedDenoiser::new(DenoiserConfig {
        sampler: SamplerConfig {
            latent_time_points: 3,
            expr_time_points: 3,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let run = |seed: u64| {
        B::seed(&device, seed);
        let g = den
            .generate(
                &model,
                &mask,
                b.gene_ids.clone(),
                b.control.clone(),
                b.pert_ids.clone(),
            )
            .unwrap();
        (values(g.expression), values(g.latent.unwrap()))
    };
    let (a, b2, c) = (run(7), run(7), run(8));
    assert_eq!(a, b2, "same seed, same cells");
    assert_ne!(a.1, c.1, "another seed, other cells");
}
