//! The routing pipeline, one function shared by `serve` (`/v1/route` and the gateway) and the CLI's
//! `switchyard route --config`: plain types in ([`Query`], the prompt's embedding), a decision out.
//!
//! In order: the experiment arm (its router and knob), the request's own knobs, the first matching rule (the
//! operator's word is last; a `similar_to` rule compares the prompt's embedding with its examples), the
//! key's models, the capabilities the request needs, the learned policy, then a rule's pin or the
//! conversation's session pin.

use std::time::Instant;

use switchyard_core::{Knob, RouteReport, Timing};
use switchyard_encoder::Embedding;

use crate::config::Config;
use crate::gateway::health::Health;
use crate::learning::Learning;
use crate::routing::experiment::StickyKey;
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
    /// Tiers, the experiment, the catalog (capabilities) and `[routing]`.
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
    let routers = s.routers;
    let (mut router, mut arm_knob, mut arm) = (&routers.main, None, None);
    let user;
    if let Some(e) = &s.config.experiment {
        user = e.key.id(q);
        let i = e.assign(user.as_deref().unwrap_or(&q.request_id));
        let config = &e.arms[i];
        if let Some(own) = routers.arms.get(i).and_then(Option::as_ref) {
            router = own;
        }
        arm_knob = config.knob();
        arm = Some(ArmChoice { experiment: e.name.clone(), arm: config.name.clone() });
    } else {
        user = StickyKey::User.id(q);
    }

    let mut default = router.manifest.default_policy.clone();
    if let Some(k) = arm_knob {
        default.knob = k;
    }
    let mut policy = q.knobs.clone().apply(&default, router, s.health)?;
    let matched = crate::routing::rules::first_match(&routers.rules, q, &embedding.vector);
    let mut pinned = None;
    if let Some((rule, _)) = matched {
        let then = &rule.config.then;
        if let Some(k) = then.knob() {
            policy.knob = k;
        }
        if let Some(tier) = then.tier.as_ref().and_then(|t| s.config.tiers.get(t)) {
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
    if let Some(only) = &q.key_models {
        let within = narrow(policy.allowed.as_deref(), |m| only.contains(&m.to_string()), router);
        if within.is_empty() {
            return Err(RouteError::ModelNotAllowed(format!(
                "none of the models this request allows is allowed for its key; the key may use {}",
                only.join(", ")
            )));
        }
        policy.allowed = Some(within);
        pinned = pinned.filter(|m| only.contains(m));
    }
    // Only models that can serve the request: tools, images, JSON schemas.
    let mut narrowed_for = None;
    if q.needs.any() && !s.config.models.is_empty() {
        let capable =
            |m: &str| s.config.models.iter().find(|c| c.name == m).is_some_and(|c| q.needs.missing(c).is_empty());
        let within = narrow(policy.allowed.as_deref(), capable, router);
        if within.is_empty() {
            let flags = q.needs.flags();
            return Err(RouteError::Unsupported(format!(
                "this request sends {}, but no model it may use declares {} in [[models]]; set the flag on the \
                 catalog models that accept it, or leave this out of the request",
                q.needs.describe(),
                flags.join(" and ")
            )));
        }
        pinned = pinned.filter(|m| capable(m));
        policy.allowed = Some(within);
        narrowed_for = Some(q.needs.describe());
    }

    let mut prediction = router.predict(&embedding.vector, q.input_tokens);
    let learned = s.learning.map(|learning| {
        let base = learning.adjust(&mut prediction);
        Learned {
            domains: Learning::domains(&prediction),
            base: prediction.models.iter().map(|e| e.model.clone()).zip(base).collect(),
        }
    });
    let mut decision = policy.decide(&prediction.models).map_err(|e| RouteError::InvalidPolicy(e.to_string()))?;
    let pin_to = |decision: &mut switchyard_core::Decision, model: &str| {
        decision.ranking.retain(|m| m != model);
        decision.ranking.insert(0, model.to_string());
        decision.model = model.to_string();
        decision.meets_bar = match policy.knob {
            Knob::MinQuality(bar) => {
                prediction.models.iter().find(|e| e.model == model).is_some_and(|e| e.p_success >= bar)
            }
            Knob::WillingnessToPay(_) => true,
        };
    };
    let mut session = None;
    if let Some((rule, how)) = matched {
        let name = &rule.config.name;
        let similar = how.similarity.map(|s| format!(" (similarity {s:.2})")).unwrap_or_default();
        match &pinned {
            Some(model) => {
                pin_to(&mut decision, model);
                decision.reason = format!("rule {name:?}{similar} sends this request to {model}");
            }
            None => decision.reason = format!("rule {name:?}{similar} applied; {}", decision.reason),
        }
    }
    if let (Some(c), Some(sessions), true, None) =
        (&q.conversation, s.sessions, s.config.routing.session_pinning, &pinned)
    {
        let cost = |m: &str| prediction.models.iter().find(|e| e.model == m).map(|e| e.expected_cost_usd);
        let usable = |m: &str| {
            policy.allowed.as_ref().is_none_or(|a| a.iter().any(|x| x == m)) && !policy.denied.iter().any(|x| x == m)
        };
        let pin = sessions.apply(&c.id, c.turn, &decision.model, cost, usable, Instant::now());
        if pin.model != decision.model {
            pin_to(&mut decision, &pin.model);
            decision.reason = format!(
                "conversation {} stays on {} (a cheaper model would do, turn {} of {} needed to move down); {}",
                c.id, pin.model, c.turn, s.config.routing.deescalate_after, decision.reason
            );
        }
        session = Some(pin);
    }
    // Exploration: never for a rule's or a conversation's pin.
    let (mut propensity, mut explored) = (1.0, false);
    let share = s.config.learning.explore;
    if share > 0.0 && pinned.is_none() && session.is_none() {
        let floor = s.config.learning.explore_floor;
        let others: Vec<(String, f64)> = decision
            .ranking
            .iter()
            .filter(|m| **m != decision.model)
            .filter_map(|m| prediction.models.iter().find(|e| &e.model == m).map(|e| (m.clone(), e.p_success)))
            .filter(|(_, p)| *p >= floor)
            .collect();
        let strength = s.config.learning.prior_strength;
        let e = switchyard_core::explore(
            &decision.model,
            &others,
            share,
            strength,
            switchyard_core::seed_of(&q.request_id),
        );
        (propensity, explored) = (e.propensity, e.explored);
        if e.explored {
            let instead = decision.model.clone();
            pin_to(&mut decision, &e.model);
            decision.reason = format!(
                "exploring ({:.1}% of decisions explore): {} instead of the policy's {instead} (propensity {:.4})",
                share * 100.0,
                e.model,
                e.propensity
            );
        }
    }
    if let Some(needs) = narrowed_for {
        decision.reason = format!("{}; only models that accept {needs} were considered", decision.reason);
    }
    let timing = Timing { encode: encode_ms, decide: start.elapsed().as_secs_f64() * 1e3 };
    let report = RouteReport::new(prediction, decision, policy, embedding.tokens, embedding.truncated, timing);
    Ok(Decided {
        report,
        rule: matched.map(|(r, _)| r.config.name.clone()),
        similarity: matched.and_then(|(_, m)| m.similarity),
        arm,
        user,
        session,
        propensity,
        explored,
        learned,
    })
}

/// The models of `allowed` (every router model when `None`) that pass `keep`.
fn narrow(allowed: Option<&[String]>, keep: impl Fn(&str) -> bool, router: &switchyard_core::Router) -> Vec<String> {
    match allowed {
        Some(a) => a.iter().filter(|m| keep(m)).cloned().collect(),
        None => router.manifest.models.iter().map(|m| m.model.clone()).filter(|m| keep(m)).collect(),
    }
}
