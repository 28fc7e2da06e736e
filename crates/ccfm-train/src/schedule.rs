//! The learning-rate schedule: optional linear warm-up, then cosine annealing to `eta_min`
//! over exactly the remaining steps (PyTorch's `CosineAnnealingLR` with `T_max = steps` when
//! there is no warm-up, as scDFM; unlike scDFM the run ends at `steps`, so the schedule never
//! restarts).

/// `lr(step)` for steps `0..steps`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub lr: f64,
    pub eta_min: f64,
    pub warmup_steps: usize,
    pub steps: usize,
}

impl LrSchedule {
    /// The learning rate of optimiser step `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = (self.steps - self.warmup_steps).max(1) as f64;
        let p = ((step - self.warmup_steps) as f64 / span).min(1.0);
        self.eta_min + 0.5 * (self.lr - self.eta_min) * (1.0 + (std::f64::consts::PI * p).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_matches_pytorch_closed_form() {
        // torch.optim.lr_scheduler.CosineAnnealingLR(T_max=10, eta_min=1e-6), lr 5e-5: the
        // closed form eta_min + (lr - eta_min) (1 + cos(pi k / T)) / 2 at k = 0, 5, 10.
        let s = LrSchedule {
            lr: 5e-5,
            eta_min: 1e-6,
            warmup_steps: 0,
            steps: 10,
        };
        assert_eq!(s.at(0), 5e-5);
        assert!((s.at(5) - (1e-6 + 0.5 * 4.9e-5)).abs() < 1e-18);
        assert!((s.at(10) - 1e-6).abs() < 1e-18);
        assert!((1..10).all(|k| s.at(k) < s.at(k - 1)));
    }

    #[test]
    fn warmup_rises_linearly_then_anneals() {
        let s = LrSchedule {
            lr: 1.0,
            eta_min: 0.0,
            warmup_steps: 4,
            steps: 14,
        };
        assert_eq!(
            (0..4).map(|k| s.at(k)).collect::<Vec<_>>(),
            vec![0.25, 0.5, 0.75, 1.0]
        );
        assert_eq!(s.at(4), 1.0);
        assert!((s.at(9) - 0.5).abs() < 1e-12);
        assert!(s.at(13) > 0.0 && s.at(13) < 0.03);
    }
}
