//! What steered a request, as the response's `x-switchyard-*` headers and the request metrics' labels show it.

use axum::http::HeaderValue;
use axum::response::Response;

use crate::routing::stages::Decided;

/// What a `/v1/*` handler tells the layers around it (the request metrics) about the request it answered:
/// a response extension, so that no layer reads back the handler's own headers.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Served {
    /// The model that answered (or was chosen, on `/v1/route`).
    pub model: Option<String>,
    /// The experiment.
    pub experiment: Option<String>,
    /// The arm.
    pub arm: Option<String>,
}

/// What steered a request, as response headers and metric labels show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tags {
    /// The experiment.
    pub experiment: Option<String>,
    /// The arm.
    pub arm: Option<String>,
    /// The rule that fired.
    pub rule: Option<String>,
    /// The model a conversation's session pin holds it on.
    pub pinned: Option<String>,
}

impl Tags {
    /// The tags of a decision.
    pub fn of(decided: &Decided) -> Self {
        Self {
            experiment: decided.arm.as_ref().map(|a| a.experiment.clone()),
            arm: decided.arm.as_ref().map(|a| a.arm.clone()),
            rule: decided.rule.clone(),
            pinned: decided.session.as_ref().map(|p| p.model.clone()),
        }
    }

    /// Sets `x-switchyard-request-id`, `-model` (when given), `-experiment`, `-arm`, `-rule` and `-pinned` on the
    /// response, and tells the layers around the handler the same through a [`Served`] extension.
    pub fn put(&self, response: &mut Response, request_id: &str, model: Option<&str>) {
        response.extensions_mut().insert(Served {
            model: model.map(str::to_string),
            experiment: self.experiment.clone(),
            arm: self.arm.clone(),
        });
        let headers = response.headers_mut();
        let pairs = [
            ("x-switchyard-request-id", Some(request_id)),
            ("x-switchyard-model", model),
            ("x-switchyard-experiment", self.experiment.as_deref()),
            ("x-switchyard-arm", self.arm.as_deref()),
            ("x-switchyard-rule", self.rule.as_deref()),
            ("x-switchyard-pinned", self.pinned.as_deref()),
        ];
        for (name, value) in pairs {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, v);
            }
        }
    }
}
