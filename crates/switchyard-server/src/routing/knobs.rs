//! Per-request knobs: the quality bar or willingness to pay, allowed and denied models, and a latency cap.
//! One parser reads them wherever a request carries them: a `/v1/route` body's top level, a chat request's
//! `metadata`, and `x-switchyard-*` headers (which win).

use std::collections::BTreeMap;

use serde_json::Value;
use switchyard_core::{Knob, Policy, Router};

use crate::gateway::health::Health;
use crate::routing::RouteError;

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

/// Where a request's knobs are read from: a JSON object's fields, then headers by lower-case name, which win.
#[derive(Debug, Clone, Copy)]
pub struct KnobSource<'a> {
    /// The object holding the knobs: a `/v1/route` body, or a chat request's `metadata` (`None`: none).
    pub fields: Option<&'a Value>,
    /// How errors name the object's fields: `""` for a route body, `"metadata."` for a chat request's metadata.
    pub prefix: &'a str,
    /// Request headers by lower-case name.
    pub headers: &'a BTreeMap<String, String>,
}

impl RequestKnobs {
    /// Reads and checks the knobs of `source`. Numbers may be JSON numbers or numeric strings (OpenAI's
    /// metadata values are strings); model lists JSON arrays of strings or comma-separated text.
    pub fn parse(source: KnobSource<'_>) -> Result<Self, RouteError> {
        let q = source.number("min_quality", "x-switchyard-min-quality")?;
        let l = source.number("willingness_to_pay", "x-switchyard-willingness-to-pay")?;
        if q.is_some() && l.is_some() {
            return Err(RouteError::ConflictingKnobs(
                "set min_quality or willingness_to_pay, not both: the first is a quality bar, the second a price \
                 per unit of quality"
                    .into(),
            ));
        }
        let max_latency_ms = source.number("max_latency_ms", "x-switchyard-max-latency-ms")?;
        if let Some(max) = max_latency_ms.filter(|m| !m.is_finite() || *m <= 0.0) {
            return Err(RouteError::InvalidKnob(format!("max_latency_ms must be > 0 (milliseconds), got {max}")));
        }
        let knob = Knob::from_options(q, l);
        if let Some(k) = knob {
            k.validate().map_err(|e| RouteError::InvalidKnob(e.to_string()))?;
        }
        Ok(Self {
            knob,
            max_latency_ms,
            allowed: source.list("allowed_models", "x-switchyard-allowed-models")?,
            denied: source.list("denied_models", "x-switchyard-denied-models")?.unwrap_or_default(),
        })
    }

    /// `default` with these settings on top, checked again (knobs built in code skip [`Self::parse`]). Models
    /// too slow right now for `max_latency_ms` are denied, unless that would leave none.
    pub fn apply(self, default: &Policy, router: &Router, health: Option<&Health>) -> Result<Policy, RouteError> {
        let mut policy = default.clone();
        if let Some(k) = self.knob {
            k.validate().map_err(|e| RouteError::InvalidKnob(e.to_string()))?;
            policy.knob = k;
        }
        if let Some(max) = self.max_latency_ms.filter(|m| !m.is_finite() || *m <= 0.0) {
            return Err(RouteError::InvalidKnob(format!("max_latency_ms must be > 0 (milliseconds), got {max}")));
        }
        if self.allowed.is_some() {
            policy.allowed = self.allowed;
        }
        if !self.denied.is_empty() {
            policy.denied = self.denied;
        }
        if let (Some(max), Some(health)) = (self.max_latency_ms, health) {
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

impl KnobSource<'_> {
    fn field(&self, key: &str) -> Option<&Value> {
        self.fields.and_then(|f| f.get(key)).filter(|v| !v.is_null())
    }

    fn number(&self, key: &str, header: &str) -> Result<Option<f64>, RouteError> {
        let bad = |what: String| RouteError::InvalidKnob(format!("{what} must be a number"));
        if let Some(text) = self.headers.get(header) {
            return text.trim().parse().map(Some).map_err(|_| bad(format!("header {header} ({text:?})")));
        }
        let name = || format!("{}{key}", self.prefix);
        match self.field(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad(format!("{} ({s:?})", name()))),
            Some(_) => Err(bad(name())),
        }
    }

    fn list(&self, key: &str, header: &str) -> Result<Option<Vec<String>>, RouteError> {
        let split = |s: &str| s.split(',').map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect();
        if let Some(text) = self.headers.get(header) {
            return Ok(Some(split(text)));
        }
        match self.field(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(split(s))),
            Some(Value::Array(items)) => {
                items.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<Vec<_>>>().map(Some).ok_or_else(
                    || RouteError::InvalidKnob(format!("{}{key} must list model names (strings)", self.prefix)),
                )
            }
            Some(_) => Err(RouteError::InvalidKnob(format!(
                "{}{key} must be a list of model names, or one comma-separated string",
                self.prefix
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(fields: Value, headers: &[(&str, &str)], prefix: &str) -> Result<RequestKnobs, RouteError> {
        let headers: BTreeMap<String, String> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        RequestKnobs::parse(KnobSource { fields: Some(&fields), prefix, headers: &headers })
    }

    #[test]
    fn numbers_and_lists_come_from_fields_or_headers_and_headers_win() {
        let k =
            parse(json!({"min_quality": 0.8, "allowed_models": ["a", "b"], "denied_models": "c, d"}), &[], "").unwrap();
        assert_eq!(k.knob, Some(Knob::MinQuality(0.8)));
        assert_eq!(k.allowed, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(k.denied, vec!["c".to_string(), "d".to_string()]);
        // Metadata values are strings; a header beats the field.
        let k = parse(
            json!({"willingness_to_pay": "2.5", "max_latency_ms": "900"}),
            &[("x-switchyard-max-latency-ms", "300"), ("x-switchyard-allowed-models", "x")],
            "metadata.",
        )
        .unwrap();
        assert_eq!((k.knob, k.max_latency_ms), (Some(Knob::WillingnessToPay(2.5)), Some(300.0)));
        assert_eq!(k.allowed, Some(vec!["x".to_string()]));
        assert_eq!(parse(json!({}), &[], "").unwrap(), RequestKnobs::default());
    }

    #[test]
    fn bad_knobs_are_refused_with_the_field_named() {
        let err = |fields: Value, headers: &[(&str, &str)], prefix: &str| parse(fields, headers, prefix).unwrap_err();
        let e = err(json!({"min_quality": "high"}), &[], "metadata.");
        assert_eq!(e.code(), "invalid_knob");
        assert!(e.to_string().contains("metadata.min_quality (\"high\") must be a number"), "{e}");
        let e = err(json!({}), &[("x-switchyard-min-quality", "x")], "");
        assert!(e.to_string().contains("header x-switchyard-min-quality"), "{e}");
        assert_eq!(err(json!({"min_quality": 0.5, "willingness_to_pay": 1}), &[], "").code(), "conflicting_knobs");
        assert_eq!(err(json!({"min_quality": 1.5}), &[], "").code(), "invalid_knob");
        assert_eq!(err(json!({"willingness_to_pay": -1}), &[], "").code(), "invalid_knob");
        let e = err(json!({"max_latency_ms": 0}), &[], "");
        assert!(e.to_string().contains("max_latency_ms must be > 0"), "{e}");
        assert!(err(json!({"allowed_models": [1, 2]}), &[], "").to_string().contains("model names"));
        assert!(err(json!({"denied_models": {"a": 1}}), &[], "").to_string().contains("comma-separated"));
    }
}
