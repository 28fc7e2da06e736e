//! `ccfm demo` end to end on tiny data: both presets, several models at once, the same
//! results as one at a time.

use burn::backend::{Autodiff, Flex};
use ccfm_data::{Preset, Size};
use ccfm_train::demo::{run_demo, DemoOptions};

type B = Autodiff<Flex>;

fn options(out: std::path::PathBuf, jobs: usize) -> DemoOptions {
    let set = [
        "train.steps=4",
        "train.batch_size=8",
        "train.val_cells=8",
        "sample.cells_per_condition=8",
        "sample.batch_size=8",
        "sample.latent_time_points=3",
        "sample.expr_time_points=3",
        "output.checkpoint_every=4",
        "output.log_every=2",
        "data.n_top_genes=0",
        "data.genes_per_step=16",
        "data.coexpression_top_k=5",
    ];
    DemoOptions {
        out,
        seed: 2,
        presets: vec![Preset::Norman, Preset::ComboSciPlex],
        size: Size::Tiny,
        overrides: set.iter().map(|s| s.to_string()).collect(),
        cache_dir: None,
        jobs,
    }
}

#[test]
fn the_demo_runs_both_presets_and_its_results_do_not_depend_on_the_job_count() {
    let root = std::env::temp_dir().join(format!("ccfm-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let device = Default::default();
    let mut lines = Vec::new();
    let mut say = |l: String| lines.push(l);
    let two = run_demo::<B>(&options(root.join("two"), 2), &device, &mut say).unwrap();
    let one = run_demo::<B>(&options(root.join("one"), 1), &device, &mut say).unwrap();
    assert!(lines.iter().any(|l| l.contains("2 at a time")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("[combosciplex scdfm]")));
    let read = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let (a, b) = (read(&two.json), read(&one.json));
    assert_eq!(a, b, "two jobs at a time give what one at a time gives");
    for preset in ["norman", "combosciplex"] {
        let p = &a["presets"][preset];
        for method in ["ccfm", "scdfm", "control", "mean", "additive", "ceiling"] {
            let m = &p["methods"][method];
            for key in ["pearson_delta", "mse", "discrimination_score_l1"] {
                // null only where a metric is undefined: `control` predicts no effect at all,
                // which has no correlation on the tiny data.
                let undefined_ok = (method, key) == ("control", "pearson_delta");
                assert!(
                    m[key].is_number() || (undefined_ok && m[key].is_null()),
                    "{preset} {method} {key}: {p}"
                );
            }
            assert!(m["by_interaction"].is_object(), "{preset} {method}");
        }
        // The guard rails need two conditions (the tiny Norman-like data tests one).
        let guard = &p["guard_rails"]["ccfm"];
        assert_eq!(
            guard["own_nearest"].is_number(),
            p["test_conditions"].as_u64().unwrap() > 1,
            "{p}"
        );
        assert!(p["shortfalls"].is_array());
        assert!(root.join("two").join(preset).join("report.html").exists());
    }
    assert_eq!(two.presets.len(), 2);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_demo_refuses_a_preset_given_twice_and_a_latent_override() {
    let root = std::env::temp_dir().join(format!("ccfm-demo-refuse-{}", std::process::id()));
    let device = Default::default();
    let mut twice = options(root.clone(), 1);
    twice.presets = vec![Preset::Norman, Preset::Norman];
    let mut latent = options(root.clone(), 1);
    latent.overrides.push("latent.enabled=false".into());
    for (opts, needle) in [(twice, "given twice"), (latent, "latent.enabled")] {
        let e = run_demo::<B>(&opts, &device, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
    assert!(
        !root.exists(),
        "refused before the output directory is made"
    );
}
