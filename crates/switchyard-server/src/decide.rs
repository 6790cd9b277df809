//! One routing decision, shared by `/v1/route` and the gateway: the experiment arm (its router and knob),
//! the request's own knobs, then the first matching rule (the operator's word is last), then the encoder and
//! the learned policy.

use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use serde_json::Value;
use switchyard_core::{estimate_input_tokens, Knob, RouteReport, Timing};

use crate::error::ApiError;
use crate::experiment::StickyKey;
use crate::knobs::RequestKnobs;
use crate::rules::{first_match, RequestView};
use crate::state::{embed_prompt, AppState};

/// What a decision is made from.
pub(crate) struct DecisionInput<'a> {
    /// The prompt the router reads.
    pub prompt: &'a str,
    /// The request's headers (rules, sticky ids).
    pub headers: &'a HeaderMap,
    /// The request body (`metadata`, `user`).
    pub body: &'a Value,
    /// Knobs the request sets.
    pub knobs: RequestKnobs,
    /// The request id (the sticky key of requests that carry no user or session id).
    pub request_id: &'a str,
    /// The only models the caller's key may use, if it is limited.
    pub key_models: Option<&'a [String]>,
}

/// The experiment arm a request was assigned to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ArmChoice {
    /// The experiment.
    pub experiment: String,
    /// The arm.
    pub arm: String,
}

/// A decision with how it came about.
pub(crate) struct Decided {
    /// The decision.
    pub report: RouteReport,
    /// The rule that fired, if any.
    pub rule: Option<String>,
    /// The experiment arm, if an experiment runs.
    pub arm: Option<ArmChoice>,
    /// The user or session id the request carried.
    pub user: Option<String>,
}

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
}

impl Tags {
    /// The tags of a decision.
    pub fn of(decided: &Decided) -> Self {
        Self {
            experiment: decided.arm.as_ref().map(|a| a.experiment.clone()),
            arm: decided.arm.as_ref().map(|a| a.arm.clone()),
            rule: decided.rule.clone(),
        }
    }

    /// Sets `x-switchyard-request-id`, `-model` (when given), `-experiment`, `-arm` and `-rule` on the
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
        ];
        for (name, value) in pairs {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, v);
            }
        }
    }
}

/// The input tokens a decision prices: the whole request's messages when it has them (the upstream bills
/// every turn, not only the last user message the router reads), else the prompt's.
fn input_tokens(body: &Value, prompt: &str) -> f64 {
    crate::upstream::message_tokens(body).unwrap_or_else(|| estimate_input_tokens(prompt))
}

/// Decides where a prompt goes.
pub(crate) async fn decide(state: &AppState, input: DecisionInput<'_>) -> Result<Decided, ApiError> {
    let routers = state.routers();
    let (mut router, mut arm_knob, mut arm) = (routers.main.clone(), None, None);
    let user;
    if let Some(e) = &state.config.experiment {
        user = e.sticky_id(input.headers, input.body);
        let i = e.assign(user.as_deref().unwrap_or(input.request_id));
        let config = &e.arms[i];
        if let Some(own) = routers.arms.get(i).and_then(Option::as_ref) {
            router = own.clone();
        }
        arm_knob = config.knob();
        arm = Some(ArmChoice { experiment: e.name.clone(), arm: config.name.clone() });
    } else {
        user = StickyKey::User.id(input.headers, input.body);
    }

    let mut default = router.manifest.default_policy.clone();
    if let Some(k) = arm_knob {
        default.knob = k;
    }
    let mut policy = input.knobs.apply(&default, &router, &state.health)?;
    let metadata = input.body.get("metadata").unwrap_or(&Value::Null);
    let view = RequestView { headers: input.headers, metadata, prompt: input.prompt };
    let rule = first_match(&state.rules, &view);
    let mut pinned = None;
    if let Some(rule) = rule {
        state.metrics.rule(&rule.config.name);
        let then = &rule.config.then;
        if let Some(k) = then.knob() {
            policy.knob = k;
        }
        if let Some(tier) = then.tier.as_ref().and_then(|t| state.config.tiers.get(t)) {
            let within: Vec<String> = policy
                .allowed
                .as_ref()
                .map(|a| tier.iter().filter(|m| a.contains(m)).cloned().collect())
                .unwrap_or_default();
            policy.allowed = Some(if within.is_empty() { tier.clone() } else { within });
        }
        pinned = then.model.clone();
    }
    // The key's models bound everything else: the request's knobs, a rule's tier and a rule's pin.
    if let Some(only) = input.key_models {
        let within: Vec<String> = match &policy.allowed {
            Some(allowed) => allowed.iter().filter(|m| only.contains(m)).cloned().collect(),
            None => only.to_vec(),
        };
        if within.is_empty() {
            return Err(ApiError::Forbidden {
                code: "model_not_allowed",
                message: format!(
                    "none of the models this request allows is allowed for its key; the key may use {}",
                    only.join(", ")
                ),
            });
        }
        policy.allowed = Some(within);
        if pinned.as_ref().is_some_and(|m| !only.contains(m)) {
            pinned = None;
        }
    }

    let start = Instant::now();
    let embedding = embed_prompt(state, input.prompt).await?;
    let encoded = Instant::now();
    let (prediction, mut decision) = router
        .route(&embedding.vector, input_tokens(input.body, input.prompt), &policy)
        .map_err(|e| ApiError::invalid("invalid_policy", e.to_string()))?;
    if let Some(rule) = rule {
        let name = &rule.config.name;
        match &pinned {
            Some(model) => {
                decision.ranking.retain(|m| m != model);
                decision.ranking.insert(0, model.clone());
                decision.model = model.clone();
                decision.meets_bar = match policy.knob {
                    Knob::MinQuality(bar) => {
                        prediction.models.iter().find(|e| &e.model == model).is_some_and(|e| e.p_success >= bar)
                    }
                    Knob::WillingnessToPay(_) => true,
                };
                decision.reason = format!("rule {name:?} sends this request to {model}");
            }
            None => decision.reason = format!("rule {name:?} applied; {}", decision.reason),
        }
    }
    state.metrics.decision(start.elapsed().as_secs_f64(), prediction.ood);
    let timing =
        Timing { encode: (encoded - start).as_secs_f64() * 1e3, decide: encoded.elapsed().as_secs_f64() * 1e3 };
    let report = RouteReport::new(prediction, decision, policy, embedding.tokens, embedding.truncated, timing);
    Ok(Decided { report, rule: rule.map(|r| r.config.name.clone()), arm, user })
}
