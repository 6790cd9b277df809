//! One decision record as PostgreSQL's `decisions` table holds it: the columns in insert order, a record's
//! values ready to bind, and a row read back into a record.

use postgres::types::ToSql;
use postgres::Row;

use crate::record::{Attempt, DecisionRecord, Estimate};
use crate::StoreError;

/// The columns of `decisions`, in insert order.
pub(crate) const COLUMNS: [&str; 36] = [
    "request_id",
    "ts_ms",
    "endpoint",
    "prompt",
    "prompt_sha256",
    "messages_count",
    "user_id",
    "experiment",
    "arm",
    "rule",
    "policy",
    "estimates",
    "decided_model",
    "chosen_model",
    "attempts",
    "status",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "expected_cost_usd",
    "decision_ms",
    "latency_ms",
    "stream",
    "api_key",
    "session",
    "propensity",
    "explored",
    "usage_estimated",
    "cache_hit",
    "cache_saved_usd",
    "response",
    "response_sha256",
    "response_truncated",
    "finish_reason",
    "tool_calls",
    "messages",
];

/// PostgreSQL's text cannot hold NUL, which a prompt may carry: it becomes U+FFFD (the SHA-256 is of the original).
fn text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{fffd}")
    } else {
        s.to_string()
    }
}

/// One record's column values, owned, ready to bind.
pub(crate) struct Encoded {
    request_id: String,
    ts_ms: i64,
    endpoint: String,
    prompt: Option<String>,
    prompt_sha256: String,
    messages_count: i64,
    user: Option<String>,
    experiment: Option<String>,
    arm: Option<String>,
    rule: Option<String>,
    policy: Option<String>,
    estimates: String,
    decided_model: Option<String>,
    chosen_model: Option<String>,
    attempts: String,
    status: i64,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    cost_usd: Option<f64>,
    expected_cost_usd: Option<f64>,
    decision_ms: Option<f64>,
    latency_ms: f64,
    stream: bool,
    api_key: Option<String>,
    session: Option<String>,
    propensity: Option<f64>,
    explored: bool,
    usage_estimated: bool,
    cache_hit: bool,
    cache_saved_usd: Option<f64>,
    response: Option<String>,
    response_sha256: Option<String>,
    response_truncated: bool,
    finish_reason: Option<String>,
    tool_calls: Option<String>,
    messages: Option<String>,
}

impl Encoded {
    /// A record's values.
    pub(crate) fn of(r: &DecisionRecord) -> Result<Self, StoreError> {
        Ok(Self {
            request_id: text(&r.request_id),
            ts_ms: r.ts_ms,
            endpoint: text(&r.endpoint),
            prompt: r.prompt.as_deref().map(text),
            prompt_sha256: text(&r.prompt_sha256),
            messages_count: i64::from(r.messages_count),
            user: r.user.as_deref().map(text),
            experiment: r.experiment.as_deref().map(text),
            arm: r.arm.as_deref().map(text),
            rule: r.rule.as_deref().map(text),
            policy: r.policy.as_ref().map(|p| p.to_string()),
            estimates: serde_json::to_string(&r.estimates)?,
            decided_model: r.decided_model.as_deref().map(text),
            chosen_model: r.chosen_model.as_deref().map(text),
            attempts: serde_json::to_string(&r.attempts)?,
            status: i64::from(r.status),
            input_tokens: r.input_tokens.map(|t| t as i64),
            output_tokens: r.output_tokens.map(|t| t as i64),
            cost_usd: r.cost_usd,
            expected_cost_usd: r.expected_cost_usd,
            decision_ms: r.decision_ms,
            latency_ms: r.latency_ms,
            stream: r.stream,
            api_key: r.api_key.as_deref().map(text),
            session: r.session.as_ref().map(|s| s.to_string()),
            propensity: r.propensity,
            explored: r.explored,
            usage_estimated: r.usage_estimated,
            cache_hit: r.cache_hit,
            cache_saved_usd: r.cache_saved_usd,
            response: r.response.as_deref().map(text),
            response_sha256: r.response_sha256.clone(),
            response_truncated: r.response_truncated,
            finish_reason: r.finish_reason.as_deref().map(text),
            tool_calls: r.tool_calls.as_ref().map(|c| text(&c.to_string())),
            messages: r.messages.as_ref().map(|m| text(&m.to_string())),
        })
    }

    /// The values, in [`COLUMNS`] order.
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 36] {
        [
            &self.request_id,
            &self.ts_ms,
            &self.endpoint,
            &self.prompt,
            &self.prompt_sha256,
            &self.messages_count,
            &self.user,
            &self.experiment,
            &self.arm,
            &self.rule,
            &self.policy,
            &self.estimates,
            &self.decided_model,
            &self.chosen_model,
            &self.attempts,
            &self.status,
            &self.input_tokens,
            &self.output_tokens,
            &self.cost_usd,
            &self.expected_cost_usd,
            &self.decision_ms,
            &self.latency_ms,
            &self.stream,
            &self.api_key,
            &self.session,
            &self.propensity,
            &self.explored,
            &self.usage_estimated,
            &self.cache_hit,
            &self.cache_saved_usd,
            &self.response,
            &self.response_sha256,
            &self.response_truncated,
            &self.finish_reason,
            &self.tool_calls,
            &self.messages,
        ]
    }
}

/// A row selected as [`COLUMNS`] (in that order, from the first column), read back into a record.
pub(crate) fn decode(row: &Row) -> DecisionRecord {
    let text = |i: usize| -> Option<String> { row.get(i) };
    DecisionRecord {
        request_id: row.get(0),
        ts_ms: row.get(1),
        endpoint: row.get(2),
        prompt: text(3),
        prompt_sha256: row.get(4),
        messages_count: row.get::<_, i64>(5).max(0) as u32,
        user: text(6),
        experiment: text(7),
        arm: text(8),
        rule: text(9),
        policy: text(10).and_then(|p| serde_json::from_str(&p).ok()),
        estimates: text(11).and_then(|e| serde_json::from_str::<Vec<Estimate>>(&e).ok()).unwrap_or_default(),
        decided_model: text(12),
        chosen_model: text(13),
        attempts: text(14).and_then(|a| serde_json::from_str::<Vec<Attempt>>(&a).ok()).unwrap_or_default(),
        status: row.get::<_, i64>(15).clamp(0, i64::from(u16::MAX)) as u16,
        input_tokens: row.get::<_, Option<i64>>(16).map(|t| t.max(0) as u64),
        output_tokens: row.get::<_, Option<i64>>(17).map(|t| t.max(0) as u64),
        cost_usd: row.get(18),
        expected_cost_usd: row.get(19),
        decision_ms: row.get(20),
        latency_ms: row.get(21),
        stream: row.get(22),
        api_key: text(23),
        session: text(24).and_then(|s| serde_json::from_str(&s).ok()),
        propensity: row.get(25),
        explored: row.get::<_, Option<bool>>(26).unwrap_or(false),
        usage_estimated: row.get::<_, Option<bool>>(27).unwrap_or(false),
        cache_hit: row.get::<_, Option<bool>>(28).unwrap_or(false),
        cache_saved_usd: row.get(29),
        response: text(30),
        response_sha256: text(31),
        response_truncated: row.get::<_, Option<bool>>(32).unwrap_or(false),
        finish_reason: text(33),
        tool_calls: text(34).and_then(|c| serde_json::from_str(&c).ok()),
        messages: text(35).and_then(|m| serde_json::from_str(&m).ok()),
    }
}
