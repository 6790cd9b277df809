//! Per-request knobs: the quality bar or willingness to pay, allowed and denied models, and a latency cap,
//! from a `/v1/route` body or a gateway request's `metadata` and `x-switchyard-*` headers.

use axum::http::HeaderMap;
use serde_json::Value;
use switchyard_core::{Knob, Policy, Router};

use crate::gateway::health::Health;
use crate::http::error::ApiError;

/// Per-request policy settings (from a `/v1/route` body, or a gateway request's metadata and headers).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestKnobs {
    /// The knob, if the request sets one.
    pub knob: Option<Knob>,
    /// Only these models, if given.
    pub allowed: Option<Vec<String>>,
    /// Never these models.
    pub denied: Vec<String>,
    /// Skip models whose recent average upstream latency is above this (milliseconds).
    pub max_latency_ms: Option<f64>,
}

impl RequestKnobs {
    /// `default` with these settings on top, validated. Models too slow right now for `max_latency_ms` are
    /// denied, unless that would leave none.
    pub fn apply(self, default: &Policy, router: &Router, health: &Health) -> Result<Policy, ApiError> {
        let mut policy = default.clone();
        if let Some(k) = self.knob {
            k.validate().map_err(|e| ApiError::invalid("invalid_knob", e.to_string()))?;
            policy.knob = k;
        }
        if self.allowed.is_some() {
            policy.allowed = self.allowed;
        }
        if !self.denied.is_empty() {
            policy.denied = self.denied;
        }
        if let Some(max) = self.max_latency_ms {
            if !max.is_finite() || max <= 0.0 {
                return Err(ApiError::invalid("invalid_knob", format!("max_latency_ms must be > 0, got {max}")));
            }
            let known = &router.manifest.models;
            let slow: Vec<String> =
                health.slower_than(max).into_iter().filter(|m| known.iter().any(|k| &k.model == m)).collect();
            let remaining = known
                .iter()
                .filter(|m| !policy.denied.contains(&m.model) && !slow.contains(&m.model))
                .filter(|m| policy.allowed.as_ref().is_none_or(|a| a.contains(&m.model)))
                .count();
            if remaining > 0 {
                policy.denied.extend(slow);
            }
        }
        Ok(policy)
    }
}

/// Knobs from the body's `metadata` or from `x-switchyard-*` headers (headers win).
pub(crate) fn from_request(body: &Value, headers: &HeaderMap) -> Result<RequestKnobs, ApiError> {
    let meta = body.get("metadata").cloned().unwrap_or(Value::Null);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let number = |key: &str, header_name: &str| -> Result<Option<f64>, ApiError> {
        match header(header_name) {
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid("invalid_knob", format!("{header_name} must be a number"))),
            None => match meta.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64()),
                // OpenAI metadata values are strings.
                Some(Value::String(s)) => s
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| ApiError::invalid("invalid_knob", format!("metadata.{key} must be a number"))),
                Some(_) => Err(ApiError::invalid("invalid_knob", format!("metadata.{key} must be a number"))),
            },
        }
    };
    let list = |key: &str, header_name: &str| -> Option<Vec<String>> {
        let split = |s: &str| s.split(',').map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect();
        header(header_name).map(|h| split(&h)).or_else(|| match meta.get(key) {
            Some(Value::String(s)) => Some(split(s)),
            Some(Value::Array(a)) => Some(a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()),
            _ => None,
        })
    };
    let q = number("min_quality", "x-switchyard-min-quality")?;
    let l = number("willingness_to_pay", "x-switchyard-willingness-to-pay")?;
    if q.is_some() && l.is_some() {
        return Err(ApiError::invalid("conflicting_knobs", "set min_quality or willingness_to_pay, not both"));
    }
    let max_latency_ms = number("max_latency_ms", "x-switchyard-max-latency-ms")?;
    Ok(RequestKnobs {
        max_latency_ms,
        knob: Knob::from_options(q, l),
        allowed: list("allowed_models", "x-switchyard-allowed-models"),
        denied: list("denied_models", "x-switchyard-denied-models").unwrap_or_default(),
    })
}
