//! Where the time of a sync goes, per phase, for `sync -v` and the benchmark.

use std::time::{Duration, Instant};

/// Accumulated wall time per named phase, in the order phases first appear.
#[derive(Debug, Default, Clone)]
pub struct Timings {
    phases: Vec<(&'static str, Duration)>,
}

impl Timings {
    /// Add `elapsed` to `phase`.
    pub fn add(&mut self, phase: &'static str, elapsed: Duration) {
        match self.phases.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, d)) => *d += elapsed,
            None => self.phases.push((phase, elapsed)),
        }
    }

    /// Run `f`, adding its wall time to `phase`.
    pub fn time<T>(&mut self, phase: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.add(phase, start.elapsed());
        out
    }

    /// Add every phase of `other`.
    pub fn merge(&mut self, other: &Timings) {
        for (p, d) in &other.phases {
            self.add(p, *d);
        }
    }

    /// `phase: 1.234s` lines.
    pub fn lines(&self) -> Vec<String> {
        self.phases
            .iter()
            .map(|(p, d)| format!("{p}: {:.3}s", d.as_secs_f64()))
            .collect()
    }
}
