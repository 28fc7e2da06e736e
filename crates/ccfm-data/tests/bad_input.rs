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

/// `good()` as CSR with `condition` categorical, to damage piece by piece.
fn write_csr(dir: &Path, name: &str) -> PathBuf {
    let p = good();
    let (n, g) = (p.conditions.len(), p.genes.len());
    let (mut data, mut indices, mut indptr) = (vec![], vec![], vec![0i64]);
    for r in 0..n {
        for c in 0..g {
            let v = p.x[r * g + c];
            if v != 0.0 {
                data.push(v);
                indices.push(c as i32);
            }
        }
        indptr.push(data.len() as i64);
    }
    let categories: Vec<String> = vec![
        "A+B".into(),
        "A+ctrl".into(),
        "B+ctrl".into(),
        "ctrl".into(),
    ];
    let codes = p
        .conditions
        .iter()
        .map(|c| categories.iter().position(|k| k == c).unwrap() as i64)
        .collect();
    let obs = DataFrame {
        index: (0..n).map(|i| format!("c{i}")).collect(),
        columns: vec![(
            "condition".into(),
            Column::Categorical { codes, categories },
        )],
    };
    let var = DataFrame {
        index: p.genes.iter().map(|s| s.to_string()).collect(),
        columns: vec![],
    };
    let path = dir.join(name);
    write_h5ad(
        &path,
        &AnnDataOut {
            x: MatrixOut::Csr {
                data: &data,
                indices: &indices,
                indptr: &indptr,
            },
            layers: &[],
            obs: &obs,
            var: &var,
            uns: &[],
        },
    )
    .unwrap();
    path
}

/// Replace the dataset `name` of the file at `path` by `values`.
fn replace(path: &Path, name: &str, values: &[i64]) {
    let f = hdf5::File::open_rw(path).unwrap();
    f.unlink(name).unwrap();
    f.new_dataset_builder()
        .with_data(values)
        .create(name)
        .unwrap();
}

#[test]
fn damaged_structure_is_an_error_not_a_panic_a_hang_or_a_huge_allocation() {
    let _turn = ccfm_testkit::fork_lock();
    let dir = std::env::temp_dir().join(format!("ccfm-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ok = write_csr(&dir, "csr_ok.h5ad");
    prepare(&ok, &PrepareOptions::default()).expect("the unbroken file loads");

    // A CSR index beyond the genes (was an index-out-of-bounds panic).
    let f = write_csr(&dir, "csr_index.h5ad");
    let nnz = hdf5::File::open(&f)
        .unwrap()
        .dataset("X/indices")
        .unwrap()
        .size();
    let mut bad: Vec<i64> = vec![0; nnz];
    bad[1] = -1_144_851_513;
    replace(&f, "X/indices", &bad);
    expect_error(&f, &["X", "indices[1] = -1144851513 is outside 0..3"]);

    // Row pointers that go backwards.
    let f = write_csr(&dir, "csr_indptr.h5ad");
    let ptr: Vec<i64> = hdf5::File::open(&f)
        .unwrap()
        .dataset("X/indptr")
        .unwrap()
        .read_raw()
        .unwrap();
    let mut bad = ptr.clone();
    bad[2] = bad[3] + 1;
    replace(&f, "X/indptr", &bad);
    expect_error(&f, &["indptr decreases at row/column"]);

    // A categorical code beyond the categories.
    let f = write_csr(&dir, "codes.h5ad");
    replace(&f, "obs/condition/codes", &[0, 1, 2, 3, 9, 3]);
    expect_error(
        &f,
        &["obs/condition/codes", "code 9 at row 4", "4 categories"],
    );

    // A declared size the file cannot hold: refused before anything is allocated.
    let f = write_csr(&dir, "huge.h5ad");
    {
        let h = hdf5::File::open_rw(&f).unwrap();
        h.unlink("X/data").unwrap();
        h.new_dataset::<f32>()
            .chunk(1024)
            .shape(1usize << 40)
            .create("X/data")
            .unwrap();
    }
    expect_error(
        &f,
        &["X", "declares 1099511627776 values", "damaged header"],
    );

    // A string heap whose first object has index 0 and size 0: the HDF5 library would loop
    // forever on it; the file is refused before the library reads it.
    let f = write_csr(&dir, "heap.h5ad");
    let mut bytes = std::fs::read(&f).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"GCOL")
        .expect("a global heap");
    bytes[at + 16..at + 18].copy_from_slice(&0u16.to_le_bytes());
    bytes[at + 24..at + 32].copy_from_slice(&0u64.to_le_bytes());
    std::fs::write(&f, &bytes).unwrap();
    expect_error(
        &f,
        &["damaged HDF5 string heap", "copy or download it again"],
    );
    std::fs::remove_dir_all(dir).unwrap();
}
