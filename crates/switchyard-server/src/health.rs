//! Live upstream health: consecutive failures and cooldowns, and moving averages (EWMA) of each upstream's
//! latency and error rate, which the policy can use (`max_latency_ms`) and `/metrics` exports.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Weight of the newest observation in the moving averages.
const EWMA_WEIGHT: f64 = 0.2;

/// Per-upstream health. An upstream that fails `server.cooldown_failures` times in a row is skipped for
/// `server.cooldown_ms`, then tried again; one success resets the count.
#[derive(Debug, Default)]
pub struct Health(Mutex<HashMap<String, UpstreamHealth>>);

#[derive(Debug, Default, Clone, Copy)]
struct UpstreamHealth {
    consecutive_failures: u32,
    cooling_until: Option<Instant>,
    latency_ms: Option<f64>,
    error_rate: f64,
}

impl UpstreamHealth {
    fn observe(&mut self, ok: bool, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1e3;
        self.latency_ms = Some(self.latency_ms.map_or(ms, |l| l + EWMA_WEIGHT * (ms - l)));
        self.error_rate += EWMA_WEIGHT * (if ok { 0.0 } else { 1.0 } - self.error_rate);
    }
}

impl Health {
    /// Whether `model` is in cooldown now.
    pub fn cooling(&self, model: &str) -> bool {
        let now = Instant::now();
        self.0.lock().is_ok_and(|h| h.get(model).and_then(|u| u.cooling_until).is_some_and(|t| t > now))
    }

    /// The models whose average latency is above `max_ms` (models never called are not among them).
    pub fn slower_than(&self, max_ms: f64) -> Vec<String> {
        self.0
            .lock()
            .map(|h| {
                h.iter().filter(|(_, u)| u.latency_ms.is_some_and(|l| l > max_ms)).map(|(m, _)| m.clone()).collect()
            })
            .unwrap_or_default()
    }

    /// Records a successful call.
    pub fn success(&self, model: &str, elapsed: Duration) {
        if let Ok(mut h) = self.0.lock() {
            let u = h.entry(model.to_string()).or_default();
            u.consecutive_failures = 0;
            u.cooling_until = None;
            u.observe(true, elapsed);
        }
    }

    /// Records a failed call; true when it puts the upstream in cooldown.
    pub fn failure(&self, model: &str, elapsed: Duration, threshold: u32, cooldown: Duration) -> bool {
        let Ok(mut h) = self.0.lock() else { return false };
        let u = h.entry(model.to_string()).or_default();
        u.observe(false, elapsed);
        u.consecutive_failures += 1;
        if u.consecutive_failures < threshold {
            return false;
        }
        u.cooling_until = Some(Instant::now() + cooldown);
        tracing::warn!(model, failures = u.consecutive_failures, "upstream in cooldown for {cooldown:?}");
        true
    }

    /// Prometheus gauges: average latency, error rate and cooldown state per upstream.
    pub fn render(&self, out: &mut String) {
        let Ok(h) = self.0.lock() else { return };
        let mut models: Vec<(&String, &UpstreamHealth)> = h.iter().collect();
        models.sort_by(|a, b| a.0.cmp(b.0));
        let now = Instant::now();
        out.push_str("# HELP switchyard_upstream_latency_ewma_ms Moving average of upstream call time, by model.\n");
        out.push_str("# TYPE switchyard_upstream_latency_ewma_ms gauge\n");
        for (m, u) in &models {
            if let Some(l) = u.latency_ms {
                let _ = writeln!(out, "switchyard_upstream_latency_ewma_ms{{model=\"{m}\"}} {l}");
            }
        }
        out.push_str(
            "# HELP switchyard_upstream_error_rate_ewma Moving average of upstream failures (0 to 1), by model.\n",
        );
        out.push_str("# TYPE switchyard_upstream_error_rate_ewma gauge\n");
        for (m, u) in &models {
            let _ = writeln!(out, "switchyard_upstream_error_rate_ewma{{model=\"{m}\"}} {}", u.error_rate);
        }
        out.push_str("# HELP switchyard_upstream_cooling Whether an upstream is in cooldown (1) or not (0).\n");
        out.push_str("# TYPE switchyard_upstream_cooling gauge\n");
        for (m, u) in &models {
            let cooling = u8::from(u.cooling_until.is_some_and(|t| t > now));
            let _ = writeln!(out, "switchyard_upstream_cooling{{model=\"{m}\"}} {cooling}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_cooldown_and_reset() {
        let h = Health::default();
        h.success("a", Duration::from_millis(100));
        h.success("a", Duration::from_millis(200));
        assert_eq!(h.slower_than(110.0), vec!["a".to_string()]);
        assert!(h.slower_than(130.0).is_empty()); // 100 + 0.2 * 100 = 120
        assert!(!h.failure("b", Duration::from_millis(5), 2, Duration::from_secs(60)));
        assert!(h.failure("b", Duration::from_millis(5), 2, Duration::from_secs(60)));
        assert!(h.cooling("b") && !h.cooling("a"));
        h.success("b", Duration::from_millis(5));
        assert!(!h.cooling("b"));
        let mut text = String::new();
        h.render(&mut text);
        assert!(text.contains("switchyard_upstream_latency_ewma_ms{model=\"a\"} 120"), "{text}");
        assert!(text.contains("switchyard_upstream_cooling{model=\"b\"} 0"), "{text}");
    }
}
