//! What the CLI tests share: running the binary, temporary directories, a tiny run
//! configuration over synthetic data.
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use burn::backend::Flex;
use ccfm_data::{Preset, Size, SynthConfig};
use ccfm_testkit::{fork_lock, run_child};
use ccfm_train::demo::write_inputs;
use serde_json::json;

/// Start `cmd` while no test thread of this process writes a file (see [`fork_lock`]).
pub fn spawn(cmd: &mut Command) -> Child {
    let _turn = fork_lock();
    cmd.spawn().expect("the ccfm binary runs")
}

pub fn ccfm(args: &[&str]) -> Output {
    run_child(Command::new(env!("CARGO_BIN_EXE_ccfm")).args(args))
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ccfm-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny scDFM config file over synthetic data written into `dir`.
pub fn tiny_config(dir: &Path, steps: usize) -> PathBuf {
    let _turn = fork_lock();
    let synth = SynthConfig {
        preset: Preset::Norman,
        size: Size::Tiny,
        seed: 5,
    };
    let inputs = write_inputs::<Flex>(
        dir,
        &synth,
        &json!({"embsize": 16, "nheads": 2, "d_hid": 16, "nlayers": 1, "n_layers_cls": 1,
                "dropout": 0.0, "pad_token": "<pad>", "pad_value": -2}),
        &Default::default(),
    )
    .unwrap();
    let cfg = format!(
        r#"[data]
path = "{}"
n_top_genes = 0
genes_per_step = 16
fold = 0
coexpression_top_k = 5
[model]
d_model = 16
nhead = 2
nlayers = 1
[latent]
scgpt_dir = "{}"
bottleneck_dim = 8
dh_depth = 1
norm_warmup_batches = 3
[train]
steps = {steps}
batch_size = 6
lr = 1e-3
eta_min = 1e-5
validate_every = 0
val_cells = 4
[sample]
latent_time_points = 3
expr_time_points = 3
cells_per_condition = 5
n_genes = 0
[output]
checkpoint_every = 5
log_every = 5
"#,
        inputs.data.display(),
        inputs.scgpt_dir.display()
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

pub fn checkpoint_files(run: &Path, name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = run.join("checkpoints").join(name);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
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
