//! Import progress: bars on a terminal, one quiet line per phase otherwise (logs, CI, pipes).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use porten_storage::ImportProgress;

/// Draws progress on stderr.
pub struct Progress {
    terminal: bool,
    current: Mutex<Option<(String, u64, Instant, ProgressBar)>>,
}

impl Progress {
    /// Bars if stderr is a terminal.
    pub fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            current: Mutex::new(None),
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl ImportProgress for Progress {
    fn phase(&self, name: &str, total_bytes: u64) {
        let bar = if self.terminal {
            let bar = ProgressBar::new(total_bytes);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(name.to_string());
            bar
        } else {
            ProgressBar::hidden()
        };
        *self.current.lock().unwrap() = Some((name.to_string(), total_bytes, Instant::now(), bar));
    }

    fn advance(&self, bytes: u64) {
        if let Some((_, _, _, bar)) = &*self.current.lock().unwrap() {
            bar.inc(bytes);
        }
    }

    fn phase_done(&self) {
        if let Some((name, total, started, bar)) = self.current.lock().unwrap().take() {
            bar.finish_and_clear();
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "{name}: {} in {secs:.2} s ({}/s)",
                human_bytes(total),
                human_bytes((total as f64 / secs.max(1e-9)) as u64)
            );
        }
    }
}

/// A byte bar on stderr for a download whose size comes later, when stderr is a terminal.
pub fn bar_for_terminal() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    Some(bar)
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`, `17 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
