//! Progress reporting for long work: a bar with throughput and ETA on stderr for people, nothing for tests and
//! `--json` runs that pipe their output.

use std::io::Write;
use std::time::Instant;

pub trait Progress {
    fn start(&mut self, what: &str, total: u64);
    fn advance(&mut self, by: u64, note: &str);
    fn finish(&mut self);
    /// A line that must not be overwritten by the bar (e.g. an epoch summary).
    fn line(&mut self, text: &str);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: &str, _: u64) {}
    fn advance(&mut self, _: u64, _: &str) {}
    fn finish(&mut self) {}
    fn line(&mut self, _: &str) {}
}

/// A one-line bar redrawn in place on stderr: done/total, percentage, rate, ETA and a note.
pub struct Bar {
    what: String,
    total: u64,
    done: u64,
    started: Instant,
    last_draw: Option<Instant>,
    /// Unit of the rate, e.g. "triplets", and how many units one step is worth.
    unit: &'static str,
    per_step: u64,
}

impl Bar {
    pub fn new(unit: &'static str, per_step: u64) -> Bar {
        Bar {
            what: String::new(),
            total: 0,
            done: 0,
            started: Instant::now(),
            last_draw: None,
            unit,
            per_step,
        }
    }

    fn draw(&mut self, note: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = (self.done * self.per_step) as f64 / elapsed.max(1e-9);
        let eta = if self.done > 0 {
            elapsed / self.done as f64 * (self.total - self.done.min(self.total)) as f64
        } else {
            0.0
        };
        let width = 24;
        let filled = (self.done * width).checked_div(self.total).unwrap_or(0).min(width) as usize;
        let bar: String = "#".repeat(filled) + &"-".repeat(width as usize - filled);
        let pct = if self.total > 0 {
            100.0 * self.done as f64 / self.total as f64
        } else {
            0.0
        };
        eprint!(
            "\r{} [{bar}] {}/{} {pct:5.1}% {rate:.1} {}/s ETA {} {note}\x1b[K",
            self.what,
            self.done,
            self.total,
            self.unit,
            format_duration(eta)
        );
        let _ = std::io::stderr().flush();
        self.last_draw = Some(Instant::now());
    }
}

impl Progress for Bar {
    fn start(&mut self, what: &str, total: u64) {
        self.what = what.to_string();
        self.total = total;
        self.done = 0;
        self.started = Instant::now();
        self.draw("");
    }

    fn advance(&mut self, by: u64, note: &str) {
        self.done += by;
        // Redrawing costs little, but more than ten times a second only flickers.
        if self.last_draw.is_none_or(|t| t.elapsed().as_millis() >= 100) || self.done >= self.total {
            self.draw(note);
        }
    }

    fn finish(&mut self) {
        eprintln!();
    }

    fn line(&mut self, text: &str) {
        eprintln!("\r{text}\x1b[K");
    }
}

/// `1h02m`, `3m05s`, `12s`.
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}
