//! Safe exploration with known propensities: a small share of decisions goes to a model other than the
//! policy's choice, picked by Thompson sampling among the models that still meet a safety floor, and every
//! decision records the probability that its model would have been chosen. Logged outcomes can then be
//! reweighted by that probability (inverse propensity) so that retraining on them is not biased toward what
//! the router already believed.
//!
//! A decision's randomness comes from its request id (hashed), so a decision can be replayed exactly.

/// Thompson-sampling draws behind the exploration shares (the propensities' precision: ±1/√draws).
pub const DRAWS: usize = 400;

/// The outcome of exploring on one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Exploration {
    /// The model to send the request to.
    pub model: String,
    /// The probability that this model was chosen, given the candidates.
    pub propensity: f64,
    /// Whether it is an exploration (not the policy's choice).
    pub explored: bool,
}

/// Decides whether this decision explores. `chosen` is the policy's choice; `others` the other eligible models
/// that meet the safety floor, with their P(success); `share` the exploration share in [0, 1]; `strength` the
/// pseudo-observations behind each P in the Thompson draws (Beta(P·s, (1 − P)·s)); `seed` the decision's.
pub fn explore(chosen: &str, others: &[(String, f64)], share: f64, strength: f64, seed: u64) -> Exploration {
    let keep = Exploration { model: chosen.to_string(), propensity: 1.0, explored: false };
    if share <= 0.0 || others.is_empty() {
        return keep;
    }
    let mut rng = Rng::new(seed);
    if rng.uniform() >= share {
        return Exploration { propensity: 1.0 - share, ..keep };
    }
    // Only an exploring decision pays for the draws.
    let shares = thompson_shares(&others.iter().map(|o| o.1).collect::<Vec<_>>(), strength, DRAWS, &mut rng);
    // Which model: drawn by the Thompson shares themselves, so that the propensity is exactly what was used.
    let mut u = rng.uniform();
    for ((model, _), s) in others.iter().zip(&shares) {
        if u < *s {
            return Exploration { model: model.clone(), propensity: share * s, explored: true };
        }
        u -= s;
    }
    let last = others.len() - 1;
    Exploration { model: others[last].0.clone(), propensity: share * shares[last], explored: true }
}

/// How often each candidate wins a Thompson draw: per draw, a success rate sampled for each from
/// Beta(P·s, (1 − P)·s) (at least 0.5 each way), the highest wins. Shares sum to 1; a candidate that never
/// wins gets half a draw, so that no candidate's propensity is 0.
pub fn thompson_shares(ps: &[f64], strength: f64, draws: usize, rng: &mut Rng) -> Vec<f64> {
    let mut wins = vec![0.0f64; ps.len()];
    for _ in 0..draws {
        let mut best = (0, f64::NEG_INFINITY);
        for (i, &p) in ps.iter().enumerate() {
            let p = p.clamp(1e-3, 1.0 - 1e-3);
            let v = rng.beta((p * strength).max(0.5), ((1.0 - p) * strength).max(0.5));
            if v > best.1 {
                best = (i, v);
            }
        }
        wins[best.0] += 1.0;
    }
    wins.iter_mut().for_each(|w| *w = w.max(0.5));
    let total: f64 = wins.iter().sum();
    wins.into_iter().map(|w| w / total).collect()
}

/// A decision's seed from its request id.
pub fn seed_of(request_id: &str) -> u64 {
    // FNV-1a, then mixed.
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in request_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    Rng::new(h).next_u64()
}

/// A small, fast pseudo-random generator (SplitMix64): the stream behind exploration and `bench`'s bootstrap.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index below `n` (multiply-shift; the bias is below 2^-32 for any n of interest).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Gamma(shape, 1) by Marsaglia and Tsang (shape < 1 boosted).
    fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let u = self.uniform().max(1e-300);
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// Beta(a, b).
    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a);
        let y = self.gamma(b);
        x / (x + y).max(1e-300)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_explored_and_the_propensities_are_what_was_asked() {
        let others = vec![("b".to_string(), 0.8), ("c".to_string(), 0.6)];
        let n = 20_000;
        let (mut explored, mut to_b) = (0, 0);
        for i in 0..n {
            let e = explore("a", &others, 0.1, 20.0, seed_of(&format!("sy-{i}")));
            if e.explored {
                explored += 1;
                to_b += usize::from(e.model == "b");
                assert!(e.propensity > 0.0 && e.propensity < 0.1);
            } else {
                assert_eq!((e.model.as_str(), e.propensity), ("a", 0.9));
            }
        }
        let share = explored as f64 / n as f64;
        assert!((share - 0.1).abs() < 0.01, "{share}");
        // The stronger candidate wins most Thompson draws, the other some.
        assert!(to_b as f64 / explored as f64 > 0.6 && to_b < explored, "{to_b} of {explored}");
        // No candidates, or no share: the policy's choice, for sure.
        assert_eq!(explore("a", &[], 0.1, 20.0, 1).propensity, 1.0);
        assert_eq!(explore("a", &others, 0.0, 20.0, 1).propensity, 1.0);
    }

    #[test]
    fn beta_draws_have_the_right_mean() {
        let mut rng = Rng::new(3);
        let mean: f64 = (0..20_000).map(|_| rng.beta(2.0, 6.0)).sum::<f64>() / 20_000.0;
        assert!((mean - 0.25).abs() < 0.01, "{mean}");
        let shares = thompson_shares(&[0.9, 0.1], 20.0, 400, &mut rng);
        assert!(shares[0] > 0.95 && shares[1] > 0.0, "{shares:?}");
    }
}
