//! Guard rails: does a model's prediction depend on the perturbation, and does it beat the
//! trivial baselines?
//!
//! A model that predicts the same cells whatever the perturbation (mode collapse) can still
//! score a fair pearson_delta when the conditions share most of their effect, so every report
//! also shows, from the mean effects (pseudobulk minus control) of the evaluated conditions:
//!
//! - **cross-condition correlation**: the mean Pearson correlation between the predicted
//!   effects of two different conditions, next to the same figure for the real effects (a
//!   perturbation-blind model is near 1 whatever the real value);
//! - **effect spread**: how much the predicted effects differ between conditions, relative to
//!   how much the real ones do (per gene, the standard deviation over conditions, averaged over
//!   genes; 0 = the same prediction for every condition, 1 = as varied as the truth);
//! - **own nearest**: the fraction of conditions whose predicted effect is nearer (L1) to its
//!   own real effect than to any other condition's (a top-1 rank metric; cell-eval's
//!   discrimination score is the mean rank).
//!
//! [`shortfalls`] lists every metric on which a model does not beat `mean` or `control`: the
//! loud line of the demo, `ccfm report` and the comparison page.

use std::fmt;

use crate::stats::pearson;

/// The dependence figures of one model on one set of conditions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dependence {
    pub conditions: usize,
    /// Mean correlation of the predicted effects of two different conditions.
    pub cross_corr_pred: Option<f64>,
    /// The same for the real effects (the reference).
    pub cross_corr_real: Option<f64>,
    /// Spread of the predicted effects over conditions / spread of the real ones.
    pub spread_ratio: Option<f64>,
    /// Fraction of conditions whose prediction is nearest its own real effect.
    pub own_nearest: Option<f64>,
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Mean Pearson correlation over the pairs of different rows (pairs with a constant row are
/// skipped); `None` with fewer than two rows or no usable pair.
fn mean_cross_corr(rows: &[Vec<f64>]) -> Option<f64> {
    let mut sum = 0.0;
    let mut n = 0usize;
    for i in 0..rows.len() {
        for j in i + 1..rows.len() {
            let r = pearson(&rows[i], &rows[j]);
            if r.is_finite() {
                sum += r;
                n += 1;
            }
        }
    }
    (n > 0).then(|| sum / n as f64)
}

/// Per gene, the standard deviation over rows; averaged over genes.
fn mean_spread(rows: &[Vec<f64>]) -> f64 {
    let (n, g) = (rows.len() as f64, rows[0].len());
    let mut total = 0.0;
    for k in 0..g {
        let mean = rows.iter().map(|r| r[k]).sum::<f64>() / n;
        let var = rows.iter().map(|r| (r[k] - mean).powi(2)).sum::<f64>() / n;
        total += var.sqrt();
    }
    total / g.max(1) as f64
}

fn l1(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
}

/// Fraction of rows `i` with `|pred_i - real_i| < |pred_i - real_j|` for every `j != i`.
fn own_nearest(pred: &[Vec<f64>], real: &[Vec<f64>]) -> f64 {
    let hits = (0..pred.len())
        .filter(|&i| {
            let own = l1(&pred[i], &real[i]);
            (0..real.len()).all(|j| j == i || own < l1(&pred[i], &real[j]))
        })
        .count();
    hits as f64 / pred.len() as f64
}

/// The figures from `(condition, real effect, predicted effect)` rows (an [`Evaluation`]'s
/// `deltas`); every figure is `None` with fewer than two conditions, rows of different widths
/// or a value that is not finite.
///
/// [`Evaluation`]: crate::Evaluation
pub fn dependence(deltas: &[(String, Vec<f32>, Vec<f32>)]) -> Dependence {
    let real: Vec<Vec<f64>> = deltas.iter().map(|d| to_f64(&d.1)).collect();
    let pred: Vec<Vec<f64>> = deltas.iter().map(|d| to_f64(&d.2)).collect();
    let none = Dependence {
        conditions: deltas.len(),
        cross_corr_pred: None,
        cross_corr_real: None,
        spread_ratio: None,
        own_nearest: None,
    };
    let genes = real.first().map_or(0, Vec::len);
    let same_width = real.iter().chain(&pred).all(|r| r.len() == genes);
    let finite = real.iter().chain(&pred).flatten().all(|x| x.is_finite());
    // Figures of rows of different widths or with a NaN / inf would be meaningless.
    if deltas.len() < 2 || genes == 0 || !same_width || !finite {
        return none;
    }
    let real_spread = mean_spread(&real);
    Dependence {
        cross_corr_pred: mean_cross_corr(&pred),
        cross_corr_real: mean_cross_corr(&real),
        spread_ratio: (real_spread > 0.0).then(|| mean_spread(&pred) / real_spread),
        own_nearest: Some(own_nearest(&pred, &real)),
        ..none
    }
}

impl Dependence {
    /// One line for a text report.
    pub fn line(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3}"));
        format!(
            "cross-condition correlation {} (real {}), effect spread {} of the real, own nearest {}",
            f(self.cross_corr_pred),
            f(self.cross_corr_real),
            f(self.spread_ratio),
            f(self.own_nearest)
        )
    }
}

/// The metrics the shortfall check compares: whether higher is better, and the best value
/// the metric can take (a tie there is not a shortfall).
pub const CHECKED_METRICS: [(&str, bool, f64); 3] = [
    ("pearson_delta", true, 1.0),
    ("mse", false, 0.0),
    ("discrimination_score_l1", true, 1.0),
];

/// The baselines a model has to beat.
pub const TRIVIAL_BASELINES: [&str; 2] = ["mean", "control"];

/// A metric on which a model does not beat a trivial baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Shortfall {
    pub model: String,
    pub baseline: String,
    pub metric: String,
    /// `None`: the model's value is missing or not finite.
    pub model_value: Option<f64>,
    pub baseline_value: f64,
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self
            .model_value
            .map_or("missing".to_string(), |x| format!("{x:.4}"));
        write!(
            f,
            "{} does not beat `{}` on {} ({} vs {:.4})",
            self.model, self.baseline, self.metric, v, self.baseline_value
        )
    }
}

/// Every (model, baseline, metric) of [`CHECKED_METRICS`] x [`TRIVIAL_BASELINES`] where the
/// model is not strictly better (a tie counts, except at the metric's best value). `value(method, metric)` gives a method's mean; a baseline
/// without a value is not checked.
pub fn shortfalls(models: &[String], value: &dyn Fn(&str, &str) -> Option<f64>) -> Vec<Shortfall> {
    let mut out = Vec::new();
    for model in models {
        for baseline in TRIVIAL_BASELINES {
            for (metric, higher, ideal) in CHECKED_METRICS {
                let Some(b) = value(baseline, metric).filter(|b| b.is_finite()) else {
                    continue;
                };
                let m = value(model, metric).filter(|m| m.is_finite());
                let beats = m.is_some_and(|m| {
                    (m == ideal && b == ideal) || if higher { m > b } else { m < b }
                });
                if !beats {
                    out.push(Shortfall {
                        model: model.clone(),
                        baseline: baseline.to_string(),
                        metric: metric.to_string(),
                        model_value: m,
                        baseline_value: b,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(real: &[[f32; 3]], pred: &[[f32; 3]]) -> Vec<(String, Vec<f32>, Vec<f32>)> {
        real.iter()
            .zip(pred)
            .enumerate()
            .map(|(i, (r, p))| (format!("p{i}"), r.to_vec(), p.to_vec()))
            .collect()
    }

    #[test]
    fn a_perturbation_blind_prediction_is_flagged() {
        let real = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let same = [[0.4, 0.3, 0.2]; 3];
        let d = dependence(&rows(&real, &same));
        assert_eq!(d.spread_ratio, Some(0.0));
        // The same prediction for every condition is nearest one condition's truth at most.
        assert_eq!(d.own_nearest, Some(1.0 / 3.0));
        assert!((d.cross_corr_pred.unwrap() - 1.0).abs() < 1e-12);
        assert!((d.cross_corr_real.unwrap() + 0.5).abs() < 1e-12);
        let flat = dependence(&rows(&real, &[[0.3; 3]; 3]));
        assert_eq!(flat.own_nearest, Some(0.0), "ties are not hits");
        assert_eq!(
            flat.cross_corr_pred, None,
            "constant rows have no correlation"
        );
        let exact = dependence(&rows(&real, &real));
        assert_eq!(exact.own_nearest, Some(1.0));
        assert!((exact.spread_ratio.unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(exact.cross_corr_pred, exact.cross_corr_real);
    }

    #[test]
    fn own_nearest_counts_each_condition_once() {
        // p1's prediction is nearer p0's truth than its own.
        let real = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        let pred = [[0.9, 0.0, 0.0], [0.8, 0.1, 0.0]];
        assert_eq!(dependence(&rows(&real, &pred)).own_nearest, Some(0.5));
        let one = dependence(&rows(&real[..1], &pred[..1]));
        assert_eq!((one.conditions, one.own_nearest), (1, None));
    }

    #[test]
    fn ragged_or_non_finite_rows_give_no_figures() {
        let mut ragged = rows(&[[1.0, 0.0, 0.0]; 2], &[[0.5, 0.0, 0.0], [0.0, 1.0, 0.0]]);
        ragged[1].2.pop();
        let mut nan = rows(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], &[[0.5, 0.2, 0.0]; 2]);
        nan[0].2[1] = f32::NAN;
        for d in [dependence(&ragged), dependence(&nan)] {
            assert_eq!(d.conditions, 2);
            assert_eq!(
                (d.cross_corr_pred, d.spread_ratio, d.own_nearest),
                (None, None, None)
            );
        }
    }

    #[test]
    fn shortfalls_name_every_lost_comparison() {
        let table = |method: &str, metric: &str| -> Option<f64> {
            match (method, metric) {
                ("m", "pearson_delta") => Some(0.5),
                ("m", "mse") => Some(0.2),
                ("m", "discrimination_score_l1") => Some(f64::NAN),
                ("mean", "pearson_delta") => Some(0.4),
                ("mean", "mse") => Some(0.2),
                ("mean", "discrimination_score_l1") => Some(0.5),
                ("p", "discrimination_score_l1") => Some(1.0),
                ("control", "discrimination_score_l1") => Some(1.0),
                _ => None,
            }
        };
        let s = shortfalls(&["m".to_string()], &table);
        let got: Vec<(&str, &str)> = s
            .iter()
            .map(|x| (x.baseline.as_str(), x.metric.as_str()))
            .collect();
        // A tie is not a win, a NaN is not a win, a missing baseline is not checked.
        assert_eq!(
            got,
            [
                ("mean", "mse"),
                ("mean", "discrimination_score_l1"),
                ("control", "discrimination_score_l1")
            ]
        );
        assert_eq!(
            s[0].to_string(),
            "m does not beat `mean` on mse (0.2000 vs 0.2000)"
        );
        assert!(s[1].to_string().contains("(missing vs 0.5000)"));
        // Both at the best possible value: a tie that is not a shortfall.
        let perfect = shortfalls(&["p".to_string()], &table);
        assert!(perfect.iter().all(|f| f.baseline == "mean"), "{perfect:?}");
    }
}
