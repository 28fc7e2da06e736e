//! A real/predicted pair of cell sets, checked as cell-eval checks them, with per-perturbation
//! pseudobulks (each side against its own control cells).

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

/// Why a pair cannot be evaluated.
#[derive(Debug, Error)]
pub enum EvalError {
    #[error("the real and predicted files have different genes ({detail}); write both with the same var names in the same order")]
    GeneMismatch { detail: String },
    #[error("perturbation `{name}` is only in the {side} file; both files must hold the same perturbations")]
    PerturbationMismatch { name: String, side: &'static str },
    #[error("the {side} file has no control cells labelled `{control}`; pass the control label (--control)")]
    NoControl { side: &'static str, control: String },
    #[error("the {side} file has a {what} value ({value}) in cell {cell}; metrics need finite, non-negative log1p expression")]
    BadValue {
        side: &'static str,
        what: &'static str,
        value: f32,
        cell: usize,
    },
    #[error("the {side} file has {cells} labels for {rows} cells")]
    Shape {
        side: &'static str,
        cells: usize,
        rows: usize,
    },
    #[error("no perturbations besides the control")]
    Empty,
    #[error(transparent)]
    Data(#[from] ccfm_data::DataError),
    #[error("{path}: obs has no column `{column}` (obs columns: {available}); pass the perturbation column (--pert-col)")]
    MissingColumn {
        path: std::path::PathBuf,
        column: String,
        available: String,
    },
    #[error("{path}: X is not log1p-normalised (non-integer values up to {max}, cell-eval's limit is 15); pass log1p(normalize_total) values or raw integer counts")]
    NotLog { path: std::path::PathBuf, max: f64 },
    /// A check of the pair failed; names both files.
    #[error("{real} (real) vs {pred} (predicted): {source}")]
    Pair {
        real: std::path::PathBuf,
        pred: std::path::PathBuf,
        source: Box<EvalError>,
    },
    #[error("cannot compare the models: {0}")]
    Comparison(String),
    #[error("{path}: {detail}")]
    Io {
        path: std::path::PathBuf,
        detail: String,
    },
}

/// One side: a row-major `(cells, genes)` log1p matrix and a label per cell.
#[derive(Debug, Clone)]
pub struct CellSet {
    pub x: Vec<f32>,
    pub labels: Vec<String>,
}

/// Cells of one side grouped by label.
#[derive(Debug, Clone)]
pub struct Groups {
    pub control: Vec<usize>,
    pub by_pert: BTreeMap<String, Vec<usize>>,
}

/// A checked pair.
#[derive(Debug, Clone)]
pub struct EvalPair {
    pub genes: Vec<String>,
    pub real: CellSet,
    pub pred: CellSet,
    pub control: String,
    /// Non-control perturbations, sorted.
    pub perts: Vec<String>,
    pub real_groups: Groups,
    pub pred_groups: Groups,
}

fn check(side: &'static str, s: &CellSet, g: usize, control: &str) -> Result<Groups, EvalError> {
    let rows = s.x.len().checked_div(g).unwrap_or(0);
    if rows * g != s.x.len() || rows != s.labels.len() {
        return Err(EvalError::Shape {
            side,
            cells: s.labels.len(),
            rows,
        });
    }
    for (i, &v) in s.x.iter().enumerate() {
        if !v.is_finite() || v < 0.0 {
            return Err(EvalError::BadValue {
                side,
                what: if v.is_finite() {
                    "negative"
                } else {
                    "non-finite"
                },
                value: v,
                cell: i / g.max(1),
            });
        }
    }
    let mut groups = Groups {
        control: Vec::new(),
        by_pert: BTreeMap::new(),
    };
    for (i, l) in s.labels.iter().enumerate() {
        if l == control {
            groups.control.push(i);
        } else {
            groups.by_pert.entry(l.clone()).or_default().push(i);
        }
    }
    if groups.control.is_empty() {
        return Err(EvalError::NoControl {
            side,
            control: control.to_string(),
        });
    }
    Ok(groups)
}

impl EvalPair {
    pub fn new(
        genes: Vec<String>,
        real_genes: &[String],
        pred_genes: &[String],
        real: CellSet,
        pred: CellSet,
        control: &str,
    ) -> Result<Self, EvalError> {
        if real_genes != pred_genes {
            let detail = if real_genes.len() != pred_genes.len() {
                format!("{} vs {} genes", real_genes.len(), pred_genes.len())
            } else {
                let i = real_genes.iter().zip(pred_genes).position(|(a, b)| a != b);
                let i = i.unwrap_or(0);
                format!(
                    "gene {i} is `{}` in the real file and `{}` in the predicted one",
                    real_genes[i], pred_genes[i]
                )
            };
            return Err(EvalError::GeneMismatch { detail });
        }
        let g = genes.len();
        let real_groups = check("real", &real, g, control)?;
        let pred_groups = check("predicted", &pred, g, control)?;
        let rp: BTreeSet<&String> = real_groups.by_pert.keys().collect();
        let pp: BTreeSet<&String> = pred_groups.by_pert.keys().collect();
        if let Some(n) = rp.difference(&pp).next() {
            return Err(EvalError::PerturbationMismatch {
                name: n.to_string(),
                side: "real",
            });
        }
        if let Some(n) = pp.difference(&rp).next() {
            return Err(EvalError::PerturbationMismatch {
                name: n.to_string(),
                side: "predicted",
            });
        }
        let perts: Vec<String> = rp.into_iter().cloned().collect();
        if perts.is_empty() {
            return Err(EvalError::Empty);
        }
        Ok(Self {
            genes,
            real,
            pred,
            control: control.to_string(),
            perts,
            real_groups,
            pred_groups,
        })
    }

    pub fn n_genes(&self) -> usize {
        self.genes.len()
    }
}

/// Mean of the rows `cells` of a row-major `(.., g)` matrix, accumulated in f64.
pub fn mean_rows(x: &[f32], g: usize, cells: &[usize]) -> Vec<f64> {
    let mut m = vec![0f64; g];
    for &c in cells {
        for (acc, &v) in m.iter_mut().zip(&x[c * g..(c + 1) * g]) {
            *acc += v as f64;
        }
    }
    m.iter().map(|v| v / cells.len() as f64).collect()
}

/// [`mean_rows`] rounded to f32, as a float32 pseudobulk is.
pub fn pseudobulk(x: &[f32], g: usize, cells: &[usize]) -> Vec<f32> {
    mean_rows(x, g, cells).iter().map(|&v| v as f32).collect()
}
