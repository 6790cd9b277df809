//! The columns derived from a record when it is written (schema 9), so that the dashboard's scan reads one
//! covering index and never the record's JSON: the chosen model's predicted P, the number of upstream
//! attempts, the deployment that answered and its latency, and the deployments that failed.

use serde::{Deserialize, Serialize};

use crate::record::DecisionRecord;

/// A deployment that failed one attempt of a request, as `failed_deployments` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FailedCall {
    /// The deployment (the model's name for rows logged before deployments existed).
    pub deployment: String,
    /// The model it serves.
    pub model: String,
}

/// A record's derived columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Derived {
    /// The predicted P of success of the model that answered (of the decided model when none answered), as
    /// the decision estimated it; `None` when the request named its model.
    pub chosen_p: Option<f64>,
    /// Upstream attempts.
    pub attempts_n: i64,
    /// The deployment whose answer the client got.
    pub deployment: Option<String>,
    /// That call's latency, milliseconds.
    pub upstream_ms: Option<f64>,
    /// The failed attempts' deployments, as a JSON array of [`FailedCall`] (`None` when none failed).
    pub failed_deployments: Option<String>,
}

impl Derived {
    /// The columns of `r`.
    pub(crate) fn of(r: &DecisionRecord) -> Self {
        let model = r.chosen_model.as_deref().or(r.decided_model.as_deref());
        let chosen_p = model.and_then(|m| r.estimates.iter().find(|e| e.model == m)).map(|e| e.p);
        let answered = r.attempts.last().filter(|a| a.status.is_some_and(|s| answered(s, r.status)));
        let name = |a: &crate::record::Attempt| a.deployment.clone().unwrap_or_else(|| a.model.clone());
        let failed: Vec<FailedCall> = r.attempts[..r.attempts.len() - usize::from(answered.is_some())]
            .iter()
            .map(|a| FailedCall { deployment: name(a), model: a.model.clone() })
            .collect();
        Self {
            chosen_p,
            attempts_n: r.attempts.len() as i64,
            deployment: answered.map(name),
            upstream_ms: answered.map(|a| a.latency_ms),
            failed_deployments: (!failed.is_empty()).then(|| serde_json::to_string(&failed).unwrap_or_default()),
        }
    }
}

/// Whether a call that got `status` answered the request, which was answered with `request_status`: a
/// success, or a client error the gateway passed on as the answer (the request was at fault, not the
/// deployment). A refused key (401, 403) or a rate limit (429) is the deployment's failure.
fn answered(status: u16, request_status: u16) -> bool {
    (200..300).contains(&status)
        || (status == request_status && (400..500).contains(&status) && !matches!(status, 401 | 403 | 429))
}

/// The derived columns of a row an older build wrote, from its model columns and JSON (a column that does
/// not parse counts as empty).
pub(crate) fn of_columns(chosen: Option<String>, decided: Option<String>, estimates: &str, attempts: &str) -> Derived {
    let record = DecisionRecord {
        chosen_model: chosen,
        decided_model: decided,
        estimates: serde_json::from_str(estimates).unwrap_or_default(),
        attempts: serde_json::from_str(attempts).unwrap_or_default(),
        ..DecisionRecord::default()
    };
    Derived::of(&record)
}

/// Reads a `failed_deployments` value back (nothing from a value this build did not write).
pub(crate) fn failed_calls(text: &str) -> Vec<FailedCall> {
    serde_json::from_str(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Attempt, Estimate};

    fn attempt(model: &str, deployment: Option<&str>, status: Option<u16>, ms: f64) -> Attempt {
        Attempt { model: model.into(), deployment: deployment.map(Into::into), status, latency_ms: ms, error: None }
    }

    #[test]
    fn a_fallback_names_the_failed_deployment_and_the_one_that_answered() {
        let r = DecisionRecord {
            decided_model: Some("big".into()),
            chosen_model: Some("small".into()),
            estimates: vec![
                Estimate { model: "big".into(), p: 0.9, cost_usd: 0.01 },
                Estimate { model: "small".into(), p: 0.6, cost_usd: 0.001 },
            ],
            attempts: vec![attempt("big", Some("big-eu"), Some(503), 12.0), attempt("small", None, Some(200), 40.0)],
            ..DecisionRecord::default()
        };
        let d = Derived::of(&r);
        assert_eq!(d.chosen_p, Some(0.6), "the P of the model that answered");
        assert_eq!((d.attempts_n, d.deployment.as_deref(), d.upstream_ms), (2, Some("small"), Some(40.0)));
        let failed = failed_calls(d.failed_deployments.as_deref().unwrap_or("[]"));
        assert_eq!(failed, vec![FailedCall { deployment: "big-eu".into(), model: "big".into() }]);
    }

    #[test]
    fn a_client_error_passed_on_is_an_answer_and_a_refused_key_a_failure() {
        let r = |upstream: u16, request: u16| DecisionRecord {
            status: request,
            attempts: vec![attempt("m", Some("m#1"), Some(upstream), 9.0)],
            ..DecisionRecord::default()
        };
        let bad_request = Derived::of(&r(400, 400));
        assert_eq!((bad_request.deployment.as_deref(), bad_request.failed_deployments), (Some("m#1"), None));
        for (upstream, request) in [(401, 401), (429, 429), (500, 502), (400, 502)] {
            let d = Derived::of(&r(upstream, request));
            assert_eq!(d.deployment, None, "{upstream} → {request}");
            assert!(d.failed_deployments.is_some());
        }
    }

    #[test]
    fn a_request_no_upstream_answered_has_no_answering_deployment() {
        let r = DecisionRecord {
            decided_model: Some("big".into()),
            estimates: vec![Estimate { model: "big".into(), p: 0.8, cost_usd: 0.01 }],
            attempts: vec![attempt("big", Some("big#1"), None, 30000.0)],
            ..DecisionRecord::default()
        };
        let d = Derived::of(&r);
        assert_eq!((d.chosen_p, d.deployment, d.upstream_ms), (Some(0.8), None, None));
        assert_eq!(failed_calls(d.failed_deployments.as_deref().unwrap_or("[]")).len(), 1);
        // A named model, a route-only decision: nothing to derive but zero attempts.
        assert_eq!(Derived::of(&DecisionRecord::default()), Derived::default());
    }
}
