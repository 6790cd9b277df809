//! The most recent decisions, read whole: who asked, what the router chose and why, at what predicted P and
//! cost, what it cost, the fallbacks, and the decision's whole ranking.

use serde::Serialize;

use crate::record::DecisionRecord;

/// One recent decision.
#[derive(Debug, Clone, Serialize)]
pub struct Recent {
    /// The request id.
    pub request_id: String,
    /// When it arrived.
    pub ts_ms: i64,
    /// The client key's name.
    pub api_key: Option<String>,
    /// `route`, `chat` or `messages`.
    pub endpoint: String,
    /// The status returned.
    pub status: u16,
    /// The decision's first choice.
    pub decided_model: Option<String>,
    /// The model that answered.
    pub chosen_model: Option<String>,
    /// Why that model: `policy`, `explore`, `rule:<name>`, `pin` (a conversation's pin held it against the
    /// policy), `named`, `experiment:<e>/<arm>` or `cache`.
    pub reason: String,
    /// The predicted P of success of the model that answered.
    pub p: Option<f64>,
    /// The decision's expected cost, USD.
    pub expected_cost_usd: Option<f64>,
    /// The observed cost, USD.
    pub cost_usd: Option<f64>,
    /// Attempts after the first.
    pub fallbacks: u64,
    /// End-to-end latency, milliseconds.
    pub latency_ms: f64,
    /// Served from the response cache.
    pub cache_hit: bool,
    /// The router's domain.
    pub domain: Option<String>,
    /// The router's complexity score.
    pub complexity: Option<f64>,
    /// The prompt (only when prompts are logged in full).
    pub prompt: Option<String>,
    /// Every upstream call.
    pub attempts: Vec<RecentAttempt>,
    /// The decision's ranking: every model's predicted P and expected cost, highest P first.
    pub ranking: Vec<Ranked>,
}

/// One upstream call.
#[derive(Debug, Clone, Serialize)]
pub struct RecentAttempt {
    /// The model.
    pub model: String,
    /// The deployment.
    pub deployment: Option<String>,
    /// Its status (`None`: no answer).
    pub status: Option<u16>,
    /// Its latency, milliseconds.
    pub latency_ms: f64,
    /// Why it failed.
    pub error: Option<String>,
}

/// One model in a decision's ranking.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    /// The model.
    pub model: String,
    /// Its predicted P of success.
    pub p: f64,
    /// Its expected cost, USD.
    pub cost_usd: f64,
}

impl Recent {
    /// The row for a logged request.
    pub fn of(r: DecisionRecord) -> Self {
        let derived = crate::derived::Derived::of(&r);
        let mut ranking: Vec<Ranked> =
            r.estimates.iter().map(|e| Ranked { model: e.model.clone(), p: e.p, cost_usd: e.cost_usd }).collect();
        ranking.sort_by(|a, b| b.p.total_cmp(&a.p).then_with(|| a.cost_usd.total_cmp(&b.cost_usd)));
        Self {
            reason: reason(&r),
            request_id: r.request_id,
            ts_ms: r.ts_ms,
            api_key: r.api_key,
            endpoint: r.endpoint,
            status: r.status,
            decided_model: r.decided_model,
            chosen_model: r.chosen_model,
            p: derived.chosen_p,
            expected_cost_usd: r.expected_cost_usd,
            cost_usd: r.cost_usd,
            fallbacks: r.attempts.len().saturating_sub(1) as u64,
            latency_ms: r.latency_ms,
            cache_hit: r.cache_hit,
            domain: r.domain,
            complexity: r.complexity,
            prompt: r.prompt,
            attempts: r
                .attempts
                .into_iter()
                .map(|a| RecentAttempt {
                    model: a.model,
                    deployment: a.deployment,
                    status: a.status,
                    latency_ms: a.latency_ms,
                    error: a.error,
                })
                .collect(),
            ranking,
        }
    }
}

/// Why the answering model was chosen.
fn reason(r: &DecisionRecord) -> String {
    let pinned =
        r.session.as_ref().and_then(|s| s.get("turn")).and_then(serde_json::Value::as_u64).is_some_and(|t| t > 1);
    if r.cache_hit {
        "cache".into()
    } else if let Some(rule) = &r.rule {
        format!("rule:{rule}")
    } else if r.estimates.is_empty() {
        "named".into()
    } else if pinned {
        "pin".into()
    } else if r.explored {
        "explore".into()
    } else if let (Some(e), Some(a)) = (&r.experiment, &r.arm) {
        format!("experiment:{e}/{a}")
    } else {
        "policy".into()
    }
}
