//! Fixed-grid ODE solvers for `dx/dt = v(x, t)` over a velocity closure.
//!
//! The closure receives the state and the scalar time; it is called `nfe` times per step
//! (Euler 1, midpoint 2, Heun 2, RK4 4, RK4 3/8 4).

use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::FlowError;

/// A one-step method. Its name (configs, command line, serde) is the `snake_case` variant name,
/// except the 3/8-rule RK4, which is called after the library scDFM runs it with:
/// `torchdiffeq_rk4` (also accepted: `rk4_three_eighths`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OdeMethod {
    Euler,
    Midpoint,
    Heun,
    /// Classic fourth-order Runge–Kutta (weights 1/6, 1/3, 1/3, 1/6).
    Rk4,
    /// The 3/8-rule Runge–Kutta that torchdiffeq runs for `method="rk4"`, and so scDFM.
    #[serde(rename = "torchdiffeq_rk4", alias = "rk4_three_eighths")]
    Rk4ThreeEighths,
}

impl OdeMethod {
    /// Velocity evaluations per step.
    pub fn evaluations_per_step(self) -> usize {
        match self {
            Self::Euler => 1,
            Self::Midpoint | Self::Heun => 2,
            Self::Rk4 | Self::Rk4ThreeEighths => 4,
        }
    }

    /// Every method, in the order of [`Self::NAMES`].
    pub const ALL: [Self; 5] = [
        Self::Euler,
        Self::Midpoint,
        Self::Heun,
        Self::Rk4,
        Self::Rk4ThreeEighths,
    ];
    /// The names of [`Self::ALL`], as configs and serde spell them.
    pub const NAMES: [&'static str; 5] = ["euler", "midpoint", "heun", "rk4", "torchdiffeq_rk4"];

    /// The method's name (as serde writes it).
    pub fn name(self) -> &'static str {
        Self::NAMES[Self::ALL.iter().position(|&m| m == self).unwrap_or(0)]
    }

    /// Parse a name as serde does (the names of [`Self::NAMES`], or `rk4_three_eighths`).
    pub fn from_name(name: &str) -> Option<Self> {
        if name == "rk4_three_eighths" {
            return Some(Self::Rk4ThreeEighths);
        }
        Self::NAMES
            .iter()
            .position(|&n| n == name)
            .map(|i| Self::ALL[i])
    }
}

/// A strictly increasing list of times, first to last.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeGrid {
    points: Vec<f64>,
}

impl TimeGrid {
    pub fn new(points: Vec<f64>) -> Result<Self, FlowError> {
        if points.len() < 2 {
            return Err(FlowError::InvalidGrid(format!(
                "needs at least 2 points, got {}",
                points.len()
            )));
        }
        if let Some(w) = points
            .windows(2)
            .find(|w| !(w[0].is_finite() && w[1].is_finite() && w[1] > w[0]))
        {
            return Err(FlowError::InvalidGrid(format!(
                "times must be finite and strictly increasing, found {} then {}",
                w[0], w[1]
            )));
        }
        Ok(Self { points })
    }

    /// `points` evenly spaced values from `start` to `end` inclusive, like `torch.linspace`.
    /// scDFM's inference grid is `linspace(0, 1, 20)`: 19 steps.
    pub fn linspace(start: f64, end: f64, points: usize) -> Result<Self, FlowError> {
        if points < 2 {
            return Err(FlowError::InvalidGrid(format!(
                "linspace needs at least 2 points, got {points}"
            )));
        }
        let step = (end - start) / (points - 1) as f64;
        let mut v: Vec<f64> = (0..points).map(|i| start + step * i as f64).collect();
        v[points - 1] = end;
        Self::new(v)
    }

    /// `steps` equal steps from 0 to 1.
    pub fn uniform(steps: usize) -> Result<Self, FlowError> {
        Self::linspace(0.0, 1.0, steps + 1)
    }

    pub fn points(&self) -> &[f64] {
        &self.points
    }

    pub fn steps(&self) -> usize {
        self.points.len() - 1
    }
}

/// The result of [`integrate`].
#[derive(Debug, Clone)]
pub struct OdeSolution<B: Backend, const D: usize> {
    /// The state at the last grid time.
    pub final_state: Tensor<B, D>,
    /// The state at every grid time (first = the initial state) when requested, else empty.
    pub trajectory: Vec<Tensor<B, D>>,
    /// Number of velocity evaluations.
    pub nfe: usize,
}

/// Integrate `dx/dt = velocity(x, t)` from `x0` at `grid[0]` over every interval of `grid`.
pub fn integrate<B, const D: usize, F>(
    mut velocity: F,
    x0: Tensor<B, D>,
    grid: &TimeGrid,
    method: OdeMethod,
    keep_trajectory: bool,
) -> OdeSolution<B, D>
where
    B: Backend,
    F: FnMut(Tensor<B, D>, f64) -> Tensor<B, D>,
{
    let mut trajectory = Vec::new();
    if keep_trajectory {
        trajectory.push(x0.clone());
    }
    let mut x = x0;
    for w in grid.points().windows(2) {
        let (t0, t1) = (w[0], w[1]);
        x = step(&mut velocity, x, t0, t1, method);
        if keep_trajectory {
            trajectory.push(x.clone());
        }
    }
    OdeSolution {
        final_state: x,
        trajectory,
        nfe: grid.steps() * method.evaluations_per_step(),
    }
}

/// One step of `method` from `t0` to `t1`.
pub fn step<B, const D: usize, F>(
    velocity: &mut F,
    x: Tensor<B, D>,
    t0: f64,
    t1: f64,
    method: OdeMethod,
) -> Tensor<B, D>
where
    B: Backend,
    F: FnMut(Tensor<B, D>, f64) -> Tensor<B, D>,
{
    let dt = t1 - t0;
    match method {
        OdeMethod::Euler => {
            let k1 = velocity(x.clone(), t0);
            x + k1.mul_scalar(dt)
        }
        OdeMethod::Midpoint => {
            let k1 = velocity(x.clone(), t0);
            let k2 = velocity(x.clone() + k1.mul_scalar(dt / 2.0), t0 + dt / 2.0);
            x + k2.mul_scalar(dt)
        }
        OdeMethod::Heun => {
            let k1 = velocity(x.clone(), t0);
            let k2 = velocity(x.clone() + k1.clone().mul_scalar(dt), t1);
            x + (k1 + k2).mul_scalar(dt / 2.0)
        }
        OdeMethod::Rk4 => {
            let k1 = velocity(x.clone(), t0);
            let k2 = velocity(x.clone() + k1.clone().mul_scalar(dt / 2.0), t0 + dt / 2.0);
            let k3 = velocity(x.clone() + k2.clone().mul_scalar(dt / 2.0), t0 + dt / 2.0);
            let k4 = velocity(x.clone() + k3.clone().mul_scalar(dt), t1);
            let sum = k1 + (k2 + k3).mul_scalar(2.0) + k4;
            x + sum.mul_scalar(dt / 6.0)
        }
        OdeMethod::Rk4ThreeEighths => {
            let third = 1.0 / 3.0;
            let k1 = velocity(x.clone(), t0);
            let k2 = velocity(
                x.clone() + k1.clone().mul_scalar(dt * third),
                t0 + dt * third,
            );
            let k3 = velocity(
                x.clone() + (k2.clone() - k1.clone().mul_scalar(third)).mul_scalar(dt),
                t0 + dt * 2.0 * third,
            );
            let k4 = velocity(
                x.clone() + (k1.clone() - k2.clone() + k3.clone()).mul_scalar(dt),
                t1,
            );
            let sum = k1 + (k2 + k3).mul_scalar(3.0) + k4;
            x + sum.mul_scalar(dt * 0.125)
        }
    }
}
