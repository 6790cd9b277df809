//! How much of each (model, domain) cell one client key's feedback makes up, on this replica.
//!
//! A key's feedback counts in a cell while what it added there within its window (a fixed window of
//! `learning.key_share_window_s` that starts with the key's first counted feedback in the cell) stays within
//! `learning.max_key_share` of the cell's pseudo-observations: `used + w ≤ share · (κ + n + w)`, where `w` is
//! the new observation's weight (its domain probability), `n` the cell's observations and κ
//! `learning.prior_strength`. A resent score that replaces a counted one is charged too, by how far it moves
//! the cell: `used + w · |new − old| ≤ share · (κ + n)` (it adds no observation). So within a window a key
//! moves a cell by at most its share of it, however its feedback is split between new scores and rescores.
//! With `[state] url` the same rule runs in Redis on the shared cells ([`crate::replicas::online`]); this ledger
//! decides only while Redis does not answer.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use switchyard_core::Cell;

use super::Observation;

/// Most (key, model, domain) windows kept; beyond it, expired ones are dropped.
const WINDOWS_CAP: usize = 100_000;

/// A key's feedback weight in one cell since the window started.
#[derive(Debug, Clone, Copy)]
struct Window {
    since_ms: i64,
    weight: f64,
}

/// Every key's windows, by (key, model, domain).
pub(crate) struct Shares {
    max: f64,
    window_ms: i64,
    windows: HashMap<(String, String, String), Window>,
}

impl Shares {
    /// The ledger for a share of `max` over windows of `window`.
    pub(crate) fn new(max: f64, window: Duration) -> Self {
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1);
        Self { max, window_ms, windows: HashMap::new() }
    }

    /// The most a key may make up of a cell.
    pub(crate) fn max(&self) -> f64 {
        self.max
    }

    /// The window's length.
    pub(crate) fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms.unsigned_abs())
    }

    fn used(&self, key: &str, model: &str, domain: &str, now_ms: i64) -> Option<Window> {
        self.windows
            .get(&(key.to_string(), model.to_string(), domain.to_string()))
            .filter(|w| now_ms - w.since_ms < self.window_ms)
            .copied()
    }

    /// The first domain in which feedback from `key` on observation `o` would take the key over its share of the
    /// cell (`cells`: the model's cells), if any. It costs `w · charge.cost` in a domain of weight `w`.
    pub(crate) fn over(
        &self,
        key: &str,
        o: &Observation,
        cells: Option<&BTreeMap<String, Cell>>,
        prior_strength: f64,
        charge: Charge,
        now_ms: i64,
    ) -> Option<String> {
        o.domains.iter().filter(|(_, w)| *w > 0.0).find_map(|(domain, w)| {
            let cost = w * charge.cost;
            if cost <= 0.0 {
                return None;
            }
            let n = cells.and_then(|c| c.get(domain)).map_or(0.0, |c| c.n);
            let added = if charge.adds { *w } else { 0.0 };
            let used = self.used(key, &o.model, domain, now_ms).map_or(0.0, |u| u.weight);
            (used + cost > self.max * (prior_strength + n + added) + 1e-9).then(|| domain.clone())
        })
    }

    /// Charges feedback from `key` on observation `o` (`w · charge.cost` per domain) to the key's windows.
    pub(crate) fn add(&mut self, key: &str, o: &Observation, charge: Charge, now_ms: i64) {
        let (model, cost) = (o.model.as_str(), charge.cost);
        for (domain, w) in o.domains.iter().filter(|(_, w)| *w > 0.0 && w * cost > 0.0) {
            let window = match self.used(key, model, domain, now_ms) {
                Some(u) => Window { since_ms: u.since_ms, weight: u.weight + w * cost },
                None => Window { since_ms: now_ms, weight: w * cost },
            };
            self.windows.insert((key.to_string(), model.to_string(), domain.clone()), window);
        }
        if self.windows.len() > WINDOWS_CAP {
            let window_ms = self.window_ms;
            self.windows.retain(|_, w| now_ms - w.since_ms < window_ms);
        }
    }
}

/// What a feedback score costs a key's share of a cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Charge {
    /// The cost per unit of domain weight.
    pub(crate) cost: f64,
    /// Whether it adds an observation to the cell.
    pub(crate) adds: bool,
}

impl Charge {
    /// A new observation.
    pub(crate) const COUNT: Self = Self { cost: 1.0, adds: true };

    /// A replaced score, moving the cell by `delta` per unit of weight.
    pub(crate) fn replace(delta: f64) -> Self {
        Self { cost: delta.abs(), adds: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(model: &str, domain: &str) -> Observation {
        Observation { model: model.into(), domains: vec![(domain.into(), 1.0)], predicted: 0.8 }
    }

    #[test]
    fn a_key_gets_its_share_of_a_cell_per_window() {
        let mut shares = Shares::new(0.25, Duration::from_secs(60));
        let mut cells = BTreeMap::new();
        let math = on("m", "math");
        // κ = 20 and no other observations: x ≤ 0.25 · (20 + x), so 6 whole observations fit, not 7.
        let mut counted = 0;
        while shares.over("a", &math, Some(&cells), 20.0, Charge::COUNT, 1_000).is_none() {
            shares.add("a", &math, Charge::COUNT, 1_000);
            cells.entry("math".to_string()).or_insert_with(Cell::default).observe(1.0, 0.0, 0.8, 1e9);
            counted += 1;
            assert!(counted < 100);
        }
        assert_eq!(counted, 6);
        assert_eq!(shares.over("a", &math, Some(&cells), 20.0, Charge::COUNT, 1_000).as_deref(), Some("math"));
        // Another key, another model, or another domain is not over.
        assert!(shares.over("b", &math, Some(&cells), 20.0, Charge::COUNT, 1_000).is_none());
        assert!(shares.over("a", &on("m2", "math"), None, 20.0, Charge::COUNT, 1_000).is_none());
        assert!(shares.over("a", &on("m", "code"), Some(&cells), 20.0, Charge::COUNT, 1_000).is_none());
        // Other keys' observations make room: with 40 more, the cell holds 66 and a's 6 are under a quarter.
        cells.get_mut("math").unwrap().observe(40.0, 1.0, 0.8, 1e9);
        assert!(shares.over("a", &math, Some(&cells), 20.0, Charge::COUNT, 1_000).is_none());
        // A new window starts afresh.
        let fresh = Shares { windows: shares.windows.clone(), ..Shares::new(0.25, Duration::from_secs(60)) };
        assert!(fresh.used("a", "m", "math", 61_000).is_none());
        assert_eq!(fresh.used("a", "m", "math", 60_999).map(|u| u.weight), Some(6.0));
    }

    #[test]
    fn a_replaced_score_is_charged_by_how_far_it_moves_the_cell() {
        let mut shares = Shares::new(0.25, Duration::from_secs(60));
        let math = on("m", "math");
        let mut cells = BTreeMap::new();
        cells.insert("math".to_string(), Cell { n: 4.0, successes: 4.0, predicted: 3.2 });
        shares.add("a", &math, Charge::COUNT, 0);
        shares.add("a", &math, Charge::COUNT, 0);
        // 2 used of 0.25 · (20 + 4) = 6: four whole flips fit, a fifth does not (it adds no observation).
        for _ in 0..4 {
            assert!(shares.over("a", &math, Some(&cells), 20.0, Charge::replace(-1.0), 10).is_none());
            shares.add("a", &math, Charge::replace(-1.0), 10);
        }
        assert_eq!(shares.used("a", "m", "math", 10).map(|u| u.weight), Some(6.0));
        let flip = shares.over("a", &math, Some(&cells), 20.0, Charge::replace(1.0), 10);
        assert_eq!(flip.as_deref(), Some("math"));
        // Resending the same score costs nothing, even at the share.
        assert!(shares.over("a", &math, Some(&cells), 20.0, Charge::replace(0.0), 10).is_none());
        shares.add("a", &math, Charge::replace(0.0), 10);
        assert_eq!(shares.used("a", "m", "math", 10).map(|u| u.weight), Some(6.0));
        // The next window has room again.
        assert!(shares.over("a", &math, Some(&cells), 20.0, Charge::replace(1.0), 60_000).is_none());
    }
}
