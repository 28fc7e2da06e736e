//! Streamed expression against the in-memory path: the same preparation (genes, scale, targets,
//! every value, gene moments), the same co-expression mask, rows read by hyperslabs equal to
//! whole reads, a bounded cache, and the block sampler's semantics.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ccfm_data::blocks::RowReader;
use ccfm_data::coexpression::{
    cached_coexpression_mask, coexpression_mask, streamed_coexpression_mask,
};
use ccfm_data::synth::generate;
use ccfm_data::{
    prepare, AnnData, CoexpressionConfig, Expression, MemoryBudget, PrepareOptions, PreparedData,
    Preset, Size, Split, SplitConfig, SynthConfig, TrainSampler,
};
use ccfm_testkit::{workspace_root, SCHEMA_FIXTURES};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ccfm-stream-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The default synthetic Norman file (counts in layers/counts, log1p in X).
fn norman_file(name: &str) -> PathBuf {
    let path = tmp(name).join("norman.h5ad");
    let cfg = SynthConfig {
        preset: Preset::Norman,
        size: Size::Default,
        seed: 5,
    };
    generate(&cfg).write(&path).unwrap();
    path
}

/// `opts` with a budget so small that the data is always streamed (and the cache evicts).
fn streamed(opts: &PrepareOptions, budget: u64, block: usize) -> PrepareOptions {
    PrepareOptions {
        max_memory: MemoryBudget::Bytes(budget),
        block_cells: block,
        ..opts.clone()
    }
}

fn all_values(d: &PreparedData) -> Vec<f32> {
    let cells: Vec<usize> = (0..d.table.n_cells()).collect();
    d.rows(&cells).unwrap()
}

/// Everything a preparation decides, streamed vs in memory.
fn assert_same(path: &Path, opts: &PrepareOptions, budget: u64, block: usize) {
    let mem = prepare(path, opts).unwrap();
    assert!(mem.x.in_memory().is_some(), "{}: loaded", path.display());
    let st = prepare(path, &streamed(opts, budget, block)).unwrap();
    assert!(
        matches!(st.x, Expression::Streamed(_)),
        "{}: streamed",
        path.display()
    );
    assert_eq!(st.report.storage.block_cells, Some(block));
    let what = format!("{} {:?}", path.display(), opts.element);
    assert_eq!(mem.genes, st.genes, "{what}");
    assert_eq!(mem.gene_columns, st.gene_columns, "{what}");
    let (a, b) = (&mem.report, &st.report);
    assert_eq!(a.scale, b.scale, "{what}");
    assert_eq!(a.target_sum, b.target_sum, "{what}");
    assert_eq!(a.value_max, b.value_max, "{what}");
    assert_eq!(a.forced_genes, b.forced_genes, "{what}");
    assert_eq!(a.unmeasured_genes, b.unmeasured_genes, "{what}");
    assert_eq!(mem.x.in_memory().unwrap(), &all_values(&st)[..], "{what}");
    assert_eq!(mem.gene_moments(), st.gene_moments(), "{what}");
    // Scattered cells in any order, repeats included.
    let n = mem.table.n_cells();
    let cells: Vec<usize> = (0..n).rev().step_by(7).chain([0, 0, n - 1]).collect();
    let genes: Vec<usize> = (0..mem.n_genes()).rev().step_by(3).collect();
    assert_eq!(
        mem.gather(&cells, &genes).unwrap(),
        st.gather(&cells, &genes).unwrap(),
        "{what}"
    );
}

#[test]
fn streamed_preparation_equals_the_in_memory_one() {
    let path = norman_file("equal");
    for element in ["X", "layers/counts"] {
        for n_top in [None, Some(100)] {
            let opts = PrepareOptions {
                element: Some(element.into()),
                n_top_genes: n_top,
                ..Default::default()
            };
            // A cache smaller than one block (every block decoded, evicted, decoded again) and
            // one that holds a few blocks.
            assert_same(&path, &opts, 1, 64);
            assert_same(&path, &opts, 1 << 20, 100);
        }
    }
    let dir = workspace_root().join("tests/fixtures/h5ad");
    for case in SCHEMA_FIXTURES {
        assert_same(
            &dir.join(format!("{case}.h5ad")),
            &PrepareOptions::default(),
            1,
            2,
        );
    }
}

#[test]
fn a_dense_float64_matrix_streams_as_it_loads() {
    // Dense float64 values with more precision than f32: both paths read them as f32.
    let src = norman_file("dense64");
    let d = prepare(&src, &PrepareOptions::default()).unwrap();
    let x: Vec<f32> = all_values(&d);
    let path = src.with_file_name("dense64.h5ad");
    let ad = AnnData::open(&src).unwrap();
    ccfm_data::write_h5ad(
        &path,
        &ccfm_data::AnnDataOut {
            x: ccfm_data::MatrixOut::Dense(&x),
            layers: &[],
            obs: &ad.obs,
            var: &ad.var,
            uns: &[],
        },
    )
    .unwrap();
    let file = hdf5::File::open_rw(&path).unwrap();
    file.unlink("X").unwrap();
    let (n, g) = (ad.n_obs(), ad.n_vars());
    let fine: Vec<f64> = x
        .iter()
        .map(|&v| v as f64 + if v > 0.0 { 1e-9 } else { 0.0 })
        .collect();
    let view = ndarray::ArrayView2::from_shape((n, g), &fine).unwrap();
    file.new_dataset_builder()
        .with_data(view)
        .create("X")
        .unwrap();
    file.close().unwrap();
    for n_top in [None, Some(80)] {
        let opts = PrepareOptions {
            n_top_genes: n_top,
            ..Default::default()
        };
        assert_same(&path, &opts, 1, 64);
    }
}

#[test]
fn the_cache_stays_within_its_budget() {
    let path = norman_file("budget");
    let budget = 300_000;
    let d = prepare(&path, &streamed(&PrepareOptions::default(), budget, 128)).unwrap();
    let Expression::Streamed(s) = &d.x else {
        panic!("streamed")
    };
    let block_bytes = 128 * d.n_genes() as u64 * 4;
    let _ = all_values(&d);
    let st = s.stats();
    assert!(st.bytes <= budget.max(block_bytes), "{st:?}");
    assert!(st.blocks >= 1);
    // Every block of every condition was decoded at least once.
    let blocks: usize = d
        .table
        .cells_by_condition()
        .iter()
        .map(|p| p.len().div_ceil(128))
        .sum();
    assert!(st.loads as usize >= blocks, "{st:?}, {blocks} blocks");
    println!(
        "{} blocks held, {} bytes of a {budget} budget, {} loads",
        st.blocks, st.bytes, st.loads
    );
}

#[test]
fn hyperslab_rows_equal_whole_reads() {
    let dir = workspace_root().join("tests/fixtures/h5ad");
    for case in [
        "csr_f32",
        "dense_f32_lzf",
        "dense_int_counts_layer",
        "schema_gears",
    ] {
        let ad = AnnData::open(dir.join(format!("{case}.h5ad"))).unwrap();
        let n = ad.n_obs();
        let rows: Vec<usize> = (0..n).filter(|r| r % 3 != 1).collect();
        let reader = RowReader::open(&ad, "X").unwrap();
        assert_eq!(
            reader.read(&rows).unwrap(),
            ad.read_rows_sparse("X", &rows).unwrap(),
            "{case}"
        );
        let err = reader.read(&[n]).unwrap_err().to_string();
        assert!(err.contains(&format!("cell {n} requested")), "{err}");
    }
    let ad = AnnData::open(dir.join("csc_f64_gzip.h5ad")).unwrap();
    let err = RowReader::open(&ad, "X").unwrap_err().to_string();
    for want in ["csc_matrix", "tocsr()", "data.max_memory"] {
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn the_streamed_mask_equals_the_in_memory_mask() {
    let path = norman_file("mask");
    let opts = PrepareOptions {
        n_top_genes: Some(120),
        ..Default::default()
    };
    let d = prepare(&path, &opts).unwrap();
    let cells: Vec<usize> = (0..d.table.n_cells()).collect();
    let x: Vec<f64> = d.rows(&cells).unwrap().iter().map(|&v| v as f64).collect();
    let cfg = CoexpressionConfig {
        top_k: 16,
        ..Default::default()
    };
    let want = coexpression_mask(&x, cells.len(), &d.genes, &cfg);
    let g = d.n_genes();
    let mut passes = |visit: &mut dyn FnMut(&[f64])| {
        for block in x.chunks(g * 500) {
            visit(block);
        }
        Ok(())
    };
    let (got, cached) =
        streamed_coexpression_mask(&mut passes, cells.len(), &d.genes, &cfg, None).unwrap();
    assert!(!cached);
    assert_eq!(got, want);
    // Both paths share the cache: the in-memory path writes it, the streamed one reads it.
    let dir = tmp("mask-cache");
    assert!(
        !cached_coexpression_mask(&dir, &x, cells.len(), &d.genes, &cfg)
            .unwrap()
            .1
    );
    let (again, cached) =
        streamed_coexpression_mask(&mut passes, cells.len(), &d.genes, &cfg, Some(&dir)).unwrap();
    assert!(
        cached,
        "the streamed path found the in-memory path's cache file"
    );
    assert_eq!(again, want);
}

#[test]
fn streamed_batches_come_from_one_block_and_resume_exactly() {
    let path = norman_file("sampler");
    let block = 50;
    let d = prepare(&path, &streamed(&PrepareOptions::default(), 1 << 20, block)).unwrap();
    let split = Split::make(&d.table, &SplitConfig::default(), &d.report.path).unwrap();
    let pools = d.table.cells_by_condition();
    let block_of =
        |cond: usize, cell: usize| pools[cond].iter().position(|&c| c == cell).unwrap() / block;
    let mut s = TrainSampler::new(&d, &split, 24, 32, 3).unwrap();
    let mut control_blocks = HashSet::new();
    for _ in 0..200 {
        let b = s.next_batch(&d).unwrap();
        let t: HashSet<usize> = b
            .target_cells
            .iter()
            .map(|&c| block_of(b.condition, c))
            .collect();
        assert_eq!(t.len(), 1, "target cells from one block");
        let c: HashSet<usize> = b.control_cells.iter().map(|&c| block_of(0, c)).collect();
        assert_eq!(c.len(), 1, "control cells from one block");
        control_blocks.extend(c);
        assert_eq!(b.target, d.gather(&b.target_cells, &b.genes).unwrap());
    }
    assert_eq!(
        control_blocks.len(),
        pools[0].len().div_ceil(block),
        "every control block is drawn"
    );
    let state = s.state();
    let next: Vec<_> = (0..3).map(|_| s.next_indices()).collect();
    let mut r = TrainSampler::new(&d, &split, 24, 32, 99).unwrap();
    r.restore(state);
    assert_eq!(next, (0..3).map(|_| r.next_indices()).collect::<Vec<_>>());
}

#[test]
fn memory_sizes_parse_as_written() {
    for (text, bytes) in [
        ("2GiB", 2u64 << 30),
        ("512 MiB", 512 << 20),
        ("1.5GB", 1_500_000_000),
        ("100kb", 100_000),
        ("4096", 4096),
    ] {
        assert_eq!(
            text.parse::<MemoryBudget>(),
            Ok(MemoryBudget::Bytes(bytes)),
            "{text}"
        );
    }
    assert_eq!("auto".parse::<MemoryBudget>(), Ok(MemoryBudget::Auto));
    assert!(MemoryBudget::Auto.bytes() > 0);
    for bad in ["two", "-1GiB", "0", "0.5", "0.5b", "1.5XB", "", "1e30TiB"] {
        let err = bad.parse::<MemoryBudget>().unwrap_err();
        assert!(err.contains("2GiB"), "{bad}: {err}");
    }
    // Written exactly, so that it reads back as the same size.
    for (bytes, text) in [
        (2u64 << 30, "2GiB"),
        (3 << 29, "1536MiB"),
        (1_500_000_000, "1500000000"),
    ] {
        assert_eq!(MemoryBudget::Bytes(bytes).to_string(), text);
        assert_eq!(text.parse(), Ok(MemoryBudget::Bytes(bytes)));
    }
}
