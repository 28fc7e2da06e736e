//! Errors raised by the flow-matching pieces.

use thiserror::Error;

/// What can go wrong when configuring or running a flow-matching component.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FlowError {
    /// A time grid must be strictly increasing with at least two points.
    #[error("invalid time grid: {0}")]
    InvalidGrid(String),
    /// A sampler or noise parameter is out of its valid range.
    #[error("invalid parameter `{name}` = {value}: {expected}")]
    InvalidParameter {
        name: &'static str,
        value: f64,
        expected: &'static str,
    },
    /// An MMD needs at least two samples per side (the unbiased estimator divides by m(m-1)).
    #[error("MMD needs at least {needed} rows, got {got}")]
    TooFewSamples { needed: usize, got: usize },
    /// Two tensors that must agree in shape do not.
    #[error("shape mismatch: {0}")]
    Shape(String),
}
