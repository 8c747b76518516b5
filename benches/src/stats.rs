//! Latency summaries.

use std::time::Duration;

/// Nearest-rank percentiles of a set of durations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    /// Summarises `samples` (sorted in place).
    pub(crate) fn of(samples: &mut [Duration]) -> Summary {
        samples.sort_unstable();
        let pick = |q: f64| {
            samples
                .get(((samples.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        Summary {
            count: samples.len(),
            p50: pick(0.50),
            p99: pick(0.99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50 {:.2?} p99 {:.2?} max {:.2?}",
            self.count, self.p50, self.p99, self.max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Summary::of(&mut samples);
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, Duration::from_millis(51));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
        let one = Summary::of(&mut [Duration::from_millis(7)]);
        assert_eq!(
            (one.p50, one.p99, one.max),
            (
                Duration::from_millis(7),
                Duration::from_millis(7),
                Duration::from_millis(7)
            )
        );
        let none = Summary::of(&mut []);
        assert_eq!((none.count, none.p99), (0, Duration::ZERO));
    }
}
