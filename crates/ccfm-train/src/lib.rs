//! The training loop: optimiser and learning-rate schedule, checkpoints and resume, logging.
//!
//! Written in the issue "ccfm-train + ccfm-cli".
