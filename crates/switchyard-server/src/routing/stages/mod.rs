//! The routing pipeline, one function shared by `serve` (`/v1/route` and the gateway) and the CLI's
//! `switchyard route --config`: plain types in ([`Query`], the prompt's embedding), a decision out.
//!
//! [`decide`] runs the stages of [`steps`] in order, each a function with its own unit tests:
//! 1. [`steps::arm`]: the experiment arm (its router and knob) and the sticky user id;
//! 2. the request's own knobs on the router's default policy ([`crate::routing::knobs::RequestKnobs::apply`]);
//! 3. [`steps::apply_rule`]: the first matching rule's knob, tier and pin (a `similar_to` rule compares the
//!    prompt's embedding with its examples; the operator's word is last);
//! 4. [`steps::bound_by_key`]: the key's models bound everything else;
//! 5. [`steps::bound_by_needs`]: only models that declare the tools, images or JSON schema the request sends;
//! 6. [`steps::predict`]: the router's estimates, moved by online learning;
//! 7. the learned policy's choice ([`switchyard_core::Policy::decide`]);
//! 8. [`steps::pin_by_rule`]: a rule's pin;
//! 9. [`steps::pin_conversation`]: the conversation's session pin;
//! 10. [`steps::explore`]: exploration, never over a pin.

use std::time::Instant;

use switchyard_core::{ModelCard, RouteReport, Timing};
use switchyard_encoder::Embedding;

mod steps;

use crate::config::Config;
use crate::gateway::health::Health;
use crate::learning::Learning;
use crate::routing::query::Query;
use crate::routing::routers::Routers;
use crate::routing::sessions::{SessionPin, Sessions};
use crate::routing::RouteError;

/// The experiment arm a request was assigned to.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmChoice {
    /// The experiment.
    pub experiment: String,
    /// The arm.
    pub arm: String,
}

/// A decision with how it came about.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The decision.
    pub report: RouteReport,
    /// The rule that fired, if any.
    pub rule: Option<String>,
    /// A `similar_to` rule's similarity to its nearest example.
    pub similarity: Option<f32>,
    /// The experiment arm, if an experiment runs.
    pub arm: Option<ArmChoice>,
    /// The user or session id the request carried.
    pub user: Option<String>,
    /// The conversation's pin, when session pinning applied.
    pub session: Option<SessionPin>,
    /// The probability that this decision's model was chosen (1 unless `learning.explore` is on).
    pub propensity: f64,
    /// Whether the model is an exploration rather than the policy's choice.
    pub explored: bool,
    /// With online learning: the prompt's domains and the router's own P(success) per model (before the
    /// online shift), what an outcome of the answering model is counted against.
    pub learned: Option<Learned>,
}

/// What online learning keeps of a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Learned {
    /// The prompt's domains with their probabilities.
    pub domains: Vec<(String, f64)>,
    /// The router's P(success) per model before the online shift.
    pub base: Vec<(String, f64)>,
}

impl Learned {
    /// What was predicted for `model`, as an observation to count its outcome against.
    pub fn observation(&self, model: &str) -> Option<crate::learning::Observation> {
        let predicted = self.base.iter().find(|(m, _)| m == model)?.1;
        Some(crate::learning::Observation { model: model.to_string(), domains: self.domains.clone(), predicted })
    }
}

/// What the pipeline reads besides the request: the routers in service, the configuration, live upstream
/// health (for `max_latency_ms`) and the conversations' pins.
pub struct Steering<'a> {
    /// Main and arm routers, and the compiled rules.
    pub routers: &'a Routers,
    /// Tiers, the experiment, the catalog (capabilities) and `[sessions]`.
    pub config: &'a Config,
    /// Upstream latency averages (`None`: no upstream is called, as in the CLI; `max_latency_ms` then denies
    /// nothing).
    pub health: Option<&'a Health>,
    /// Session pins (`None`: conversations are not pinned, as in the CLI).
    pub sessions: Option<&'a Sessions>,
    /// Online posteriors (`[learning] online`), which move the router's predictions.
    pub learning: Option<&'a Learning>,
}

/// Decides where a query goes. `encode_ms` is the time its embedding took (reported in the decision).
pub fn decide(s: &Steering<'_>, q: &Query, embedding: &Embedding, encode_ms: f64) -> Result<Decided, RouteError> {
    let start = Instant::now();
    let (experiment, scope) = (s.config.experiment.as_ref(), s.routers.experiment_scope.as_ref());
    let arm = steps::arm(experiment, scope, &s.routers.main, &s.routers.arms, q, &embedding.vector);
    let router = arm.router;
    let mut default = router.manifest.default_policy.clone();
    if let Some(k) = arm.knob {
        default.knob = k;
    }
    let mut policy = q.knobs.clone().apply(&default, router, s.health)?;
    let matched = crate::routing::rules::first_match(&s.routers.rules, q, &embedding.vector);
    let rule_pin = steps::apply_rule(&mut policy, matched.map(|(rule, _)| &rule.config.then), &s.config.tiers);
    // An arm's model stands where a rule's pin would (a rule's pin wins), within what the rule's tier, the
    // request, the key and the request's needs allow.
    let arm_model = arm.model.clone().filter(|_| rule_pin.is_none());
    let mut pinned = rule_pin.or(arm_model.clone());
    let models: Vec<String> = router.manifest.models.iter().map(|m| m.model.clone()).collect();
    steps::bound_by_key(&mut policy, &mut pinned, q.key_models.as_deref(), &models)?;
    let catalog = (!s.config.models.is_empty()).then_some(card_of(s.config));
    let narrowed_for = steps::bound_by_needs(&mut policy, &mut pinned, q.needs, catalog, &models)?;
    let allowed = |m: &String| policy.allowed.as_ref().is_none_or(|a| a.contains(m));
    let arm_pins = arm_model.is_some() && pinned == arm_model && pinned.as_ref().is_some_and(allowed);
    if arm_model.is_some() && !arm_pins {
        pinned = None;
    }
    let (prediction, learned) = steps::predict(router, &embedding.vector, q.input_tokens, s.learning);
    let mut decision = policy.decide(&prediction.models).map_err(|e| RouteError::InvalidPolicy(e.to_string()))?;
    if let Some((rule, how)) = matched {
        let pin = pinned.as_deref().filter(|_| !arm_pins);
        steps::pin_by_rule(&mut decision, &rule.config.name, how.similarity, pin, &policy, &prediction);
    }
    if let (Some(model), Some(choice), true) = (pinned.as_deref(), &arm.choice, arm_pins) {
        steps::pin_by_arm(&mut decision, &choice.arm, model, &policy, &prediction);
    }
    let session = match (&q.conversation, s.sessions, s.config.sessions.session_pinning, &pinned) {
        (Some(c), Some(sessions), true, None) => Some(steps::pin_conversation(
            &mut decision,
            c,
            sessions,
            s.config.sessions.deescalate_after,
            &policy,
            &prediction,
        )),
        _ => None,
    };
    let exploration = (pinned.is_none() && session.is_none())
        .then(|| steps::explore(&mut decision, &s.config.learning, &policy, &prediction, &q.request_id))
        .flatten();
    if let Some(needs) = narrowed_for {
        decision.reason = format!("{}; only models that accept {needs} were considered", decision.reason);
    }
    let timing = Timing { encode: encode_ms, decide: start.elapsed().as_secs_f64() * 1e3 };
    let report = RouteReport::new(prediction, decision, policy, embedding.tokens, embedding.truncated, timing);
    Ok(Decided {
        report,
        rule: matched.map(|(r, _)| r.config.name.clone()),
        similarity: matched.and_then(|(_, m)| m.similarity),
        arm: arm.choice,
        user: arm.user,
        session,
        propensity: exploration.as_ref().map_or(1.0, |e| e.propensity),
        explored: exploration.is_some_and(|e| e.explored),
        learned,
    })
}

/// The catalog lookup of `config`.
fn card_of<'c>(config: &'c Config) -> impl Fn(&str) -> Option<&'c ModelCard> + 'c {
    move |m| config.model(m)
}
