//! The co-expression mask against scDFM's own (fixture 04 in `../shared/fixtures/scdfm`):
//! the correlation matrix, the unsorted mask and the padded, vocabulary-ordered mask are rebuilt
//! from the recorded toy expression matrix.

use ccfm_data::coexpression::{blocked_mask, correlation, sorted_pad_mask};
use ccfm_data::{coexpression_mask, CoexpressionConfig};
use ccfm_testkit::{assert_close, available, scdfm_fixture_dir, Fixture};

#[test]
fn mask_matches_scdfm_fixture() {
    let dir = scdfm_fixture_dir();
    if !available(
        &dir.join("04_gene_encoder.safetensors"),
        "mask_matches_scdfm_fixture",
    ) {
        return;
    }
    let f = Fixture::load(&dir, "04_gene_encoder");
    let [cells, genes] = [f.shape("input.expr_X")[0], f.shape("input.expr_X")[1]];
    let x: Vec<f64> = f.f32s("input.expr_X").iter().map(|&v| v as f64).collect();
    let names: Vec<String> = f.json["config"]["gene_names_training_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let cfg = CoexpressionConfig {
        top_k: 3,
        use_negative_edge: true,
        n_specials: 4,
    };

    let corr = correlation(&x, cells, genes);
    let corr32: Vec<f32> = corr.iter().map(|&v| v as f32).collect();
    assert_close("correlation", &corr32, f.f32s("output.corr"), 1e-5);

    let unsorted = blocked_mask(&corr, genes, &cfg);
    let expected = f.flags("output.mask_unsorted");
    assert_eq!(unsorted, expected, "unsorted mask");

    let padded = sorted_pad_mask(&unsorted, &names, 4);
    let expected = f.flags("input.mask_padded");
    assert_eq!(padded, expected, "padded mask");
    assert_eq!(coexpression_mask(&x, cells, &names, &cfg), expected);
}

#[test]
fn every_gene_keeps_at_least_k_partners_and_specials_see_only_themselves() {
    // 40 cells x 12 genes of deterministic pseudo-data.
    let (cells, genes) = (40, 12);
    let x: Vec<f64> = (0..cells * genes)
        .map(|i| ((i as f64 * 0.37).sin() * 3.0).max(0.0))
        .collect();
    let names: Vec<String> = (0..genes).map(|g| format!("G{:02}", genes - g)).collect();
    let cfg = CoexpressionConfig {
        top_k: 4,
        ..Default::default()
    };
    let m = genes + 4;
    let mask = coexpression_mask(&x, cells, &names, &cfg);
    for r in 0..m {
        let allowed: Vec<usize> = (0..m).filter(|&c| !mask[r * m + c]).collect();
        if r < 4 {
            assert_eq!(allowed, vec![r], "special token {r}");
        } else {
            assert!(allowed.len() > cfg.top_k, "gene row {r}: {allowed:?}");
            assert!(
                allowed.iter().all(|&c| c >= 4),
                "genes never attend to specials"
            );
        }
    }
    // Symmetric over genes.
    for r in 4..m {
        for c in 4..m {
            assert_eq!(mask[r * m + c], mask[c * m + r]);
        }
    }
}

#[test]
fn constant_genes_get_no_correlation() {
    let (cells, genes) = (10, 3);
    let x: Vec<f64> = (0..cells * genes)
        .map(|i| {
            if i % genes == 1 {
                2.0
            } else {
                (i as f64).sin()
            }
        })
        .collect();
    let c = correlation(&x, cells, genes);
    assert_eq!(c[genes + 1], 1.0, "diagonal is 1");
    assert_eq!(c[1], 0.0);
    assert_eq!(c[genes + 2], 0.0);
}

#[test]
fn masks_are_cached_by_their_inputs() {
    use ccfm_data::coexpression::cached_coexpression_mask;
    let dir = std::env::temp_dir().join(format!("ccfm-mask-cache-{}", std::process::id()));
    let (cells, genes) = (20, 8);
    let x: Vec<f64> = (0..cells * genes)
        .map(|i| ((i * 7919) % 13) as f64 * 0.3)
        .collect();
    let names: Vec<String> = (0..genes).map(|g| format!("G{}", 9 - g)).collect();
    let cfg = CoexpressionConfig {
        top_k: 3,
        ..Default::default()
    };
    let direct = coexpression_mask(&x, cells, &names, &cfg);
    let (a, hit_a) = cached_coexpression_mask(&dir, &x, cells, &names, &cfg).unwrap();
    let (b, hit_b) = cached_coexpression_mask(&dir, &x, cells, &names, &cfg).unwrap();
    assert_eq!((hit_a, hit_b), (false, true));
    assert_eq!(a, direct);
    assert_eq!(b, direct);
    // Other inputs, other entry.
    let cfg2 = CoexpressionConfig { top_k: 2, ..cfg };
    let (_, hit) = cached_coexpression_mask(&dir, &x, cells, &names, &cfg2).unwrap();
    assert!(!hit);
    let mut x2 = x.clone();
    x2[5] += 1.0;
    let (_, hit) = cached_coexpression_mask(&dir, &x2, cells, &names, &cfg).unwrap();
    assert!(!hit);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
    // A damaged entry is recomputed, not trusted.
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        std::fs::write(&p, b"garbage").unwrap();
    }
    let (c, hit) = cached_coexpression_mask(&dir, &x, cells, &names, &cfg).unwrap();
    assert!(!hit);
    assert_eq!(c, direct);
    std::fs::remove_dir_all(dir).unwrap();
}
