//! Metrics with cell-eval's definitions, the baselines every report needs (control, mean,
//! additive, noise ceiling) and the report writers.
//!
//! - [`pair`]: a real/predicted pair, checked as cell-eval checks it (same genes in the same
//!   order, same perturbations, control cells on both sides, finite non-negative values).
//! - [`metrics`]: cell-eval 0.8.2's per-perturbation metrics, `full` and `minimal` profiles,
//!   plus scDFM's L2 and CellFlow's R², E-distance and RBF MMD.
//! - [`baselines`]: control, mean, additive and noise-ceiling predictions from training data.
//! - [`load`] reads a side from `.h5ad`; [`evaluate`] runs it all; [`output`] and [`report`]
//!   write `results.csv`, `agg_results.csv` (cell-eval's layout), `summary.csv`, `report.html`.
//! - [`compare`]: one page with several models and the baselines side by side.
//! - [`guard`]: does a prediction depend on the perturbation; does a model beat `mean` and
//!   `control`.
//! - [`stats`]: the statistics underneath (Mann–Whitney U, Benjamini–Hochberg, ranks, AUCs).

pub mod baselines;
pub mod compare;
pub mod evaluate;
pub mod guard;
pub mod load;
pub mod metrics;
pub mod output;
pub mod pair;
pub mod report;
pub mod stats;

pub use compare::{ComparedModel, Comparison, Subset};
pub use evaluate::{evaluate, evaluate_with_progress, EvaluateOptions, Evaluation};
pub use guard::{dependence, shortfalls, Dependence, Shortfall};
pub use metrics::{compute, differential_expression, DeResult, MetricTable, Profile};
pub use pair::{CellSet, EvalError, EvalPair};
