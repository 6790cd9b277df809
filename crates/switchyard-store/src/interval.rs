//! Means and rates with their 95% confidence intervals: Welford's running moments with the normal
//! approximation for means (feedback, spend), Wilson's score interval for rates.

use serde::Serialize;

/// z for a two-sided 95% interval.
pub(crate) const Z95: f64 = 1.959_963_985;

/// A mean with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// Observations.
    pub n: u64,
    /// The mean (a rate for yes/no observations).
    pub mean: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

/// Running sums of one quantity (Welford), for a mean and its normal-approximation interval.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Moments {
    pub(crate) n: u64,
    pub(crate) mean: f64,
    m2: f64,
}

impl Moments {
    /// Adds the observations `other` summarises (Chan et al.'s pairwise update).
    pub(crate) fn merge(&mut self, other: &Moments) {
        if other.n == 0 {
            return;
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let delta = other.mean - self.mean;
        self.mean += delta * nb / n;
        self.m2 += other.m2 + delta * delta * na * nb / n;
        self.n += other.n;
    }

    pub(crate) fn add(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    pub(crate) fn variance(&self) -> f64 {
        if self.n > 1 {
            self.m2 / (self.n - 1) as f64
        } else {
            0.0
        }
    }

    /// The interval of a mean of scores in [0, 1]: mean ± z·s/√n, with the variance at least a Bernoulli's at
    /// the smoothed mean ((Σ + 1) / (n + 2)), so a few equal scores do not make a zero-width interval; kept
    /// within [0, 1]. `None` without observations.
    pub(crate) fn score_interval(&self) -> Option<Interval> {
        (self.n > 0).then(|| {
            let n = self.n as f64;
            let smoothed = (self.mean * n + 1.0) / (n + 2.0);
            let variance = self.variance().max(smoothed * (1.0 - smoothed));
            let half = Z95 * (variance / n).sqrt();
            Interval { n: self.n, mean: self.mean, low: (self.mean - half).max(0.0), high: (self.mean + half).min(1.0) }
        })
    }

    /// Mean ± z·s/√n; `None` without observations.
    pub(crate) fn interval(&self) -> Option<Interval> {
        (self.n > 0).then(|| {
            let half = Z95 * (self.variance() / self.n as f64).sqrt();
            Interval { n: self.n, mean: self.mean, low: self.mean - half, high: self.mean + half }
        })
    }
}

/// The Wilson score interval of `k` successes in `n` trials (sound at small n and at rates near 0 or 1).
pub fn wilson(k: u64, n: u64) -> Option<Interval> {
    if n == 0 {
        return None;
    }
    let (nf, p) = (n as f64, k as f64 / n as f64);
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * nf)) / (1.0 + z2 / nf);
    let half = Z95 / (1.0 + z2 / nf) * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    Some(Interval { n, mean: p, low: (centre - half).max(0.0), high: (centre + half).min(1.0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_moments_equal_those_of_all_the_observations() {
        let xs = [0.1, 0.9, 0.4, 0.4, 1.0, 0.0, 0.7];
        let mut all = Moments::default();
        xs.iter().for_each(|x| all.add(*x));
        let (mut a, mut b) = (Moments::default(), Moments::default());
        xs[..3].iter().for_each(|x| a.add(*x));
        xs[3..].iter().for_each(|x| b.add(*x));
        a.merge(&b);
        a.merge(&Moments::default());
        assert_eq!(a.n, all.n);
        assert!((a.mean - all.mean).abs() < 1e-12 && (a.variance() - all.variance()).abs() < 1e-12);
    }

    #[test]
    fn equal_scores_still_have_an_honest_width() {
        let mut m = Moments::default();
        for _ in 0..5 {
            m.add(1.0);
        }
        let i = m.score_interval().unwrap();
        assert_eq!((i.mean, i.high), (1.0, 1.0));
        assert!(i.low < 0.8, "{i:?}");
        // Many varied scores: the sample variance rules.
        let mut m = Moments::default();
        for k in 0..1000 {
            m.add(f64::from(k % 2));
        }
        let i = m.score_interval().unwrap();
        assert!((i.high - i.low - 2.0 * Z95 * (0.25f64 / 1000.0).sqrt()).abs() < 1e-3, "{i:?}");
    }
}
