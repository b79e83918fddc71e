//! Progress bars with ETA on stderr (indicatif) and a clean Ctrl-C.
//!
//! [`Bars::start`] shows a generation bar (new tokens of the current batch) and an attribution
//! bar, fed by the SDK host's `progress(done, total)`
//! callback through [`crate::progress`], and optionally a dataset bar (examples done / total).
//! The bars are hidden when stderr is not a terminal or with `--quiet`. The first Ctrl-C
//! cancels: the next progress callback answers `false`, the method stops, and the command
//! returns [`Interrupted`] (exit code 130); a second Ctrl-C quits at once.

use std::io::IsTerminal;
use std::sync::{Arc, Once};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{self, ProgressReporter};

/// The exit code of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const INTERRUPTED_EXIT_CODE: i32 = 130;

/// A command stopped by Ctrl-C; the message says what was kept and how to resume.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: {0}")]
pub struct Interrupted(String);

impl Interrupted {
    /// An interruption whose message is `what` (what was kept, how to resume).
    pub fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

/// The progress bars of one command.
pub struct Bars {
    multi: MultiProgress,
    dataset: Option<ProgressBar>,
    generation: ProgressBar,
    attribution: ProgressBar,
}

/// Forwards the host's progress reports to the generation and attribution bars.
struct Reporter {
    generation: ProgressBar,
    attribution: ProgressBar,
}

/// Moves `bar` to `done` of `total`; a new call starts again from 0: restart the bar so that
/// its ETA is its own.
fn advance(bar: &ProgressBar, done: u64, total: u64) {
    if done < bar.position() {
        bar.reset();
    }
    bar.set_length(total);
    bar.set_position(done);
}

impl ProgressReporter for Reporter {
    fn attribution(&self, done: u64, total: u64) {
        advance(&self.attribution, done, total);
    }

    fn generation(&self, done: u64, total: u64) {
        advance(&self.generation, done, total);
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Bars {
    /// Shows the bars (hidden with `quiet` or when stderr is not a terminal), installs them as
    /// the progress reporter and installs the Ctrl-C handler. `dataset` is `(done, total)`
    /// examples for a dataset bar.
    pub fn start(quiet: bool, dataset: Option<(u64, u64)>) -> Self {
        install_ctrlc();
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let multi = MultiProgress::with_draw_target(target);
        let dataset = dataset.map(|(done, total)| {
            let bar = multi.add(ProgressBar::new(total));
            bar.set_style(style(
                "examples    [{elapsed_precise}] {wide_bar} {pos}/{len} (ETA {eta})",
            ));
            bar.set_position(done);
            bar.reset_eta();
            bar
        });
        let generation = multi.add(ProgressBar::new(0));
        generation.set_style(style(
            "generation  [{elapsed_precise}] {wide_bar} {pos}/{len} tokens (ETA {eta})",
        ));
        let attribution = multi.add(ProgressBar::new(0));
        attribution.set_style(style(
            "attribution [{elapsed_precise}] {wide_bar} {pos}/{len} (ETA {eta})",
        ));
        progress::install(Some(Arc::new(Reporter {
            generation: generation.clone(),
            attribution: attribution.clone(),
        })));
        Self {
            multi,
            dataset,
            generation,
            attribution,
        }
    }

    /// `n` more examples are finished.
    pub fn examples_done(&self, n: u64) {
        if let Some(bar) = &self.dataset {
            bar.inc(n);
        }
    }

    /// Runs `f` (e.g. printing to the terminal) with the bars cleared.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// Removes the bars and uninstalls the reporter.
    pub fn finish(&self) {
        progress::install(None);
        self.generation.finish_and_clear();
        self.attribution.finish_and_clear();
        if let Some(bar) = &self.dataset {
            bar.finish_and_clear();
        }
        // Nothing to report if clearing fails: the bars are cosmetic.
        let _ = self.multi.clear();
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Installs the Ctrl-C handler once per process: the first Ctrl-C cancels the attribution,
/// the second exits at once.
fn install_ctrlc() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let installed = ctrlc::set_handler(|| {
            if progress::is_cancelled() {
                std::process::exit(INTERRUPTED_EXIT_CODE);
            }
            progress::cancel();
            eprintln!("stopping at the next progress report (Ctrl-C again to quit now)");
        });
        // Another handler (an embedding program's) keeps Ctrl-C's default: no clean stop.
        if let Err(e) = installed {
            eprintln!("warning: Ctrl-C will not stop cleanly: {e}");
        }
    });
}
