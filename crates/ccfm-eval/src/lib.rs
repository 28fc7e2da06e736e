//! Metrics with cell-eval's definitions, the baselines every report needs (control, mean,
//! additive, noise ceiling) and the report writers.
//!
//! - [`pair`]: a real/predicted pair, checked as cell-eval checks it (same genes in the same
//!   order, same perturbations, control cells on both sides, finite non-negative values).
//! - [`metrics`]: cell-eval 0.8.2's per-perturbation metrics, `full` and `minimal` profiles.
//! - [`output`]: `results.csv` and `agg_results.csv` in cell-eval's layout.
//! - [`stats`]: the statistics underneath (Mann–Whitney U, Benjamini–Hochberg, ranks, AUCs).

pub mod metrics;
pub mod output;
pub mod pair;
pub mod stats;

pub use metrics::{compute, differential_expression, DeResult, MetricTable, Profile};
pub use pair::{CellSet, EvalError, EvalPair};
