//! A progress bar for the long steps (`predict`, `evaluate`, `embed`), drawn on stderr when it
//! is a terminal and never in logs or CI. `CCFM_PROGRESS=always|never` overrides the choice.

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Whether bars are drawn: `CCFM_PROGRESS`, else whether stderr is a terminal.
pub fn enabled() -> bool {
    match std::env::var("CCFM_PROGRESS").as_deref() {
        Ok("always") => true,
        Ok("never") => false,
        _ => std::io::stderr().is_terminal(),
    }
}

/// One step's bar: `label [#####-----] done/total unit, elapsed, ETA`.
pub struct Bar {
    label: String,
    unit: &'static str,
    on: bool,
    started: Instant,
    last: Option<Instant>,
    drawn: bool,
}

impl Bar {
    pub fn new(label: impl Into<String>, unit: &'static str) -> Self {
        Self {
            label: label.into(),
            unit,
            on: enabled(),
            started: Instant::now(),
            last: None,
            drawn: false,
        }
    }

    /// Redraw (at most every 100 ms, always for the first and the last update).
    pub fn update(&mut self, done: usize, total: usize) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        let due = self
            .last
            .is_none_or(|t| now.duration_since(t).as_millis() >= 100);
        if !due && done < total {
            return;
        }
        self.last = Some(now);
        let secs = self.started.elapsed().as_secs_f64();
        eprint!(
            "\r\x1b[2K{}",
            line(&self.label, self.unit, done, total, secs)
        );
        let _ = std::io::stderr().flush();
        self.drawn = true;
    }

    /// Print a message line above the bar.
    pub fn say(&mut self, message: &str) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
            self.last = None;
        }
        eprintln!("{message}");
    }

    /// End the bar's line.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The bar's text.
pub fn line(label: &str, unit: &str, done: usize, total: usize, secs: f64) -> String {
    const WIDTH: usize = 24;
    let frac = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).clamp(0.0, 1.0)
    };
    let filled = (frac * WIDTH as f64).round() as usize;
    let eta = if done > 0 && done < total {
        format!(", ETA {:.0} s", secs / done as f64 * (total - done) as f64)
    } else {
        String::new()
    };
    format!(
        "{label} [{}{}] {done}/{total} {unit}, {secs:.1} s{eta}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled)
    )
}

/// A bar shared by a library call's `say` and `progress` callbacks.
pub struct Shared(RefCell<Bar>);

impl Shared {
    pub fn new(label: impl Into<String>, unit: &'static str) -> Self {
        Self(RefCell::new(Bar::new(label, unit)))
    }

    pub fn say(&self, message: String) {
        self.0.borrow_mut().say(&message);
    }

    pub fn update(&self, done: usize, total: usize) {
        self.0.borrow_mut().update(done, total);
    }

    pub fn finish(&self) {
        self.0.borrow_mut().finish();
    }
}

/// The observer of `ccfm train`: a one-line bar redrawn at most every 200 ms (when
/// `output.progress` asks for one), or, without a bar, the log lines of [`TrainEvent::line`].
pub struct TrainBar {
    on: bool,
    last: Option<Instant>,
    drawn: bool,
}

impl TrainBar {
    pub fn new() -> Self {
        Self {
            on: false,
            last: None,
            drawn: false,
        }
    }

    /// Show one event.
    pub fn observe(&mut self, event: &ccfm_train::TrainEvent) {
        use ccfm_train::config::Progress;
        use ccfm_train::TrainEvent;
        match event {
            TrainEvent::Started { progress, .. } => {
                // The run's output.progress, unless CCFM_PROGRESS overrides it as for every bar.
                self.on = match std::env::var("CCFM_PROGRESS").as_deref() {
                    Ok("always") => true,
                    Ok("never") => false,
                    _ => match progress {
                        Progress::Always => true,
                        Progress::Never => false,
                        Progress::Auto => std::io::stderr().is_terminal(),
                    },
                }
            }
            TrainEvent::Step(s) if self.on => {
                self.draw(&s.progress_line(), s.step == s.total_steps)
            }
            other => {
                if let Some(line) = other.line() {
                    self.clear();
                    eprintln!("{line}");
                }
            }
        }
    }

    fn draw(&mut self, line: &str, force: bool) {
        let due = self.last.is_none_or(|t| t.elapsed().as_millis() >= 200);
        if !due && !force {
            return;
        }
        self.last = Some(Instant::now());
        eprint!("\r\x1b[2K{line}");
        let _ = std::io::stderr().flush();
        self.drawn = true;
    }

    /// End the bar's line before other output.
    pub fn clear(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::line;

    #[test]
    fn the_bar_fills_in_proportion_and_estimates_the_rest() {
        assert_eq!(
            line("predicting", "conditions", 0, 4, 0.0),
            "predicting [------------------------] 0/4 conditions, 0.0 s"
        );
        assert_eq!(
            line("predicting", "conditions", 1, 4, 2.0),
            "predicting [######------------------] 1/4 conditions, 2.0 s, ETA 6 s"
        );
        assert_eq!(
            line("x", "cells", 4, 4, 8.0),
            "x [########################] 4/4 cells, 8.0 s"
        );
        // Nothing to do is done.
        assert!(line("x", "cells", 0, 0, 0.0).contains("[########################]"));
    }
}
