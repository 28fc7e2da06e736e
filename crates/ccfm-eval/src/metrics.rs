//! cell-eval 0.8.2's per-perturbation metrics (spec: peers-metrics-data.md §2.1), computed on an
//! [`EvalPair`]. Pseudobulk metrics use float32 pseudobulks; DE uses Mann–Whitney U per gene,
//! Benjamini–Hochberg per perturbation, log2 fold changes of expm1 means with ε = 0 (±inf kept)
//! and float32 casts, as cell-eval and pdex do. `clustering_agreement` (Leiden) is not
//! computed.

use rayon::prelude::*;

use crate::pair::{mean_rows, pseudobulk, EvalPair};
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
    let g = pair.n_genes();
    let perts = pair.perts.clone();
    let np = perts.len();
    let rg = &pair.real_groups;
    let pg = &pair.pred_groups;
    let real_ctrl = pseudobulk(&pair.real.x, g, &rg.control);
    let pred_ctrl = pseudobulk(&pair.pred.x, g, &pg.control);
    let real_pb: Vec<Vec<f32>> = perts
        .iter()
        .map(|p| pseudobulk(&pair.real.x, g, &rg.by_pert[p]))
        .collect();
    let pred_pb: Vec<Vec<f32>> = perts
        .iter()
        .map(|p| pseudobulk(&pair.pred.x, g, &pg.by_pert[p]))
        .collect();
    let delta = |pb: &[f32], ctrl: &[f32]| -> Vec<f32> {
        pb.iter().zip(ctrl).map(|(a, b)| a - b).collect()
    };
    let real_d: Vec<Vec<f32>> = real_pb.iter().map(|v| delta(v, &real_ctrl)).collect();
    let pred_d: Vec<Vec<f32>> = pred_pb.iter().map(|v| delta(v, &pred_ctrl)).collect();
    let f64s = |v: &[f32]| -> Vec<f64> { v.iter().map(|&x| x as f64).collect() };
    let mean_err = |a: &[f32], b: &[f32], sq: bool| -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| {
                let d = x as f64 - y as f64;
                if sq {
                    d * d
                } else {
                    d.abs()
                }
            })
            .sum::<f64>()
            / g as f64
    };

    // DE on both sides.
    let de = |x: &[f32], groups: &crate::pair::Groups| -> Vec<DeResult> {
        perts
            .iter()
            .map(|p| differential_expression(x, g, &groups.by_pert[p], &groups.control))
            .collect()
    };
    let de_real = de(&pair.real.x, rg);
    let de_pred = de(&pair.pred.x, pg);
    // Significant genes ranked by |lfc|, once per perturbation and side.
    let ranked_real: Vec<Vec<usize>> = de_real.iter().map(DeResult::ranked).collect();
    let ranked_pred: Vec<Vec<usize>> = de_pred.iter().map(DeResult::ranked).collect();
    let any_real = ranked_real.iter().any(|r| !r.is_empty());
    let any_pred = ranked_pred.iter().any(|r| !r.is_empty());

    let mut table = MetricTable {
        perts: perts.clone(),
        columns: Vec::new(),
    };
    let ks: [(&str, Option<usize>); 5] = [
        ("N", None),
        ("50", Some(50)),
        ("100", Some(100)),
        ("200", Some(200)),
        ("500", Some(500)),
    ];
    for metric in ["overlap", "precision"] {
        for (label, k) in ks {
            if profile == Profile::Minimal && label != "N" {
                continue;
            }
            let v = (0..np)
                .map(|i| {
                    if !any_real || !any_pred {
                        return 0.0;
                    }
                    let (r, p) = (&ranked_real[i], &ranked_pred[i]);
                    if r.is_empty() || p.is_empty() {
                        return 0.0;
                    }
                    let base = if metric == "overlap" {
                        r.len()
                    } else {
                        p.len()
                    };
                    let k_eff = k.unwrap_or(base).min(base);
                    if k_eff == 0 {
                        return 0.0;
                    }
                    let rs: std::collections::HashSet<usize> =
                        r.iter().take(k_eff).copied().collect();
                    p.iter().take(k_eff).filter(|j| rs.contains(j)).count() as f64 / k_eff as f64
                })
                .collect();
            table.push(&format!("{metric}_at_{label}"), v);
        }
    }
    let nsig_real: Vec<f64> = ranked_real.iter().map(|r| r.len() as f64).collect();
    let nsig_pred: Vec<f64> = ranked_pred.iter().map(|r| r.len() as f64).collect();
    if profile == Profile::Full {
        // de_spearman_sig: over perturbations with real significant genes.
        let rows: Vec<usize> = (0..np).filter(|&i| nsig_real[i] > 0.0).collect();
        let s = if rows.is_empty() {
            1.0
        } else {
            let a: Vec<f64> = rows.iter().map(|&i| nsig_real[i]).collect();
            let b: Vec<f64> = rows.iter().map(|&i| nsig_pred[i]).collect();
            spearman(&a, &b)
        };
        table.push("de_spearman_sig", vec![s; np]);
        let mut direction = Vec::new();
        let mut lfc_corr = Vec::new();
        let mut recall = Vec::new();
        for i in 0..np {
            let sig = de_real[i].significant();
            if sig.is_empty() {
                direction.push(None);
                lfc_corr.push(None);
                recall.push(None);
                continue;
            }
            let m = sig
                .iter()
                .filter(|&&j| sign(de_real[i].lfc[j]) == sign(de_pred[i].lfc[j]))
                .count();
            direction.push(Some(m as f64 / sig.len() as f64));
            let a: Vec<f64> = sig.iter().map(|&j| de_real[i].lfc[j] as f64).collect();
            let b: Vec<f64> = sig.iter().map(|&j| de_pred[i].lfc[j] as f64).collect();
            lfc_corr.push(Some(spearman(&a, &b)));
            let both = sig.iter().filter(|&&j| de_pred[i].fdr[j] < FDR).count();
            recall.push(Some(both as f64 / sig.len() as f64));
        }
        table.columns.push(("de_direction_match".into(), direction));
        table.columns.push(("de_spearman_lfc_sig".into(), lfc_corr));
        table.columns.push(("de_sig_genes_recall".into(), recall));
    }
    table.push("de_nsig_counts_real", nsig_real);
    table.push("de_nsig_counts_pred", nsig_pred);
    if profile == Profile::Full {
        let mut pr = Vec::new();
        let mut roc = Vec::new();
        for i in 0..np {
            let labels: Vec<bool> = de_real[i].fdr.iter().map(|&q| q < FDR).collect();
            let scores: Vec<f64> = de_pred[i]
                .fdr
                .iter()
                .map(|&q| -(q.clamp(1e-10, 1.0) as f64).log10())
                .collect();
            let pos = labels.iter().filter(|&&l| l).count();
            if pos == 0 || pos == labels.len() {
                pr.push(f64::NAN);
                roc.push(f64::NAN);
            } else {
                pr.push(average_precision(&labels, &scores));
                roc.push(roc_auc(&labels, &scores));
            }
        }
        table.push("pr_auc", pr);
        table.push("roc_auc", roc);
    }

    table.push(
        "pearson_delta",
        (0..np)
            .map(|i| pearson(&f64s(&pred_d[i]), &f64s(&real_d[i])))
            .collect(),
    );
    table.push(
        "mse",
        (0..np)
            .map(|i| mean_err(&pred_pb[i], &real_pb[i], true))
            .collect(),
    );
    table.push(
        "mae",
        (0..np)
            .map(|i| mean_err(&pred_pb[i], &real_pb[i], false))
            .collect(),
    );
    if profile == Profile::Full {
        table.push(
            "mse_delta",
            (0..np)
                .map(|i| mean_err(&pred_d[i], &real_d[i], true))
                .collect(),
        );
        table.push(
            "mae_delta",
            (0..np)
                .map(|i| mean_err(&pred_d[i], &real_d[i], false))
                .collect(),
        );
    }
    let kinds: &[&str] = if profile == Profile::Full {
        &["l1", "l2", "cosine"]
    } else {
        &["l1"]
    };
    for &kind in kinds {
        let v = (0..np)
            .map(|i| {
                let keep: Vec<bool> = pair.genes.iter().map(|gn| *gn != perts[i]).collect();
                let d: Vec<f64> = (0..np)
                    .map(|q| distances(kind, &real_d[q], &pred_d[i], &keep))
                    .collect();
                let rank = d.iter().filter(|&&v| v < d[i]).count();
                1.0 - rank as f64 / np as f64
            })
            .collect();
        table.push(&format!("discrimination_score_{kind}"), v);
    }
    if profile == Profile::Full {
        let groups_r: Vec<&[usize]> = perts.iter().map(|p| rg.by_pert[p].as_slice()).collect();
        let groups_p: Vec<&[usize]> = perts.iter().map(|p| pg.by_pert[p].as_slice()).collect();
        let (rv, pv) = (
            SparseRows::new(&pair.real.x, g),
            SparseRows::new(&pair.pred.x, g),
        );
        let er = energy_distances(&rv, &groups_r, &rg.control);
        let ep = energy_distances(&pv, &groups_p, &pg.control);
        table.push("pearson_edistance", vec![pearson(&er, &ep); np]);
        // Beyond cell-eval: scDFM's L2 of the means, CellFlow's R² of the means, E-distance and
        // RBF MMD between the predicted and the real cells of each perturbation.
        table.push(
            "l2",
            (0..np)
                .map(|i| (mean_err(&pred_pb[i], &real_pb[i], true) * g as f64).sqrt())
                .collect(),
        );
        table.push(
            "r_squared",
            (0..np)
                .map(|i| r_squared(&real_pb[i], &pred_pb[i]))
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
    table
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
