//! How much of each (model, domain) cell one client key's feedback makes up, on this replica.
//!
//! A key's feedback counts in a cell while what it added there within its window (a fixed window of
//! `learning.key_share_window_s` that starts with the key's first counted feedback in the cell) stays within
//! `learning.max_key_share` of the cell's pseudo-observations: `used + w ≤ share · (κ + n + w)`, where `w` is
//! the new observation's weight (its domain probability), `n` the cell's observations and κ
//! `learning.prior_strength`. With `[state] url` the same rule runs in Redis on the shared cells
//! ([`crate::shared::online`]); this ledger decides only while Redis does not answer.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use switchyard_core::Cell;

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

    /// The first of `domains` in which an observation of `model` from `key` would take the key over its share
    /// of the cell (`cells`: the model's cells), if any.
    pub(crate) fn over(
        &self,
        key: &str,
        model: &str,
        domains: &[(String, f64)],
        cells: Option<&BTreeMap<String, Cell>>,
        prior_strength: f64,
        now_ms: i64,
    ) -> Option<String> {
        domains.iter().filter(|(_, w)| *w > 0.0).find_map(|(domain, w)| {
            let n = cells.and_then(|c| c.get(domain)).map_or(0.0, |c| c.n);
            let used = self.used(key, model, domain, now_ms).map_or(0.0, |u| u.weight);
            (used + w > self.max * (prior_strength + n + w) + 1e-9).then(|| domain.clone())
        })
    }

    /// Adds an observation of `model` from `key` to the key's windows.
    pub(crate) fn add(&mut self, key: &str, model: &str, domains: &[(String, f64)], now_ms: i64) {
        for (domain, w) in domains.iter().filter(|(_, w)| *w > 0.0) {
            let window = match self.used(key, model, domain, now_ms) {
                Some(u) => Window { since_ms: u.since_ms, weight: u.weight + w },
                None => Window { since_ms: now_ms, weight: *w },
            };
            self.windows.insert((key.to_string(), model.to_string(), domain.clone()), window);
        }
        if self.windows.len() > WINDOWS_CAP {
            let window_ms = self.window_ms;
            self.windows.retain(|_, w| now_ms - w.since_ms < window_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn math() -> Vec<(String, f64)> {
        vec![("math".to_string(), 1.0)]
    }

    #[test]
    fn a_key_gets_its_share_of_a_cell_per_window() {
        let mut shares = Shares::new(0.25, Duration::from_secs(60));
        let mut cells = BTreeMap::new();
        // κ = 20 and no other observations: x ≤ 0.25 · (20 + x), so 6 whole observations fit, not 7.
        let mut counted = 0;
        while shares.over("a", "m", &math(), Some(&cells), 20.0, 1_000).is_none() {
            shares.add("a", "m", &math(), 1_000);
            cells.entry("math".to_string()).or_insert_with(Cell::default).observe(1.0, 0.0, 0.8, 1e9);
            counted += 1;
            assert!(counted < 100);
        }
        assert_eq!(counted, 6);
        assert_eq!(shares.over("a", "m", &math(), Some(&cells), 20.0, 1_000).as_deref(), Some("math"));
        // Another key, another model, or another domain is not over.
        assert!(shares.over("b", "m", &math(), Some(&cells), 20.0, 1_000).is_none());
        assert!(shares.over("a", "m2", &math(), None, 20.0, 1_000).is_none());
        assert!(shares.over("a", "m", &[("code".into(), 1.0)], Some(&cells), 20.0, 1_000).is_none());
        // Other keys' observations make room: with 40 more, the cell holds 66 and a's 6 are under a quarter.
        cells.get_mut("math").unwrap().observe(40.0, 1.0, 0.8, 1e9);
        assert!(shares.over("a", "m", &math(), Some(&cells), 20.0, 1_000).is_none());
        // A new window starts afresh.
        let fresh = Shares { windows: shares.windows.clone(), ..Shares::new(0.25, Duration::from_secs(60)) };
        assert!(fresh.used("a", "m", "math", 61_000).is_none());
        assert_eq!(fresh.used("a", "m", "math", 60_999).map(|u| u.weight), Some(6.0));
    }
}
