//! `POST /v1/feedback`: a client scores the outcome of a request it made, by the request's id. Feedback for
//! the same request again replaces the earlier score (the latest wins); the answer says which happened.
//!
//! Feedback is the key's own: it finds only a request made with the same client key (or, on a server without
//! keys, any request made without one). Another key's request id gets the very answer an id never issued gets
//! (404 `unknown_request`), so an id's existence is not told to another tenant. Each feedback takes a request
//! slot of the key's `rpm`, as `/v1/route` does.
//!
//! With online learning, the answer says whether the score was learned from (`"learned"`), and when not,
//! why (`"reason"`, a code, and `"detail"`, a sentence). Only a request an upstream answered through the
//! server is learned from: a `/v1/route` decision's score is stored (and exported, marked `"routed_only"`)
//! but speaks of a call the server never saw, and a gateway request whose upstreams all failed (`"unanswered"`)
//! has no answer to speak of. A resent score replaces the request's earlier one in the
//! posteriors too, and one key's feedback can make up at most `learning.max_key_share` of a (model, domain)
//! cell (see [`crate::learning`]).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::Json;
use serde_json::{json, Value};
use switchyard_store::{Feedback, FeedbackOutcome, FeedbackReceipt, StoreError};

use crate::http::error::ApiError;
use crate::http::request::read_json;
use crate::learning::Verdict;
use crate::limits::keys::Caller;
use crate::state::AppState;

/// Longest comment kept, in characters.
const MAX_COMMENT_CHARS: usize = 10_000;

/// The handler.
pub async fn feedback(State(state): State<Arc<AppState>>, request: Request) -> Result<Json<Value>, ApiError> {
    let api_key = request.extensions().get::<Caller>().and_then(Caller::name);
    let body = read_json(request.into_body(), state.config.server.max_body_bytes).await?;
    let mut feedback = parse(&body)?;
    crate::routing::query::check_id("`request_id`", &feedback.request_id, state.config.server.max_id_bytes)?;
    feedback.api_key = api_key;
    if state.log.is_none() {
        return Err(ApiError::Unavailable {
            code: "log_disabled",
            message: "feedback is stored in the decision log, which is off; set log.enabled = true".into(),
        });
    }
    let request_id = feedback.request_id.clone();
    // The writer answers once every record queued before this feedback is written. With a shared log, the
    // request may have been answered by another replica whose writer has not committed it yet: an unknown id
    // is asked again for up to two seconds before the client hears of it.
    let mut waits = [50u64, 100, 200, 400, 600, 650].into_iter();
    let outcome = loop {
        let state_for_writer = state.clone();
        let feedback = feedback.clone();
        let outcome = tokio::task::spawn_blocking(move || match state_for_writer.log.as_ref() {
            Some(log) => log.feedback(feedback),
            None => Err(StoreError::WriterStopped),
        })
        .await
        .map_err(|e| ApiError::internal(format!("feedback task failed: {e}")))?;
        match (&outcome, state.config.log.url.is_some(), waits.next()) {
            (Err(StoreError::UnknownRequest(_)), true, Some(ms)) => {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            _ => break outcome,
        }
    };
    match outcome {
        Ok(receipt) => Ok(Json(answer(&state, &feedback, &receipt).await)),
        Err(e @ StoreError::UnknownRequest(_)) => {
            Err(ApiError::NotFound { code: "unknown_request", message: e.to_string() })
        }
        Err(e @ StoreError::BadScore(_)) => Err(ApiError::invalid("invalid_score", e.to_string())),
        Err(e @ StoreError::WriterStopped) => Err(ApiError::Unavailable {
            code: "shutting_down",
            message: format!("{e}; the server is shutting down, retry against another instance"),
        }),
        Err(e @ (StoreError::Postgres { .. } | StoreError::Unavailable)) => {
            // The detail (the database's address) stays in the server's log.
            tracing::warn!("feedback for {request_id:?} not stored: {e}");
            Err(ApiError::Unavailable {
                code: "log_unavailable",
                message: "the decision log cannot take feedback right now (its database is out of reach or still \
                          catching up after an outage); send it again shortly"
                    .into(),
            })
        }
        Err(e) => Err(ApiError::internal(format!("cannot store feedback: {e}"))),
    }
}

/// The answer to stored feedback: `request_id`, `status` (recorded or replaced), `updates`, and whether online
/// learning learned from it (`learned`; when not, a `reason` code and a `detail` sentence).
async fn answer(state: &AppState, feedback: &Feedback, receipt: &FeedbackReceipt) -> Value {
    let (status, updates) = match receipt.outcome {
        FeedbackOutcome::Recorded => ("recorded", 1),
        FeedbackOutcome::Replaced(n) => ("replaced", n),
    };
    state.metrics.feedback(status);
    if let (FeedbackOutcome::Recorded, Some((experiment, arm))) = (receipt.outcome, &receipt.arm) {
        state.metrics.arm_feedback(experiment, arm, feedback.score);
    }
    let mut answer = json!({"request_id": feedback.request_id, "status": status, "updates": updates});
    let verdict = learn(state, feedback, receipt).await;
    answer["learned"] = json!(verdict.learned());
    if let Some((reason, detail)) = verdict.reason() {
        answer["reason"] = json!(reason);
        answer["detail"] = json!(detail);
    }
    answer
}

/// Counts a stored score in the online posteriors, when online learning is on, an upstream answered the
/// request through the server, and the request's prediction is remembered (by this replica, or by any through
/// Redis); the key's share of the cell decides the rest.
async fn learn(state: &AppState, feedback: &Feedback, receipt: &FeedbackReceipt) -> Verdict {
    let Some(learning) = &state.learning else { return Verdict::Off };
    if let Some(verdict) = unlearnable(receipt) {
        learning.unlearned(&verdict);
        return verdict;
    }
    let key = feedback.api_key.as_deref();
    let verdict = learning.feedback(&feedback.request_id, key, feedback.score, feedback.ts_ms).await;
    if verdict == Verdict::NotRemembered {
        tracing::debug!(
            "feedback for {}: its prediction is not remembered (answered too long ago, before a restart, or while \
             Redis was out of reach), so it is not learned from",
            feedback.request_id
        );
    }
    verdict
}

/// Why a scored request cannot be learned from, whatever online learning knows: a `/v1/route` decision (no
/// upstream answered it through the server), or a gateway request no upstream answered.
fn unlearnable(receipt: &FeedbackReceipt) -> Option<Verdict> {
    if receipt.answered_upstream() {
        None
    } else if receipt.endpoint == "route" {
        Some(Verdict::RoutedOnly)
    } else {
        Some(Verdict::Unanswered)
    }
}

/// Reads and checks `{"request_id", "score", "comment"?}`.
fn parse(body: &Value) -> Result<Feedback, ApiError> {
    let request_id = match body.get("request_id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "missing_request_id",
                "`request_id` is required: the x-switchyard-request-id header of the request you score",
            ))
        }
        Some(_) => return Err(ApiError::invalid("invalid_type", "`request_id` must be a string")),
    };
    let score = match body.get("score") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("missing_score", "`score` is required: a number in [0, 1] (1 = success)"))
        }
        Some(_) => return Err(ApiError::invalid("invalid_type", "`score` must be a number in [0, 1]")),
    };
    if !(0.0..=1.0).contains(&score) {
        return Err(ApiError::invalid("invalid_score", format!("`score` must be in [0, 1], got {score}")));
    }
    let comment = match body.get("comment") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= MAX_COMMENT_CHARS => Some(s.clone()),
        Some(Value::String(_)) => {
            return Err(ApiError::too_large(format!("`comment` is longer than {MAX_COMMENT_CHARS} characters")))
        }
        Some(_) => return Err(ApiError::invalid("invalid_type", "`comment` must be a string")),
    };
    Ok(Feedback { request_id, api_key: None, score, comment, ts_ms: switchyard_store::now_ms() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answered_gateway_requests_can_be_learned_from() {
        let receipt = |endpoint: &str, chosen: Option<&str>| FeedbackReceipt {
            outcome: FeedbackOutcome::Recorded,
            endpoint: endpoint.into(),
            chosen_model: chosen.map(Into::into),
            arm: None,
        };
        assert_eq!(unlearnable(&receipt("chat", Some("m"))), None);
        assert_eq!(unlearnable(&receipt("route", Some("m"))), Some(Verdict::RoutedOnly));
        assert_eq!(unlearnable(&receipt("chat", None)), Some(Verdict::Unanswered));
        let (code, detail) = Verdict::Unanswered.reason().unwrap();
        assert_eq!(code, "unanswered");
        assert!(!detail.contains("/v1/route"), "{detail}");
    }

    #[test]
    fn bodies_are_checked_field_by_field() {
        let ok = parse(&json!({"request_id": "sy-1", "score": 1, "comment": "great"})).unwrap();
        assert_eq!((ok.request_id.as_str(), ok.score, ok.comment.as_deref()), ("sy-1", 1.0, Some("great")));
        let cases = [
            (json!({"score": 1}), "missing_request_id"),
            (json!({"request_id": "", "score": 1}), "missing_request_id"),
            (json!({"request_id": 5, "score": 1}), "invalid_type"),
            (json!({"request_id": "a"}), "missing_score"),
            (json!({"request_id": "a", "score": "high"}), "invalid_type"),
            (json!({"request_id": "a", "score": 1.5}), "invalid_score"),
            (json!({"request_id": "a", "score": -0.1}), "invalid_score"),
            (json!({"request_id": "a", "score": 0.5, "comment": 3}), "invalid_type"),
            (json!({"request_id": "a", "score": 0.5, "comment": "x".repeat(10_001)}), "request_too_large"),
        ];
        for (body, code) in cases {
            assert_eq!(parse(&body).unwrap_err().code(), code, "{body}");
        }
    }
}
