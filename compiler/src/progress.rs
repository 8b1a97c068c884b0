//! What the command line says while it works: verbosity (`-q`, `-v`), warnings, per-stage
//! information, and progress bars for long work, drawn on standard error only when it is a
//! terminal (scripts and logs see nothing extra).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// How much the command line says on standard error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// `-q`: errors only.
    Quiet = 0,
    /// Warnings, and progress bars on a terminal.
    Normal = 1,
    /// `-v`: also each stage's time and the pipeline's per-pass timings.
    Verbose = 2,
}

static LEVEL: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);

/// Sets the process's verbosity (the binary does, from `-q`/`-v`; a library caller need not).
pub fn set_verbosity(v: Verbosity) {
    LEVEL.store(v as u8, Ordering::Relaxed);
}

pub fn verbosity() -> Verbosity {
    match LEVEL.load(Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        1 => Verbosity::Normal,
        _ => Verbosity::Verbose,
    }
}

/// A warning on standard error, unless `-q`.
pub fn warn(message: &str) {
    if verbosity() >= Verbosity::Normal {
        eprintln!("edgec: warning: {message}");
    }
}

/// A line of per-stage information on standard error, with `-v` only.
pub fn info(message: &str) {
    if verbosity() >= Verbosity::Verbose {
        eprintln!("edgec: {message}");
    }
}

/// A progress bar (with `len` steps) or spinner (`len` 0) on standard error, hidden unless
/// standard error is a terminal and the verbosity is not `-q`. Finishing or dropping it clears
/// it; with `-v` the stage's time is then printed.
pub struct Progress {
    bar: ProgressBar,
    stage: String,
    start: Instant,
}

impl Progress {
    pub fn new(len: u64, stage: &str) -> Progress {
        let shown = verbosity() >= Verbosity::Normal && std::io::stderr().is_terminal();
        let target = if shown { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(len), target);
        let style = if len > 0 {
            ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
        } else {
            ProgressStyle::with_template("{spinner} {prefix} {msg} ({elapsed})")
        };
        if let Ok(style) = style {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(stage.to_string());
        // Ticks on its own: a long step (calibration inside quantize-int8, an emulated run) still
        // shows that work goes on.
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar, stage: stage.to_string(), start: Instant::now() }
    }

    /// Moves to step `pos` (0-based, the step now running), named `message`.
    pub fn step(&self, pos: u64, message: &str) {
        self.bar.set_position(pos);
        self.bar.set_message(message.to_string());
    }

    /// A callback for [`edgec_passes::PassManager::progress`]: `(index, count, pass)`.
    pub fn pass_steps(&self) -> Box<dyn FnMut(usize, usize, &str)> {
        let bar = self.bar.clone();
        Box::new(move |i, count, pass| {
            bar.set_length(count as u64);
            bar.set_position(i as u64);
            bar.set_message(pass.to_string());
        })
    }

    /// A pass's progress through long work (`quantize-int8`'s calibration runs): shown as the
    /// bar's message, `calibration runs 3/16`, while the bar counts passes.
    pub fn sample_steps(&self) -> edgec_passes::pass::StepProgress {
        let bar = self.bar.clone();
        edgec_passes::pass::StepProgress(std::sync::Arc::new(move |what, done, total| {
            bar.set_message(format!("{what} {done}/{total}"));
        }))
    }

    pub fn message(&self, message: &str) {
        self.bar.set_message(message.to_string());
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        info(&format!("{}: {:.3} s", self.stage, self.start.elapsed().as_secs_f64()));
    }
}
