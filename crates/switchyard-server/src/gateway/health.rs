//! Live upstream health, per deployment: consecutive failures and cooldowns, and moving averages (EWMA) of
//! latency and error rate, which the deployment order, the policy (`max_latency_ms`) and `/metrics` use.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Weight of the newest observation in the moving averages.
const EWMA_WEIGHT: f64 = 0.2;

use crate::gateway::deployment::Upstream;

/// Per-deployment health. A deployment that fails `server.cooldown_failures` times in a row is skipped for
/// `server.cooldown_ms`, then tried again; one success resets the count.
#[derive(Debug, Default)]
pub struct Health(Mutex<HashMap<String, UpstreamHealth>>);

#[derive(Debug, Default, Clone)]
struct UpstreamHealth {
    model: String,
    consecutive_failures: u32,
    cooling_until: Option<Instant>,
    latency_ms: Option<f64>,
    error_rate: f64,
    calls: u64,
}

impl UpstreamHealth {
    /// Latency averages successful calls only (a fast failure is not a fast upstream); the error rate
    /// averages every call.
    fn observe(&mut self, ok: bool, elapsed: Duration) {
        self.calls += 1;
        if ok {
            let ms = elapsed.as_secs_f64() * 1e3;
            self.latency_ms = Some(self.latency_ms.map_or(ms, |l| l + EWMA_WEIGHT * (ms - l)));
        }
        self.error_rate += EWMA_WEIGHT * (if ok { 0.0 } else { 1.0 } - self.error_rate);
    }
}

/// A deployment's health as the shared state holds it (see [`crate::replicas`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SharedHealth {
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// How much longer the deployment is in cooldown, if it is.
    pub cooling_for: Option<Duration>,
    /// Average latency of successful calls.
    pub latency_ms: Option<f64>,
    /// Average error rate.
    pub error_rate: f64,
    /// Calls observed by every replica.
    pub calls: u64,
}

impl Health {
    /// Takes the shared view of a deployment's health as this replica's.
    pub fn adopt(&self, up: &Upstream, shared: &SharedHealth) {
        let Ok(mut h) = self.0.lock() else { return };
        let u = Self::entry(&mut h, up);
        u.consecutive_failures = shared.consecutive_failures;
        u.cooling_until = shared.cooling_for.map(|d| Instant::now() + d);
        u.latency_ms = shared.latency_ms;
        u.error_rate = shared.error_rate;
        u.calls = shared.calls;
    }

    /// Whether the deployment is in cooldown now.
    pub fn cooling(&self, deployment: &str) -> bool {
        let now = Instant::now();
        self.0.lock().is_ok_and(|h| h.get(deployment).and_then(|u| u.cooling_until).is_some_and(|t| t > now))
    }

    /// The deployment's average latency in milliseconds (`None` before its first call).
    pub fn latency_ms(&self, deployment: &str) -> Option<f64> {
        self.0.lock().ok().and_then(|h| h.get(deployment).and_then(|u| u.latency_ms))
    }

    /// The deployment's expected time to a successful answer in milliseconds, its average latency over the
    /// share of calls that succeed: `None` before its first call, infinite before its first success.
    pub fn expected_ms(&self, deployment: &str) -> Option<f64> {
        let h = self.0.lock().ok()?;
        let u = h.get(deployment).filter(|u| u.calls > 0)?;
        Some(u.latency_ms.map_or(f64::INFINITY, |l| l / (1.0 - u.error_rate).max(0.05)))
    }

    /// The models whose fastest deployment averages above `max_ms` (deployments never called do not count;
    /// a model none of whose deployments was called is not among them).
    pub fn slower_than(&self, max_ms: f64) -> Vec<String> {
        let Ok(h) = self.0.lock() else { return Vec::new() };
        let mut fastest: HashMap<&str, f64> = HashMap::new();
        for u in h.values() {
            if let Some(l) = u.latency_ms {
                let best = fastest.entry(u.model.as_str()).or_insert(l);
                *best = best.min(l);
            }
        }
        let mut slow: Vec<String> =
            fastest.into_iter().filter(|(_, l)| *l > max_ms).map(|(m, _)| m.to_string()).collect();
        slow.sort();
        slow
    }

    fn entry<'a>(h: &'a mut HashMap<String, UpstreamHealth>, up: &Upstream) -> &'a mut UpstreamHealth {
        h.entry(up.name.clone()).or_insert_with(|| UpstreamHealth { model: up.model.clone(), ..Default::default() })
    }

    /// Records a successful call.
    pub fn success(&self, up: &Upstream, elapsed: Duration) {
        if let Ok(mut h) = self.0.lock() {
            let u = Self::entry(&mut h, up);
            u.consecutive_failures = 0;
            u.cooling_until = None;
            u.observe(true, elapsed);
        }
    }

    /// Records a failed call; true when it puts the deployment in cooldown.
    pub fn failure(&self, up: &Upstream, elapsed: Duration, threshold: u32, cooldown: Duration) -> bool {
        let Ok(mut h) = self.0.lock() else { return false };
        let u = Self::entry(&mut h, up);
        u.observe(false, elapsed);
        u.consecutive_failures += 1;
        if u.consecutive_failures < threshold {
            return false;
        }
        u.cooling_until = Some(Instant::now() + cooldown);
        tracing::warn!(
            model = up.model,
            deployment = up.name,
            failures = u.consecutive_failures,
            "upstream in cooldown for {cooldown:?}"
        );
        true
    }

    /// Prometheus gauges: average latency, error rate and cooldown state per deployment.
    pub fn render(&self, out: &mut String) {
        let Ok(h) = self.0.lock() else { return };
        let mut deployments: Vec<(&String, &UpstreamHealth)> = h.iter().collect();
        deployments.sort_by(|a, b| (&a.1.model, a.0).cmp(&(&b.1.model, b.0)));
        let now = Instant::now();
        let labels = |d: &str, u: &UpstreamHealth| {
            format!("model=\"{}\",deployment=\"{}\"", crate::metrics::escape(&u.model), crate::metrics::escape(d))
        };
        out.push_str(
            "# HELP switchyard_upstream_latency_ewma_ms Moving average of upstream call time, by deployment.\n",
        );
        out.push_str("# TYPE switchyard_upstream_latency_ewma_ms gauge\n");
        for (d, u) in &deployments {
            if let Some(l) = u.latency_ms {
                let _ = writeln!(out, "switchyard_upstream_latency_ewma_ms{{{}}} {l}", labels(d, u));
            }
        }
        out.push_str(
            "# HELP switchyard_upstream_error_rate_ewma Moving average of upstream failures (0 to 1), by deployment.\n",
        );
        out.push_str("# TYPE switchyard_upstream_error_rate_ewma gauge\n");
        for (d, u) in &deployments {
            let _ = writeln!(out, "switchyard_upstream_error_rate_ewma{{{}}} {}", labels(d, u), u.error_rate);
        }
        out.push_str("# HELP switchyard_upstream_cooling Whether a deployment is in cooldown (1) or not (0).\n");
        out.push_str("# TYPE switchyard_upstream_cooling gauge\n");
        for (d, u) in &deployments {
            let cooling = u8::from(u.cooling_until.is_some_and(|t| t > now));
            let _ = writeln!(out, "switchyard_upstream_cooling{{{}}} {cooling}", labels(d, u));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(name: &str, model: &str) -> Upstream {
        Upstream {
            name: name.into(),
            model: model.into(),
            base_url: "http://x".into(),
            api: switchyard_core::UpstreamApi::Openai,
            api_key_env: None,
            upstream_model: model.into(),
            weight: 1,
        }
    }

    #[test]
    fn averages_cooldown_and_reset() {
        let h = Health::default();
        let (a, b) = (upstream("a", "a"), upstream("b", "b"));
        h.success(&a, Duration::from_millis(100));
        h.success(&a, Duration::from_millis(200));
        assert_eq!(h.slower_than(110.0), vec!["a".to_string()]);
        assert!(h.slower_than(130.0).is_empty()); // 100 + 0.2 * 100 = 120
        assert!(!h.failure(&b, Duration::from_millis(5), 2, Duration::from_secs(60)));
        assert!(h.failure(&b, Duration::from_millis(5), 2, Duration::from_secs(60)));
        assert!(h.cooling("b") && !h.cooling("a"));
        h.success(&b, Duration::from_millis(5));
        assert!(!h.cooling("b"));
        let mut text = String::new();
        h.render(&mut text);
        assert!(text.contains("switchyard_upstream_latency_ewma_ms{model=\"a\",deployment=\"a\"} 120"), "{text}");
        assert!(text.contains("switchyard_upstream_cooling{model=\"b\",deployment=\"b\"} 0"), "{text}");
    }

    #[test]
    fn a_model_is_slow_only_when_its_fastest_deployment_is() {
        let h = Health::default();
        h.success(&upstream("m#1", "m"), Duration::from_millis(500));
        assert_eq!(h.slower_than(200.0), ["m"]);
        h.success(&upstream("m#2", "m"), Duration::from_millis(100));
        assert!(h.slower_than(200.0).is_empty());
        assert_eq!(h.latency_ms("m#2"), Some(100.0));
        assert_eq!(h.latency_ms("m#3"), None);
    }
}
