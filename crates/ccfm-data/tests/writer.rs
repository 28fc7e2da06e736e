//! Files written by `write_h5ad` read back identically here, and (in CI) in Python anndata:
//! with `CCFM_INTEROP_DIR` set, the files and the values they must hold are kept there for
//! `tools/check_h5ad_interop.py`.

use std::path::PathBuf;

use ccfm_data::anndata::{AnnData, Column, DataFrame};
use ccfm_data::{write_h5ad, AnnDataOut, MatrixOut, UnsValue};

fn frames() -> (DataFrame, DataFrame) {
    let n = 5;
    let obs = DataFrame {
        index: (0..n).map(|i| format!("cell{i}")).collect(),
        columns: vec![
            (
                "perturbation".into(),
                Column::Categorical {
                    codes: vec![0, 1, 1, 2, 0],
                    categories: vec!["control".into(), "KLF1+MAP2K6".into(), "SET+KLF1".into()],
                },
            ),
            (
                "batch".into(),
                Column::Strings(vec![
                    "a".into(),
                    "b".into(),
                    "a".into(),
                    "b".into(),
                    "é".into(),
                ]),
            ),
            (
                "n_counts".into(),
                Column::Numeric(vec![10.0, 20.5, 30.0, 40.0, 50.0]),
            ),
            (
                "is_control".into(),
                Column::Bool(vec![true, false, false, false, true]),
            ),
        ],
    };
    let var = DataFrame {
        index: vec!["KLF1".into(), "MAP2K6".into(), "SET".into()],
        columns: vec![(
            "highly_variable".into(),
            Column::Bool(vec![true, true, false]),
        )],
    };
    (obs, var)
}

fn dense_x() -> Vec<f32> {
    vec![
        0.0, 1.5, 0.0, 2.0, 0.0, 0.25, 0.0, 0.0, 0.0, 3.5, 1.0, 0.0, 0.0, 0.0, 7.0,
    ]
}

fn out_dir() -> (PathBuf, bool) {
    match std::env::var_os("CCFM_INTEROP_DIR") {
        Some(d) => {
            std::fs::create_dir_all(&d).unwrap();
            (PathBuf::from(d), true)
        }
        None => {
            let d = std::env::temp_dir().join(format!("ccfm-writer-{}", std::process::id()));
            std::fs::create_dir_all(&d).unwrap();
            (d, false)
        }
    }
}

#[test]
fn written_files_read_back_and_leave_expectations_for_anndata() {
    let (dir, keep) = out_dir();
    let (obs, var) = frames();
    let x = dense_x();
    // CSR of the same matrix.
    let (mut data, mut indices, mut indptr) = (vec![], vec![], vec![0i64]);
    for r in 0..5 {
        for c in 0..3 {
            if x[r * 3 + c] != 0.0 {
                data.push(x[r * 3 + c]);
                indices.push(c as i32);
            }
        }
        indptr.push(data.len() as i64);
    }
    let uns = vec![
        ("model".to_string(), UnsValue::Text("ccfm".into())),
        ("seed".to_string(), UnsValue::Number(42.0)),
        (
            "names".to_string(),
            UnsValue::Strings(vec!["a".into(), "b".into()]),
        ),
        (
            "table".to_string(),
            UnsValue::Array {
                shape: vec![2, 3],
                values: vec![1.0, 2.0, 3.0, 4.0, 5.5, -6.0],
            },
        ),
    ];
    let counts: Vec<f32> = x.iter().map(|v| (v * 10.0).round()).collect();
    for (name, matrix) in [
        ("dense", MatrixOut::Dense(&x)),
        (
            "csr",
            MatrixOut::Csr {
                data: &data,
                indices: &indices,
                indptr: &indptr,
            },
        ),
    ] {
        let path = dir.join(format!("written_{name}.h5ad"));
        write_h5ad(
            &path,
            &AnnDataOut {
                x: matrix,
                layers: &[("counts", MatrixOut::Dense(&counts))],
                obs: &obs,
                var: &var,
                uns: &uns,
            },
        )
        .unwrap();
        let back = AnnData::open(&path).unwrap();
        assert_eq!(back.obs, obs, "{name}");
        assert_eq!(back.var, var, "{name}");
        assert_eq!(
            back.read_matrix("X", &[0, 1, 2, 3, 4], None).unwrap(),
            x,
            "{name}"
        );
        assert_eq!(
            back.read_matrix("layers/counts", &[0, 1, 2, 3, 4], None)
                .unwrap(),
            counts,
            "{name}"
        );
        assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp")));
    }
    if keep {
        let expected = serde_json::json!({
            "shape": [5, 3],
            "obs_index": obs.index,
            "var_index": var.index,
            "obs_columns": obs.columns.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            "obs": {
                "perturbation": ["control", "KLF1+MAP2K6", "KLF1+MAP2K6", "SET+KLF1", "control"],
                "batch": ["a", "b", "a", "b", "é"],
                "n_counts": [10.0, 20.5, 30.0, 40.0, 50.0],
                "is_control": [true, false, false, false, true],
            },
            "X": x.chunks(3).map(|r| r.to_vec()).collect::<Vec<_>>(),
            "counts": counts.chunks(3).map(|r| r.to_vec()).collect::<Vec<_>>(),
            "uns": {"model": "ccfm", "seed": 42.0, "names": ["a", "b"],
                    "table": [[1.0, 2.0, 3.0], [4.0, 5.5, -6.0]]},
        });
        std::fs::write(
            dir.join("expected.json"),
            serde_json::to_string_pretty(&expected).unwrap(),
        )
        .unwrap();
    } else {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn inconsistent_content_is_refused_and_nothing_is_written() {
    let dir = std::env::temp_dir().join(format!("ccfm-writer-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (obs, var) = frames();
    let path = dir.join("bad.h5ad");
    let short = vec![0.0f32; 4];
    let err = write_h5ad(
        &path,
        &AnnDataOut {
            x: MatrixOut::Dense(&short),
            obs: &obs,
            var: &var,
            layers: &[],
            uns: &[],
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("`X`"), "{err}");
    let mut bad_obs = obs.clone();
    bad_obs
        .columns
        .push(("short".into(), Column::Numeric(vec![1.0])));
    let x = dense_x();
    let err = write_h5ad(
        &path,
        &AnnDataOut {
            x: MatrixOut::Dense(&x),
            obs: &bad_obs,
            var: &var,
            layers: &[],
            uns: &[],
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("obs/short"), "{err}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing written"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
