//! scGPT parity against scgpt 0.2.4 (tools/gen_scgpt_fixture.py -> tests/fixtures/scgpt, or
//! the directory in `CCFM_SCGPT_FIXTURE`): the official-layout checkpoint loads from `.pt` and
//! `.safetensors`, every `_encode` intermediate agrees to 1e-5 on non-pad positions, and the
//! binning is bit-exact with the recorded draws replayed.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::{Bool, Tensor, TensorData};
use ccfm_scgpt::{bin_cell, load_weights, quantile_edges, ScgptModel, TieBreak};
use ccfm_testkit::{values, workspace_root, Fixture};

type B = Flex;

fn fixture_dir() -> PathBuf {
    std::env::var_os("CCFM_SCGPT_FIXTURE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("tests/fixtures/scgpt"))
}

/// Max |a - b| over the positions whose pad flag is false; `(B, L, d)` row-major.
fn close_on_tokens(what: &str, got: &[f32], want: &[f32], pad: &[bool], d: usize, tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0f32;
    for (pos, &p) in pad.iter().enumerate() {
        if p {
            continue;
        }
        for k in 0..d {
            worst = worst.max((got[pos * d + k] - want[pos * d + k]).abs());
        }
    }
    assert!(worst <= tol, "{what}: max difference {worst} > {tol}");
}

#[test]
fn encode_matches_scgpt_at_every_intermediate() {
    let dir = fixture_dir();
    let dev = Default::default();
    let model = ScgptModel::<B>::from_dir(&dir.join("model"), &dev).unwrap();
    assert_eq!(model.args.embsize, 32);
    assert_eq!(model.vocab.len(), 60);
    // Keys _encode does not use are reported, not loaded.
    for k in [
        "flag_encoder.weight",
        "decoder.fc.0.weight",
        "mvc_decoder.W.weight",
    ] {
        assert!(
            model.report.unused.iter().any(|u| u == k),
            "{k}: {:?}",
            model.report.unused
        );
    }
    let fx = Fixture::load(&dir, "encode");
    let d = 32;
    for case in ["a", "b"] {
        let key = |n: &str| format!("{case}.{n}");
        let src = fx.int::<B, 2>(&key("src"), &dev);
        let vals = fx.float::<B, 2>(&key("values"), &dev);
        let pad_flags = fx.flags(&key("pad"));
        let shape = fx.shape(&key("pad")).to_vec();
        let pad: Tensor<B, 2, Bool> =
            Tensor::from_data(TensorData::new(pad_flags.clone(), shape), &dev);
        let t = model.encoder.forward_traced(src, vals, pad);
        close_on_tokens(
            &key("gene_emb"),
            &values(t.gene_emb),
            fx.f32s(&key("gene_emb")),
            &pad_flags,
            d,
            1e-5,
        );
        close_on_tokens(
            &key("value_emb"),
            &values(t.value_emb.unwrap()),
            fx.f32s(&key("value_emb")),
            &pad_flags,
            d,
            1e-5,
        );
        close_on_tokens(
            &key("total"),
            &values(t.total),
            fx.f32s(&key("total")),
            &pad_flags,
            d,
            1e-5,
        );
        for (i, layer) in t.layers.into_iter().enumerate() {
            let name = key(&format!("layer_{i}"));
            close_on_tokens(&name, &values(layer), fx.f32s(&name), &pad_flags, d, 1e-5);
        }
    }
}

#[test]
fn safetensors_twin_loads_the_same_weights() {
    let dir = fixture_dir().join("model");
    let dev = Default::default();
    let from_pt = ScgptModel::<B>::from_dir(&dir, &dev).unwrap();
    let mut other = ccfm_scgpt::ScgptEncoderConfig::from_args(&from_pt.args, from_pt.vocab.len())
        .init::<B>(&dev);
    load_weights(&mut other, &dir.join("best_model.safetensors")).unwrap();
    let ids = Tensor::<B, 2, burn::tensor::Int>::from_data(
        TensorData::new(vec![58i64, 3, 7], [1, 3]),
        &dev,
    );
    let v = Tensor::<B, 2>::from_data(TensorData::new(vec![-2.0f32, 4.0, 9.0], [1, 3]), &dev);
    let pad = Tensor::<B, 2, Bool>::from_data(TensorData::new(vec![false; 3], [1, 3]), &dev);
    let a = values(from_pt.encoder.forward(ids.clone(), v.clone(), pad.clone()));
    let b = values(other.forward(ids, v, pad));
    assert_eq!(a, b);
}

#[test]
fn binning_is_bit_exact_with_replayed_draws() {
    let text = std::fs::read_to_string(fixture_dir().join("binning.json")).unwrap();
    let fx: serde_json::Value = serde_json::from_str(&text).unwrap();
    let f = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    for (i, case) in fx["cases"].as_array().unwrap().iter().enumerate() {
        let row: Vec<f32> = f(&case["row"]).iter().map(|&v| v as f32).collect();
        let nz: Vec<f32> = row.iter().copied().filter(|&v| v != 0.0).collect();
        if !nz.is_empty() {
            let edges = quantile_edges(&nz, 50);
            assert_eq!(edges, f(&case["edges"]), "case {i}: edges");
        }
        let left = bin_cell(&row, 51, TieBreak::Left, &mut || unreachable!());
        let want_left: Vec<f32> = f(&case["left"]).iter().map(|&v| v as f32).collect();
        assert_eq!(left, want_left, "case {i}: left bins");
        let draws = f(&case["draws"]);
        let mut k = 0;
        let random = bin_cell(&row, 51, TieBreak::Random, &mut || {
            k += 1;
            draws[k - 1]
        });
        let want: Vec<f32> = f(&case["random"]).iter().map(|&v| v as f32).collect();
        assert_eq!(random, want, "case {i}: random bins");
        assert_eq!(k, draws.len(), "case {i}: one draw per non-zero value");
    }
}

#[test]
fn a_model_directory_missing_a_file_is_a_clear_error() {
    let tmp = std::env::temp_dir().join(format!("ccfm-scgpt-missing-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let src = fixture_dir().join("model");
    std::fs::copy(src.join("args.json"), tmp.join("args.json")).unwrap();
    let err = ScgptModel::<B>::from_dir(&tmp, &Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("vocab.json") && err.contains("missing"),
        "{err}"
    );
    std::fs::copy(src.join("vocab.json"), tmp.join("vocab.json")).unwrap();
    std::fs::write(tmp.join("best_model.pt"), b"not a zip").unwrap();
    let err = ScgptModel::<B>::from_dir(&tmp, &Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("best_model.pt"), "{err}");
    // A download cut short.
    let full = std::fs::read(src.join("best_model.pt")).unwrap();
    std::fs::write(tmp.join("best_model.pt"), &full[..full.len() / 2]).unwrap();
    let err = ScgptModel::<B>::from_dir(&tmp, &Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("best_model.pt") && err.contains("cannot read"),
        "{err}"
    );
    // args.json whose sizes disagree with the weights.
    let args = std::fs::read_to_string(src.join("args.json"))
        .unwrap()
        .replace("\"d_hid\": 48", "\"d_hid\": 40");
    std::fs::write(tmp.join("args.json"), args).unwrap();
    std::fs::copy(src.join("best_model.pt"), tmp.join("best_model.pt")).unwrap();
    let err = ScgptModel::<B>::from_dir(&tmp, &Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("linear1"), "{err}");
    std::fs::remove_dir_all(tmp).unwrap();
}

#[test]
fn embed_data_end_to_end_is_reproduced() {
    let dir = fixture_dir();
    let dev = Default::default();
    let model = ScgptModel::<B>::from_dir(&dir.join("model"), &dev).unwrap();
    let ad = ccfm_data::AnnData::open(dir.join("embed.h5ad")).unwrap();
    let rows: Vec<usize> = (0..ad.n_obs()).collect();
    let x = ad.read_matrix("X", &rows, None).unwrap();
    let genes: Vec<String> = ad
        .var
        .column("feature_name")
        .unwrap()
        .as_labels()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    // The cells are tie-free, so both tie-break modes give scgpt's tokens.
    for mode in [TieBreak::Left, TieBreak::Random] {
        let opts = ccfm_scgpt::EmbedOptions {
            tie_break: mode,
            seed: 0,
            batch_size: 2,
        };
        let mut ticks = Vec::new();
        let e = ccfm_scgpt::embed_cells(&model, &genes, &x, &opts, &dev, &mut |done, n| {
            ticks.push((done, n))
        })
        .unwrap();
        // Progress: a start, then one tick per batch of 2 cells, ending at all cells.
        let n = ad.n_obs();
        assert_eq!(ticks.first(), Some(&(0, n)));
        assert_eq!(ticks.last(), Some(&(n, n)));
        assert_eq!(ticks.len(), 1 + n.div_ceil(2));
        assert_eq!(e.genes_in_vocab, 18);
        let want = Fixture::load(&dir, "embed");
        ccfm_testkit::assert_close("cell_embedding", &e.cell, want.f32s("cell_embedding"), 1e-5);
        // Zero-valued and out-of-vocabulary genes have zero features; expressed ones do not.
        let (g, d) = (genes.len(), e.d);
        for c in 0..ad.n_obs() {
            for j in 0..g {
                let f = &e.gene_features[(c * g + j) * d..(c * g + j + 1) * d];
                let token = x[c * g + j] != 0.0 && j < 18;
                assert_eq!(f.iter().any(|&v| v != 0.0), token, "cell {c} gene {j}");
            }
        }
    }
}

#[test]
fn torch_in_proj_names_load_like_flash_wqkv_names() {
    use safetensors::SafeTensors;
    let dir = fixture_dir().join("model");
    let bytes = std::fs::read(dir.join("best_model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let renamed: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k.replace("self_attn.Wqkv.", "self_attn.in_proj_"), v))
        .collect();
    assert!(renamed
        .iter()
        .any(|(k, _)| k.ends_with("self_attn.in_proj_weight")));
    let tmp = std::env::temp_dir().join(format!("ccfm-inproj-{}.safetensors", std::process::id()));
    std::fs::write(&tmp, safetensors::serialize(renamed, &None).unwrap()).unwrap();
    let dev = Default::default();
    let reference = ScgptModel::<B>::from_dir(&dir, &dev).unwrap();
    let mut m = ccfm_scgpt::ScgptEncoderConfig::from_args(&reference.args, reference.vocab.len())
        .init::<B>(&dev);
    load_weights(&mut m, &tmp).unwrap();
    let ids = Tensor::<B, 2, burn::tensor::Int>::from_data(
        TensorData::new(vec![58i64, 5, 9, 2], [1, 4]),
        &dev,
    );
    let v = Tensor::<B, 2>::from_data(TensorData::new(vec![-2.0f32, 1.0, 30.0, 7.0], [1, 4]), &dev);
    let pad = Tensor::<B, 2, Bool>::from_data(TensorData::new(vec![false; 4], [1, 4]), &dev);
    assert_eq!(
        values(m.forward(ids.clone(), v.clone(), pad.clone())),
        values(reference.encoder.forward(ids, v, pad))
    );
    std::fs::remove_file(tmp).unwrap();
}
