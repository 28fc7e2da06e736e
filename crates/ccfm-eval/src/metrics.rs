//! cell-eval 0.8.2's per-perturbation metrics (spec: peers-metrics-data.md §2.1), computed on an
//! [`EvalPair`]. Pseudobulk metrics use float32 pseudobulks; DE uses Mann–Whitney U per gene,
//! Benjamini–Hochberg per perturbation, log2 fold changes of expm1 means with ε = 0 (±inf kept)
//! and float32 casts, as cell-eval and pdex do. `clustering_agreement` (Leiden) is not
//! computed.

use std::collections::HashSet;

use rayon::prelude::*;

use crate::pair::{mean_rows, pseudobulk, EvalPair, Groups};
use crate::stats::{
    average_precision, benjamini_hochberg, mann_whitney, pearson, roc_auc, spearman,
};

/// Which metrics to compute, as cell-eval's profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Full,
    Minimal,
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(Profile::Full),
            "minimal" => Ok(Profile::Minimal),
            _ => Err(format!("unknown profile `{s}`; choose full or minimal")),
        }
    }
}

/// Per-perturbation results: one row per perturbation (sorted), one column per metric, in
/// cell-eval's column order. `None` is a missing value (cell-eval's null: e.g. the direction
/// match of a perturbation without significant genes), distinct from a computed NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricTable {
    pub perts: Vec<String>,
    pub columns: Vec<(String, Vec<Option<f64>>)>,
}

impl MetricTable {
    pub fn column(&self, name: &str) -> Option<&[Option<f64>]> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The mean of a column over its non-missing values (NaN if any value is NaN).
    pub fn mean(&self, name: &str) -> Option<f64> {
        let v: Vec<f64> = self.column(name)?.iter().flatten().copied().collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// The mean of a column over the perturbations that `keep` accepts, skipping missing and
    /// NaN values; `None` when no value is left (or the column does not exist).
    pub fn mean_where(&self, name: &str, keep: &dyn Fn(&str) -> bool) -> Option<f64> {
        let v: Vec<f64> = self
            .perts
            .iter()
            .zip(self.column(name)?)
            .filter(|(p, _)| keep(p))
            .filter_map(|(_, v)| *v)
            .filter(|v| !v.is_nan())
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    fn push(&mut self, name: &str, values: Vec<f64>) {
        self.columns
            .push((name.to_string(), values.into_iter().map(Some).collect()));
    }
}

/// One side's DE results for one perturbation, in gene order.
#[derive(Debug, Clone, PartialEq)]
pub struct DeResult {
    pub lfc: Vec<f32>,
    pub p_value: Vec<f32>,
    pub fdr: Vec<f32>,
}

const FDR: f32 = 0.05;

impl DeResult {
    fn significant(&self) -> Vec<usize> {
        (0..self.fdr.len()).filter(|&i| self.fdr[i] < FDR).collect()
    }

    /// Significant genes ranked by |lfc| descending; ties keep gene order (polars "ordinal").
    fn ranked(&self) -> Vec<usize> {
        let mut s = self.significant();
        s.sort_by(|&a, &b| self.lfc[b].abs().total_cmp(&self.lfc[a].abs()));
        s
    }
}

/// pdex's `mode="ref"` DE of the cells `target` against `control` on every gene.
pub fn differential_expression(
    x: &[f32],
    g: usize,
    target: &[usize],
    control: &[usize],
) -> DeResult {
    let (mt, mc) = (pseudobulk(x, g, target), pseudobulk(x, g, control));
    let column = |cells: &[usize], j: usize| -> Vec<f64> {
        cells.iter().map(|&c| x[c * g + j] as f64).collect()
    };
    let p: Vec<f64> = (0..g)
        .into_par_iter()
        .map(|j| mann_whitney(&column(target, j), &column(control, j)).1)
        .collect();
    let fdr = benjamini_hochberg(&p);
    let lfc = (0..g)
        .map(|j| {
            let (a, b) = ((mt[j] as f64).exp_m1(), (mc[j] as f64).exp_m1());
            if a == 0.0 && b == 0.0 {
                0.0
            } else {
                (a / b).log2() as f32
            }
        })
        .collect();
    DeResult {
        lfc,
        p_value: p.iter().map(|&v| v as f32).collect(),
        fdr: fdr.iter().map(|&v| v as f32).collect(),
    }
}

fn sign(v: f32) -> i8 {
    if v > 0.0 {
        1
    } else if v < 0.0 {
        -1
    } else {
        0
    }
}

/// Rows of a dense `(cells, g)` matrix kept as their non-zeros and squared norms, so that
/// squared distances are `|u|^2 + |v|^2 - 2 u.v` with the dot product over the non-zeros of
/// one side (the expansion sklearn and CellFlow use; about 10x fewer operations on 90%-sparse
/// expression). Negative round-off is clamped to 0.
pub struct SparseRows<'a> {
    x: &'a [f32],
    g: usize,
    ptr: Vec<usize>,
    idx: Vec<u32>,
    val: Vec<f64>,
    norm2: Vec<f64>,
}

impl<'a> SparseRows<'a> {
    pub fn new(x: &'a [f32], g: usize) -> Self {
        let n = x.len().checked_div(g).unwrap_or(0);
        let (mut ptr, mut idx, mut val, mut norm2) =
            (vec![0], Vec::new(), Vec::new(), Vec::with_capacity(n));
        for row in x.chunks(g.max(1)).take(n) {
            let mut s = 0.0;
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    idx.push(j as u32);
                    val.push(v as f64);
                    s += v as f64 * v as f64;
                }
            }
            ptr.push(idx.len());
            norm2.push(s);
        }
        Self {
            x,
            g,
            ptr,
            idx,
            val,
            norm2,
        }
    }

    /// Squared Euclidean distance between row `i` of `self` and row `j` of `other`.
    pub fn sq_dist(&self, i: usize, other: &SparseRows<'_>, j: usize) -> f64 {
        let row = &other.x[j * other.g..(j + 1) * other.g];
        let mut dot = 0.0;
        for p in self.ptr[i]..self.ptr[i + 1] {
            dot += self.val[p] * row[self.idx[p] as usize] as f64;
        }
        (self.norm2[i] + other.norm2[j] - 2.0 * dot).max(0.0)
    }
}

/// Mean Euclidean distance over all pairs (diagonal included when `a` and `b` are the same).
fn mean_distance(v: &SparseRows<'_>, a: &[usize], b: &[usize]) -> f64 {
    let total: f64 = a
        .par_iter()
        .map(|&i| b.iter().map(|&j| v.sq_dist(i, v, j).sqrt()).sum::<f64>())
        .sum();
    total / (a.len() * b.len()) as f64
}

fn energy_distances(v: &SparseRows<'_>, groups: &[&[usize]], control: &[usize]) -> Vec<f64> {
    let sigma_c = mean_distance(v, control, control);
    groups
        .iter()
        .map(|cells| {
            2.0 * mean_distance(v, cells, control) - mean_distance(v, cells, cells) - sigma_c
        })
        .collect()
}

fn distances(kind: &str, a: &[f32], b: &[f32], keep: &[bool]) -> f64 {
    let it = a
        .iter()
        .zip(b)
        .zip(keep)
        .filter(|(_, &k)| k)
        .map(|((&u, &v), _)| (u as f64, v as f64));
    match kind {
        "l1" => it.map(|(u, v)| (u - v).abs()).sum(),
        "l2" => it.map(|(u, v)| (u - v) * (u - v)).sum::<f64>().sqrt(),
        _ => {
            let (mut uv, mut uu, mut vv) = (0.0, 0.0, 0.0);
            for (u, v) in it {
                uv += u * v;
                uu += u * u;
                vv += v * v;
            }
            1.0 - uv / (uu.sqrt() * vv.sqrt())
        }
    }
}

/// Compute the profile's metrics.
pub fn compute(pair: &EvalPair, profile: Profile) -> MetricTable {
    let full = profile == Profile::Full;
    let fx = Effects::new(pair);
    let de = DeSides::new(pair);
    let mut table = MetricTable {
        perts: pair.perts.clone(),
        columns: Vec::new(),
    };
    push_overlaps(&mut table, &de, profile);
    let (nsig_real, nsig_pred) = de.nsig_counts();
    if full {
        push_de_agreement(&mut table, &de, &nsig_real, &nsig_pred);
    }
    table.push("de_nsig_counts_real", nsig_real);
    table.push("de_nsig_counts_pred", nsig_pred);
    if full {
        push_de_aucs(&mut table, &de);
    }
    push_pseudobulk_errors(&mut table, &fx, full);
    push_discrimination(&mut table, pair, &fx, full);
    if full {
        push_distributional(&mut table, pair, &fx);
    }
    table
}

/// Per-perturbation pseudobulks and effects (pseudobulk minus control) on both sides.
struct Effects {
    g: usize,
    real_pb: Vec<Vec<f32>>,
    pred_pb: Vec<Vec<f32>>,
    real_d: Vec<Vec<f32>>,
    pred_d: Vec<Vec<f32>>,
}

impl Effects {
    /// Pseudobulks of every perturbation of `pair`, each side against its own control cells.
    fn new(pair: &EvalPair) -> Self {
        let g = pair.n_genes();
        let (real_pb, real_d) = side_effects(&pair.real.x, g, &pair.real_groups, &pair.perts);
        let (pred_pb, pred_d) = side_effects(&pair.pred.x, g, &pair.pred_groups, &pair.perts);
        Self {
            g,
            real_pb,
            pred_pb,
            real_d,
            pred_d,
        }
    }

    /// Mean over the genes of `|a - b|`, or of `(a - b)²` when `squared`, in f64.
    fn mean_err(&self, a: &[f32], b: &[f32], squared: bool) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| {
                let d = x as f64 - y as f64;
                if squared {
                    d * d
                } else {
                    d.abs()
                }
            })
            .sum::<f64>()
            / self.g as f64
    }
}

/// One side's pseudobulk per perturbation, and each minus the side's control pseudobulk.
fn side_effects(
    x: &[f32],
    g: usize,
    groups: &Groups,
    perts: &[String],
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let ctrl = pseudobulk(x, g, &groups.control);
    let pb: Vec<Vec<f32>> = perts
        .iter()
        .map(|p| pseudobulk(x, g, &groups.by_pert[p]))
        .collect();
    let delta = pb
        .iter()
        .map(|v| v.iter().zip(&ctrl).map(|(a, b)| a - b).collect())
        .collect();
    (pb, delta)
}

/// The values as f64.
fn to_f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Both sides' DE per perturbation, with the significant genes ranked by |lfc|.
struct DeSides {
    real: Vec<DeResult>,
    pred: Vec<DeResult>,
    ranked_real: Vec<Vec<usize>>,
    ranked_pred: Vec<Vec<usize>>,
}

impl DeSides {
    /// DE of every perturbation against its side's control cells, on both sides.
    fn new(pair: &EvalPair) -> Self {
        let g = pair.n_genes();
        let de = |x: &[f32], groups: &Groups| -> Vec<DeResult> {
            pair.perts
                .iter()
                .map(|p| differential_expression(x, g, &groups.by_pert[p], &groups.control))
                .collect()
        };
        let real = de(&pair.real.x, &pair.real_groups);
        let pred = de(&pair.pred.x, &pair.pred_groups);
        let ranked_real = real.iter().map(DeResult::ranked).collect();
        let ranked_pred = pred.iter().map(DeResult::ranked).collect();
        Self {
            real,
            pred,
            ranked_real,
            ranked_pred,
        }
    }

    /// The number of significant genes per perturbation, real side then predicted side.
    fn nsig_counts(&self) -> (Vec<f64>, Vec<f64>) {
        let count = |ranked: &[Vec<usize>]| ranked.iter().map(|r| r.len() as f64).collect();
        (count(&self.ranked_real), count(&self.ranked_pred))
    }
}

/// The cut-offs of `overlap_at_*` and `precision_at_*` (`N`: all significant genes).
const TOP_K: [(&str, Option<usize>); 5] = [
    ("N", None),
    ("50", Some(50)),
    ("100", Some(100)),
    ("200", Some(200)),
    ("500", Some(500)),
];

/// `overlap_at_*` then `precision_at_*`; the minimal profile has the `N` cut-off only.
fn push_overlaps(table: &mut MetricTable, de: &DeSides, profile: Profile) {
    let any_real = de.ranked_real.iter().any(|r| !r.is_empty());
    let any_pred = de.ranked_pred.iter().any(|r| !r.is_empty());
    for metric in ["overlap", "precision"] {
        for (label, k) in TOP_K {
            if profile == Profile::Minimal && label != "N" {
                continue;
            }
            let v = de
                .ranked_real
                .iter()
                .zip(&de.ranked_pred)
                .map(|(r, p)| {
                    if !any_real || !any_pred {
                        return 0.0;
                    }
                    top_k_overlap(r, p, k, metric == "overlap")
                })
                .collect();
            table.push(&format!("{metric}_at_{label}"), v);
        }
    }
}

/// The share of the top `k` predicted genes among the top `k` real ones, `k` capped at the
/// real (`overlap`) or predicted (precision) count of significant genes; 0 when a side has none.
fn top_k_overlap(r: &[usize], p: &[usize], k: Option<usize>, overlap: bool) -> f64 {
    if r.is_empty() || p.is_empty() {
        return 0.0;
    }
    let base = if overlap { r.len() } else { p.len() };
    let k_eff = k.unwrap_or(base).min(base);
    if k_eff == 0 {
        return 0.0;
    }
    let rs: HashSet<usize> = r.iter().take(k_eff).copied().collect();
    p.iter().take(k_eff).filter(|j| rs.contains(j)).count() as f64 / k_eff as f64
}

/// `de_spearman_sig`, `de_direction_match`, `de_spearman_lfc_sig` and `de_sig_genes_recall`.
fn push_de_agreement(table: &mut MetricTable, de: &DeSides, nsig_real: &[f64], nsig_pred: &[f64]) {
    let np = table.perts.len();
    table.push(
        "de_spearman_sig",
        vec![de_spearman_sig(nsig_real, nsig_pred); np],
    );
    let (mut direction, mut lfc_corr, mut recall) = (Vec::new(), Vec::new(), Vec::new());
    for (real, pred) in de.real.iter().zip(&de.pred) {
        let a = sig_gene_agreement(real, pred);
        direction.push(a.as_ref().map(|a| a.direction));
        lfc_corr.push(a.as_ref().map(|a| a.lfc_spearman));
        recall.push(a.as_ref().map(|a| a.recall));
    }
    table.columns.push(("de_direction_match".into(), direction));
    table.columns.push(("de_spearman_lfc_sig".into(), lfc_corr));
    table.columns.push(("de_sig_genes_recall".into(), recall));
}

/// Spearman correlation of the significant-gene counts over the perturbations with real
/// significant genes; 1 when no perturbation has any.
fn de_spearman_sig(nsig_real: &[f64], nsig_pred: &[f64]) -> f64 {
    let rows: Vec<usize> = (0..nsig_real.len())
        .filter(|&i| nsig_real[i] > 0.0)
        .collect();
    if rows.is_empty() {
        return 1.0;
    }
    let a: Vec<f64> = rows.iter().map(|&i| nsig_real[i]).collect();
    let b: Vec<f64> = rows.iter().map(|&i| nsig_pred[i]).collect();
    spearman(&a, &b)
}

/// How the prediction agrees with one perturbation's real significant genes.
struct SigAgreement {
    /// The share with the same lfc sign.
    direction: f64,
    /// Spearman correlation of the real and predicted lfcs.
    lfc_spearman: f64,
    /// The share also significant in the prediction.
    recall: f64,
}

/// The agreement on the real significant genes; `None` when there are none.
fn sig_gene_agreement(real: &DeResult, pred: &DeResult) -> Option<SigAgreement> {
    let sig = real.significant();
    if sig.is_empty() {
        return None;
    }
    let m = sig
        .iter()
        .filter(|&&j| sign(real.lfc[j]) == sign(pred.lfc[j]))
        .count();
    let a: Vec<f64> = sig.iter().map(|&j| real.lfc[j] as f64).collect();
    let b: Vec<f64> = sig.iter().map(|&j| pred.lfc[j] as f64).collect();
    let both = sig.iter().filter(|&&j| pred.fdr[j] < FDR).count();
    Some(SigAgreement {
        direction: m as f64 / sig.len() as f64,
        lfc_spearman: spearman(&a, &b),
        recall: both as f64 / sig.len() as f64,
    })
}

/// `pr_auc` and `roc_auc` per perturbation.
fn push_de_aucs(table: &mut MetricTable, de: &DeSides) {
    let (pr, roc): (Vec<f64>, Vec<f64>) = de
        .real
        .iter()
        .zip(&de.pred)
        .map(|(real, pred)| de_aucs(real, pred))
        .unzip();
    table.push("pr_auc", pr);
    table.push("roc_auc", roc);
}

/// Average precision and ROC AUC of the predicted −log10 FDRs against the real significant
/// genes; NaN for both when the real genes are all significant or none is.
fn de_aucs(real: &DeResult, pred: &DeResult) -> (f64, f64) {
    let labels: Vec<bool> = real.fdr.iter().map(|&q| q < FDR).collect();
    let scores: Vec<f64> = pred
        .fdr
        .iter()
        .map(|&q| -(q.clamp(1e-10, 1.0) as f64).log10())
        .collect();
    let pos = labels.iter().filter(|&&l| l).count();
    if pos == 0 || pos == labels.len() {
        (f64::NAN, f64::NAN)
    } else {
        (
            average_precision(&labels, &scores),
            roc_auc(&labels, &scores),
        )
    }
}

/// `pearson_delta`, `mse` and `mae`, then in the full profile `mse_delta` and `mae_delta`.
fn push_pseudobulk_errors(table: &mut MetricTable, fx: &Effects, full: bool) {
    let np = fx.real_pb.len();
    table.push(
        "pearson_delta",
        (0..np)
            .map(|i| pearson(&to_f64s(&fx.pred_d[i]), &to_f64s(&fx.real_d[i])))
            .collect(),
    );
    let errors = |pred: &[Vec<f32>], real: &[Vec<f32>], squared: bool| -> Vec<f64> {
        (0..np)
            .map(|i| fx.mean_err(&pred[i], &real[i], squared))
            .collect()
    };
    table.push("mse", errors(&fx.pred_pb, &fx.real_pb, true));
    table.push("mae", errors(&fx.pred_pb, &fx.real_pb, false));
    if full {
        table.push("mse_delta", errors(&fx.pred_d, &fx.real_d, true));
        table.push("mae_delta", errors(&fx.pred_d, &fx.real_d, false));
    }
}

/// `discrimination_score_l1`, then in the full profile `_l2` and `_cosine`.
fn push_discrimination(table: &mut MetricTable, pair: &EvalPair, fx: &Effects, full: bool) {
    let kinds: &[&str] = if full {
        &["l1", "l2", "cosine"]
    } else {
        &["l1"]
    };
    for &kind in kinds {
        let v = discrimination_scores(pair, fx, kind);
        table.push(&format!("discrimination_score_{kind}"), v);
    }
}

/// Per perturbation, 1 − the share of real effects strictly nearer to its predicted effect
/// than its own real effect (distance `kind`, the perturbed gene itself left out).
fn discrimination_scores(pair: &EvalPair, fx: &Effects, kind: &str) -> Vec<f64> {
    let np = pair.perts.len();
    (0..np)
        .map(|i| {
            let keep: Vec<bool> = pair.genes.iter().map(|gn| *gn != pair.perts[i]).collect();
            let d: Vec<f64> = (0..np)
                .map(|q| distances(kind, &fx.real_d[q], &fx.pred_d[i], &keep))
                .collect();
            let rank = d.iter().filter(|&&v| v < d[i]).count();
            1.0 - rank as f64 / np as f64
        })
        .collect()
}

/// Full profile: cell-eval's `pearson_edistance`, then, beyond cell-eval, scDFM's L2 of the
/// means, CellFlow's R² of the means, E-distance and RBF MMD between the predicted and the
/// real cells of each perturbation.
fn push_distributional(table: &mut MetricTable, pair: &EvalPair, fx: &Effects) {
    let (g, np, perts) = (fx.g, pair.perts.len(), &pair.perts);
    let (rg, pg) = (&pair.real_groups, &pair.pred_groups);
    let groups_r: Vec<&[usize]> = perts.iter().map(|p| rg.by_pert[p].as_slice()).collect();
    let groups_p: Vec<&[usize]> = perts.iter().map(|p| pg.by_pert[p].as_slice()).collect();
    let (rv, pv) = (
        SparseRows::new(&pair.real.x, g),
        SparseRows::new(&pair.pred.x, g),
    );
    let er = energy_distances(&rv, &groups_r, &rg.control);
    let ep = energy_distances(&pv, &groups_p, &pg.control);
    table.push("pearson_edistance", vec![pearson(&er, &ep); np]);
    table.push(
        "l2",
        (0..np)
            .map(|i| (fx.mean_err(&fx.pred_pb[i], &fx.real_pb[i], true) * g as f64).sqrt())
            .collect(),
    );
    table.push(
        "r_squared",
        (0..np)
            .map(|i| r_squared(&fx.real_pb[i], &fx.pred_pb[i]))
            .collect(),
    );
    let dist: Vec<(f64, f64)> = (0..np)
        .into_par_iter()
        .map(|i| {
            let (r, p) = (&rg.by_pert[&perts[i]], &pg.by_pert[&perts[i]]);
            (
                cellflow_e_distance(&pair.pred.x, p, &pair.real.x, r, g),
                mmd_rows(&pv, p, &rv, r),
            )
        })
        .collect();
    table.push("e_distance", dist.iter().map(|d| d.0).collect());
    table.push("mmd", dist.iter().map(|d| d.1).collect());
}

/// sklearn `r2_score(true, pred)`: 1 − Σ(t−p)² / Σ(t−t̄)².
pub fn r_squared(truth: &[f32], pred: &[f32]) -> f64 {
    let n = truth.len() as f64;
    let mean = truth.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut res, mut tot) = (0.0, 0.0);
    for (&t, &p) in truth.iter().zip(pred) {
        res += (t as f64 - p as f64).powi(2);
        tot += (t as f64 - mean).powi(2);
    }
    if tot == 0.0 {
        return if res == 0.0 { 1.0 } else { 0.0 };
    }
    1.0 - res / tot
}

/// CellFlow's E-distance with squared Euclidean distances and V-statistics, which equals
/// `2 ‖x̄ − ȳ‖²`.
pub fn cellflow_e_distance(x: &[f32], a: &[usize], y: &[f32], b: &[usize], g: usize) -> f64 {
    let (ma, mb) = (mean_rows(x, g, a), mean_rows(y, g, b));
    2.0 * ma
        .iter()
        .zip(&mb)
        .map(|(u, v)| (u - v).powi(2))
        .sum::<f64>()
}

/// CellFlow's kernels: γ in {2, 1, 0.5, 0.1, 0.01, 0.005}. The same list as
/// `ccfm_flow::CELLFLOW_GAMMAS` (the training loss's), kept here so that evaluation needs no
/// tensor backend; `tests/distribution.rs` checks that the two agree.
pub const MMD_GAMMAS: [f64; 6] = [2.0, 1.0, 0.5, 0.1, 0.01, 0.005];

/// CellFlow's scalar MMD: the mean over γ of the biased (diagonals included) MMD² with
/// `K = exp(−γ‖u−v‖²)`.
pub fn cellflow_mmd(x: &[f32], a: &[usize], y: &[f32], b: &[usize], g: usize) -> f64 {
    mmd_rows(&SparseRows::new(x, g), a, &SparseRows::new(y, g), b)
}

fn mmd_rows(x: &SparseRows<'_>, a: &[usize], y: &SparseRows<'_>, b: &[usize]) -> f64 {
    let block = |p: &SparseRows<'_>, ia: &[usize], q: &SparseRows<'_>, ib: &[usize]| -> Vec<f64> {
        ia.par_iter()
            .flat_map_iter(|&i| ib.iter().map(move |&j| p.sq_dist(i, q, j)))
            .collect()
    };
    let (dxx, dyy, dxy) = (block(x, a, x, a), block(y, b, y, b), block(x, a, y, b));
    let mean_k =
        |d: &[f64], gamma: f64| d.iter().map(|v| (-gamma * v).exp()).sum::<f64>() / d.len() as f64;
    let vals: Vec<f64> = MMD_GAMMAS
        .iter()
        .map(|&gm| mean_k(&dxx, gm) + mean_k(&dyy, gm) - 2.0 * mean_k(&dxy, gm))
        .filter(|v| !v.is_nan())
        .collect();
    vals.iter().sum::<f64>() / vals.len() as f64
}
