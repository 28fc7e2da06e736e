//! The `ccfm` binary, run as a user would.

use std::process::Command;

use ccfm_testkit::{available, shared_dir};

fn ccfm(args: &[&str]) -> std::process::Output {
    ccfm_testkit::run_child(Command::new(env!("CARGO_BIN_EXE_ccfm")).args(args))
}

#[test]
fn info_reports_backend_and_passes_self_check() {
    let out = ccfm(&["info"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("backend selected:  flex"), "{stdout}");
    assert!(stdout.contains("device self-check: ok"), "{stdout}");
}

#[test]
fn inspect_prints_the_layout_of_a_real_file() {
    let path = shared_dir().join("data/perturbench_devel.h5ad");
    if !available(&path, "inspect_prints_the_layout_of_a_real_file") {
        return;
    }
    let p = path.to_str().unwrap();
    // The file mixes two datasets: the layout prints, then validation asks for a choice.
    let out = ccfm(&["inspect", p]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stdout.contains("cells x genes: 5961 x 500"), "{stdout}");
    assert!(stdout.contains("csr_matrix float64"), "{stdout}");
    assert!(stderr.contains("--dataset"), "{stderr}");
    let out = ccfm(&["inspect", p, "--dataset", "norman19", "--allow-unmeasured"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("schema: perturbench"), "{stdout}");
    assert!(
        stdout.contains("cells used: 3375 (100 control); conditions: 18 singles, 15 doubles"),
        "{stdout}"
    );
}

#[test]
fn synth_refuses_sizes_out_of_range() {
    let out =
        std::env::temp_dir().join(format!("ccfm-cli-synth-range-{}.h5ad", std::process::id()));
    for (cells, genes) in [
        ("10", "500"),
        ("18446744073709551615", "500"),
        ("5000", "10"),
        ("5000", "1000000000000"),
    ] {
        let o = ccfm(&[
            "synth",
            "--cells",
            cells,
            "--genes",
            genes,
            "--out",
            out.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{cells} {genes}: {stderr}");
        assert!(stderr.contains("1000 to 1,000,000,000 cells"), "{stderr}");
        assert!(!stderr.contains("panicked") && !out.exists(), "{stderr}");
    }
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    // The reader is gone before the first line is written (as `ccfm ... | head` once head has
    // what it wants): the process ends by SIGPIPE, as Unix tools do, not by a panic. The read
    // end is closed before the process starts, so no write can succeed.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(env!("CARGO_BIN_EXE_ccfm"))
        .args(["completions", "bash"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(13), "{:?} {stderr}", out.status);
}

#[test]
fn inspect_of_a_missing_file_fails_naming_it() {
    let out = ccfm(&["inspect", "/nonexistent/run/cells.h5ad"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/run/cells.h5ad"), "{stderr}");
    assert!(stderr.starts_with("error:"), "{stderr}");
}

#[test]
fn hvg_equals_scanpy_on_the_real_file() {
    let path = shared_dir().join("data/perturbench_devel.h5ad");
    if !available(&path, "hvg_equals_scanpy_on_the_real_file") {
        return;
    }
    let fixture = ccfm_testkit::workspace_root().join("tests/fixtures/hvg/perturbench_seurat.json");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    for (subset, dataset) in [("norman19", Some("norman19")), ("all", None)] {
        for (n, sel) in expected["subsets"][subset]["selections"]
            .as_object()
            .unwrap()
        {
            // Loaded, and read in blocks of rows under a budget too small to load it.
            for budget in ["auto", "1KiB"] {
                let mut args = vec!["hvg", path.to_str().unwrap(), "--n-top", n.as_str()];
                args.extend(["--max-memory", budget]);
                if let Some(d) = dataset {
                    args.extend(["--dataset", d]);
                }
                let out = ccfm(&args);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect();
                let want: Vec<String> = sel["selected"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| g.as_str().unwrap().to_string())
                    .collect();
                assert_eq!(got, want, "{subset} n_top={n} max_memory={budget}");
            }
        }
    }
}

#[test]
fn synth_writes_files_that_inspect_reads_back() {
    let dir = std::env::temp_dir().join(format!("ccfm-cli-synth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (preset, schema, kind) in [
        ("norman", "gears", "gene"),
        ("combosciplex", "combosciplex", "drug"),
    ] {
        let file = dir.join(format!("{preset}.h5ad"));
        let f = file.to_str().unwrap();
        let out = ccfm(&[
            "synth", "--preset", preset, "--size", "tiny", "--seed", "5", "--out", f,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("additive baseline"), "{stdout}");
        let out = ccfm(&["inspect", f, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["schema"], schema);
        assert_eq!(v["perturbation_kind"], kind);
        assert_eq!(v["n_vars"], 50);
        assert!(v["control_cells"].as_u64().unwrap() > 0);
        assert!(v["doubles"].as_u64().unwrap() > 0);
        assert_eq!(v["layers"], serde_json::json!(["counts"]));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn inspect_fails_on_each_kind_of_bad_input() {
    use ccfm_data::{write_h5ad, AnnDataOut, Column, DataFrame, MatrixOut};
    let dir = std::env::temp_dir().join(format!("ccfm-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, conditions: &[&str], genes: &[&str], x: &[f32]| {
        let _turn = ccfm_testkit::fork_lock();
        let obs = DataFrame {
            index: (0..conditions.len()).map(|i| format!("c{i}")).collect(),
            columns: vec![(
                "condition".into(),
                Column::Strings(conditions.iter().map(|s| s.to_string()).collect()),
            )],
        };
        let var = DataFrame {
            index: genes.iter().map(|s| s.to_string()).collect(),
            columns: vec![],
        };
        let path = dir.join(name);
        write_h5ad(
            &path,
            &AnnDataOut {
                x: MatrixOut::Dense(x),
                layers: &[],
                obs: &obs,
                var: &var,
                uns: &[],
            },
        )
        .unwrap();
        path
    };
    let conds = ["ctrl", "A+ctrl", "A+B", "B+ctrl"];
    let x: Vec<f32> = (0..8).map(|i| (i % 3) as f32 * 0.7).collect();
    let mut nan = x.clone();
    nan[3] = f32::INFINITY;
    let mut neg = x.clone();
    neg[5] = -1.0;
    let cases = [
        (write("ok.h5ad", &conds, &["A", "B"], &x), None),
        (
            write(
                "no_ctrl.h5ad",
                &["A+ctrl", "A+B", "B+ctrl", "A+B"],
                &["A", "B"],
                &x,
            ),
            Some("no control cells"),
        ),
        (
            write(
                "typo.h5ad",
                &["ctrl", "A+ctrl", "A+BB", "B+ctrl"],
                &["A", "B"],
                &x,
            ),
            Some("BB"),
        ),
        (
            write("inf.h5ad", &conds, &["A", "B"], &nan),
            Some("non-finite"),
        ),
        (
            write("neg.h5ad", &conds, &["A", "B"], &neg),
            Some("negative"),
        ),
        (
            write("dup.h5ad", &conds, &["A", "A"], &x),
            Some("duplicate gene"),
        ),
    ];
    for (path, problem) in cases {
        let out = ccfm(&["inspect", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match problem {
            None => assert!(out.status.success(), "{stderr}"),
            Some(p) => {
                assert!(!out.status.success(), "{} accepted", path.display());
                assert!(
                    stderr.contains(p)
                        && stderr.contains(path.file_name().unwrap().to_str().unwrap()),
                    "{stderr}"
                );
            }
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn evaluate_writes_the_tables_and_refuses_mismatched_files() {
    let dir = ccfm_testkit::workspace_root().join("tests/fixtures/celleval");
    let (real, pred) = (dir.join("tiny_real.h5ad"), dir.join("tiny_pred.h5ad"));
    let out = std::env::temp_dir().join(format!("ccfm-cli-eval-{}", std::process::id()));
    let o = ccfm(&[
        "evaluate",
        "--real",
        real.to_str().unwrap(),
        "--pred",
        pred.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("evaluated 4 perturbations x 6 genes"),
        "{stdout}"
    );
    for f in [
        "results.csv",
        "agg_results.csv",
        "summary.csv",
        "report.html",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    // Evaluating against a file whose perturbation column is missing fails, naming it.
    let o = ccfm(&[
        "evaluate",
        "--real",
        real.to_str().unwrap(),
        "--pred",
        pred.to_str().unwrap(),
        "--pert-col",
        "target_gene",
        "--out",
        out.join("again").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("tiny_real.h5ad") && stderr.contains("target_gene"),
        "{stderr}"
    );
    assert!(!out.join("again").exists(), "nothing written on failure");
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn embed_reproduces_scgpt_cell_embeddings_and_refuses_foreign_genes() {
    let fx = ccfm_testkit::workspace_root().join("tests/fixtures/scgpt");
    let out =
        std::env::temp_dir().join(format!("ccfm-cli-embed-{}.safetensors", std::process::id()));
    let o = ccfm(&[
        "embed",
        "--scgpt",
        fx.join("model").to_str().unwrap(),
        "--input",
        fx.join("embed.h5ad").to_str().unwrap(),
        "--gene-col",
        "feature_name",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("18 of 20 genes"), "{stdout}");
    let got = ccfm_testkit::Fixture::load(
        out.parent().unwrap(),
        out.file_stem().unwrap().to_str().unwrap(),
    );
    let want = ccfm_testkit::Fixture::load(&fx, "embed");
    ccfm_testkit::assert_close(
        "ccfm embed cell_embedding",
        got.f32s("cell_embedding"),
        want.f32s("cell_embedding"),
        1e-5,
    );
    assert_eq!(got.shape("gene_features"), [5, 20, 32]);
    std::fs::remove_file(&out).unwrap();
    // The var index of that file holds the same symbols; a column of other names shares none.
    let o = ccfm(&[
        "embed",
        "--scgpt",
        fx.join("model").to_str().unwrap(),
        "--input",
        ccfm_testkit::workspace_root()
            .join("tests/fixtures/celleval/tiny_real.h5ad")
            .to_str()
            .unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("tiny_real.h5ad") && stderr.contains("vocabulary"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing written");
}

#[test]
fn every_subcommand_help_ends_with_a_worked_example() {
    let subcommands = [
        "demo",
        "train",
        "predict",
        "info",
        "inspect",
        "hvg",
        "evaluate",
        "embed",
        "synth",
        "report",
        "completions",
    ];
    for sub in subcommands {
        let o = ccfm(&[sub, "--help"]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{sub}: {stdout}");
        let tail: Vec<&str> = stdout.trim_end().lines().rev().take(2).collect();
        assert_eq!(tail[1], "Example:", "{sub} --help:\n{stdout}");
        assert!(
            tail[0].starts_with(&format!("  ccfm {sub}")),
            "{sub} --help ends with: {}",
            tail[0]
        );
    }
    // The top-level help lists every subcommand.
    let top = String::from_utf8_lossy(&ccfm(&["--help"]).stdout).to_string();
    for sub in subcommands {
        assert!(top.contains(&format!("  {sub} ")), "{sub} in:\n{top}");
    }
}

#[test]
fn completions_are_printed_for_each_shell_and_an_unknown_shell_is_refused() {
    for (shell, marker) in [
        ("bash", "_ccfm()"),
        ("zsh", "#compdef ccfm"),
        ("fish", "complete -c ccfm"),
    ] {
        let o = ccfm(&["completions", shell]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{shell}");
        assert!(stdout.contains(marker), "{shell}: {marker} missing");
        assert!(
            stdout.contains("report") && stdout.contains("conditions"),
            "{shell}"
        );
    }
    let o = ccfm(&["completions", "tcsh"]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("bash") && stderr.contains("zsh"),
        "{stderr}"
    );
}

#[test]
fn a_bad_binning_choice_lists_the_valid_ones() {
    let o = ccfm(&[
        "embed",
        "--scgpt",
        "m",
        "--input",
        "i.h5ad",
        "--out",
        "o.st",
        "--binning",
        "middle",
    ]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("middle") && stderr.contains("left") && stderr.contains("random"),
        "{stderr}"
    );
}

#[test]
fn bench_prints_the_reference_figures_as_one_json_line() {
    let out = ccfm(&["bench", "--config", "demo_ccfm", "--json", "--reps", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(v["config"], "DEMO_CCFM");
    for key in ["train_step_s", "infer_fwd_s", "generate_s"] {
        let s = v[key].as_f64().unwrap_or(f64::NAN);
        assert!(s.is_finite() && s > 0.0, "{key}: {v}");
    }
    assert!(v["threads"].as_u64().is_some_and(|n| n >= 1), "{v}");
    // SMALL has no generation figure; a wrong name lists the configurations.
    let out = ccfm(&["bench", "--config", "SMAL"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("DEMO, DEMO_CCFM, SMALL"), "{stderr}");
}
