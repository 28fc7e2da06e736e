//! Training, resumption and prediction on a tiny synthetic dataset with a random-weight scGPT.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use ccfm_data::{Preset, Size, SynthConfig};
use ccfm_train::config::PerturbationChoice;
use ccfm_train::demo::write_inputs;
use ccfm_train::{
    predict, train_new, train_resume, PredictOptions, RunConfig, RunDir, TrainError, TrainEvent,
    TrainOptions, TrainSummary,
};
use serde_json::json;

type B = Autodiff<Flex>;

/// Training re-seeds the backend's one random stream at every step: tests that train take
/// turns.
use ccfm_testkit::rng_lock as serial;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ccfm-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny configuration: seconds per run on 2 cores.
fn tiny_config(dir: &Path, latent: bool, extra: &[&str]) -> RunConfig {
    let synth = SynthConfig {
        preset: Preset::Norman,
        size: Size::Tiny,
        seed: 3,
    };
    let inputs = write_inputs::<Flex>(
        dir,
        &synth,
        &json!({"embsize": 16, "nheads": 2, "d_hid": 16, "nlayers": 1, "n_layers_cls": 1,
                "dropout": 0.0, "pad_token": "<pad>", "pad_value": -2}),
        &Default::default(),
    )
    .unwrap();
    let mut o: Vec<String> = vec![
        format!("data.path={}", inputs.data.display()),
        format!("latent.scgpt_dir={}", inputs.scgpt_dir.display()),
        format!("latent.enabled={latent}"),
        "data.n_top_genes=0".into(),
        "data.genes_per_step=16".into(),
        "data.fold=0".into(),
        "data.val_fraction=0.3".into(),
        "data.coexpression_top_k=5".into(),
        "model.d_model=16".into(),
        "model.nhead=2".into(),
        "model.nlayers=1".into(),
        "latent.bottleneck_dim=8".into(),
        "latent.dh_depth=1".into(),
        "latent.norm_warmup_batches=3".into(),
        "train.steps=6".into(),
        "train.batch_size=6".into(),
        "train.lr=1e-3".into(),
        "train.eta_min=1e-5".into(),
        "train.validate_every=0".into(),
        "train.val_cells=4".into(),
        "sample.latent_time_points=3".into(),
        "sample.expr_time_points=3".into(),
        "sample.cells_per_condition=5".into(),
        "sample.n_genes=0".into(),
        "output.checkpoint_every=2".into(),
        "output.log_every=1".into(),
        "output.progress=never".into(),
    ];
    o.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::parse("", "tiny", &o).unwrap()
}

fn quiet() -> impl FnMut(String) {
    |_s: String| {}
}

/// Train a new run quietly on the CPU.
fn train(
    cfg: RunConfig,
    run: &Path,
    stop_after: Option<usize>,
) -> Result<TrainSummary, TrainError> {
    train_new::<B>(
        cfg,
        run,
        &Default::default(),
        TrainOptions {
            observer: &mut |_: &TrainEvent| {},
            stop_after,
            stop: None,
            cache_dir: None,
            sync: None,
        },
    )
}

/// Resume a run quietly on the CPU.
fn resume(run: &Path) -> Result<TrainSummary, TrainError> {
    train_resume::<B>(
        run,
        &Default::default(),
        TrainOptions {
            observer: &mut |_: &TrainEvent| {},
            stop_after: None,
            stop: None,
            cache_dir: None,
            sync: None,
        },
    )
}

fn files(checkpoint: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(checkpoint)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn resume_matches_uninterrupted(latent: bool, extra: &[&str]) {
    let _turn = serial();
    let dir = tmp(&format!("resume-{latent}-{}", extra.len()));
    let cfg = tiny_config(&dir, latent, extra);
    let full = train(cfg.clone(), &dir.join("full"), None).unwrap();
    // Stop after step 5 (the last checkpoint is step 4), then resume.
    let part = dir.join("part");
    train(cfg, &part, Some(5)).unwrap();
    assert!(part.join("checkpoints/step-00000004").is_dir());
    assert!(!part.join("checkpoints/step-00000006").exists());
    let resumed = resume(&part).unwrap();
    assert_eq!(resumed.resumed_from, Some(4));
    let (a, b) = (files(&full.checkpoint), files(&resumed.checkpoint));
    assert_eq!(
        a.iter().map(|f| &f.0).collect::<Vec<_>>(),
        b.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let differ: Vec<&String> = a
        .iter()
        .zip(&b)
        .filter(|((_, x), (_, y))| x != y)
        .map(|((n, _), _)| n)
        .collect();
    assert!(
        differ.is_empty(),
        "{differ:?} differ between the uninterrupted and the resumed run"
    );
    assert!(a.iter().any(|f| f.0 == "optimizer.bin"));
    // The log of the resumed run has each step once.
    let log = std::fs::read_to_string(part.join("log.jsonl")).unwrap();
    let steps: Vec<u64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4, 5, 6]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resumed_ccfm_run_ends_bit_identical_to_an_uninterrupted_one() {
    resume_matches_uninterrupted(true, &[]);
}

#[test]
fn a_streamed_run_resumes_bit_identical_and_predicts() {
    // A budget far below the data: the expression is read block by block (blocks of 8 cells,
    // a cache of a few blocks), batches come from one block, and the run still resumes exactly.
    let extra = ["data.max_memory=8KiB", "data.block_cells=8"];
    resume_matches_uninterrupted(true, &extra);
    let _turn = serial();
    let dir = tmp("streamed-log");
    let cfg = tiny_config(&dir, false, &extra);
    let mut lines = Vec::new();
    train_new::<B>(
        cfg,
        &dir.join("run"),
        &Default::default(),
        TrainOptions {
            observer: &mut |e: &TrainEvent| {
                if let TrainEvent::Message(m) = e {
                    lines.push(m.clone());
                }
            },
            stop_after: None,
            stop: None,
            cache_dir: None,
            sync: None,
        },
    )
    .unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("expression: streamed from the file")
                && l.contains("data.max_memory 8KiB")),
        "{lines:#?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resumed_scdfm_run_with_adamw_clipping_ema_warmup_is_bit_identical() {
    resume_matches_uninterrupted(
        false,
        &[
            "train.optimizer=adamw",
            "train.weight_decay=0.01",
            "train.grad_clip=1.0",
            "train.ema_decay=0.9",
            "train.warmup_steps=2",
        ],
    );
}

#[test]
fn predict_writes_predicted_and_real_cells_and_refuses_bad_requests() {
    let _turn = serial();
    let dir = tmp("predict");
    let cfg = tiny_config(&dir, true, &["train.steps=2"]);
    let device = Default::default();
    let mut say = quiet();
    let run = dir.join("run");
    train(cfg, &run, None).unwrap();
    let out = dir.join("pred.h5ad");
    let s = predict::<B>(&run, &out, &PredictOptions::default(), &device, &mut say).unwrap();
    assert!(!s.conditions.is_empty());
    let real = s.real.clone().unwrap();
    let ad = ccfm_data::AnnData::open(&out).unwrap();
    let labels = ad.obs.column("perturbation").unwrap().as_labels();
    assert_eq!(ad.n_obs(), 5 + 5 * s.conditions.len());
    assert_eq!(
        labels
            .iter()
            .filter(|l| l.as_deref() == Some("control"))
            .count(),
        5
    );
    // ccfm evaluate accepts the pair.
    let eval = ccfm_eval::evaluate(&real, &out, &Default::default()).unwrap();
    assert_eq!(eval.model.perts.len(), s.conditions.len());

    // An unseen combination of known genes predicts (no real cells: no second file).
    let table = ccfm_train::Experiment::new(
        &RunConfig::read(&run.join("config.toml"), &[]).unwrap(),
        Some(&dir.join("cache")),
        &mut say,
    )
    .unwrap();
    let singles: Vec<String> = table
        .data
        .table
        .conditions
        .iter()
        .filter(|c| c.tokens.len() == 1)
        .map(|c| c.name())
        .collect();
    let novel = format!("{}+{}", singles[1], singles[0]);
    assert!(table.data.table.condition_index(&novel).is_none());
    let out2 = dir.join("novel.h5ad");
    let s2 = predict::<B>(
        &run,
        &out2,
        &PredictOptions {
            conditions: Some(vec![novel]),
            cells_per_condition: Some(3),
            ..Default::default()
        },
        &device,
        &mut say,
    )
    .unwrap();
    assert!(s2.real.is_none());
    assert_eq!(ccfm_data::AnnData::open(&out2).unwrap().n_obs(), 6);

    // The user's own control cells: here the data file itself, read as a control pool.
    let out4 = dir.join("own_controls.h5ad");
    let s4 = predict::<B>(
        &run,
        &out4,
        &PredictOptions {
            controls: Some(table.config.data.path.clone()),
            cells_per_condition: Some(4),
            ..Default::default()
        },
        &device,
        &mut say,
    )
    .unwrap();
    assert_eq!(
        ccfm_data::AnnData::open(&out4).unwrap().n_obs(),
        4 + 4 * s4.conditions.len()
    );
    // A control file without the model's genes is refused, nothing written.
    let foreign = dir.join("foreign.h5ad");
    let obs = ccfm_data::DataFrame {
        index: vec!["c0".into(), "c1".into()],
        columns: vec![],
    };
    let var = ccfm_data::DataFrame {
        index: vec!["NOT_A".into(), "NOT_B".into()],
        columns: vec![],
    };
    ccfm_data::write_h5ad(
        &foreign,
        &ccfm_data::AnnDataOut {
            x: ccfm_data::MatrixOut::Dense(&[1.0, 0.0, 0.5, 2.0]),
            layers: &[],
            obs: &obs,
            var: &var,
            uns: &[],
        },
    )
    .unwrap();
    let out5 = dir.join("foreign_pred.h5ad");
    let e = predict::<B>(
        &run,
        &out5,
        &PredictOptions {
            controls: Some(foreign),
            ..Default::default()
        },
        &device,
        &mut say,
    )
    .unwrap_err();
    assert!(e.to_string().contains("not in its var"), "{e}");
    assert!(!out5.exists());

    // Generation is reproducible for a seed; with inference_dropout the (dropout 0.1) model
    // generates other cells.
    let x_of = |p: &Path| {
        let ad = ccfm_data::AnnData::open(p).unwrap();
        let rows: Vec<usize> = (0..ad.n_obs()).collect();
        ad.read_rows_sparse("X", &rows).unwrap().data
    };
    let again = dir.join("again.h5ad");
    predict::<B>(&run, &again, &PredictOptions::default(), &device, &mut say).unwrap();
    assert_eq!(x_of(&out), x_of(&again));
    let cfg_path = run.join("config.toml");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    assert!(text.contains("inference_dropout = false"));
    std::fs::write(
        &cfg_path,
        text.replace("inference_dropout = false", "inference_dropout = true"),
    )
    .unwrap();
    let dropped = dir.join("dropout.h5ad");
    predict::<B>(
        &run,
        &dropped,
        &PredictOptions::default(),
        &device,
        &mut say,
    )
    .unwrap();
    assert_ne!(x_of(&out), x_of(&dropped));
    std::fs::write(&cfg_path, text).unwrap();

    // An unknown gene: a clear error, nothing written.
    let out3 = dir.join("bad.h5ad");
    let e = predict::<B>(
        &run,
        &out3,
        &PredictOptions {
            conditions: Some(vec![format!("{}+NOTAGENE", singles[0])]),
            ..Default::default()
        },
        &device,
        &mut say,
    )
    .unwrap_err();
    assert!(matches!(e, TrainError::Request(_)), "{e}");
    assert!(e.to_string().contains("NOTAGENE"), "{e}");
    assert!(!out3.exists());
    // Not a run directory.
    let e = predict::<B>(&dir, &out3, &PredictOptions::default(), &device, &mut say).unwrap_err();
    assert!(matches!(e, TrainError::Run { .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_from_another_config_is_refused() {
    let _turn = serial();
    let dir = tmp("incompatible");
    let cfg = tiny_config(&dir, false, &["train.steps=2"]);
    let device = Default::default();
    let mut say = quiet();
    let run = dir.join("run");
    train(cfg, &run, None).unwrap();
    // Edit the run's config: a wider model no longer fits the weights, and the run refuses
    // the edit by name (only generation and output settings may change after training).
    let path = run.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("d_model = 16", "d_model = 24")).unwrap();
    let e = predict::<B>(
        &run,
        &dir.join("p.h5ad"),
        &PredictOptions::default(),
        &device,
        &mut say,
    )
    .unwrap_err();
    assert!(matches!(e, TrainError::Run { .. }), "{e}");
    assert!(e.to_string().contains("`model.d_model` differs"), "{e}");
    let e = resume(&run).unwrap_err();
    assert!(e.to_string().contains("`model.d_model` differs"), "{e}");
    // Weights that belong to another model are refused too, whatever the config says.
    std::fs::write(&path, &text).unwrap();
    let ck = run.join("checkpoints/step-00000002");
    let state_path = ck.join("state.json");
    let state = std::fs::read_to_string(&state_path).unwrap();
    std::fs::write(
        &state_path,
        state.replace("\"d_model\": 16", "\"d_model\": 24"),
    )
    .unwrap();
    let e = predict::<B>(
        &run,
        &dir.join("p.h5ad"),
        &PredictOptions::default(),
        &device,
        &mut say,
    )
    .unwrap_err();
    assert!(matches!(e, TrainError::Incompatible { .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_data_leaves_no_run_directory() {
    let dir = tmp("baddata");
    let bad = dir.join("not.h5ad");
    std::fs::write(&bad, b"not an hdf5 file").unwrap();
    let cfg = RunConfig::parse(
        "",
        "t",
        &[
            format!("data.path={}", bad.display()),
            "latent.enabled=false".into(),
        ],
    )
    .unwrap();
    let run = dir.join("run");
    let e = train(cfg, &run, None).unwrap_err();
    assert!(e.to_string().contains("not.h5ad"), "{e}");
    assert!(!run.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_diverging_run_stops_and_names_the_last_good_checkpoint() {
    let _turn = serial();
    let dir = tmp("nan");
    let cfg = tiny_config(
        &dir,
        false,
        &[
            "train.steps=20",
            "train.lr=1e30",
            "train.eta_min=1e30",
            "output.checkpoint_every=1",
        ],
    );
    let e = train(cfg, &dir.join("run"), None).unwrap_err();
    let TrainError::NonFinite {
        step,
        last_checkpoint,
        ..
    } = &e
    else {
        panic!("expected a non-finite loss, got {e}");
    };
    assert!(*step >= 2, "{e}");
    let last = last_checkpoint.as_ref().expect("checkpoints were written");
    assert!(last.ends_with(format!("step-{:08}", step - 1)), "{e}");
    assert!(e.to_string().contains(&format!("step {step}")), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_shipped_configs_parse_and_hold_the_reference_settings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let paths = ["data.path=x.h5ad".to_string(), "latent.scgpt_dir=s".into()];
    let norman = RunConfig::read(&root.join("norman.toml"), &paths).unwrap();
    // configs/norman.toml spells out the defaults: the reference settings.
    let mut defaults = RunConfig::parse("", "defaults", &paths).unwrap();
    defaults.model.perturbation = PerturbationChoice::Crispr;
    defaults.train.val_cells = 128;
    assert_eq!(norman, defaults);
    let combo = RunConfig::read(&root.join("combosciplex.toml"), &paths).unwrap();
    assert_eq!(combo.model.perturbation, PerturbationChoice::Drug);
    assert_eq!(
        combo.data.split,
        ccfm_train::config::SplitChoice::File("configs/combosciplex_split.json".into())
    );
    assert_eq!(
        (
            combo.model.d_model,
            combo.train.batch_size,
            combo.data.genes_per_step
        ),
        (128, 48, 1000)
    );
    let demo = RunConfig::parse(ccfm_train::demo::DEMO_CONFIG, "demo", &paths).unwrap();
    assert!(demo.train.steps <= 3000 && demo.model.d_model == 32);
}

/// Rewrite the newest checkpoint of `run` as an earlier version wrote it: the model (and EMA)
/// record in layout 1 (`ccfm_model::legacy`), no `model_layout` in state.json, and the run's
/// config.toml with the old key names.
fn downgrade(run: &Path) {
    use ccfm_model::legacy::CascadedFlowModelV1;
    use ccfm_train::checkpoint::{load_model_weights, module_bytes, FileSum};
    let device = Default::default();
    let ck = RunDir::open(run).unwrap().latest().unwrap().unwrap();
    let state = RunDir::read_state(&ck).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ck.join("state.json")).unwrap()).unwrap();
    let cfg: ccfm_model::CascadedFlowModelConfig =
        serde_json::from_value(state.model_config.clone()).unwrap();
    for file in ["model.bin", "ema.bin"] {
        let Ok(bytes) = std::fs::read(ck.join(file)) else {
            continue;
        };
        let model =
            load_model_weights(cfg.init::<Flex>(&device), bytes, &state, &device, &ck).unwrap();
        let old = module_bytes::<Flex, _>(CascadedFlowModelV1::from(model));
        json["files"][file] = serde_json::to_value(FileSum::of(&old)).unwrap();
        std::fs::write(ck.join(file), old).unwrap();
    }
    json.as_object_mut().unwrap().remove("model_layout");
    std::fs::write(ck.join("state.json"), json.to_string()).unwrap();
    let path = run.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // The old layout: gamma under [train] (the other objective keys keep their defaults).
    let (head, tail) = text.split_once("[train]\n").unwrap();
    let gamma_line = head
        .lines()
        .find(|l| l.starts_with("gamma = "))
        .unwrap()
        .to_string();
    let head = head.replace(&format!("{gamma_line}\n"), "");
    std::fs::write(&path, format!("{head}[train]\n{gamma_line}\n{tail}")).unwrap();
}

#[test]
fn runs_of_the_earlier_layout_still_predict_and_resume() {
    let _turn = serial();
    let dir = tmp("legacy");
    let cfg = tiny_config(&dir, true, &["train.ema_decay=0.9"]);
    let device = Default::default();
    let mut say = quiet();
    let run = dir.join("run");
    train(cfg.clone(), &run, Some(5)).unwrap();
    let x_of = |p: &Path| {
        let ad = ccfm_data::AnnData::open(p).unwrap();
        let rows: Vec<usize> = (0..ad.n_obs()).collect();
        ad.read_rows_sparse("X", &rows).unwrap().data
    };
    let (new, old) = (dir.join("new.h5ad"), dir.join("old.h5ad"));
    predict::<B>(&run, &new, &PredictOptions::default(), &device, &mut say).unwrap();
    downgrade(&run);
    assert!(std::fs::read_to_string(run.join("config.toml"))
        .unwrap()
        .contains("[train]\ngamma = "));
    predict::<B>(&run, &old, &PredictOptions::default(), &device, &mut say).unwrap();
    assert_eq!(x_of(&new), x_of(&old));
    // Resumed, it ends where an uninterrupted run ends.
    let resumed = resume(&run).unwrap();
    let full = train(cfg, &dir.join("full"), None).unwrap();
    assert_eq!(files(&full.checkpoint), files(&resumed.checkpoint));
    std::fs::remove_dir_all(&dir).unwrap();
}
