//! Parity of every scDFM layer with the official modules, through the recorded fixtures in
//! `../shared/fixtures/scdfm` (or `$CCFM_SCDFM_FIXTURES`): parameters are loaded from the
//! fixture's state dict, the recorded inputs are run, and every recorded output must match
//! to 1e-5 (max abs). Every dimension comes from the fixture's `config` and tensor shapes, so
//! another fixture set in the same format is checked with no code change.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::{Int, Tensor};
use ccfm_layers::*;
use ccfm_testkit::{assert_close, available, scdfm_fixture_dir, values, Fixture};

type B = Flex;
const TOL: f32 = 1e-5;

fn fixture(case: &str) -> Option<(Fixture, PathBuf)> {
    let dir = scdfm_fixture_dir();
    let path = dir.join(format!("{case}.safetensors"));
    available(&path, case).then(|| (Fixture::load(&dir, case), path))
}

/// Load the fixture's `param.*` into `module`; every parameter of the module must be there.
fn load<M: burn::store::ModuleSnapshot<B> + Module<B>>(mut module: M, path: &std::path::Path) -> M {
    let report = load_scdfm_safetensors(&mut module, path, "param.").unwrap();
    assert_eq!(
        report.applied.len(),
        module.num_params_tensors(),
        "every tensor loaded"
    );
    module
}

trait NumTensors {
    fn num_params_tensors(&self) -> usize;
}
impl<M: Module<B>> NumTensors for M {
    fn num_params_tensors(&self) -> usize {
        struct Count(usize);
        impl burn::module::ModuleVisitor<B> for Count {
            fn visit_float<const D: usize>(&mut self, _: &burn::module::Param<Tensor<B, D>>) {
                self.0 += 1;
            }
        }
        let mut c = Count(0);
        self.visit(&mut c);
        c.0
    }
}

fn dev() -> <B as burn::tensor::backend::BackendTypes>::Device {
    Default::default()
}

fn mask(f: &Fixture) -> CoexpressionMask<B> {
    let m = f.shape("input.mask_padded")[0];
    let blocked = f.flags("input.mask_padded");
    CoexpressionMask::from_blocked(blocked, m, &dev())
}

#[test]
fn continuous_value_encoder() {
    let Some((f, path)) = fixture("01_continuous_value_encoder") else {
        return;
    };
    let m = load(
        ContinuousValueEncoderConfig::new(f.dim("d_model"))
            .with_max_value(f.number("max_value"))
            .init::<B>(&dev()),
        &path,
    );
    let y = m.forward(f.float::<B, 2>("input.x", &dev()));
    assert_close("cve y", &values(y), f.f32s("output.y"), TOL);
}

#[test]
fn timestep_embedder() {
    let Some((f, path)) = fixture("02_timestep_embedder") else {
        return;
    };
    let freq_size = f.dim("frequency_embedding_size");
    let m = load(
        TimestepEmbedderConfig::new(f.dim("d_model"))
            .with_frequency_embedding_size(freq_size)
            .with_max_period(f.number("max_period"))
            .init::<B>(&dev()),
        &path,
    );
    let t = f.float::<B, 1>("input.t_fixed", &dev());
    let freq = timestep_frequency_embedding(t.clone(), freq_size, f.number("max_period"));
    assert_close(
        "frequency embedding",
        &values(freq),
        f.f32s("output.freq_fixed"),
        TOL,
    );
    assert_close(
        "emb fixed",
        &values(m.forward(t)),
        f.f32s("output.emb_fixed"),
        TOL,
    );
    let r = m.forward(f.float::<B, 1>("input.t_random", &dev()));
    assert_close("emb random", &values(r), f.f32s("output.emb_random"), TOL);
}

#[test]
fn gene_adaln() {
    let Some((f, path)) = fixture("03_gene_adaln") else {
        return;
    };
    let m = load(
        GeneadaLNConfig::new(f.dim("d_model")).init::<B>(&dev()),
        &path,
    );
    let y = m.forward(
        f.float("input.gene_emb", &dev()),
        f.float("input.x", &dev()),
    );
    assert_close("gene adaLN", &values(y), f.f32s("output.y"), TOL);
}

#[test]
fn gene_encoder_with_coexpression_mask() {
    let Some((f, path)) = fixture("04_gene_encoder") else {
        return;
    };
    let d = f.dim("d_model");
    let m = load(
        GeneEncoderConfig::new(f.dim("ntoken"), d)
            .with_n_heads(f.dim("nhead"))
            .init::<B>(&dev()),
        &path,
    );
    let mask = mask(&f);
    let ids: Tensor<B, 2, Int> = f.int("input.ids_genes", &dev());
    let t = f.shape("input.ids_genes")[1];
    let memory = m.memory(f.dim("mask_num_M"), &dev());
    assert_close("memory", &values(memory), f.f32s("output.memory"), TOL);
    let q = m.enc_norm.forward(m.embedding.forward(ids.clone()));
    assert_close("query norm", &values(q), f.f32s("output.query_norm"), TOL);
    let genes = m.forward(ids.clone(), &mask);
    assert_close("genes", &values(genes), f.f32s("output.genes"), TOL);
    // The shared (computed once) path gives each row of the batched one.
    let row = ids.slice([0..1, 0..t]).reshape([t]);
    let shared = values(m.forward_shared(row, &mask));
    assert_close(
        "genes shared",
        &shared,
        &f.f32s("output.genes")[..t * d],
        TOL,
    );

    let pert = m.forward(f.int("input.ids_pert", &dev()), &mask);
    assert_close("pert", &values(pert.clone()), f.f32s("output.pert"), TOL);
    let b = f.shape("input.ids_pert")[0];
    let mean = pert.mean_dim(1).reshape([b, d]);
    assert_close("pert mean", &values(mean), f.f32s("output.pert_mean"), TOL);
}

#[test]
fn diff_attention_both_modes() {
    for case in ["05a_diff_attn_cross", "05b_diff_attn_nocross"] {
        let Some((f, path)) = fixture(case) else {
            return;
        };
        let m = load(
            MultiheadDiffAttnConfig::new(
                f.dim("embed_dim"),
                f.dim("num_heads"),
                f.dim("depth"),
                f.flag("cross"),
            )
            .with_rms_eps(f.number("rmsnorm_eps"))
            .init::<B>(&dev()),
            &path,
        );
        assert_close(
            case,
            &values(m.lambda_full()),
            f.f32s("output.lambda_full"),
            TOL,
        );
        let out = m.forward(f.float("input.noisy_y", &dev()), f.float("input.x", &dev()));
        assert_close(case, &values(out), f.f32s("output.out"), TOL);
    }
}

#[test]
fn differential_transformer_block() {
    let Some((f, path)) = fixture("06a_diff_transformer_block") else {
        return;
    };
    let m = load(
        DifferentialTransformerBlockConfig::new(
            f.dim("hidden_size"),
            f.dim("num_heads"),
            f.dim("depth"),
            f.flag("cross"),
        )
        .with_mlp_ratio(f.number("mlp_ratio"))
        .init::<B>(&dev()),
        &path,
    );
    let c = f.float::<B, 2>("input.c", &dev());
    assert_close(
        "adaln",
        &values(m.modulation(c.clone())),
        f.f32s("output.adaln_mod"),
        TOL,
    );
    let out = m.forward(f.float("input.y", &dev()), f.float("input.x", &dev()), c);
    assert_close("dtb", &values(out), f.f32s("output.out"), TOL);
}

#[test]
fn diff_perceiver_block() {
    let Some((f, path)) = fixture("06b_diff_perceiver_block") else {
        return;
    };
    // The block's two attentions are built with cross = true (self) and false (cross), as
    // the official DiffPerceiverBlock does; the fixture records which.
    assert!(f.flag("diff_self_attn_cross") && !f.flag("diff_cross_attn_cross"));
    let m = load(
        DiffPerceiverBlockConfig::new(f.dim("hidden_size"), f.dim("num_heads"), f.dim("depth"))
            .with_mlp_ratio(f.number("mlp_ratio"))
            .init::<B>(&dev()),
        &path,
    );
    let (out, mid) = m.forward_with_intermediate(
        f.float("input.y", &dev()),
        f.float("input.x", &dev()),
        f.float("input.c", &dev()),
    );
    assert_close("after self", &values(mid), f.f32s("output.after_self"), TOL);
    assert_close("perceiver", &values(out), f.f32s("output.out"), TOL);
}

#[test]
fn expr_decoder() {
    let Some((f, path)) = fixture("07_expr_decoder") else {
        return;
    };
    let m = load(
        ExprDecoderConfig::new(f.dim("d_model")).init::<B>(&dev()),
        &path,
    );
    let y = m.forward(f.float("input.x", &dev()));
    assert_close("decoder", &values(y), f.f32s("output.pred"), TOL);
}

#[test]
fn loading_reports_missing_parameters_by_name() {
    let Some((f, path)) = fixture("07_expr_decoder") else {
        return;
    };
    // A decoder of another width: every weight mismatches in shape.
    let mut m = ExprDecoderConfig::new(f.dim("d_model") + 8).init::<B>(&dev());
    let err = load_scdfm_safetensors(&mut m, &path, "param.").unwrap_err();
    assert!(err.to_string().contains("fc_0.weight"), "{err}");
    // A module whose keys are absent from the file.
    let mut m = GeneadaLNConfig::new(f.dim("d_model")).init::<B>(&dev());
    let err = load_scdfm_safetensors(&mut m, &path, "param.").unwrap_err();
    assert!(matches!(err, LoadError::Missing { .. }), "{err}");
    assert!(
        err.to_string().contains("adaLN_modulation_1.weight"),
        "{err}"
    );
}
