//! Seurat highly-variable genes against scanpy 1.11.4 on the real PerturBench subset
//! (tools/gen_hvg_fixture.py -> tests/fixtures/hvg/perturbench_seurat.json): the same genes for
//! every n_top_genes, including more than the genes that have a dispersion.

use ccfm_data::anndata::AnnData;
use ccfm_data::hvg::seurat_stats;
use ccfm_data::{highly_variable_seurat, GeneMoments};
use ccfm_testkit::{available, shared_dir, workspace_root};
use serde_json::Value;

#[test]
fn seurat_selection_equals_scanpy() {
    let path = shared_dir().join("data/perturbench_devel.h5ad");
    if !available(&path, "seurat_selection_equals_scanpy") {
        return;
    }
    let fixture = workspace_root().join("tests/fixtures/hvg/perturbench_seurat.json");
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let ad = AnnData::open(&path).unwrap();
    let genes = ad.n_vars();
    let dataset = ad.obs.column("dataset").unwrap().as_labels();
    for (subset, cells) in [
        (
            "norman19",
            (0..ad.n_obs())
                .filter(|&i| dataset[i].as_deref() == Some("norman19"))
                .collect::<Vec<_>>(),
        ),
        ("all", (0..ad.n_obs()).collect()),
    ] {
        let exp = &expected["subsets"][subset];
        assert_eq!(cells.len() as u64, exp["n_obs"].as_u64().unwrap());
        let csr = ad.read_csr_rows("X", &cells).unwrap();
        let moments = GeneMoments::from_csr(&csr.data, &csr.indices, &csr.indptr, genes, None);
        let stats = seurat_stats(&moments);
        for (n, sel) in exp["selections"].as_object().unwrap() {
            let n_top: usize = n.parse().unwrap();
            let chosen: Vec<&str> = highly_variable_seurat(&moments, n_top)
                .iter()
                .enumerate()
                .filter(|(_, &hv)| hv)
                .map(|(g, _)| ad.var.index[g].as_str())
                .collect();
            let want: Vec<&str> = sel["selected"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(chosen, want, "{subset}, n_top_genes = {n_top}");
            // scanpy stores the normalised dispersions as float32.
            for (g, v) in sel["dispersions_norm"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                match v.as_f64() {
                    None => assert!(stats.dispersions_norm[g].is_nan(), "{subset} gene {g}"),
                    Some(e) => assert!(
                        (stats.dispersions_norm[g] - e).abs() <= 1e-6 * e.abs().max(1.0),
                        "{subset} gene {g}: {} vs {e}",
                        stats.dispersions_norm[g]
                    ),
                }
            }
        }
    }
}

#[test]
fn dense_and_sparse_moments_agree_and_ties_are_all_selected() {
    // Two identical genes tie: asking for one selects both.
    let x: Vec<f32> = vec![0.0, 1.0, 1.0, 0.5, 2.0, 2.0, 0.2, 0.0, 0.0, 0.9, 3.0, 3.0];
    let dense = GeneMoments::from_dense(&x, 4, 3, None);
    let (mut data, mut idx, mut ptr) = (vec![], vec![], vec![0]);
    for r in 0..4 {
        for g in 0..3 {
            if x[r * 3 + g] != 0.0 {
                data.push(x[r * 3 + g] as f64);
                idx.push(g);
            }
        }
        ptr.push(data.len());
    }
    let sparse = GeneMoments::from_csr(&data, &idx, &ptr, 3, None);
    assert_eq!(dense, sparse);
    let hv = highly_variable_seurat(&dense, 1);
    let norm = seurat_stats(&dense).dispersions_norm;
    let top = norm
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(hv[1], hv[2], "identical genes are selected together");
    for (g, &h) in hv.iter().enumerate() {
        assert_eq!(
            h,
            norm[g] == top,
            "gene {g}: every gene tied at the top is selected"
        );
    }
}
