//! The synthetic generator: deterministic, readable through the real-schema path, and with a
//! known additive/non-additive split that the additive baseline measurably fails on.

use std::collections::BTreeMap;

use ccfm_data::synth::{additive_check, generate};
use ccfm_data::{
    prepare, AnnData, Perturbagen, PrepareOptions, Preset, Schema, Size, SynthConfig, ValueScale,
};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ccfm-synth-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cfg(preset: Preset, size: Size, seed: u64) -> SynthConfig {
    SynthConfig { preset, size, seed }
}

#[test]
fn generation_is_deterministic_per_seed() {
    for preset in [Preset::Norman, Preset::ComboSciPlex] {
        let a = generate(&cfg(preset, Size::Tiny, 3));
        let b = generate(&cfg(preset, Size::Tiny, 3));
        let c = generate(&cfg(preset, Size::Tiny, 4));
        assert_eq!(a.counts, b.counts, "{preset}");
        assert_eq!(a.obs, b.obs, "{preset}");
        assert_ne!(a.counts, c.counts, "{preset}");
    }
}

#[test]
fn tiny_files_load_through_their_schemas() {
    let dir = tmp("tiny");
    for (preset, schema, kind) in [
        (Preset::Norman, Schema::Gears, Perturbagen::Gene),
        (
            Preset::ComboSciPlex,
            Schema::ComboSciPlex,
            Perturbagen::Drug,
        ),
    ] {
        let synth = generate(&cfg(preset, Size::Tiny, 1));
        let path = dir.join(format!("{preset}.h5ad"));
        synth.write(&path).unwrap();
        let data = prepare(&path, &PrepareOptions::default()).unwrap();
        assert_eq!(data.table.schema, schema);
        assert_eq!(data.table.kind, kind);
        assert_eq!(data.genes.len(), 50);
        // ComboSciPlex reads layers['counts'] and normalises to the median (as scDFM does);
        // the GEARS file's X is log1p already.
        let want = if preset == Preset::ComboSciPlex {
            ValueScale::Counts
        } else {
            ValueScale::Log1p
        };
        assert_eq!(data.report.scale, want, "{preset}");
        let ad = AnnData::open(&path).unwrap();
        let x = ad.read_matrix("X", &[0, 1, 2], None).unwrap();
        assert!(x.iter().all(|v| v.is_finite() && *v >= 0.0));
        if preset == Preset::ComboSciPlex {
            assert!(data.table.doses.is_some(), "Dose1/Dose2 are read");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn additive_baseline_fails_on_the_non_additive_doubles() {
    let synth = generate(&cfg(Preset::Norman, Size::Default, 0));
    let dir = tmp("default");
    let path = dir.join("norman.h5ad");
    synth.write(&path).unwrap();
    let data = prepare(&path, &PrepareOptions::default()).unwrap();
    let x = data.x.in_memory().unwrap();
    let zeros = 1.0 - x.iter().filter(|&&v| v != 0.0).count() as f64 / x.len() as f64;
    println!(
        "synthetic Norman default: {} cells x {} genes, {:.1}% zeros",
        data.table.n_cells(),
        data.n_genes(),
        100.0 * zeros
    );
    let (singles, doubles) = data.table.singles_doubles();
    assert_eq!((singles, doubles), (20, 40));
    let non_additive = synth.gi_type.values().filter(|t| *t != "additive").count();
    assert!(
        non_additive * 10 >= 4 * doubles,
        "at least 40% non-additive"
    );
    let mut by_type: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (name, r, resid) in additive_check(&data).unwrap() {
        let label = synth
            .gi_type
            .iter()
            .find(|(k, _)| ccfm_data::Condition::parse(k).name() == name)
            .map(|(_, t)| t.clone())
            .unwrap();
        by_type.entry(label).or_default().push((r, resid));
    }
    let mean =
        |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    for (t, v) in &by_type {
        println!(
            "  {t:<10} n={:>2}  additive pearson_delta {:.3}  residual fraction {:.3}",
            v.len(),
            mean(v, |x| x.0),
            mean(v, |x| x.1)
        );
    }
    let additive: Vec<(f64, f64)> = by_type["additive"].clone();
    let others: Vec<(f64, f64)> = by_type
        .iter()
        .filter(|(t, _)| *t != "additive")
        .flat_map(|(_, v)| v.clone())
        .collect();
    let (r_add, r_other) = (mean(&additive, |x| x.0), mean(&others, |x| x.0));
    let (e_add, e_other) = (mean(&additive, |x| x.1), mean(&others, |x| x.1));
    println!("  additive doubles r={r_add:.3} resid={e_add:.3}; non-additive r={r_other:.3} resid={e_other:.3}");
    // With 200 cells per condition, sampling noise keeps the additive doubles' r below 1
    // (0.97 with 1,500 cells); the non-additive ones sit clearly lower.
    assert!(
        r_add > 0.8,
        "the additive baseline fits additive doubles: {r_add}"
    );
    assert!(
        e_other > 1.5 * e_add,
        "non-additive residuals are larger: {e_other} vs {e_add}"
    );
    assert!(
        r_other < r_add - 0.1,
        "the baseline's correlation drops: {r_other} vs {r_add}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_file_written_in_blocks_equals_the_in_memory_one() {
    let dir = tmp("large");
    for (preset, cells) in [(Preset::Norman, 12_800), (Preset::ComboSciPlex, 40_000)] {
        // Norman's default proportions give back the default design exactly.
        let scaled = cfg(preset, Size::Cells { cells, genes: 500 }, 2);
        let path = dir.join(format!("{preset}-blocks.h5ad"));
        let written = ccfm_data::synth::write_large(&scaled, &path).unwrap();
        let ad = AnnData::open(&path).unwrap();
        assert_eq!((ad.n_obs(), ad.n_vars()), (written.n_obs, written.n_vars));
        let rows: Vec<usize> = (0..ad.n_obs()).collect();
        let mem = generate(&scaled);
        assert_eq!(ad.obs, mem.obs, "{preset}");
        assert_eq!(written.gi_type, mem.gi_type);
        let x = ad.read_csr_rows("X", &rows).unwrap();
        assert_eq!(x.data, mem.x.iter().map(|&v| v as f64).collect::<Vec<_>>());
        let counts = ad.read_csr_rows("layers/counts", &rows).unwrap();
        assert_eq!(
            counts.data,
            mem.counts.0.iter().map(|&v| v as f64).collect::<Vec<_>>()
        );
        let ptr: Vec<usize> = mem.counts.2.iter().map(|&p| p as usize).collect();
        assert_eq!(counts.indptr, ptr);
        if preset == Preset::Norman {
            let default = generate(&cfg(preset, Size::Default, 2));
            assert_eq!(
                default.counts, mem.counts,
                "the default design at its own size"
            );
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left");
}

#[test]
fn a_block_writer_refuses_bad_blocks_and_leaves_nothing() {
    let dir = tmp("bad-blocks");
    let path = dir.join("bad.h5ad");
    let mut w = ccfm_data::writer::StreamingH5ad::create(&path, 3, &["X"]).unwrap();
    w.append(0, &[1.0, 2.0], &[0, 2], &[0, 1, 2]).unwrap();
    let err = w.append(0, &[1.0], &[5], &[0, 1]).unwrap_err().to_string();
    assert!(err.contains("indices below n_vars"), "{err}");
    // Two rows appended but three cells described: refused, and no file appears.
    let obs = ccfm_data::DataFrame {
        index: vec!["a".into(), "b".into(), "c".into()],
        columns: vec![],
    };
    let var = ccfm_data::DataFrame {
        index: vec!["g1".into(), "g2".into(), "g3".into()],
        columns: vec![],
    };
    let err = w.finish(&obs, &var, &[]).unwrap_err().to_string();
    assert!(err.contains("2 rows appended for 3 cells"), "{err}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing left behind"
    );
}
