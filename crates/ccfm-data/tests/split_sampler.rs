//! Splits and samplers on the real PerturBench Norman subset (15 doubles, 18 singles).

use std::collections::HashSet;

use ccfm_data::{
    prepare, test_cases, PrepareOptions, PreparedData, SchemaOptions, Split, SplitConfig,
    SplitMethod, TrainSampler, UnmeasuredPerturbations,
};
use ccfm_testkit::{available, shared_dir};

fn norman(test: &str) -> Option<PreparedData> {
    let path = shared_dir().join("data/perturbench_devel.h5ad");
    if !available(&path, test) {
        return None;
    }
    let opts = PrepareOptions {
        schema: SchemaOptions {
            schema: None,
            dataset: Some("norman19".into()),
        },
        unmeasured: UnmeasuredPerturbations::Vocabulary,
        ..Default::default()
    };
    Some(prepare(&path, &opts).unwrap())
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ccfm-split-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn additive_split_holds_out_30_percent_of_doubles_and_validates_on_training_doubles() {
    let Some(data) = norman("additive_split") else {
        return;
    };
    let path = &data.report.path;
    let split = Split::make(&data.table, &SplitConfig::default(), path).unwrap();
    assert_eq!(split.test.len(), 4, "floor(0.3 * 15)");
    assert!(split.test.iter().all(|c| c.contains('+')));
    assert_eq!(split.val.len(), 1, "round(0.1 * 11)");
    assert!(split.val.iter().all(|c| c.contains('+')));
    let (tr, va, te): (HashSet<_>, HashSet<_>, HashSet<_>) = (
        split.train.iter().collect(),
        split.val.iter().collect(),
        split.test.iter().collect(),
    );
    assert!(tr.is_disjoint(&va) && tr.is_disjoint(&te) && va.is_disjoint(&te));
    assert_eq!(
        tr.len() + va.len() + te.len(),
        33,
        "every perturbation has one role"
    );
    assert_eq!(split.train.iter().filter(|c| !c.contains('+')).count(), 18);
    // All singles train, so the seen count is the number of a double's genes that have a
    // single condition; the spec lists the five seen-2 doubles of this subset.
    let seen2 = [
        "KLF1+MAP2K6",
        "KLF1+TGFBR2",
        "MAP2K3+MAP2K6",
        "MAP2K3+SLC38A2",
        "MAPK1+TGFBR2",
    ];
    for d in &split.test {
        assert_eq!(split.seen[d] == 2, seen2.contains(&d.as_str()), "{d}");
        assert_eq!(split.group_of(d), format!("seen{}", split.seen[d]));
    }
    // Deterministic per (seed, fold); folds differ.
    assert_eq!(
        split,
        Split::make(&data.table, &SplitConfig::default(), path).unwrap()
    );
    let folds: HashSet<Vec<String>> = (0..5)
        .map(|fold| {
            let cfg = SplitConfig {
                fold,
                ..Default::default()
            };
            Split::make(&data.table, &cfg, path).unwrap().test
        })
        .collect();
    assert!(folds.len() > 1);
    // Round trip through the user-JSON form.
    let dir = tmp("additive");
    let file = dir.join("split.json");
    split.write_json(&file).unwrap();
    let cfg = SplitConfig {
        method: SplitMethod::User(file.clone()),
        ..Default::default()
    };
    let back = Split::make(&data.table, &cfg, path).unwrap();
    assert_eq!(
        (back.train, back.val, back.test, back.seen),
        (
            split.train.clone(),
            split.val.clone(),
            split.test.clone(),
            split.seen.clone()
        )
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn combinations_split_holds_out_doubles_with_their_singles() {
    let Some(data) = norman("combinations_split") else {
        return;
    };
    let cfg = SplitConfig {
        method: SplitMethod::Combinations,
        holdout_doubles: 2,
        val_fraction: 0.0,
        ..Default::default()
    };
    let split = Split::make(&data.table, &cfg, &data.report.path).unwrap();
    let doubles: Vec<&String> = split.test.iter().filter(|c| c.contains('+')).collect();
    assert_eq!(doubles.len(), 2);
    for d in &doubles {
        for g in d.split('+') {
            let single_exists = data.table.condition_index(g).is_some();
            assert_eq!(split.test.contains(&g.to_string()), single_exists, "{g}");
        }
        assert!(split.seen[*d] < 2, "its singles are held out too");
    }
    assert_eq!(split.train.len() + split.test.len(), 33);
    assert!(split.val.is_empty());
}

#[test]
fn user_split_errors_name_the_file_and_the_problem() {
    let Some(data) = norman("user_split_errors") else {
        return;
    };
    let dir = tmp("user");
    for (body, needle) in [
        (r#"{"train": ["KLF1"], "test": ["NOPE+KLF1"]}"#, "NOPE+KLF1"),
        (r#"{"train": ["KLF1"], "test": ["KLF1"]}"#, "both"),
        (r#"{"train": ["KLF1"]}"#, "no `test` list"),
        (r#"{"train": ["control"], "test": ["KLF1"]}"#, "control"),
        ("not json", "not valid JSON"),
    ] {
        let file = dir.join("bad.json");
        std::fs::write(&file, body).unwrap();
        let cfg = SplitConfig {
            method: SplitMethod::User(file.clone()),
            ..Default::default()
        };
        let err = Split::make(&data.table, &cfg, &data.report.path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.json") && err.contains(needle), "{err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn train_sampler_draws_like_scdfm_and_resumes_exactly() {
    let Some(data) = norman("train_sampler") else {
        return;
    };
    let split = Split::make(&data.table, &SplitConfig::default(), &data.report.path).unwrap();
    let train: HashSet<usize> = split
        .train
        .iter()
        .map(|n| data.table.condition_index(n).unwrap())
        .collect();
    let mut s = TrainSampler::new(&data, &split, 48, 200, 7).unwrap();
    let mut seen_conditions = HashSet::new();
    for _ in 0..300 {
        let b = s.next_batch(&data).unwrap();
        assert!(train.contains(&b.condition), "only training conditions");
        seen_conditions.insert(b.condition);
        assert_eq!(b.target.len(), 48 * 200);
        assert_eq!(b.control.len(), 48 * 200);
        let genes: HashSet<usize> = b.genes.iter().copied().collect();
        assert_eq!(genes.len(), 200, "a subset without repeats");
        assert!(b
            .target_cells
            .iter()
            .all(|&c| data.table.cell_condition[c] == b.condition));
        assert!(b
            .control_cells
            .iter()
            .all(|&c| data.table.cell_condition[c] == 0));
        // Values are the prepared rows at the sampled genes.
        assert_eq!(
            b.target[1],
            data.rows(&b.target_cells[..1]).unwrap()[b.genes[1]]
        );
    }
    assert_eq!(
        seen_conditions.len(),
        train.len(),
        "uniform over conditions"
    );
    // Resume: a restored sampler continues with the same batches.
    let state = s.state();
    let next: Vec<_> = (0..3).map(|_| s.next_indices()).collect();
    let mut r = TrainSampler::new(&data, &split, 48, 200, 999).unwrap();
    r.restore(state);
    let again: Vec<_> = (0..3).map(|_| r.next_indices()).collect();
    assert_eq!(next, again);
}

#[test]
fn test_cases_take_shuffled_controls() {
    let Some(data) = norman("test_cases") else {
        return;
    };
    let split = Split::make(&data.table, &SplitConfig::default(), &data.report.path).unwrap();
    let cases = test_cases(&data, &split.test, 128, 1).unwrap();
    assert_eq!(cases.len(), split.test.len());
    for c in &cases {
        assert_eq!(c.control_cells.len(), 128);
        // 100 controls: the first 100 are a permutation of the pool.
        let first: HashSet<usize> = c.control_cells[..100].iter().copied().collect();
        assert_eq!(first.len(), 100);
        assert!(c
            .real_cells
            .iter()
            .all(|&i| data.table.cell_condition[i] == c.condition));
    }
    let err = test_cases(&data, &["KLF1+NOPE".to_string()], 4, 1).unwrap_err();
    assert!(err.to_string().contains("KLF1+NOPE"), "{err}");
}
