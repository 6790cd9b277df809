//! Export: logged requests that have feedback become labelled-log rows (the training contract), so
//! `switchyard train` learns from real traffic.
//!
//! A `/v1/route` decision that was scored is exported too (the client may have called the model itself), but
//! no upstream answered it through the server, so its row carries `"routed_only": true`: its score is the
//! client's word about a call the server never saw. `train` ignores fields it does not know, so the row still
//! trains; filter on the field to keep only answers the server saw.

use std::io::Write;

use serde_json::{json, Map, Value};

use crate::database::LogRows;
use crate::db::LoggedRequest;
use crate::time::format_rfc3339;
use crate::StoreError;

/// What an export wrote and what it left out, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Rows written.
    pub written: usize,
    /// Requests without feedback (nothing to learn from).
    pub without_feedback: usize,
    /// Requests with feedback but only a prompt hash (`log.prompts = "hash"`).
    pub prompt_not_logged: usize,
    /// Requests with feedback but no model that answered (every upstream failed).
    pub unanswered: usize,
    /// Of the rows written, the `/v1/route` decisions no upstream answered through the server (marked
    /// `"routed_only": true`).
    pub routed_only: usize,
}

impl std::fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows written ({} of them /v1/route decisions, marked \"routed_only\"); left out: {} without \
             feedback, {} whose prompt was logged as a hash only, {} that no model answered",
            self.written, self.routed_only, self.without_feedback, self.prompt_not_logged, self.unanswered
        )
    }
}

/// The labelled-log row for one request, or why there is none.
pub fn labelled_row(request: &LoggedRequest) -> Result<Value, Skip> {
    let r = &request.record;
    let score = request.feedback.ok_or(Skip::NoFeedback)?;
    let model = r.chosen_model.as_ref().ok_or(Skip::Unanswered)?;
    let prompt = r.prompt.as_ref().ok_or(Skip::PromptNotLogged)?;
    let mut row = Map::new();
    // Requests with the same prompt are observations of the same item.
    row.insert("id".into(), json!(r.prompt_sha256));
    row.insert("request_id".into(), json!(r.request_id));
    row.insert("prompt".into(), json!(prompt));
    row.insert("model".into(), json!(model));
    row.insert("score".into(), json!(score));
    // Observed values only: the decision's expected cost is a prediction, not evidence, and stays apart; so
    // do tokens and cost the gateway estimated because the upstream reported none (the row says so), and a
    // cache hit's (no call was made; the row says so too).
    let observed = |v: Option<Value>| v.filter(|_| !r.usage_estimated && !r.cache_hit);
    let optional = [
        ("cost_usd", observed(r.cost_usd.map(Value::from))),
        ("input_tokens", observed(r.input_tokens.map(Value::from))),
        ("output_tokens", observed(r.output_tokens.map(Value::from))),
        ("latency_ms", r.attempts.last().filter(|a| a.error.is_none()).map(|a| Value::from(a.latency_ms))),
        ("expected_cost_usd", r.expected_cost_usd.map(Value::from)),
        ("arm", r.arm.clone().map(Value::from)),
        ("rule", r.rule.clone().map(Value::from)),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            row.insert(key.into(), v);
        }
    }
    // The decision's propensity speaks for the model it decided; after a fallback another model answered,
    // whose probability of being asked is not known, so the row is not marked as a logged-bandit row.
    if r.decided_model.as_ref() == Some(model) {
        if let Some(p) = r.propensity {
            row.insert("propensity".into(), json!(p));
            row.insert("explored".into(), json!(r.explored));
        }
    }
    if r.endpoint == "route" {
        row.insert("routed_only".into(), json!(true));
    }
    if r.usage_estimated {
        row.insert("usage_estimated".into(), json!(true));
    }
    if r.cache_hit {
        row.insert("cache_hit".into(), json!(true));
    }
    // The answer, for an offline judge (training reads past it).
    if let Some(response) = &r.response {
        row.insert("response".into(), json!(response));
        if r.response_truncated {
            row.insert("response_truncated".into(), json!(true));
        }
    }
    if let Some(calls) = &r.tool_calls {
        row.insert("tool_calls".into(), calls.clone());
    }
    if let Some(finish) = &r.finish_reason {
        row.insert("finish_reason".into(), json!(finish));
    }
    row.insert("timestamp".into(), json!(format_rfc3339(r.ts_ms)));
    Ok(Value::Object(row))
}

/// Why a logged request is not exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// No feedback.
    NoFeedback,
    /// Only the prompt's hash was logged.
    PromptNotLogged,
    /// No model answered.
    Unanswered,
}

/// Writes one labelled-log JSON line per exportable request logged at or after `since_ms`.
pub fn export(store: impl LogRows, since_ms: i64, out: &mut impl Write) -> Result<ExportSummary, StoreError> {
    let mut summary = ExportSummary::default();
    let mut io_error = None;
    store.each_logged(since_ms, &mut |request| {
        if io_error.is_some() {
            return;
        }
        match labelled_row(&request) {
            Ok(row) => match writeln!(out, "{row}") {
                Ok(()) => {
                    summary.written += 1;
                    summary.routed_only += usize::from(row.get("routed_only").is_some());
                }
                Err(e) => io_error = Some(e),
            },
            Err(Skip::NoFeedback) => summary.without_feedback += 1,
            Err(Skip::PromptNotLogged) => summary.prompt_not_logged += 1,
            Err(Skip::Unanswered) => summary.unanswered += 1,
        }
    })?;
    if let Some(source) = io_error {
        return Err(StoreError::Write(source));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{now_ms, Attempt, DecisionRecord, Feedback, PromptLogging};
    use crate::Store;

    #[test]
    fn only_answered_requests_with_feedback_and_text_are_exported() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("log.sqlite")).unwrap();
        let make = |id: &str, logging, model: Option<&str>| {
            let mut r = DecisionRecord {
                request_id: id.into(),
                ts_ms: 1_000,
                endpoint: "chat".into(),
                chosen_model: model.map(str::to_string),
                decided_model: Some("m".into()),
                propensity: Some(0.04),
                explored: true,
                status: 200,
                cost_usd: Some(0.002),
                input_tokens: Some(5),
                output_tokens: Some(3),
                expected_cost_usd: Some(0.0015),
                attempts: vec![Attempt {
                    model: "m".into(),
                    deployment: None,
                    status: Some(200),
                    latency_ms: 40.0,
                    error: None,
                }],
                ..DecisionRecord::default()
            };
            r.set_prompt("What is 2 + 2?", logging);
            r
        };
        store
            .insert(&[
                make("good", PromptLogging::Full, Some("m")),
                make("nofeedback", PromptLogging::Full, Some("m")),
                make("hashed", PromptLogging::Hash, Some("m")),
                make("failed", PromptLogging::Full, None),
            ])
            .unwrap();
        for id in ["good", "hashed", "failed"] {
            let fb = Feedback { request_id: id.into(), api_key: None, score: 0.75, comment: None, ts_ms: now_ms() };
            store.feedback(&fb).unwrap();
        }
        let mut out = Vec::new();
        let summary = export(&store, 0, &mut out).unwrap();
        let expected =
            ExportSummary { written: 1, without_feedback: 1, prompt_not_logged: 1, unanswered: 1, routed_only: 0 };
        assert_eq!(summary, expected);
        let text = String::from_utf8(out).unwrap();
        // The row satisfies the training contract.
        let parsed = switchyard_core::LabelledRow::parse(text.trim()).unwrap();
        assert_eq!(parsed.prompt, "What is 2 + 2?");
        let row = switchyard_row(&text);
        assert_eq!(row["prompt"], "What is 2 + 2?");
        assert_eq!(row["model"], "m");
        assert_eq!(row["score"], 0.75);
        assert_eq!(row["cost_usd"], 0.002);
        assert_eq!(row["latency_ms"], 40.0);
        assert_eq!(row["timestamp"], "1970-01-01T00:00:01.000Z");
        // An explored decision carries its propensity, which training weights it by.
        assert_eq!((row["propensity"].as_f64(), row["explored"].as_bool()), (Some(0.04), Some(true)));
        let switchyard_core::Evidence::Outcome(o) = parsed.evidence else { panic!("not an outcome row") };
        assert_eq!(o.propensity, Some(0.04));
        assert!(row.get("routed_only").is_none(), "an answered request is not marked: {row}");
        assert!(row.get("usage_estimated").is_none(), "{row}");
    }

    #[test]
    fn scored_route_decisions_are_exported_marked_routed_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("log.sqlite")).unwrap();
        let mut r = DecisionRecord {
            request_id: "decided".into(),
            ts_ms: 1_000,
            endpoint: "route".into(),
            chosen_model: Some("m".into()),
            decided_model: Some("m".into()),
            api_key: Some("team-a".into()),
            status: 200,
            ..DecisionRecord::default()
        };
        r.set_prompt("What is 2 + 2?", PromptLogging::Full);
        store.insert(&[r]).unwrap();
        let fb = Feedback {
            request_id: "decided".into(),
            api_key: Some("team-a".into()),
            score: 0.0,
            comment: None,
            ts_ms: now_ms(),
        };
        assert!(!store.feedback(&fb).unwrap().answered_upstream());
        let mut out = Vec::new();
        let summary = export(&store, 0, &mut out).unwrap();
        assert_eq!((summary.written, summary.routed_only), (1, 1));
        assert!(summary.to_string().contains("1 of them /v1/route decisions"), "{summary}");
        let text = String::from_utf8(out).unwrap();
        assert_eq!(switchyard_row(&text)["routed_only"], true);
        // The training contract still reads the row (unknown fields are ignored).
        switchyard_core::LabelledRow::parse(text.trim()).unwrap();
    }

    #[test]
    fn estimated_usage_is_not_exported_as_observed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("log.sqlite")).unwrap();
        let mut r = DecisionRecord {
            request_id: "estimated".into(),
            ts_ms: 1_000,
            endpoint: "chat".into(),
            chosen_model: Some("m".into()),
            status: 200,
            input_tokens: Some(7),
            output_tokens: Some(5),
            cost_usd: Some(0.000017),
            usage_estimated: true,
            ..DecisionRecord::default()
        };
        let answer = serde_json::json!({"choices": [{"message": {"content": "4"}, "finish_reason": "stop"}]});
        r.set_response(&answer, crate::ResponseLogging::Full, 100);
        r.set_prompt("What is 2 + 2?", PromptLogging::Full);
        store.insert(&[r]).unwrap();
        let fb = Feedback { request_id: "estimated".into(), api_key: None, score: 1.0, comment: None, ts_ms: now_ms() };
        store.feedback(&fb).unwrap();
        let mut out = Vec::new();
        export(&store, 0, &mut out).unwrap();
        let row = switchyard_row(&String::from_utf8(out).unwrap());
        assert_eq!(row["usage_estimated"], true);
        assert_eq!((row["response"].as_str(), row["finish_reason"].as_str()), (Some("4"), Some("stop")));
        for field in ["cost_usd", "input_tokens", "output_tokens"] {
            assert!(row.get(field).is_none(), "{field} was estimated, not observed: {row}");
        }
    }

    fn switchyard_row(text: &str) -> Value {
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1);
        serde_json::from_str(lines[0]).unwrap()
    }
}
