//! Pairs cell-eval refuses are refused here too, each with a reason.

use ccfm_eval::{CellSet, EvalError, EvalPair};

fn set(labels: &[&str], x: Vec<f32>) -> CellSet {
    CellSet {
        x,
        labels: labels.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn mismatched_or_broken_pairs_are_refused() {
    let genes: Vec<String> = vec!["A".into(), "B".into()];
    let labels = ["control", "A", "A", "control"];
    let x = vec![0.5f32, 0.0, 1.0, 0.2, 0.9, 0.1, 0.4, 0.3];
    let ok = EvalPair::new(
        genes.clone(),
        &genes,
        &genes,
        set(&labels, x.clone()),
        set(&labels, x.clone()),
        "control",
    );
    assert!(ok.is_ok());
    let swapped: Vec<String> = vec!["B".into(), "A".into()];
    let err = EvalPair::new(
        genes.clone(),
        &genes,
        &swapped,
        set(&labels, x.clone()),
        set(&labels, x.clone()),
        "control",
    )
    .unwrap_err();
    assert!(matches!(err, EvalError::GeneMismatch { .. }), "{err}");
    assert!(err.to_string().contains("gene 0 is `A`"), "{err}");
    let err = EvalPair::new(
        genes.clone(),
        &genes,
        &genes,
        set(&labels, x.clone()),
        set(&["control", "B", "B", "control"], x.clone()),
        "control",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("`A` is only in the real file"),
        "{err}"
    );
    let err = EvalPair::new(
        genes.clone(),
        &genes,
        &genes,
        set(&labels, x.clone()),
        set(&labels, x.clone()),
        "ctrl",
    )
    .unwrap_err();
    assert!(matches!(err, EvalError::NoControl { .. }), "{err}");
    let mut neg = x.clone();
    neg[3] = -0.5;
    let err = EvalPair::new(
        genes.clone(),
        &genes,
        &genes,
        set(&labels, x.clone()),
        set(&labels, neg),
        "control",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("negative value (-0.5) in cell 1"),
        "{err}"
    );
    let mut nan = x.clone();
    nan[0] = f32::NAN;
    let err = EvalPair::new(
        genes.clone(),
        &genes,
        &genes,
        set(&labels, nan),
        set(&labels, x),
        "control",
    )
    .unwrap_err();
    assert!(err.to_string().contains("non-finite"), "{err}");
}
