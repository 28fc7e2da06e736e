//! An evaluation run end to end on synthetic data: files in, cell-eval-layout tables, the
//! baselines with seen groups, and a report with its plots.

use std::path::{Path, PathBuf};

use ccfm_data::synth::generate;
use ccfm_data::{
    prepare, write_h5ad, AnnDataOut, Column, DataFrame, MatrixOut, PrepareOptions, PreparedData,
    Preset, Size, Split, SplitConfig, SynthConfig,
};
use ccfm_eval::{evaluate, EvaluateOptions, Profile};

fn write_cells(path: &Path, data: &PreparedData, cells: &[usize], x: &[f32]) {
    let labels: Vec<String> = cells
        .iter()
        .map(|&c| data.table.conditions[data.table.cell_condition[c]].name())
        .collect();
    let obs = DataFrame {
        index: (0..cells.len()).map(|i| format!("c{i}")).collect(),
        columns: vec![("perturbation".into(), Column::Strings(labels))],
    };
    let var = DataFrame {
        index: data.genes.clone(),
        columns: vec![],
    };
    write_h5ad(
        path,
        &AnnDataOut {
            x: MatrixOut::Dense(x),
            layers: &[],
            obs: &obs,
            var: &var,
            uns: &[],
        },
    )
    .unwrap();
}

fn setup(dir: &Path) -> (PathBuf, PathBuf, PathBuf, Split) {
    let synth = generate(&SynthConfig {
        preset: Preset::Norman,
        size: Size::Tiny,
        seed: 2,
    });
    let src = dir.join("synth.h5ad");
    synth.write(&src).unwrap();
    let data = prepare(&src, &PrepareOptions::default()).unwrap();
    let split = Split::make(&data.table, &SplitConfig::default(), &src).unwrap();
    let g = data.n_genes();
    let by = data.table.cells_by_condition();
    let rows_of = |names: &[String]| -> Vec<usize> {
        let mut r: Vec<usize> = names
            .iter()
            .flat_map(|n| by[data.table.condition_index(n).unwrap()].clone())
            .collect();
        r.extend(&by[0]);
        r
    };
    let gather = |rows: &[usize]| -> Vec<f32> { data.rows(rows).expect("in memory") };
    let test_rows = rows_of(&split.test);
    let train_rows = rows_of(&split.train);
    let real_x = gather(&test_rows);
    // A stand-in "model": the real cells with a small deterministic perturbation.
    let pred_x: Vec<f32> = real_x
        .iter()
        .enumerate()
        .map(|(i, &v)| (v + ((i * 7919 % 17) as f32 - 8.0) * 0.01).max(0.0))
        .collect();
    let (real, pred, train) = (
        dir.join("real.h5ad"),
        dir.join("pred.h5ad"),
        dir.join("train.h5ad"),
    );
    write_cells(&real, &data, &test_rows, &real_x);
    write_cells(&pred, &data, &test_rows, &pred_x);
    write_cells(&train, &data, &train_rows, &gather(&train_rows));
    assert_eq!(g, 50);
    (real, pred, train, split)
}

#[test]
fn evaluation_writes_celleval_tables_baselines_and_a_report() {
    let dir = std::env::temp_dir().join(format!("ccfm-evaluate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (real, pred, train, split) = setup(&dir);
    let log = dir.join("train.jsonl");
    std::fs::write(&log, "{\"step\": 0, \"loss\": 2.0}\n{\"step\": 10, \"loss\": 1.1}\n{\"step\": 20, \"loss\": 0.7}\n").unwrap();
    let opts = EvaluateOptions {
        train: Some(train),
        loss_log: Some(log),
        ..Default::default()
    };
    let e = evaluate(&real, &pred, &opts).unwrap();
    assert_eq!(e.model.perts.len(), split.test.len());
    let names: Vec<&str> = e.baselines.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["control", "mean", "additive", "ceiling"]);
    // The groups are the split's seen labels.
    for (p, g) in &e.groups {
        assert_eq!(*g, split.group_of(p), "{p}");
    }
    // The near-copy model beats the identity baseline; the ceiling is finite.
    let pd = e.summary("pearson_delta", None);
    let get = |n: &str| pd.iter().find(|(m, _)| m == n).unwrap().1.unwrap();
    assert!(get("model") > 0.95, "{pd:?}");
    assert!(get("model") > get("control"), "{pd:?}");
    assert!(get("ceiling").is_finite());

    let out = dir.join("eval");
    let report = e.write(&out).unwrap();
    for f in [
        "results.csv",
        "agg_results.csv",
        "summary.csv",
        "report.html",
        "additive_results.csv",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let results = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let header = results.lines().next().unwrap();
    assert!(
        header.starts_with("perturbation,overlap_at_N,overlap_at_50"),
        "{header}"
    );
    assert_eq!(results.lines().count(), 1 + split.test.len());
    let agg = std::fs::read_to_string(out.join("agg_results.csv")).unwrap();
    let rows: Vec<&str> = agg
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(rows, ccfm_eval::output::AGG_ROWS);
    let html = std::fs::read_to_string(report).unwrap();
    assert!(html.contains("<svg") && html.contains("training loss by step"));
    assert!(
        html.contains("Mean over seen2"),
        "doubles grouped by seen count"
    );
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));

    // The minimal profile computes cell-eval's minimal metrics only.
    let m = evaluate(
        &real,
        &pred,
        &EvaluateOptions {
            profile: Profile::Minimal,
            ..Default::default()
        },
    )
    .unwrap();
    let cols: Vec<&str> = m.model.columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        cols,
        [
            "overlap_at_N",
            "precision_at_N",
            "de_nsig_counts_real",
            "de_nsig_counts_pred",
            "pearson_delta",
            "mse",
            "mae",
            "discrimination_score_l1"
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn files_that_disagree_are_refused() {
    let dir = std::env::temp_dir().join(format!("ccfm-evaluate-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (real, _pred, train, _) = setup(&dir);
    // The training file holds other perturbations than the real one.
    let err = evaluate(&real, &train, &EvaluateOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("is only in the"), "{err}");
    let err = evaluate(
        &real,
        &real,
        &EvaluateOptions {
            pert_col: "target".into(),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("real.h5ad") && err.contains("`target`"),
        "{err}"
    );
    let err = evaluate(
        &real,
        &real,
        &EvaluateOptions {
            control: "non-targeting".into(),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no control cells labelled `non-targeting`"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_comparison_puts_every_model_and_baseline_on_one_page() {
    use ccfm_eval::{ComparedModel, Comparison, Subset};
    let dir = std::env::temp_dir().join(format!("ccfm-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (real, pred, train, split) = setup(&dir);
    let opts = EvaluateOptions {
        train: Some(train),
        ..Default::default()
    };
    let near = evaluate(&real, &pred, &opts).unwrap();
    let exact = evaluate(&real, &real, &opts).unwrap();
    // A model that predicts the control cells: it does not beat the mean baseline.
    let mut flat = near.clone();
    flat.model = near.baselines[0].1.clone();
    let types = ccfm_data::AnnData::open(dir.join("synth.h5ad"))
        .unwrap()
        .interaction_types()
        .unwrap();
    assert!(
        !types.is_empty(),
        "the synthetic file records interaction types"
    );
    assert!(types.keys().all(|k| k.contains('+')), "{types:?}");
    let model = |name: &str, eval| ComparedModel {
        name: name.into(),
        eval,
        settings: vec![("train.steps".into(), name.len().to_string())],
        config_text: format!("[train]\nsteps = {}\n", name.len()),
    };
    let cmp = Comparison::new(
        "test comparison",
        vec![
            model("near", &near),
            model("exact", &exact),
            model("flat", &flat),
        ],
        types.clone(),
    )
    .unwrap();
    let methods: Vec<String> = cmp.methods().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        methods,
        ["near", "exact", "flat", "control", "mean", "additive", "ceiling"]
    );
    // The exact copy wins on both sides of the scale; the ceiling is never the winner.
    assert_eq!(cmp.best("pearson_delta", &Subset::All).unwrap().0, "exact");
    assert_eq!(cmp.best("mse", &Subset::All).unwrap().0, "exact");
    let subsets = cmp.subsets();
    assert_eq!(subsets[0], Subset::All);
    assert_eq!(cmp.count(&Subset::All), split.test.len());
    let typed: Vec<&Subset> = subsets
        .iter()
        .filter(|s| matches!(s, Subset::Interaction(_)))
        .collect();
    let want: std::collections::BTreeSet<&String> =
        split.test.iter().filter_map(|p| types.get(p)).collect();
    assert_eq!(typed.len(), want.len(), "{subsets:?}");
    let in_types: usize = typed.iter().map(|s| cmp.count(s)).sum();
    assert_eq!(
        in_types,
        split.test.iter().filter(|p| types.contains_key(*p)).count()
    );

    let html = cmp.render_html();
    for needle in [
        "<td>near</td>",
        "<td>exact</td>",
        "<td>additive</td>",
        "Which method wins",
        "class=\"best\"",
        "Run settings",
        "flat does not beat `mean` on pearson_delta",
        "Does the prediction depend on the perturbation?",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    assert!(
        !cmp.shortfalls().is_empty() && cmp.shortfalls().iter().all(|f| f.model == "flat"),
        "{:?}",
        cmp.shortfalls()
    );
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));
    let json = cmp.summary_json();
    assert!(
        json["all"]["exact"]["mse"].as_f64().unwrap() < 1e-9,
        "{json}"
    );

    // Models evaluated on other perturbations cannot share a page.
    let mut fewer = near.clone();
    fewer.model.perts.pop();
    let err = Comparison::new(
        "x",
        vec![model("near", &near), model("fewer", &fewer)],
        Default::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("different perturbations"), "{err}");
    // A model named like a baseline (or like another model) would be confused with it.
    for names in [["mean", "exact"], ["near", "near"]] {
        let err = Comparison::new(
            "x",
            vec![model(names[0], &near), model(names[1], &exact)],
            Default::default(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("two methods would be called"), "{err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
