//! The frozen extractor on the fixture model: shapes, zero-filling, normalisation with
//! running statistics that freeze, and statistics surviving a save/load round trip.

use burn::backend::Flex;
use ccfm_scgpt::{ExtractorConfig, FeatureStats, FrozenScgptExtractor, ScgptModel};
use ccfm_testkit::{values, workspace_root};

type B = Flex;

fn extractor(cfg: ExtractorConfig) -> FrozenScgptExtractor<B> {
    let dir = std::env::var_os("CCFM_SCGPT_FIXTURE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("tests/fixtures/scgpt"));
    let model = ScgptModel::<B>::from_dir(&dir.join("model"), &Default::default()).unwrap();
    // The model's genes: 12 in the scGPT vocabulary, 2 not.
    let mut genes: Vec<String> = (0..12).map(|i| format!("G{i:02}")).collect();
    genes.extend(["UNKNOWN1".to_string(), "UNKNOWN2".to_string()]);
    FrozenScgptExtractor::new(model, &genes, cfg).unwrap()
}

fn batch(seed: u32) -> Vec<f32> {
    (0..4 * 14)
        .map(|i| {
            let h = (i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16;
            if h.is_multiple_of(3) {
                0.0
            } else {
                (h % 97) as f32 / 10.0
            }
        })
        .collect()
}

#[test]
fn features_are_scattered_zero_filled_and_normalised() {
    let mut ex = extractor(ExtractorConfig {
        stats_batches: 1,
        target_std: 2.0,
        ..Default::default()
    });
    assert_eq!(ex.coverage(), (12, 14));
    let dev = Default::default();
    let idx: Vec<usize> = (0..14).collect();
    let x = batch(1);
    let z = ex.extract(&x, &idx, &dev);
    assert_eq!(z.dims(), [4, 14, 32]);
    let z = values(z);
    let mut token_rows = Vec::new();
    for p in 0..4 * 14 {
        let f = &z[p * 32..(p + 1) * 32];
        let token = x[p] != 0.0 && p % 14 < 12;
        assert_eq!(f.iter().any(|&v| v != 0.0), token, "position {p}");
        if token {
            token_rows.push(f.to_vec());
        }
    }
    // Statistics came from this very batch: per dimension mean 0 and std target_std.
    let n = token_rows.len() as f64;
    for k in 0..32 {
        let mean = token_rows.iter().map(|r| r[k] as f64).sum::<f64>() / n;
        let sd = (token_rows
            .iter()
            .map(|r| (r[k] as f64 - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        assert!(mean.abs() < 1e-4, "dim {k}: mean {mean}");
        assert!((sd - 2.0).abs() < 1e-3, "dim {k}: std {sd}");
    }
    // Frozen after one batch: another batch does not move the statistics.
    assert!(ex.stats.frozen);
    let before = ex.stats.clone();
    let _ = ex.extract(&batch(2), &idx, &dev);
    assert_eq!(ex.stats, before);
    // A subset of the genes, in another order.
    let sub = ex.extract(
        &x[..14].iter().rev().copied().collect::<Vec<_>>(),
        &(0..14).rev().collect::<Vec<_>>(),
        &dev,
    );
    assert_eq!(sub.dims(), [1, 14, 32]);
}

#[test]
fn statistics_survive_a_round_trip_and_clamp_applies() {
    let mut ex = extractor(ExtractorConfig {
        stats_batches: 2,
        clamp: Some(0.5),
        ..Default::default()
    });
    let dev = Default::default();
    let idx: Vec<usize> = (0..14).collect();
    let _ = ex.extract(&batch(3), &idx, &dev);
    assert!(!ex.stats.frozen);
    let z = values(ex.extract(&batch(4), &idx, &dev));
    assert!(ex.stats.frozen);
    assert!(z.iter().all(|v| v.abs() <= 0.5));
    let text = ex.stats.to_json().to_string();
    let back = FeatureStats::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(back, ex.stats);
    // A fresh extractor with the loaded statistics gives the same features.
    let mut again = extractor(ExtractorConfig {
        stats_batches: 2,
        clamp: Some(0.5),
        ..Default::default()
    });
    again.stats = back;
    let (a, b) = (
        values(ex.extract(&batch(5), &idx, &dev)),
        values(again.extract(&batch(5), &idx, &dev)),
    );
    assert_eq!(a, b);
}
