//! Metrics with cell-eval's definitions, the baselines every report needs (control, mean,
//! additive, noise ceiling) and the report writers.
//!
//! Written and parity-tested in the issue "ccfm-eval".
