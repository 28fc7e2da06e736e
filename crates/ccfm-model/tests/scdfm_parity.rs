//! The whole scDFM model against the official code (fixtures 08a, 08b, 09, 11 in
//! `../shared/fixtures/scdfm` or `$CCFM_SCDFM_FIXTURES`): forward with every intermediate,
//! torchdiffeq's RK4 integration of it, and the training loss with the gradient of every
//! parameter.

use std::collections::HashMap;
use std::path::PathBuf;

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use ccfm_flow::{
    integrate, median_sigmas, mmd2_unbiased_multi_sigma, AffineProbPath, CondOt, OdeMethod,
    TimeGrid, SCDFM_SIGMA_SCALES,
};
use ccfm_layers::checkpoint::scdfm_key_remapper;
use ccfm_layers::{load_scdfm_safetensors, CoexpressionMask};
use ccfm_model::{CascadedFlowModel, CascadedFlowModelConfig, FlowInput, PerturbationKind};
use ccfm_testkit::{assert_close, available, scdfm_fixture_dir, values, Fixture};

type B = Flex;
type AD = Autodiff<Flex>;
const TOL: f32 = 1e-5;

fn fixture(case: &str) -> Option<(Fixture, PathBuf)> {
    let dir = scdfm_fixture_dir();
    let path = dir.join(format!("{case}.safetensors"));
    available(&path, case).then(|| (Fixture::load(&dir, case), path))
}

struct Case<Bk: Backend> {
    model: CascadedFlowModel<Bk>,
    mask: CoexpressionMask<Bk>,
    gene_ids: Tensor<Bk, 1, Int>,
    ctrl: Tensor<Bk, 2>,
    pert: Tensor<Bk, 2, Int>,
}

/// The model settings a fixture was recorded with: its own `config`, or, for the cases that
/// reuse the model of 08a ("same as 08a_model_crisper": 09, 11), those of 08a in the same set.
/// Dropout is set to 0: the fixtures were recorded in eval mode, and Burn applies dropout on
/// autodiff backends.
fn model_config(f: &Fixture) -> CascadedFlowModelConfig {
    let own = !f.json["config"]["ntoken"].is_null();
    let src = if own {
        f.clone()
    } else {
        let model = f.json["config"]["model"].as_str().unwrap_or_default();
        assert!(
            model.contains("08a_model_crisper"),
            "{}: config.model = {model:?}",
            f.case
        );
        Fixture::load(&scdfm_fixture_dir(), "08a_model_crisper")
    };
    let kind = match src.text("perturbation_function") {
        "crisper" => PerturbationKind::Crispr,
        "drug" => PerturbationKind::Drug,
        other => panic!("{}: unknown perturbation_function {other:?}", src.case),
    };
    // The official GeneEncoder always has 8 heads; so does ours.
    assert_eq!(src.dim("nhead_gene_encoder"), 8, "{}", src.case);
    CascadedFlowModelConfig::new(src.dim("ntoken"), kind)
        .with_d_model(src.dim("d_model"))
        .with_nhead(src.dim("nhead_blocks"))
        .with_nlayers(src.dim("nlayers"))
        .with_dropout(0.0)
}

impl<Bk: Backend> Case<Bk> {
    /// The model's velocity at `(x_t, t)` for the fixture's cells and perturbations.
    fn velocity(&self, x_t: Tensor<Bk, 2>, t: Tensor<Bk, 1>) -> Tensor<Bk, 2> {
        let input = FlowInput {
            gene_ids: self.gene_ids.clone(),
            x_t,
            t,
            ctrl: self.ctrl.clone(),
            pert_ids: self.pert.clone(),
            latent: None,
        };
        self.model.forward(input, &self.mask).unwrap().expr
    }
}

/// The fixture's model with its parameters loaded, and its inputs.
fn case<Bk: Backend>(f: &Fixture, path: &std::path::Path) -> Case<Bk> {
    let device = Default::default();
    let mut model = model_config(f).init::<Bk>(&device);
    let report = load_scdfm_safetensors(&mut model, path, "param.").unwrap();
    let unused_params: Vec<&String> = report
        .unused
        .iter()
        .filter(|k| !k.starts_with("input.") && !k.starts_with("output."))
        .collect();
    // Only the predict_p parameters are unused.
    assert!(
        unused_params
            .iter()
            .all(|k| k.starts_with("p_mask_embed") || k.starts_with("p_head")),
        "{unused_params:?}"
    );
    let m = f.shape("input.mask_padded")[0];
    let blocked = f.flags("input.mask_padded");
    let ids: Tensor<Bk, 2, Int> = f.int("input.gene_id", &device);
    let t = ids.dims()[1];
    Case {
        model,
        mask: CoexpressionMask::from_blocked(blocked, m, &device),
        gene_ids: ids.slice([0..1, 0..t]).reshape([t]),
        ctrl: f.float("input.ctrl", &device),
        pert: f.int("input.perturbation_id", &device),
    }
}

fn forward_matches(case_name: &str) {
    let Some((f, path)) = fixture(case_name) else {
        return;
    };
    let c = case::<B>(&f, &path);
    let device = Default::default();
    let check = |name: &str, t: Tensor<B, 3>| {
        assert_close(name, &values(t), f.f32s(&format!("output.{name}")), TOL)
    };
    // The forward pass piece by piece, each compared with the official module's output.
    let (x_t, t): (Tensor<B, 2>, Tensor<B, 1>) =
        (f.float("input.x_t", &device), f.float("input.t", &device));
    let m = &c.model;
    let ctx = m.context(c.gene_ids.clone(), c.ctrl.clone(), c.pert.clone(), &c.mask);
    let (value, fused) = m.fuse(&ctx, x_t.clone());
    check("gene_emb", ctx.genes.clone());
    check("value_emb_1", value);
    check("value_emb_2", ctx.control.clone());
    check("fusion", fused.clone());
    let t_emb = m.t_embedder.forward(t.clone());
    assert_close("t_emb", &values(t_emb.clone()), f.f32s("output.t_emb"), TOL);
    assert_close(
        "pert_emb",
        &values(ctx.pert.clone()),
        f.f32s("output.pert_emb"),
        TOL,
    );
    let mut h = fused;
    for i in 0..m.blocks.len() {
        let out = m.layer(i, &ctx, h, &t_emb);
        for (name, t) in [
            ("adaln", &out.adaln),
            ("adapter", &out.adapter),
            ("block", &out.block),
        ] {
            check(&format!("layer{i}.{name}"), t.clone());
        }
        h = out.block;
    }
    check("decoder_in", m.decoder_input(h, ctx.pert_tokens.clone()));
    // And the whole pass.
    assert_close(
        "velocity",
        &values(c.velocity(x_t, t)),
        f.f32s("output.velocity"),
        TOL,
    );
}

#[test]
fn crispr_model_forward_matches_scdfm() {
    forward_matches("08a_model_crisper");
}

#[test]
fn drug_model_forward_matches_scdfm() {
    forward_matches("08b_model_drug");
}

#[test]
fn rk4_integration_of_the_model_matches_torchdiffeq() {
    let Some((f, path)) = fixture("09_odeint_rk4") else {
        return;
    };
    let c = case::<B>(&f, &path);
    let device = Default::default();
    let grid: Vec<f64> = f.f32s("input.t_grid").iter().map(|&t| t as f64).collect();
    let grid = TimeGrid::new(grid).unwrap();
    let b = c.ctrl.dims()[0];
    let sol = integrate(
        |x: Tensor<B, 2>, t| {
            let tt = Tensor::<B, 1>::full([b], t, &device);
            c.velocity(x, tt)
        },
        f.float("input.x0", &device),
        &grid,
        OdeMethod::Rk4ThreeEighths,
        true,
    );
    assert_eq!(sol.nfe, 16);
    let traj: Vec<f32> = sol
        .trajectory
        .iter()
        .flat_map(|x| values(x.clone()))
        .collect();
    assert_close("trajectory", &traj, f.f32s("output.traj"), TOL);
    assert_close(
        "final",
        &values(sol.final_state.clone()),
        f.f32s("output.final"),
        TOL,
    );
    let clamped = sol.final_state.clamp_min(0.0);
    assert_close(
        "final clamped",
        &values(clamped),
        f.f32s("output.final_clamped"),
        TOL,
    );
}

/// Records each float parameter's gradient under its PyTorch key.
struct GradCollector<'a, Bk: AutodiffBackend> {
    grads: &'a Bk::Gradients,
    path: Vec<(String, String)>,
    out: HashMap<String, Option<Vec<f32>>>,
}

impl<Bk: AutodiffBackend> ModuleVisitor<Bk> for GradCollector<'_, Bk> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Bk, D>>) {
        // Each path entry is (field name, type of the struct holding that field).
        let (leaf, parent) = self.path.last().cloned().unwrap_or_default();
        let prefix: Vec<&str> = self.path[..self.path.len().saturating_sub(1)]
            .iter()
            .map(|p| p.0.as_str())
            .collect();
        // Back to PyTorch names: LayerNorm gamma/beta are weight/bias; Linear weights transposed.
        let leaf_torch = match (parent.as_str(), leaf.as_str()) {
            ("Struct:LayerNorm", "gamma") => "weight".to_string(),
            ("Struct:LayerNorm", "beta") => "bias".to_string(),
            _ => leaf.clone(),
        };
        let key = if prefix.is_empty() {
            leaf_torch
        } else {
            format!("{}.{leaf_torch}", prefix.join("."))
        };
        let grad = param.val().grad(self.grads).map(|g| {
            let dims = g.dims();
            let v = values(g);
            if parent == "Struct:Linear" && D == 2 {
                // (in, out) -> (out, in)
                let (rows, cols) = (dims[0], dims[1]);
                (0..rows * cols)
                    .map(|k| v[(k % rows) * cols + k / rows])
                    .collect()
            } else {
                v
            }
        });
        self.out.insert(key, grad);
    }
}

#[test]
fn training_loss_and_every_gradient_match_scdfm() {
    let Some((f, path)) = fixture("11_train_loss_grad") else {
        return;
    };
    let c = case::<AD>(&f, &path);
    let device = Default::default();
    let pathp = AffineProbPath::new(CondOt);
    let x1: Tensor<AD, 2> = f.float("input.x1", &device);
    let t: Tensor<AD, 1> = f.float("input.t", &device);
    let s = pathp.sample(f.float("input.x0", &device), x1.clone(), t.clone());
    assert_close("x_t", &values(s.x_t.clone()), f.f32s("output.x_t"), TOL);
    assert_close("dx_t", &values(s.dx_t.clone()), f.f32s("output.dx_t"), TOL);
    let v = c.velocity(s.x_t.clone(), t.clone());
    assert_close(
        "velocity",
        &values(v.clone()),
        f.f32s("output.velocity"),
        TOL,
    );
    let loss_fm = (v.clone() - s.dx_t).powi_scalar(2).mean();
    let x1_hat = pathp.endpoint_from_velocity(v, s.x_t, t);
    assert_close(
        "x1_hat",
        &values(x1_hat.clone()),
        f.f32s("output.x1_hat"),
        TOL,
    );
    let sig = median_sigmas(x1.clone().inner(), &SCDFM_SIGMA_SCALES).unwrap();
    let sigmas: Vec<f32> = sig.sigmas.iter().map(|&s| s as f32).collect();
    assert_close("sigmas", &sigmas, f.f32s("output.sigmas"), TOL);
    let mmd = mmd2_unbiased_multi_sigma(x1_hat, x1, &sig.sigmas).unwrap();
    let loss = loss_fm.clone() + mmd.clone().mul_scalar(f.number("gamma"));
    assert_close("loss_fm", &values(loss_fm), f.f32s("output.loss_fm"), TOL);
    assert_close("mmd2", &values(mmd), f.f32s("output.mmd2"), TOL);
    assert_close("loss", &values(loss.clone()), f.f32s("output.loss"), TOL);

    let grads = loss.backward();
    let mut collector = GradCollector::<AD> {
        grads: &grads,
        path: Vec::new(),
        out: HashMap::new(),
    };
    c.model.visit(&mut collector);
    let remap = scdfm_key_remapper("output.grad.");
    let mut compared = 0;
    for name in f.names() {
        let Some(torch_key) = name.strip_prefix("output.grad.") else {
            continue;
        };
        let ours = remap_key(&remap, name);
        let got = collector
            .out
            .get(&ours)
            .unwrap_or_else(|| panic!("no parameter {ours} (torch {torch_key})"))
            .clone()
            .unwrap_or_else(|| panic!("{torch_key} received no gradient"));
        assert_close(&format!("grad {torch_key}"), &got, f.f32s(name), TOL);
        compared += 1;
    }
    // Exactly the parameters scDFM leaves without a gradient get none here.
    let without: Vec<&String> = collector
        .out
        .iter()
        .filter(|(_, g)| g.is_none())
        .map(|(k, _)| k)
        .collect();
    let expected_without = f.json["config"]["params_without_grad"].as_array().unwrap();
    for k in &without {
        assert!(
            expected_without
                .iter()
                .any(|e| e.as_str() == Some(k.as_str())),
            "{k} got no gradient"
        );
    }
    assert_eq!(
        without.len(),
        3,
        "perturbation_embedder's 3 tensors only: {without:?}"
    );
    assert_eq!(compared + without.len(), collector.out.len());
}

/// Apply every pattern of `remap` to `key`, in order.
fn remap_key(remap: &burn::store::KeyRemapper, key: &str) -> String {
    let mut k = key.to_string();
    for (re, to) in remap.to_regex_pairs() {
        k = re.replace_all(&k, to.as_str()).into_owned();
    }
    k
}
