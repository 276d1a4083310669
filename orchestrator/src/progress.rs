//! Progress of a wait on stderr: a bar on a terminal, an occasional plain line otherwise (logs
//! and CI output stay readable).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Minimum time between two plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(3);

/// Reports `ready/total` counts for one wait.
pub struct Progress {
    prefix: String,
    verb: &'static str,
    bar: Option<ProgressBar>,
    last_line: Option<(Instant, usize)>,
}

impl Progress {
    /// A reporter whose lines read `<prefix>: <ready>/<total> <verb>`, e.g. `waiting: 3/5 running`.
    pub fn new(prefix: impl Into<String>, verb: &'static str, total: usize) -> Self {
        let prefix = prefix.into();
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            let template = format!("{prefix}: {{bar:30}} {{pos}}/{{len}} {verb} ({{elapsed}})");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            prefix,
            verb,
            bar,
            last_line: None,
        }
    }

    /// Records one poll's result.
    pub fn update(&mut self, ready: usize, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(ready as u64);
            return;
        }
        let due = match self.last_line {
            None => true,
            Some((at, count)) => at.elapsed() >= LINE_EVERY || (ready == total && count != ready),
        };
        if due {
            eprintln!("{}: {ready}/{total} {}", self.prefix, self.verb);
            self.last_line = Some((Instant::now(), ready));
        }
    }

    /// Removes the bar (plain lines stay).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
