//! Data-parallel `ccfm train` under `mpirun` (built with `--features mpi`; Open MPI's `mpirun`
//! on the PATH): 2 ranks at global batch 2b compute what 1 process computes at batch 2b — with
//! dropout and the per-shard MMD term off (`model.dropout = 0`, `objective.gamma = 0`), the
//! loss curves and the final parameters agree to 1e-5 (Adam's eps raised, see [`sets`]) — a
//! resumed 2-rank run equals an uninterrupted one, and bad launches fail on every rank instead of hanging.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::backend::Flex;
use ccfm_testkit::run_child;
use ccfm_train::distributed::flat::params_to_vec;
use ccfm_train::predict::load_model;
use ccfm_train::{Experiment, RunDir};
use common::*;

const NO_DROPOUT_NO_MMD: [&str; 2] = ["model.dropout=0", "objective.gamma=0"];

/// `mpirun` as CI machines need it (as root, more ranks than cores), one thread per rank, and
/// a time limit: a hang fails the test instead of stalling it.
fn launcher() -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "--timeout", "300"])
        .env("RAYON_NUM_THREADS", "1");
    c
}

/// `mpirun -np N ccfm ARGS`.
fn mpirun(np: usize, args: &[&str]) -> Output {
    run_child(
        launcher()
            .args(["-np", &np.to_string()])
            .arg(env!("CARGO_BIN_EXE_ccfm"))
            .args(args),
    )
}

/// Two ranks started with different arguments (MPMD: `mpirun -np 1 A : -np 1 B`).
fn mpirun_pair(first: &[&str], second: &[&str]) -> Output {
    run_child(
        launcher()
            .args(["-np", "1"])
            .arg(env!("CARGO_BIN_EXE_ccfm"))
            .args(first)
            .args([":", "-np", "1"])
            .arg(env!("CARGO_BIN_EXE_ccfm"))
            .args(second),
    )
}

/// `train --config C --out RUN --set ...` with the tiny configuration's overrides.
fn train_args<'a>(cfg: &'a str, run: &'a str, set: &'a [String]) -> Vec<&'a str> {
    let mut a = vec!["train", "--config", cfg, "--out", run];
    for s in set {
        a.extend(["--set", s.as_str()]);
    }
    a
}

fn sets(latent: bool, steps: usize) -> Vec<String> {
    let mut v: Vec<String> = NO_DROPOUT_NO_MMD.iter().map(|s| s.to_string()).collect();
    v.push(format!("latent.enabled={latent}"));
    v.push(format!("train.steps={steps}"));
    v.push("output.log_every=1".into());
    // Adam divides by sqrt(v) + eps: a parameter whose true gradient is zero gets a gradient
    // of rounding noise (~1e-9, different for any other summation order, as between two BLAS
    // builds), which eps = 1e-8 turns into steps of ±lr. A larger eps keeps such noise small, so
    // the comparison sees the algorithm, not the rounding.
    v.push("train.epsilon=1e-4".into());
    v
}

/// (step, loss, loss_expr) of every logged step.
fn losses(run: &Path) -> Vec<(u64, f64, f64)> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["loss"].is_number())
        .map(|v| {
            let f = |k: &str| v[k].as_f64().unwrap();
            (v["step"].as_u64().unwrap(), f("loss"), f("loss_expr"))
        })
        .collect()
}

/// The final parameters of a run, flat in module order.
fn final_params(run: &Path) -> Vec<f32> {
    let dir = RunDir::open(run).unwrap();
    let config = dir.config().unwrap();
    let exp = Experiment::new(&config, None, &mut |_| {}).unwrap();
    let (model, _, _) =
        load_model::<Flex>(&exp, &dir, "latest", false, &Default::default()).unwrap();
    params_to_vec(&model)
}

fn assert_same_run(one: &Path, two: &Path) {
    let (a, b) = (losses(one), losses(two));
    assert_eq!(a.len(), b.len(), "logged steps");
    for ((s, l1, e1), (t, l2, e2)) in a.iter().zip(&b) {
        assert_eq!(s, t);
        let tol = 1e-5 * l1.abs().max(1.0);
        assert!(
            (l1 - l2).abs() <= tol && (e1 - e2).abs() <= tol,
            "step {s}: {l1} vs {l2}"
        );
    }
    let (p, q) = (final_params(one), final_params(two));
    assert_eq!(p.len(), q.len());
    let worst = p
        .iter()
        .zip(&q)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-5, "final parameters differ by up to {worst}");
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn setup(name: &str) -> (PathBuf, PathBuf) {
    let dir = tmp(name);
    let cfg = tiny_config(&dir, 6);
    (dir, cfg)
}

#[test]
fn two_ranks_equal_one_process_scdfm_and_ccfm() {
    let (dir, cfg) = setup("mpi-equal");
    for latent in [false, true] {
        let set = sets(latent, 6);
        let (one, two) = (
            dir.join(format!("one-{latent}")),
            dir.join(format!("two-{latent}")),
        );
        let o = ccfm(&train_args(path(&cfg), path(&one), &set));
        assert!(o.status.success(), "{}", text(&o));
        let o = mpirun(2, &train_args(path(&cfg), path(&two), &set));
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("2 ranks x 3 cells"), "{}", text(&o));
        assert_same_run(&one, &two);
    }
    // Streamed data (a budget far below the file; blocks of 8 cells): each rank reads its own
    // blocks, and two ranks still equal one process.
    let mut set = sets(false, 6);
    set.extend([
        "data.max_memory=8KiB".to_string(),
        "data.block_cells=8".to_string(),
    ]);
    let (one, two) = (dir.join("one-streamed"), dir.join("two-streamed"));
    let o = ccfm(&train_args(path(&cfg), path(&one), &set));
    assert!(o.status.success(), "{}", text(&o));
    let o = mpirun(2, &train_args(path(&cfg), path(&two), &set));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("streamed from the file"), "{}", text(&o));
    assert_same_run(&one, &two);
}

#[test]
fn a_resumed_two_rank_run_equals_an_uninterrupted_one() {
    let (dir, cfg) = setup("mpi-resume");
    let set = sets(true, 10);
    let (whole, parts) = (dir.join("whole"), dir.join("parts"));
    let o = mpirun(2, &train_args(path(&cfg), path(&whole), &set));
    assert!(o.status.success(), "{}", text(&o));
    let mut first = train_args(path(&cfg), path(&parts), &set);
    first.extend(["--stop-after", "5"]);
    let o = mpirun(2, &first);
    assert!(o.status.success(), "{}", text(&o));
    let o = mpirun(2, &["train", "--resume", path(&parts)]);
    assert!(o.status.success(), "{}", text(&o));
    for step in ["step-00000005", "step-00000010"] {
        assert_eq!(
            checkpoint_files(&whole, step),
            checkpoint_files(&parts, step),
            "{step}"
        );
    }
    // Another number of ranks is refused, by name.
    let o = ccfm(&["train", "--resume", path(&parts)]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("resume with the same number of ranks"),
        "{}",
        text(&o)
    );
}

#[test]
fn bad_launches_end_every_rank_with_a_message() {
    let (dir, cfg) = setup("mpi-bad");
    let set = sets(false, 4);
    // Ranks with different settings: refused on every rank.
    let run = dir.join("differ");
    let mut odd = set.clone();
    odd.push("train.lr=2e-3".into());
    let o = mpirun_pair(
        &train_args(path(&cfg), path(&run), &set),
        &train_args(path(&cfg), path(&run), &odd),
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("differ from rank 0 in the configuration or data file"),
        "{}",
        text(&o)
    );
    // Ranks told to stop after different steps.
    let stops = dir.join("stops");
    let mut early = train_args(path(&cfg), path(&stops), &set);
    early.extend(["--stop-after", "2"]);
    let o = mpirun_pair(&train_args(path(&cfg), path(&stops), &set), &early);
    assert!(!o.status.success());
    assert!(text(&o).contains("--stop-after"), "{}", text(&o));
    // A batch that does not split into equal shards.
    let mut three = set.clone();
    three.push("train.batch_size=5".into());
    let o = mpirun(2, &train_args(path(&cfg), path(&dir.join("odd")), &three));
    assert!(!o.status.success());
    assert!(
        text(&o).contains("do not split among 2 ranks"),
        "{}",
        text(&o)
    );
    // One rank fails before the others reach a collective: all end, with its message.
    let dies = dir.join("dies");
    let o = mpirun_pair(
        &train_args(path(&cfg), path(&dies), &set),
        &train_args("/nonexistent.toml", path(&dies), &set),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("/nonexistent.toml"), "{}", text(&o));
}

/// Everything on at once (dropout, MMD, EMA, validation passes on rank 0, CCFM): the 2-rank
/// run completes, logs the validation and the MMD, and its checkpoint predicts.
#[test]
fn a_full_ccfm_run_on_two_ranks_validates_and_predicts() {
    let (dir, cfg) = setup("mpi-full");
    let run = dir.join("run");
    let set: Vec<String> = [
        "latent.enabled=true",
        "model.dropout=0.1",
        "train.ema_decay=0.9",
        "train.validate_every=3",
        "train.steps=6",
        "output.log_every=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let o = mpirun(2, &train_args(path(&cfg), path(&run), &set));
    assert!(o.status.success(), "{}", text(&o));
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    assert_eq!(log.matches("\"validation\"").count(), 2, "{log}");
    assert!(log.contains("\"sync_seconds\":"), "{log}");
    let pred = dir.join("pred.h5ad");
    let o = ccfm(&["predict", "--run", path(&run), "--out", path(&pred)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(pred.exists());
}
