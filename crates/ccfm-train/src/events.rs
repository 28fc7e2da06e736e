//! What a training run reports while it runs: [`TrainEvent`]s to an observer. The CLI's
//! progress bar, the demo and the tests are observers; the run directory's JSONL log is
//! written from the same values.

use std::path::PathBuf;

use crate::config::Progress;
use crate::generate::ValidationMetrics;

/// One optimiser step's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct StepStats {
    /// Steps completed, this one included.
    pub step: usize,
    pub total_steps: usize,
    pub loss: f64,
    pub loss_expr: f64,
    pub loss_latent: Option<f64>,
    pub mmd: Option<f64>,
    /// The learning rate this step used.
    pub lr: f64,
    /// Samples of the batch that trained the expression stream.
    pub expr_samples: usize,
    /// Steps per second since the run (or the resume) started.
    pub steps_per_second: f64,
    pub elapsed_seconds: f64,
    /// Seconds this rank spent in the step's all-reduce, waiting for the slowest rank included
    /// (data-parallel runs only).
    pub sync_seconds: Option<f64>,
    /// Whether this step is one the log records (`output.log_every`, the first and the last).
    pub logged: bool,
}

impl StepStats {
    /// Seconds left at the current rate.
    pub fn eta_seconds(&self) -> f64 {
        (self.total_steps - self.step) as f64 / self.steps_per_second.max(1e-9)
    }

    /// `loss 0.1234 (expr 0.1200, latent 0.0034, mmd 0.0100)`.
    pub fn loss_text(&self) -> String {
        format!(
            "loss {:.4} (expr {:.4}{}{})",
            self.loss,
            self.loss_expr,
            self.loss_latent
                .map(|v| format!(", latent {v:.4}"))
                .unwrap_or_default(),
            self.mmd
                .map(|v| format!(", mmd {v:.4}"))
                .unwrap_or_default()
        )
    }
}

/// Why a run returned before its last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// [`crate::TrainOptions::stop`] was raised; a checkpoint of the step was written.
    Requested,
    /// [`crate::TrainOptions::stop_after`] was reached (no checkpoint, as if killed).
    StepLimit,
}

/// What happens during a run, in order.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// A line about the setup: the data, the split, the scGPT model, the model, a resume.
    Message(String),
    /// The loop starts at `start_step` (0, or the resumed checkpoint's step).
    Started {
        start_step: usize,
        total_steps: usize,
        /// The run's `output.progress` setting, for the observer that draws a bar.
        progress: Progress,
    },
    Step(StepStats),
    Validation {
        step: usize,
        metrics: ValidationMetrics,
        seconds: f64,
    },
    Checkpoint {
        step: usize,
        path: PathBuf,
    },
    Stopped {
        step: usize,
        reason: StopReason,
    },
}

impl TrainEvent {
    /// The event as one line of text for a log-style observer: messages, logged steps,
    /// validation passes and stops (checkpoints and unlogged steps give `None`).
    pub fn line(&self) -> Option<String> {
        match self {
            Self::Message(m) => Some(m.clone()),
            Self::Step(s) if s.logged => Some(s.progress_line()),
            Self::Validation {
                step,
                metrics: m,
                seconds,
            } => Some(format!(
                "validation at step {step}: {} conditions, pearson_delta {}, mse {} ({seconds:.1} s)",
                m.conditions,
                m.pearson_delta
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or("-".into()),
                m.mse.map(|v| format!("{v:.5}")).unwrap_or("-".into()),
            )),
            Self::Stopped {
                step,
                reason: StopReason::Requested,
            } => Some(format!("stop requested: checkpoint of step {step} written")),
            Self::Stopped {
                step,
                reason: StopReason::StepLimit,
            } => Some(format!("stopped after step {step} as asked")),
            _ => None,
        }
    }
}

impl StepStats {
    /// `step 10/400 loss ... lr 1.00e-3 6.50 steps/s ETA 1m02s`.
    pub fn progress_line(&self) -> String {
        format!(
            "step {}/{} {} lr {:.2e} {:.2} steps/s ETA {}",
            self.step,
            self.total_steps,
            self.loss_text(),
            self.lr,
            self.steps_per_second,
            fmt_eta(self.eta_seconds())
        )
    }
}

/// `1h02m` or `3m05s`.
pub fn fmt_eta(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
