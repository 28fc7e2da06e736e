//! Preparing real-schema files: normalize_total + log1p against scanpy
//! (tools/gen_preprocess_fixture.py), schema detection and the whole preparation of the real
//! PerturBench Norman subset and the GEARS-schema file in `../shared/data`.

use std::time::Instant;

use ccfm_data::anndata::{AnnData, CsrRows};
use ccfm_data::preprocess::{log1p, normalize_total};
use ccfm_data::{
    prepare, Perturbagen, PrepareOptions, Schema, SchemaOptions, TargetSum,
    UnmeasuredPerturbations, ValueScale,
};
use ccfm_testkit::{available, shared_dir, workspace_root, SCHEMA_FIXTURES};
use serde_json::Value;

fn matrix(v: &Value) -> Vec<Vec<f64>> {
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

fn to_csr(rows: &[Vec<f64>]) -> CsrRows {
    let (mut data, mut indices, mut indptr) = (vec![], vec![], vec![0]);
    for r in rows {
        for (j, &v) in r.iter().enumerate() {
            if v != 0.0 {
                data.push(v);
                indices.push(j);
            }
        }
        indptr.push(data.len());
    }
    CsrRows {
        data,
        indices,
        indptr,
    }
}

fn dense(m: &CsrRows, g: usize) -> Vec<Vec<f64>> {
    (0..m.indptr.len() - 1)
        .map(|r| {
            let mut row = vec![0.0; g];
            for p in m.indptr[r]..m.indptr[r + 1] {
                row[m.indices[p]] = m.data[p];
            }
            row
        })
        .collect()
}

#[test]
fn normalize_total_and_log1p_equal_scanpy() {
    let path = workspace_root().join("tests/fixtures/preprocess/scanpy_normalize.json");
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let counts = matrix(&fx["counts"]);
    let g = counts[0].len();
    for (target, key) in [
        (TargetSum::Median, "log1p_median"),
        (TargetSum::Fixed(1e4), "log1p_1e4"),
    ] {
        let mut m = to_csr(&counts);
        let used = normalize_total(&mut m, target);
        if target == TargetSum::Median {
            assert_eq!(used, fx["median_total"].as_f64().unwrap());
        }
        log1p(&mut m);
        let got = dense(&m, g);
        let want = matrix(&fx[key]);
        let mut worst = 0f64;
        for (a, b) in got.iter().flatten().zip(want.iter().flatten()) {
            // scanpy computes in float32: agree to float32 resolution.
            worst = worst.max((a - b).abs() / b.abs().max(1.0));
        }
        assert!(worst < 1e-6, "{key}: worst relative difference {worst}");
        assert!(
            got[7].iter().all(|&v| v == 0.0),
            "a cell with no counts stays zero"
        );
    }
}

fn norman_options() -> PrepareOptions {
    PrepareOptions {
        schema: SchemaOptions {
            schema: None,
            dataset: Some("norman19".into()),
        },
        unmeasured: UnmeasuredPerturbations::Vocabulary,
        ..Default::default()
    }
}

#[test]
fn perturbench_norman_subset_prepares_fast_and_matches_the_file() {
    let path = shared_dir().join("data/perturbench_devel.h5ad");
    if !available(
        &path,
        "perturbench_norman_subset_prepares_fast_and_matches_the_file",
    ) {
        return;
    }
    let t = Instant::now();
    let data = prepare(&path, &norman_options()).unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!("prepare(perturbench_devel.h5ad, norman19): {secs:.3} s");
    let tbl = &data.table;
    assert_eq!(tbl.schema, Schema::PerturBench);
    assert_eq!(tbl.kind, Perturbagen::Gene);
    assert_eq!(data.report.scale, ValueScale::Log1p);
    assert_eq!(tbl.conditions[0].name(), "control");
    assert_eq!(tbl.singles_doubles(), (18, 15));
    let by = tbl.cells_by_condition();
    assert_eq!(by[0].len(), 100, "control cells of the Norman part");
    assert!(by[1..].iter().all(|c| (80..=100).contains(&c.len())));
    // 30 of the 31 perturbed genes are not among the 500 HVGs of this file.
    assert_eq!(data.report.unmeasured_genes.len(), 30);
    assert_eq!(data.genes.len(), 500);
    let vocab = data.vocabulary();
    assert_eq!(vocab.len(), 4 + 500 + 30);
    assert!(vocab.id("KLF1").is_some());
    // The prepared values are the file's values.
    let ad = AnnData::open(&path).unwrap();
    let x = ad.read_matrix("X", &tbl.rows, None).unwrap();
    assert_eq!(data.x.in_memory().unwrap(), &x[..]);
    // With HVG selection: every measured perturbed gene is forced in.
    let mut opts = norman_options();
    opts.n_top_genes = Some(100);
    let sub = prepare(&path, &opts).unwrap();
    assert!(sub.genes.len() >= 100);
    let measured: Vec<&String> = tbl
        .perturbation_tokens()
        .iter()
        .filter(|t| data.genes.contains(t))
        .map(|t| data.genes.iter().find(|g| *g == t).unwrap())
        .collect();
    assert_eq!(measured.len(), 1);
    assert!(sub.genes.contains(measured[0]));
    assert_eq!(
        sub.genes.len(),
        100 + sub.report.forced_genes.len(),
        "forced genes are added to the 100"
    );
    // Well under a second even in a debug build of the tests.
    assert!(data.report.seconds > 0.0);
}

#[test]
fn mixed_datasets_and_unmeasured_genes_need_a_decision() {
    let path = shared_dir().join("data/perturbench_devel.h5ad");
    if !available(&path, "mixed_datasets_and_unmeasured_genes_need_a_decision") {
        return;
    }
    let err = prepare(&path, &PrepareOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mixes 2 datasets") && err.contains("--dataset"),
        "{err}"
    );
    let mut opts = norman_options();
    opts.unmeasured = UnmeasuredPerturbations::Error;
    let err = prepare(&path, &opts).unwrap_err().to_string();
    assert!(
        err.contains("perturbench_devel.h5ad") && err.contains("not among the file's genes"),
        "{err}"
    );
    let mut opts = norman_options();
    opts.schema.dataset = Some("nope".into());
    let err = prepare(&path, &opts).unwrap_err().to_string();
    assert!(
        err.contains("mcfaline23") && err.contains("norman19"),
        "{err}"
    );
}

#[test]
fn gears_schema_file_reads_its_counts_layer_and_symbols() {
    let path = shared_dir().join("data/gears_norman_schema_50x50.h5ad");
    if !available(
        &path,
        "gears_schema_file_reads_its_counts_layer_and_symbols",
    ) {
        return;
    }
    let opts = PrepareOptions {
        unmeasured: UnmeasuredPerturbations::Vocabulary,
        ..Default::default()
    };
    let x = prepare(&path, &opts).unwrap();
    assert_eq!(x.table.schema, Schema::Gears);
    assert_eq!(x.table.conditions.len(), 42);
    assert!(x.table.conditions.iter().any(|c| c.name() == "FOXL2+HOXB9"));
    assert_eq!(
        x.table
            .conditions
            .iter()
            .filter(|c| c.name() == "PTPN9")
            .count(),
        1
    );
    assert_eq!(x.genes[1], "CFAP57", "symbols from var['feature_name']");
    // The counts layer: integers, normalised to the median total and log1p'd.
    let mut opts_counts = opts.clone();
    opts_counts.element = Some("layers/counts".into());
    let c = prepare(&path, &opts_counts).unwrap();
    assert_eq!(c.report.scale, ValueScale::Counts);
    assert!(c.report.target_sum.unwrap() > 0.0);
}

/// Files Python anndata wrote in each schema's layout (tools/gen_h5ad_fixtures.py): the schema
/// is detected, every cell gets the condition the schema's rules give, symbols come from the
/// right place, and the prepared values are anndata's.
#[test]
fn every_schema_written_by_anndata_is_detected_and_read() {
    let dir = workspace_root().join("tests/fixtures/h5ad");
    for case in SCHEMA_FIXTURES {
        let path = dir.join(format!("{case}.h5ad"));
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{case}.json"))).unwrap(),
        )
        .unwrap();
        let exp = &json["expected"];
        let data = prepare(&path, &PrepareOptions::default()).unwrap();
        let t = &data.table;
        assert_eq!(t.schema.name(), exp["schema"].as_str().unwrap(), "{case}");
        let cells: Vec<String> = t
            .cell_condition
            .iter()
            .map(|&c| t.conditions[c].name())
            .collect();
        let want: Vec<String> = exp["cell_conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(cells, want, "{case}");
        let genes: Vec<&str> = exp["genes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(data.genes, genes, "{case}");
        if t.schema == Schema::ComboSciPlex {
            assert_eq!(data.report.element, "layers/counts");
            assert_eq!(data.report.scale, ValueScale::Counts);
            assert_eq!(t.kind, Perturbagen::Drug);
            assert_eq!(data.perturbation_dict().last().unwrap(), "control");
        } else {
            let x: Vec<f32> = matrix(&json["X"])
                .into_iter()
                .flatten()
                .map(|v| v as f32)
                .collect();
            assert_eq!(data.x.in_memory().unwrap(), &x[..], "{case}");
        }
    }
}
