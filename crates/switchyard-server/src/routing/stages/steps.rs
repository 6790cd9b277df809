//! The stages of a routing decision, in the order [`super::decide`] runs them. Each takes plain values and
//! changes the policy, the pin or the decision it is given, so that each can be tested on its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use switchyard_core::{Decision, Exploration, Knob, ModelCard, Policy, Prediction, Router};

use super::{ArmChoice, Learned};
use crate::learning::{Learning, LearningConfig};
use crate::routing::experiment::{ExperimentConfig, StickyKey};
use crate::routing::query::{Conversation, Needs, Query};
use crate::routing::rules::{Action, Rule};
use crate::routing::sessions::{SessionPin, Sessions};
use crate::routing::RouteError;

/// The experiment's arm for a request: which router decides, with which knob, and the sticky user id.
pub(super) struct Arm<'a> {
    /// The arm's own router, else the main one.
    pub router: &'a Router,
    /// The arm's knob, if it sets one.
    pub knob: Option<Knob>,
    /// The experiment and arm, when an experiment runs.
    pub choice: Option<ArmChoice>,
    /// The user or session id the request carried (the experiment's sticky key, else the user).
    pub user: Option<String>,
    /// The model the arm sends its requests to, if it names one.
    pub model: Option<String>,
}

/// Stage 1: assigns the request to an arm of `experiment` by its sticky id (the request id when it carries
/// none), when the request is in the experiment's scope (`scope`, its `when` clause, matched on the query and
/// the prompt's `embedding`). `arms` holds each arm's own router, in the experiment's order.
pub(super) fn arm<'a>(
    experiment: Option<&ExperimentConfig>,
    scope: Option<&Rule>,
    main: &'a Router,
    arms: &'a [Option<Arc<Router>>],
    q: &Query,
    embedding: &[f32],
) -> Arm<'a> {
    let outside = scope.is_some_and(|rule| rule.matches(q, embedding).is_none());
    let Some(e) = experiment.filter(|_| !outside) else {
        return Arm { router: main, knob: None, choice: None, user: StickyKey::User.id(q), model: None };
    };
    let user = e.key.id(q);
    let i = e.assign(user.as_deref().unwrap_or(&q.request_id));
    let router = arms.get(i).and_then(Option::as_deref).unwrap_or(main);
    let config = &e.arms[i];
    let choice = Some(ArmChoice { experiment: e.name.clone(), arm: config.name.clone() });
    Arm { router, knob: config.knob(), choice, user, model: config.model.clone() }
}

/// Stage 3: a matching rule's knob replaces the policy's; its tier narrows the allowed models (to the tier's
/// models the request allows, or the whole tier when none of them is); its pin is returned.
pub(super) fn apply_rule(
    policy: &mut Policy,
    then: Option<&Action>,
    tiers: &BTreeMap<String, Vec<String>>,
) -> Option<String> {
    let then = then?;
    if let Some(k) = then.knob() {
        policy.knob = k;
    }
    if let Some(tier) = then.tier.as_ref().and_then(|t| tiers.get(t)) {
        let within: Vec<String> = policy
            .allowed
            .as_ref()
            .map(|a| tier.iter().filter(|m| a.contains(m)).cloned().collect())
            .unwrap_or_default();
        policy.allowed = Some(if within.is_empty() { tier.clone() } else { within });
    }
    then.model.clone()
}

/// Stage 4: the key's models bound everything else — the request's knobs, a rule's tier and a rule's pin.
/// `models` are the router's.
pub(super) fn bound_by_key(
    policy: &mut Policy,
    pinned: &mut Option<String>,
    key_models: Option<&[String]>,
    models: &[String],
) -> Result<(), RouteError> {
    let Some(only) = key_models else { return Ok(()) };
    let within = narrow(policy.allowed.as_deref(), |m| only.iter().any(|o| o == m), models);
    if within.is_empty() {
        return Err(RouteError::ModelNotAllowed(format!(
            "none of the models this request allows is allowed for its key; the key may use {}",
            only.join(", ")
        )));
    }
    policy.allowed = Some(within);
    if pinned.as_ref().is_some_and(|m| !only.contains(m)) {
        *pinned = None;
    }
    Ok(())
}

/// Stage 5: only models whose catalog entry (`card(name)`) declares what the request sends (tools, images, a
/// JSON schema). Without a catalog (`None`) nothing is narrowed. Returns the needs, in words, when it narrowed.
pub(super) fn bound_by_needs<'c>(
    policy: &mut Policy,
    pinned: &mut Option<String>,
    needs: Needs,
    card: Option<impl Fn(&str) -> Option<&'c ModelCard>>,
    models: &[String],
) -> Result<Option<String>, RouteError> {
    let Some(card) = card.filter(|_| needs.any()) else { return Ok(None) };
    let capable = |m: &str| card(m).is_some_and(|c| needs.missing(c).is_empty());
    let within = narrow(policy.allowed.as_deref(), capable, models);
    if within.is_empty() {
        return Err(RouteError::Unsupported(format!(
            "this request sends {}, but no model it may use declares {} in [[models]]; set the flag on the catalog \
             models that accept it, or leave this out of the request",
            needs.describe(),
            needs.flags().join(" and ")
        )));
    }
    if pinned.as_deref().is_some_and(|m| !capable(m)) {
        *pinned = None;
    }
    policy.allowed = Some(within);
    Ok(Some(needs.describe()))
}

/// Stage 6: the router's estimates for the prompt, moved by what online learning observed; with learning, what
/// the router itself predicted (the base an outcome is counted against).
pub(super) fn predict(
    router: &Router,
    embedding: &[f32],
    input_tokens: f64,
    learning: Option<&Learning>,
) -> (Prediction, Option<Learned>) {
    let mut prediction = router.predict(embedding, input_tokens);
    let learned = learning.map(|learning| {
        let base = learning.adjust(&mut prediction);
        Learned {
            domains: Learning::domains(&prediction),
            base: prediction.models.iter().map(|e| e.model.clone()).zip(base).collect(),
        }
    });
    (prediction, learned)
}

/// Stage 8: a matching rule's pin sends the request to its model; without a pin, the reason says the rule
/// applied.
pub(super) fn pin_by_rule(
    decision: &mut Decision,
    rule: &str,
    similarity: Option<f32>,
    pinned: Option<&str>,
    policy: &Policy,
    prediction: &Prediction,
) {
    let similar = similarity.map(|s| format!(" (similarity {s:.2})")).unwrap_or_default();
    match pinned {
        Some(model) => {
            pin_to(decision, model, policy, prediction);
            decision.reason = format!("rule {rule:?}{similar} sends this request to {model}");
        }
        None => decision.reason = format!("rule {rule:?}{similar} applied; {}", decision.reason),
    }
}

/// Stage 8 for an experiment arm that names a model (and no rule pinned one): the arm's model.
pub(super) fn pin_by_arm(decision: &mut Decision, arm: &str, model: &str, policy: &Policy, prediction: &Prediction) {
    pin_to(decision, model, policy, prediction);
    decision.reason = format!("experiment arm {arm:?} sends this request to {model}");
}

/// Stage 9: the conversation's session pin — a dearer choice escalates at once, a cheaper one only after
/// `deescalate_after` turns in a row (see [`Sessions::apply`]).
pub(super) fn pin_conversation(
    decision: &mut Decision,
    c: &Conversation,
    sessions: &Sessions,
    deescalate_after: u32,
    policy: &Policy,
    prediction: &Prediction,
) -> SessionPin {
    let cost = |m: &str| prediction.models.iter().find(|e| e.model == m).map(|e| e.expected_cost_usd);
    let usable = |m: &str| {
        policy.allowed.as_ref().is_none_or(|a| a.iter().any(|x| x == m)) && !policy.denied.iter().any(|x| x == m)
    };
    let pin = sessions.apply(&c.id, c.turn, &decision.model, cost, usable, Instant::now());
    if pin.model != decision.model {
        pin_to(decision, &pin.model, policy, prediction);
        decision.reason = format!(
            "conversation {} stays on {} (a cheaper model would do, turn {} of {deescalate_after} needed to move \
             down); {}",
            c.id, pin.model, c.turn, decision.reason
        );
    }
    pin
}

/// Stage 10: with `learning.explore` above 0, a share of decisions goes to another eligible model whose
/// P(success) is at least `explore_floor` (Thompson-style, seeded by the request id so a replay explores the
/// same way). `None` when exploration is off.
pub(super) fn explore(
    decision: &mut Decision,
    config: &LearningConfig,
    policy: &Policy,
    prediction: &Prediction,
    request_id: &str,
) -> Option<Exploration> {
    let share = config.explore;
    if share <= 0.0 {
        return None;
    }
    let others: Vec<(String, f64)> = decision
        .ranking
        .iter()
        .filter(|m| **m != decision.model)
        .filter_map(|m| prediction.models.iter().find(|e| &e.model == m).map(|e| (m.clone(), e.p_success)))
        .filter(|(_, p)| *p >= config.explore_floor)
        .collect();
    let seed = switchyard_core::seed_of(request_id);
    let e = switchyard_core::explore(&decision.model, &others, share, config.prior_strength, seed);
    if e.explored {
        let instead = decision.model.clone();
        pin_to(decision, &e.model, policy, prediction);
        decision.reason = format!(
            "exploring ({:.1}% of decisions explore): {} instead of the policy's {instead} (propensity {:.4})",
            share * 100.0,
            e.model,
            e.propensity
        );
    }
    Some(e)
}

/// Puts `model` first in the decision, and says whether it meets the quality bar.
fn pin_to(decision: &mut Decision, model: &str, policy: &Policy, prediction: &Prediction) {
    decision.ranking.retain(|m| m != model);
    decision.ranking.insert(0, model.to_string());
    decision.model = model.to_string();
    decision.meets_bar = match policy.knob {
        Knob::MinQuality(bar) => {
            prediction.models.iter().find(|e| e.model == model).is_some_and(|e| e.p_success >= bar)
        }
        Knob::WillingnessToPay(_) => true,
    };
}

/// The models of `allowed` (every router model when `None`) that pass `keep`.
fn narrow(allowed: Option<&[String]>, keep: impl Fn(&str) -> bool, models: &[String]) -> Vec<String> {
    allowed.unwrap_or(models).iter().filter(|m| keep(m)).cloned().collect()
}

#[cfg(test)]
mod tests;
