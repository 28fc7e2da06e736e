//! Small statistics used by the metrics: Pearson and Spearman correlation, average ranks,
//! the two-sided asymptotic Mann–Whitney U test, Benjamini–Hochberg, ROC and PR areas.

/// Pearson r (NaN when either side is constant or the lengths are below 2).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len();
    if n < 2 || n != b.len() {
        return f64::NAN;
    }
    let (ma, mb) = (
        a.iter().sum::<f64>() / n as f64,
        b.iter().sum::<f64>() / n as f64,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::NAN;
    }
    (sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0)
}

/// 1-based average ranks (ties share the mean of their positions); ±inf rank as extremes.
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && v[idx[j]] == v[idx[i]] {
            j += 1;
        }
        let r = (i + 1 + j) as f64 / 2.0;
        for &k in &idx[i..j] {
            ranks[k] = r;
        }
        i = j;
    }
    ranks
}

/// Spearman correlation: Pearson on average ranks.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&average_ranks(a), &average_ranks(b))
}

/// Standard normal upper tail `1 - Φ(z)`, accurate in the far tail.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (W. J. Cody's rational approximations, relative error
/// below 1e-15 over the real line). The constants are the published ones, digits kept.
#[allow(clippy::excessive_precision)]
pub fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 0.5 {
        return 1.0 - erf_small(x);
    }
    if x > 27.0 {
        return 0.0;
    }
    let (p, q): (&[f64], &[f64]) = if x <= 4.0 {
        (
            &[
                5.641_884_969_886_701e-1,
                8.883_149_794_388_376,
                6.611_919_063_714_163e1,
                2.986_351_381_974_001e2,
                8.819_522_212_417_69e2,
                1.712_047_612_634_070_7e3,
                2.051_078_377_826_071_6e3,
                1.230_339_354_797_997_2e3,
                2.153_115_354_744_038_3e-8,
            ],
            &[
                1.574_492_611_070_983_5e1,
                1.176_939_508_913_124_9e2,
                5.371_811_018_620_098_6e2,
                1.621_389_574_566_690_3e3,
                3.290_799_235_733_459_7e3,
                4.362_619_090_143_247e3,
                3.439_367_674_143_721_6e3,
                1.230_339_354_803_749_5e3,
            ],
        )
    } else {
        (
            &[
                3.053_266_349_612_323e-1,
                3.603_448_999_498_044_5e-1,
                1.257_817_261_112_292_6e-1,
                1.608_378_514_874_227_7e-2,
                6.587_491_615_298_378e-4,
                1.631_538_713_730_71e-2,
            ],
            &[
                2.568_520_192_289_822,
                1.872_952_849_923_460_4,
                5.279_051_029_514_285e-1,
                6.051_834_131_244_132e-2,
                2.335_204_976_268_691_8e-3,
            ],
        )
    };
    let r = if x <= 4.0 {
        let mut num = p[8] * x;
        let mut den = x;
        for i in 0..7 {
            num = (num + p[i]) * x;
            den = (den + q[i]) * x;
        }
        (num + p[7]) / (den + q[7])
    } else {
        let z = 1.0 / (x * x);
        let mut num = p[5] * z;
        let mut den = z;
        for i in 0..4 {
            num = (num + p[i]) * z;
            den = (den + q[i]) * z;
        }
        let r = z * (num + p[4]) / (den + q[4]);
        (1.0 / std::f64::consts::PI.sqrt() - r) / x
    };
    // exp(-x^2) split to keep precision.
    let xs = (x * 16.0).trunc() / 16.0;
    let del = (x - xs) * (x + xs);
    (-xs * xs).exp() * (-del).exp() * r
}

#[allow(clippy::excessive_precision)]
fn erf_small(x: f64) -> f64 {
    const A: [f64; 5] = [
        3.161_123_743_870_565_6,
        1.138_641_541_510_501_6e2,
        3.774_852_376_853_020_2e2,
        3.209_377_589_138_469_4e3,
        1.857_777_061_846_031_5e-1,
    ];
    const B: [f64; 4] = [
        2.360_129_095_234_412e1,
        2.440_246_379_344_441_7e2,
        1.282_616_526_077_372_3e3,
        2.844_236_833_439_170_6e3,
    ];
    let z = x * x;
    let mut num = A[4] * z;
    let mut den = z;
    for i in 0..3 {
        num = (num + A[i]) * z;
        den = (den + B[i]) * z;
    }
    x * (num + A[3]) / (den + B[3])
}

/// Two-sided asymptotic Mann–Whitney U with tie and continuity correction (scipy's
/// `mannwhitneyu(method="asymptotic", use_continuity=True)`). Returns `(U1, p)`.
pub fn mann_whitney(x: &[f64], y: &[f64]) -> (f64, f64) {
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    let all: Vec<f64> = x.iter().chain(y).copied().collect();
    let n = all.len() as f64;
    let ranks = average_ranks(&all);
    let r1: f64 = ranks[..x.len()].iter().sum();
    let u1 = r1 - n1 * (n1 + 1.0) / 2.0;
    let u2 = n1 * n2 - u1;
    // Tie term: sum of t^3 - t over tie groups.
    let mut sorted = all.clone();
    sorted.sort_by(f64::total_cmp);
    let mut tie = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j] == sorted[i] {
            j += 1;
        }
        let t = (j - i) as f64;
        tie += t * t * t - t;
        i = j;
    }
    let var = n1 * n2 / 12.0 * ((n + 1.0) - tie / (n * (n - 1.0)));
    if var <= 0.0 || !var.is_finite() {
        return (u1, 1.0);
    }
    let z = (u1.max(u2) - n1 * n2 / 2.0 - 0.5) / var.sqrt();
    (u1, (2.0 * normal_sf(z)).min(1.0))
}

/// Benjamini–Hochberg adjusted p-values (scipy's `false_discovery_control(method="bh")`).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut idx: Vec<usize> = (0..m).collect();
    idx.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut q = vec![0.0; m];
    let mut running = f64::INFINITY;
    for (rank, &i) in idx.iter().enumerate().rev() {
        let v = p[i] * m as f64 / (rank + 1) as f64;
        running = running.min(v);
        q[i] = running.min(1.0);
    }
    q
}

/// Area under the ROC curve (sklearn `roc_curve` + `auc`): the trapezoid over thresholds at
/// the distinct scores.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> f64 {
    let (fps, tps) = curve(labels, scores);
    let (p, n) = (*tps.last().unwrap_or(&0.0), *fps.last().unwrap_or(&0.0));
    if p == 0.0 || n == 0.0 {
        return f64::NAN;
    }
    let mut area = 0.0;
    let (mut fx, mut ty) = (0.0, 0.0);
    for (f, t) in fps.iter().zip(&tps) {
        let (x, y) = (f / n, t / p);
        area += (x - fx) * (y + ty) / 2.0;
        fx = x;
        ty = y;
    }
    area
}

/// Average precision (sklearn `average_precision_score`): Σ (R_n − R_{n−1}) P_n over the
/// distinct score thresholds, from the highest score down.
pub fn average_precision(labels: &[bool], scores: &[f64]) -> f64 {
    let (fps, tps) = curve(labels, scores);
    let p = *tps.last().unwrap_or(&0.0);
    if p == 0.0 {
        return f64::NAN;
    }
    let mut ap = 0.0;
    let mut prev_recall = 0.0;
    for (f, t) in fps.iter().zip(&tps) {
        let recall = t / p;
        let precision = t / (t + f);
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    ap
}

/// Cumulative false and true positives at each distinct score, scores descending.
fn curve(labels: &[bool], scores: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]));
    let (mut fps, mut tps) = (Vec::new(), Vec::new());
    let (mut f, mut t) = (0.0, 0.0);
    for (k, &i) in idx.iter().enumerate() {
        if labels[i] {
            t += 1.0;
        } else {
            f += 1.0;
        }
        let last = k + 1 == idx.len() || scores[idx[k + 1]] != scores[i];
        if last {
            fps.push(f);
            tps.push(t);
        }
    }
    (fps, tps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        // Reference values: Python 3.11 `math.erfc`.
        for (x, want) in [
            (0.0, 1.0),
            (0.3, 0.671_373_240_540_872_6),
            (1.0, 0.157_299_207_050_285_13),
            (3.0, 2.209_049_699_858_544e-5),
            (6.0, 2.151_973_671_249_891_3e-17),
            (-1.0, 1.842_700_792_949_715),
        ] {
            let got = erfc(x);
            assert!(
                ((got - want) / want).abs() < 1e-13,
                "erfc({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn benjamini_hochberg_is_monotone_and_capped() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.5]);
        let want = [0.04, 0.16 / 3.0, 0.16 / 3.0, 0.5];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{q:?}");
        }
    }
}
