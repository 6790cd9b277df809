//! Paired percentile bootstrap: resample the evaluation items with replacement, compute every statistic on
//! the same resample, and read each statistic's interval off the percentiles of its resampled values.
//!
//! "Paired" because all statistics (and so their differences) see the same resamples: the interval of
//! `a − b` computed this way accounts for `a` and `b` being measured on the same prompts, which is far
//! tighter (and more honest) than comparing two separate intervals.
//!
//! Deterministic: the resamples depend only on `n`, the number of resamples and the seed.

use serde::{Deserialize, Serialize};

/// A confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

impl Interval {
    /// Whether `v` lies in the interval (bounds included).
    pub fn contains(&self, v: f64) -> bool {
        self.lo <= v && v <= self.hi
    }

    /// Whether the whole interval lies above 0.
    pub fn above_zero(&self) -> bool {
        self.lo > 0.0
    }

    /// Whether the whole interval lies below 0.
    pub fn below_zero(&self) -> bool {
        self.hi < 0.0
    }
}

/// Bootstrap settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapOptions {
    /// Resamples drawn (0 = no intervals).
    pub resamples: usize,
    /// Seed of the resampling.
    pub seed: u64,
    /// Coverage of the intervals, e.g. 0.95.
    pub level: f64,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        Self { resamples: 1000, seed: 0, level: 0.95 }
    }
}

/// The bootstrap's generator: SplitMix64, shared with exploration.
pub use switchyard_core::Rng as SplitMix64;

/// The `q` quantile (0..=1) of sorted finite values, linearly interpolated between order statistics.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, t) = (pos.floor() as usize, pos - pos.floor());
    match sorted.get(i + 1) {
        Some(next) => sorted[i] + t * (next - sorted[i]),
        None => sorted[i],
    }
}

/// Percentile bootstrap intervals of several statistics of `n` items.
///
/// `statistics` maps one resample (the `n` drawn item indices, with repeats) to the statistics' values, always
/// in the same order and number. A value that is NaN (undefined on that resample) is left out of its
/// statistic's percentiles. Returns one interval per statistic, `None` where no resample gave a finite value,
/// and an empty vector when `n` or `options.resamples` is 0.
pub fn bootstrap_intervals(
    n: usize,
    options: &BootstrapOptions,
    mut statistics: impl FnMut(&[usize]) -> Vec<f64>,
) -> Vec<Option<Interval>> {
    if n == 0 || options.resamples == 0 {
        return Vec::new();
    }
    let mut rng = SplitMix64(options.seed ^ 0x5EED_B007_57A9_0000);
    let mut indices = vec![0; n];
    let mut values: Vec<Vec<f64>> = Vec::new();
    for _ in 0..options.resamples {
        for i in &mut indices {
            *i = rng.below(n);
        }
        let stats = statistics(&indices);
        if values.is_empty() {
            values = vec![Vec::with_capacity(options.resamples); stats.len()];
        }
        for (column, v) in values.iter_mut().zip(stats) {
            if v.is_finite() {
                column.push(v);
            }
        }
    }
    let tail = (1.0 - options.level.clamp(0.0, 1.0)) / 2.0;
    values
        .into_iter()
        .map(|mut column| {
            if column.is_empty() {
                return None;
            }
            column.sort_by(f64::total_cmp);
            Some(Interval { lo: quantile(&column, tail), hi: quantile(&column, 1.0 - tail) })
        })
        .collect()
}

/// How many times each of `n` items occurs in a resample: turns a resample's indices into weights.
pub fn counts(indices: &[usize], n: usize) -> Vec<f64> {
    let mut w = vec![0.0; n];
    for &i in indices {
        if let Some(c) = w.get_mut(i) {
            *c += 1.0;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_interval(data: &[f64], seed: u64) -> Interval {
        let options = BootstrapOptions { seed, ..BootstrapOptions::default() };
        let out = bootstrap_intervals(data.len(), &options, |idx| {
            vec![idx.iter().map(|&i| data[i]).sum::<f64>() / idx.len() as f64]
        });
        out[0].unwrap()
    }

    /// Deterministic pseudo-data: a fixed 0/1 pattern with mean 0.6.
    fn data(n: usize) -> Vec<f64> {
        (0..n).map(|i| if (i * 7) % 10 < 6 { 1.0 } else { 0.0 }).collect()
    }

    #[test]
    fn interval_of_a_mean_covers_it_and_narrows_with_n() {
        let small = data(50);
        let large = data(2000);
        let (a, b) = (mean_interval(&small, 1), mean_interval(&large, 1));
        assert!(a.contains(0.6) && b.contains(0.6), "{a:?} {b:?}");
        // Width ~ 2·1.96·sqrt(0.24 / n): ~0.27 at n = 50, ~0.043 at n = 2000.
        assert!((a.hi - a.lo - 0.27).abs() < 0.06, "{a:?}");
        assert!((b.hi - b.lo - 0.043).abs() < 0.01, "{b:?}");
        assert!(b.hi - b.lo < (a.hi - a.lo) / 4.0);
    }

    #[test]
    fn deterministic_for_a_seed_and_paired() {
        let d = data(200);
        assert_eq!(mean_interval(&d, 7), mean_interval(&d, 7));
        assert_ne!(mean_interval(&d, 7), mean_interval(&d, 8));
        // Two statistics on the same resamples: their difference is exactly 0 on every resample, so its
        // interval is a point, although each statistic's own interval is wide.
        let out = bootstrap_intervals(d.len(), &BootstrapOptions::default(), |idx| {
            let m = idx.iter().map(|&i| d[i]).sum::<f64>() / idx.len() as f64;
            vec![m, m + 0.1, (m + 0.1) - m]
        });
        let diff = out[2].unwrap();
        assert!((diff.lo - 0.1).abs() < 1e-12 && (diff.hi - 0.1).abs() < 1e-12);
        assert!(out[0].unwrap().hi - out[0].unwrap().lo > 0.05);
    }

    #[test]
    fn undefined_values_and_empty_inputs() {
        let out = bootstrap_intervals(10, &BootstrapOptions::default(), |_| vec![f64::NAN, 1.0]);
        assert_eq!(out[0], None);
        assert_eq!(out[1], Some(Interval { lo: 1.0, hi: 1.0 }));
        assert!(bootstrap_intervals(0, &BootstrapOptions::default(), |_| vec![1.0]).is_empty());
        let none = BootstrapOptions { resamples: 0, ..BootstrapOptions::default() };
        assert!(bootstrap_intervals(5, &none, |_| vec![1.0]).is_empty());
        assert_eq!(counts(&[0, 2, 2], 3), vec![1.0, 0.0, 2.0]);
        assert_eq!(quantile(&[1.0, 2.0, 3.0], 0.25), 1.5);
    }
}
