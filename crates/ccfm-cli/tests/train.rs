//! `ccfm train`, `ccfm predict` and `ccfm --version`, run as a user would.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ccfm_testkit::run_child;
use serde_json::json;

mod common;

use common::*;

#[test]
fn version_lists_the_compiled_backends() {
    let o = ccfm(&["--version"]);
    assert!(o.status.success());
    let t = text(&o);
    assert!(
        t.contains("backends: flex") && t.contains("selected: flex"),
        "{t}"
    );
    let o = ccfm(&["--device", "1", "train", "--resume", "/nonexistent"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("only device 0"), "{}", text(&o));
}

#[test]
fn a_config_typo_fails_with_a_suggestion_and_leaves_nothing() {
    let dir = tmp("typo");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[data]\npath = \"x.h5ad\"\n[train]\nstepz = 3\n").unwrap();
    let run = dir.join("run");
    let o = ccfm(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("train.stepz") && t.contains("did you mean `train.steps`"),
        "{t}"
    );
    assert!(!run.exists());
    // The same through --set.
    std::fs::write(&cfg, "[data]\npath = \"x.h5ad\"\n").unwrap();
    let o = ccfm(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--set",
        "latent.enabeld=false",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("latent.enabled"), "{}", text(&o));
    assert!(!run.exists());
    // A run directory that is not one.
    let o = ccfm(&[
        "predict",
        "--run",
        dir.to_str().unwrap(),
        "--out",
        dir.join("p.h5ad").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("not a usable run directory"),
        "{}",
        text(&o)
    );
    assert!(!dir.join("p.h5ad").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_killed_run_resumes_to_the_checkpoint_of_an_uninterrupted_run() {
    let dir = tmp("kill");
    let steps = 60;
    let cfg = tiny_config(&dir, steps);
    let cfg = cfg.to_str().unwrap();
    let full = dir.join("full");
    let o = ccfm(&["train", "--config", cfg, "--out", full.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));

    let part = dir.join("part");
    let mut child = spawn(
        Command::new(env!("CARGO_BIN_EXE_ccfm"))
            .args(["train", "--config", cfg, "--out", part.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let latest = part.join("checkpoints/latest");
    let started = Instant::now();
    loop {
        let name = std::fs::read_to_string(&latest).unwrap_or_default();
        if name.as_str() >= "step-00000010" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let at_kill = std::fs::read_to_string(&latest).unwrap();
    assert!(
        status.code().is_none() && at_kill.as_str() < "step-00000060",
        "the run finished before it could be killed ({at_kill}); make it longer"
    );
    let o = ccfm(&["train", "--resume", part.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("resumed at step"), "{}", text(&o));
    let (a, b) = (
        checkpoint_files(&full, "step-00000060"),
        checkpoint_files(&part, "step-00000060"),
    );
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            x == y,
            "{name} differs after kill + resume (killed at {at_kill})"
        );
    }

    // Predict with the run, then evaluate the prediction.
    let pred = dir.join("pred.h5ad");
    let o = ccfm(&[
        "predict",
        "--run",
        part.to_str().unwrap(),
        "--out",
        pred.to_str().unwrap(),
        "--cells-per-condition",
        "6",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let real = dir.join("pred_real.h5ad");
    assert!(real.exists());
    let eval = dir.join("eval");
    let o = ccfm(&[
        "evaluate",
        "--real",
        real.to_str().unwrap(),
        "--pred",
        pred.to_str().unwrap(),
        "--out",
        eval.to_str().unwrap(),
        "--log",
        part.join("log.jsonl").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(eval.join("results.csv").exists());
    // An unknown condition: an error naming it, no output.
    let bad = dir.join("bad.h5ad");
    let o = ccfm(&[
        "predict",
        "--run",
        part.to_str().unwrap(),
        "--out",
        bad.to_str().unwrap(),
        "--conditions",
        "NOTAGENE+ALSONOT",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("NOTAGENE"), "{}", text(&o));
    assert!(!bad.exists());
    // Three perturbations: the model has two slots, so it is refused rather than truncated.
    let o = ccfm(&[
        "predict",
        "--run",
        part.to_str().unwrap(),
        "--out",
        bad.to_str().unwrap(),
        "--conditions",
        "A+B+C",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("`A+B+C` names 3 perturbations; the model takes at most 2"),
        "{}",
        text(&o)
    );
    assert!(!bad.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn report_compares_runs_on_one_page_and_predict_shows_progress_only_on_request() {
    let dir = tmp("report");
    let cfg = tiny_config(&dir, 10);
    let cfg = cfg.to_str().unwrap();
    let (a, b) = (dir.join("ccfm"), dir.join("scdfm"));
    let o = ccfm(&["train", "--config", cfg, "--out", a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = ccfm(&[
        "train",
        "--config",
        cfg,
        "--out",
        b.to_str().unwrap(),
        "--set",
        "latent.enabled=false",
    ]);
    assert!(o.status.success(), "{}", text(&o));

    // Piped stderr: no bar. CCFM_PROGRESS=always: a bar that reaches every condition.
    let pred = dir.join("pred.h5ad");
    let args = [
        "predict",
        "--run",
        b.to_str().unwrap(),
        "--out",
        pred.to_str().unwrap(),
    ];
    let o = ccfm(&args);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stderr).contains('\r'));
    let o = run_child(
        Command::new(env!("CARGO_BIN_EXE_ccfm"))
            .args(args)
            .env("CCFM_PROGRESS", "always"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("\r\x1b[2Kpredicting ["), "{stderr}");
    let last = stderr.rsplit('\r').next().unwrap();
    assert!(last.contains("[########################]"), "{last}");

    // Both runs and the baselines on one page, with curves, settings and interaction types.
    let out = dir.join("report");
    let o = ccfm(&[
        "report",
        "--runs",
        &format!("{},{}", a.display(), b.display()),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    // (The tiny data's one test double has an untrained single: no additive row.)
    for method in ["ccfm", "scdfm", "control", "mean", "ceiling"] {
        assert!(stdout.contains(method), "{method} in {stdout}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for needle in [
        "<td>ccfm</td>",
        "<td>scdfm</td>",
        "<td>mean</td>",
        "<td>ceiling</td>",
        "Which method wins",
        "Mean over all perturbations",
        "Mean over interaction: ",
        "training loss by step",
        "Run settings",
        "CCFM (scGPT latent stream)",
        "scDFM (no latent stream)",
    ] {
        assert!(html.contains(needle), "report.html lacks {needle}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("comparison.json")).unwrap())
            .unwrap();
    assert!(json["all"]["ccfm"]["pearson_delta"].is_number(), "{json}");
    assert!(json["all"]["mean"]["mse"].is_number(), "{json}");
    for f in [
        "eval/ccfm/report.html",
        "eval/scdfm/report.html",
        "predictions/ccfm.h5ad",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }

    // A directory that is not a run: an error naming it, and nothing written.
    let nothing = dir.join("nothing");
    let o = ccfm(&[
        "report",
        "--runs",
        &format!("{},{}", a.display(), dir.display()),
        "--out",
        nothing.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("not a usable run directory"),
        "{}",
        text(&o)
    );
    assert!(!nothing.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Wait until `run/log.jsonl` has logged step `step` or later.
fn wait_for_step(run: &Path, step: u64, child: &mut Child) {
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap_or_default();
        let last = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["step"].as_u64())
            .max()
            .unwrap_or(0);
        if last >= step {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before step {step}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "step {step} never came"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigterm_checkpoints_the_step_in_progress_and_the_resumed_run_matches() {
    let dir = tmp("sigterm");
    let steps = 400;
    let cfg = tiny_config(&dir, steps);
    let cfg = cfg.to_str().unwrap();
    // Checkpoints only at the end, so the one after the signal is the signal's own.
    let set = ["--set", "output.checkpoint_every=100000"];
    let full = dir.join("full");
    let o = ccfm(
        &[
            &["train", "--config", cfg, "--out", full.to_str().unwrap()],
            &set[..],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", text(&o));

    let part = dir.join("part");
    let mut child = spawn(
        Command::new(env!("CARGO_BIN_EXE_ccfm"))
            .args(["train", "--config", cfg, "--out", part.to_str().unwrap()])
            .args(set)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    wait_for_step(&part, 6, &mut child);
    // While it runs, a second `ccfm train` on the run is refused and changes nothing.
    let o = ccfm(&["train", "--resume", part.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("is in use by another `ccfm train`"),
        "{}",
        text(&o)
    );

    let pid = child.id().to_string();
    let kill = run_child(Command::new("kill").args(["-TERM", &pid]));
    assert!(kill.status.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", text(&o));
    let t = text(&o);
    let stopped: usize = t
        .split("stopped at step ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `stopped at step N` in {t}"));
    assert!(
        t.contains(&format!(
            "by SIGTERM; resume with `ccfm train --resume {}`",
            part.display()
        )),
        "{t}"
    );
    assert!((6..steps).contains(&stopped), "stopped at {stopped}");
    let latest = std::fs::read_to_string(part.join("checkpoints/latest")).unwrap();
    assert_eq!(latest, format!("step-{stopped:08}"));

    // The lock went with the process: resuming works, and ends where the uninterrupted run did.
    let o = ccfm(&["train", "--resume", part.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let name = format!("step-{steps:08}");
    let (a, b) = (
        checkpoint_files(&full, &name),
        checkpoint_files(&part, &name),
    );
    assert_eq!(a.len(), b.len());
    for ((file, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            x == y,
            "{file} differs after SIGTERM at step {stopped} + resume"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_that_cannot_be_written_leaves_the_previous_one_and_latest() {
    let dir = tmp("full-disk");
    let cfg = tiny_config(&dir, 10);
    let run = dir.join("run");
    let o = ccfm(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--stop-after",
        "5",
        "--set",
        "output.log_every=1000",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let first = run.join("checkpoints/step-00000005");
    let before = checkpoint_files(&run, "step-00000005");
    // A file-size limit below the size of the weights: the next checkpoint cannot be written.
    let weights = std::fs::metadata(first.join("model.bin")).unwrap().len();
    let limit_kib = (weights / 1024 / 2).max(4);
    let o = run_child(
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                "ulimit -f {limit_kib}; exec \"$0\" train --resume \"$1\""
            ))
            .arg(env!("CARGO_BIN_EXE_ccfm"))
            .arg(&run),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("could not write the checkpoint of step 10"),
        "{t}"
    );
    assert!(t.contains("File too large"), "{t}");
    assert!(t.contains("step-00000005 is intact"), "{t}");
    assert_eq!(
        std::fs::read_to_string(run.join("checkpoints/latest")).unwrap(),
        "step-00000005"
    );
    assert_eq!(checkpoint_files(&run, "step-00000005"), before);
    let left: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        left.iter().all(|n| n == "latest" || n == "step-00000005"),
        "{left:?}"
    );
    // With room again, the run resumes from the intact checkpoint and finishes.
    let o = ccfm(&["train", "--resume", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("resumed at step 5"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_damaged_checkpoint_is_refused_by_name() {
    let dir = tmp("damaged");
    let cfg = tiny_config(&dir, 5);
    let run = dir.join("run");
    let o = ccfm(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let ck = run.join("checkpoints/step-00000005");
    let pred = dir.join("p.h5ad");
    let predict = [
        "predict",
        "--run",
        run.to_str().unwrap(),
        "--out",
        pred.to_str().unwrap(),
        "--cells-per-condition",
        "2",
    ];
    for (file, damage) in [
        ("model.bin", "flip"),
        ("optimizer.bin", "truncate"),
        ("state.json", "step"),
        ("state.json", "position"),
    ] {
        let path = ck.join(file);
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        match damage {
            "flip" => {
                let i = bad.len() / 2;
                bad[i] ^= 0x10;
            }
            "truncate" => bad.truncate(bad.len() / 3),
            "step" => {
                let s = String::from_utf8(bad).unwrap();
                bad = s.replace("\"step\": 5", "\"step\": 4").into_bytes();
            }
            _ => {
                // An unreadable extractor position (was silently ignored: an inexact resume).
                let mut v: serde_json::Value = serde_json::from_slice(&bad).unwrap();
                v["extractor_position"] = json!("x12");
                bad = serde_json::to_vec_pretty(&v).unwrap();
            }
        }
        std::fs::write(&path, &bad).unwrap();
        let o = ccfm(&["train", "--resume", run.to_str().unwrap()]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{file}: {t}");
        let last = t.trim_end().lines().last().unwrap();
        assert!(
            last.starts_with("error: ") && last.contains(file),
            "{file}: {last}"
        );
        assert!(last.contains("damaged checkpoint"), "{file}: {last}");
        if file != "optimizer.bin" && damage != "position" {
            let o = ccfm(&predict);
            assert_eq!(o.status.code(), Some(1), "{file}: {}", text(&o));
            assert!(text(&o).contains("damaged checkpoint"), "{}", text(&o));
            assert!(!pred.exists());
        }
        std::fs::write(&path, &good).unwrap();
    }
    let o = ccfm(&predict);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Started by an MPI launcher with several ranks, a build without MPI refuses instead of
/// letting every rank train alone on the same directory.
#[cfg(not(feature = "mpi"))]
#[test]
fn several_ranks_without_mpi_are_refused() {
    let dir = tmp("no-mpi");
    let cfg = tiny_config(&dir, 2);
    let run = dir.join("run");
    let o = run_child(
        Command::new(env!("CARGO_BIN_EXE_ccfm"))
            .args(["train", "--config", cfg.to_str().unwrap()])
            .args(["--out", run.to_str().unwrap()])
            .env("OMPI_COMM_WORLD_SIZE", "2")
            .env("OMPI_COMM_WORLD_RANK", "1"),
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("rank 1 of 2") && t.contains("install.sh --mpi"),
        "{t}"
    );
    assert!(!run.exists());
}
