//! Reading the layout of real `.h5ad` files from `../shared/data`.

use ccfm_data::{DataError, H5adSummary};
use ccfm_testkit::{available, shared_dir};

#[test]
fn perturbench_devel_layout() {
    let path = shared_dir().join("data/perturbench_devel.h5ad");
    if !available(&path, "perturbench_devel_layout") {
        return;
    }
    let s = H5adSummary::read(&path).unwrap();
    assert_eq!((s.n_obs, s.n_vars), (5961, 500));
    assert_eq!(s.x_encoding, "csr_matrix");
    assert_eq!(s.x_dtype, "float64");
    assert!(s.x_stored > 0 && s.density() < 1.0);
    for col in ["condition", "dataset", "cell_type", "dose"] {
        assert!(
            s.obs_columns.iter().any(|c| c == col),
            "{col} in {:?}",
            s.obs_columns
        );
    }
}

#[test]
fn gears_schema_layout_has_counts_layer() {
    let path = shared_dir().join("data/gears_norman_schema_50x50.h5ad");
    if !available(&path, "gears_schema_layout_has_counts_layer") {
        return;
    }
    let s = H5adSummary::read(&path).unwrap();
    assert_eq!((s.n_obs, s.n_vars), (50, 50));
    assert_eq!(s.layers, vec!["counts".to_string()]);
    for col in ["condition", "control", "condition_name"] {
        assert!(
            s.obs_columns.iter().any(|c| c == col),
            "{col} in {:?}",
            s.obs_columns
        );
    }
    assert!(s.var_columns.iter().any(|c| c == "feature_name"));
}

#[test]
fn missing_and_non_hdf5_files_are_clear_errors() {
    let err = H5adSummary::read("/nonexistent/cells.h5ad").unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }));
    assert_eq!(err.to_string(), "/nonexistent/cells.h5ad: no such file");

    let dir = std::env::temp_dir().join(format!("ccfm-data-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("not_hdf5.h5ad");
    std::fs::write(&text, "cell,gene\n").unwrap();
    let err = H5adSummary::read(&text).unwrap_err();
    assert!(matches!(err, DataError::Open { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
