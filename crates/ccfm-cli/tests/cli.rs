//! The `ccfm` binary, run as a user would.

use std::process::Command;

use ccfm_testkit::{available, shared_dir};

fn ccfm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ccfm"))
        .args(args)
        .output()
        .expect("the ccfm binary runs")
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
    let out = ccfm(&["inspect", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("cells x genes: 5961 x 500"), "{stdout}");
    assert!(stdout.contains("csr_matrix float64"), "{stdout}");
}

#[test]
fn inspect_of_a_missing_file_fails_naming_it() {
    let out = ccfm(&["inspect", "/nonexistent/run/cells.h5ad"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/run/cells.h5ad"), "{stderr}");
    assert!(stderr.starts_with("error:"), "{stderr}");
}
