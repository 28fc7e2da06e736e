//! The bad-input catalogue: each broken file gives one error naming the file and the fix.

use std::path::{Path, PathBuf};

use ccfm_data::{prepare, write_h5ad, AnnDataOut, Column, DataFrame, MatrixOut, PrepareOptions};

pub struct Parts {
    pub conditions: Vec<&'static str>,
    pub genes: Vec<&'static str>,
    pub x: Vec<f32>,
    pub with_condition: bool,
}

fn good() -> Parts {
    let conditions = vec!["ctrl", "ctrl", "A+ctrl", "A+B", "B+ctrl", "ctrl"];
    let genes = vec!["A", "B", "C"];
    let x = (0..18).map(|i| ((i % 5) as f32) * 0.5).collect();
    Parts {
        conditions,
        genes,
        x,
        with_condition: true,
    }
}

fn write(dir: &Path, name: &str, p: &Parts) -> PathBuf {
    let n = p.conditions.len();
    let mut columns = vec![(
        "cell_type".to_string(),
        Column::Strings(vec!["K562".into(); n]),
    )];
    if p.with_condition {
        columns.push((
            "condition".into(),
            Column::Strings(p.conditions.iter().map(|s| s.to_string()).collect()),
        ));
    }
    let obs = DataFrame {
        index: (0..n).map(|i| format!("c{i}")).collect(),
        columns,
    };
    let var = DataFrame {
        index: p.genes.iter().map(|s| s.to_string()).collect(),
        columns: vec![],
    };
    let path = dir.join(name);
    write_h5ad(
        &path,
        &AnnDataOut {
            x: MatrixOut::Dense(&p.x),
            layers: &[],
            obs: &obs,
            var: &var,
            uns: &[],
        },
    )
    .unwrap();
    path
}

fn expect_error(path: &Path, needles: &[&str]) {
    let err = prepare(path, &PrepareOptions::default())
        .err()
        .unwrap_or_else(|| panic!("{} was accepted", path.display()))
        .to_string();
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(
        err.contains(name.as_ref()),
        "the error names the file: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "expected `{n}` in: {err}");
    }
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn each_broken_file_is_refused_with_a_named_reason() {
    let dir = std::env::temp_dir().join(format!("ccfm-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let ok = write(&dir, "ok.h5ad", &good());
    prepare(&ok, &PrepareOptions::default()).expect("the unbroken file loads");

    let mut p = good();
    p.with_condition = false;
    expect_error(
        &write(&dir, "no_condition.h5ad", &p),
        &["no condition column", "Fix:"],
    );

    let mut p = good();
    p.conditions = vec!["A", "A+B", "B", "A", "B", "A+B"];
    // No control label at all: the schema cannot be told, and the error says why.
    expect_error(
        &write(&dir, "no_control_label.h5ad", &p),
        &["no control label"],
    );
    let mut p = good();
    p.conditions = vec!["A+ctrl", "A+B", "B+ctrl", "A+ctrl", "B+ctrl", "A+ctrl"];
    expect_error(
        &write(&dir, "no_control_cells.h5ad", &p),
        &["no control cells"],
    );

    let mut p = good();
    p.conditions[3] = "A+KLFX";
    expect_error(&write(&dir, "unknown_gene.h5ad", &p), &["KLFX", "typos"]);

    let mut p = good();
    p.x[7] = f32::NAN;
    expect_error(&write(&dir, "nan.h5ad", &p), &["non-finite", "cell c2"]);

    let mut p = good();
    p.x[4] = -0.3;
    expect_error(
        &write(&dir, "negative.h5ad", &p),
        &["negative value", "cell c1"],
    );

    let mut p = good();
    p.genes = vec!["A", "B", "A"];
    expect_error(
        &write(&dir, "duplicate_genes.h5ad", &p),
        &["duplicate gene symbol `A`"],
    );

    let bytes = std::fs::read(&ok).unwrap();
    let truncated = dir.join("truncated.h5ad");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    expect_error(&truncated, &["cannot open"]);

    let text = dir.join("not_hdf5.h5ad");
    std::fs::write(&text, "cell,gene\n1,2\n").unwrap();
    expect_error(&text, &["cannot open"]);

    expect_error(&dir.join("missing.h5ad"), &["no such file"]);
    std::fs::remove_dir_all(dir).unwrap();
}
