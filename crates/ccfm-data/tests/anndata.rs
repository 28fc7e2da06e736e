//! Reading `.h5ad` files written by Python anndata (tools/gen_h5ad_fixtures.py, outputs in
//! tests/fixtures/h5ad): every layout must give exactly the values anndata reads back.

use ccfm_data::anndata::{AnnData, Column, MatrixEncoding};
use ccfm_testkit::workspace_root;
use serde_json::Value;

fn fixture(name: &str) -> (AnnData, Value) {
    let dir = workspace_root().join("tests/fixtures/h5ad");
    let ad = AnnData::open(dir.join(format!("{name}.h5ad"))).unwrap();
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    (ad, json)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn dense(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn check_column(name: &str, col: &Column, expected: &Value) {
    let exp = expected.as_array().unwrap();
    assert_eq!(col.len(), exp.len(), "{name}");
    match col {
        Column::Categorical { .. } | Column::Strings(_) => {
            let got = col.as_labels();
            for (g, e) in got.iter().zip(exp) {
                assert_eq!(g.as_deref(), e.as_str(), "{name}");
            }
        }
        Column::Numeric(v) => {
            for (g, e) in v.iter().zip(exp) {
                assert_eq!(*g, e.as_f64().unwrap(), "{name}");
            }
        }
        Column::Bool(v) => {
            for (g, e) in v.iter().zip(exp) {
                assert_eq!(*g, e.as_bool().unwrap(), "{name}");
            }
        }
        Column::Nullable(v) => {
            for (g, e) in v.iter().zip(exp) {
                assert_eq!(*g, e.as_f64(), "{name}");
            }
        }
    }
}

fn check_case(name: &str, encoding: MatrixEncoding) {
    let (ad, json) = fixture(name);
    assert_eq!(
        ad.obs.index,
        strings(&json["obs_index"]),
        "{name} obs index"
    );
    assert_eq!(
        ad.var.index,
        strings(&json["var_index"]),
        "{name} var index"
    );
    let obs = json["obs"].as_object().unwrap();
    assert_eq!(ad.obs.columns.len(), obs.len());
    for (col, values) in obs {
        check_column(
            col,
            ad.obs
                .column(col)
                .unwrap_or_else(|| panic!("{name}: no obs column {col}")),
            values,
        );
    }
    assert!(matches!(
        ad.obs.column("condition"),
        Some(Column::Categorical { .. })
    ));
    assert!(matches!(ad.obs.column("dose"), Some(Column::Nullable(_))));
    assert!(matches!(ad.obs.column("control"), Some(Column::Bool(_))));
    for (col, values) in json["var"].as_object().unwrap() {
        check_column(col, ad.var.column(col).unwrap(), values);
    }

    assert_eq!(ad.encoding("X").unwrap(), encoding, "{name}");
    let x = dense(&json["X"]);
    let (n, g) = (ad.n_obs(), ad.n_vars());
    let all: Vec<usize> = (0..n).collect();
    let got = ad.read_matrix("X", &all, None).unwrap();
    for r in 0..n {
        for c in 0..g {
            assert_eq!(
                got[r * g + c] as f64,
                x[r][c] as f32 as f64,
                "{name} X[{r},{c}]"
            );
        }
    }
    // A selection with repeated cells and genes in another order.
    let rows = [7usize, 2, 7, 0, 11];
    let cols = [3usize, 8, 0, 3];
    let got = ad.read_matrix("X", &rows, Some(&cols)).unwrap();
    for (i, &r) in rows.iter().enumerate() {
        for (k, &c) in cols.iter().enumerate() {
            assert_eq!(
                got[i * cols.len() + k] as f64,
                x[r][c] as f32 as f64,
                "{name} X[{r},{c}] selected"
            );
        }
    }
    for (layer, values) in json["layers"].as_object().unwrap() {
        let m = dense(values);
        let got = ad
            .read_matrix(&format!("layers/{layer}"), &all, None)
            .unwrap();
        for r in 0..n {
            for c in 0..g {
                assert_eq!(got[r * g + c] as f64, m[r][c], "{name} {layer}[{r},{c}]");
            }
        }
    }
}

#[test]
fn csr_float32() {
    check_case("csr_f32", MatrixEncoding::Csr);
}

#[test]
fn csc_float64_gzip_compressed() {
    check_case("csc_f64_gzip", MatrixEncoding::Csc);
}

#[test]
fn dense_float32_lzf_compressed() {
    check_case("dense_f32_lzf", MatrixEncoding::Dense);
}

#[test]
fn dense_integers_with_a_sparse_counts_layer() {
    check_case("dense_int_counts_layer", MatrixEncoding::Dense);
}

#[test]
fn out_of_range_and_missing_elements_are_named() {
    let (ad, _) = fixture("csr_f32");
    let err = ad.read_matrix("X", &[99], None).unwrap_err();
    assert!(err.to_string().contains("cell 99"), "{err}");
    let err = ad.read_matrix("layers/counts", &[0], None).unwrap_err();
    assert!(err.to_string().contains("layers/counts"), "{err}");
}

#[test]
fn real_perturbench_file_reads_obs_and_selected_cells() {
    let path = ccfm_testkit::shared_dir().join("data/perturbench_devel.h5ad");
    if !ccfm_testkit::available(&path, "real_perturbench_file_reads_obs_and_selected_cells") {
        return;
    }
    let ad = AnnData::open(&path).unwrap();
    assert_eq!((ad.n_obs(), ad.n_vars()), (5961, 500));
    let dataset = ad.obs.column("dataset").unwrap().as_labels();
    let condition = ad.obs.column("condition").unwrap().as_labels();
    let norman: Vec<usize> = (0..ad.n_obs())
        .filter(|&i| dataset[i].as_deref() == Some("norman19"))
        .collect();
    let controls = norman
        .iter()
        .filter(|&&i| condition[i].as_deref() == Some("control"))
        .count();
    // Counts as anndata reads them (the data README's "400 control" is not what the file holds).
    assert_eq!(norman.len(), 3375);
    assert_eq!(controls, 100, "norman19 control cells");
    assert!(norman
        .iter()
        .any(|&i| condition[i].as_deref() == Some("KLF1+MAP2K6")));
    let x = ad.read_matrix("X", &norman[..50], None).unwrap();
    assert_eq!(x.len(), 50 * 500);
    assert!(x.iter().all(|v| v.is_finite() && *v >= 0.0), "log1p data");
    assert!(x.iter().any(|&v| v > 0.0));
}
