//! Session pinning: a conversation stays on the model it started with, so that its turns read as one voice
//! and upstream prompt caches keep working. A later turn that needs a stronger (dearer) model escalates at
//! once; the conversation moves to a cheaper model only after `sessions.deescalate_after` turns in a row that
//! all say a cheaper one would do.
//!
//! Pins live in this process, with a time to live and a bound on their number (the oldest go first); with
//! `[state] url` they live in Redis too, which every replica reads first ([`crate::replicas`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// What the pin did to a turn's decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinAction {
    /// The conversation starts: its first model is pinned.
    Started,
    /// The policy chose the pinned model again.
    Kept,
    /// The policy chose a dearer model: the conversation moves up at once.
    Escalated {
        /// The model pinned before.
        from: String,
    },
    /// A cheaper model would do, but not yet for `deescalate_after` turns in a row: the pin holds.
    Held {
        /// Turns in a row that said so, this one included.
        cheaper_turns: u32,
    },
    /// `deescalate_after` turns in a row said a cheaper model would do: the conversation moves down.
    Deescalated {
        /// The model pinned before.
        from: String,
    },
}

/// A conversation's pin as a decision reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionPin {
    /// The conversation.
    pub id: String,
    /// Its user turns so far.
    pub turn: usize,
    /// The model the conversation is on after this turn.
    pub model: String,
    /// What happened.
    pub action: PinAction,
}

#[derive(Debug)]
struct Pin {
    model: String,
    cheaper_turns: u32,
    used: Instant,
}

/// The pins of live conversations.
#[derive(Debug)]
pub struct Sessions {
    pins: Mutex<HashMap<String, Pin>>,
    ttl: Duration,
    capacity: usize,
    deescalate_after: u32,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(Duration::from_secs(3600), 100_000, 3)
    }
}

impl Sessions {
    /// Pins kept `ttl` after their last use, at most `capacity` of them; a conversation moves to a cheaper
    /// model after `deescalate_after` turns in a row that say it may.
    pub fn new(ttl: Duration, capacity: usize, deescalate_after: u32) -> Self {
        Self {
            pins: Mutex::new(HashMap::new()),
            ttl,
            capacity: capacity.max(1),
            deescalate_after: deescalate_after.max(1),
        }
    }

    /// The model a turn goes to, given the policy's `choice` for it. `cost(model)` is a model's expected cost
    /// for this turn (the measure of strength: dearer is stronger); `usable(model)` says whether the pinned
    /// model may serve this turn at all (allowed, capable). The first turn of a conversation starts a new pin.
    pub fn apply(
        &self,
        id: &str,
        turn: usize,
        choice: &str,
        cost: impl Fn(&str) -> Option<f64>,
        usable: impl Fn(&str) -> bool,
        now: Instant,
    ) -> SessionPin {
        let mut pins = self.pins.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let live = pins.get(id).filter(|p| turn > 1 && now.duration_since(p.used) < self.ttl && usable(&p.model));
        let (model, cheaper_turns, action) = match live {
            None => (choice.to_string(), 0, PinAction::Started),
            Some(pin) if pin.model == choice => (choice.to_string(), 0, PinAction::Kept),
            Some(pin) => {
                let (pinned, chosen) = (cost(&pin.model), cost(choice));
                let dearer = match (chosen, pinned) {
                    (Some(c), Some(p)) => c > p,
                    // A model without an estimate cannot be compared: follow the policy.
                    _ => true,
                };
                if dearer {
                    (choice.to_string(), 0, PinAction::Escalated { from: pin.model.clone() })
                } else if pin.cheaper_turns + 1 >= self.deescalate_after {
                    (choice.to_string(), 0, PinAction::Deescalated { from: pin.model.clone() })
                } else {
                    let n = pin.cheaper_turns + 1;
                    (pin.model.clone(), n, PinAction::Held { cheaper_turns: n })
                }
            }
        };
        self.make_room(&mut pins, id, now);
        pins.insert(id.to_string(), Pin { model: model.clone(), cheaper_turns, used: now });
        SessionPin { id: id.to_string(), turn, model, action }
    }

    /// Takes a conversation's pin from the shared state: its model and cheaper turns in a row, or `None` when
    /// the shared state holds none (then this replica's own pin, stale, goes too).
    pub fn adopt(&self, id: &str, pin: Option<(String, u32)>, now: Instant) {
        let mut pins = self.pins.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match pin {
            Some((model, cheaper_turns)) => {
                self.make_room(&mut pins, id, now);
                pins.insert(id.to_string(), Pin { model, cheaper_turns, used: now });
            }
            None => {
                pins.remove(id);
            }
        }
    }

    /// Before a new pin goes in: at capacity, expired pins go, then the least recently used one.
    fn make_room(&self, pins: &mut HashMap<String, Pin>, id: &str, now: Instant) {
        if !pins.contains_key(id) && pins.len() >= self.capacity {
            pins.retain(|_, p| now.duration_since(p.used) < self.ttl);
            if pins.len() >= self.capacity {
                if let Some(oldest) = pins.iter().min_by_key(|(_, p)| p.used).map(|(k, _)| k.clone()) {
                    pins.remove(&oldest);
                }
            }
        }
    }

    /// Live pins (for `/metrics`).
    pub fn len(&self) -> usize {
        self.pins.lock().map_or(0, |p| p.len())
    }

    /// Whether no conversation is pinned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(model: &str) -> Option<f64> {
        match model {
            "small" => Some(0.001),
            "mid" => Some(0.01),
            "big" => Some(0.1),
            _ => None,
        }
    }

    #[test]
    fn a_conversation_escalates_at_once_and_comes_down_slowly() {
        let s = Sessions::new(Duration::from_secs(60), 10, 3);
        let t = Instant::now();
        let turn = |n: usize, choice: &str| s.apply("c", n, choice, cost, |_| true, t).clone();
        assert_eq!(turn(1, "small").action, PinAction::Started);
        assert_eq!(turn(2, "small").action, PinAction::Kept);
        let up = turn(3, "big");
        assert_eq!((up.model.as_str(), up.action), ("big", PinAction::Escalated { from: "small".into() }));
        // Two turns that a cheaper model would do hold the pin; the third moves down.
        assert_eq!((turn(4, "mid").model, turn(5, "small").model), ("big".to_string(), "big".to_string()));
        let down = turn(6, "mid");
        assert_eq!((down.model.as_str(), down.action), ("mid", PinAction::Deescalated { from: "big".into() }));
        // A turn that agrees with the pin resets the count.
        turn(7, "small");
        turn(8, "mid");
        assert_eq!(turn(9, "small").action, PinAction::Held { cheaper_turns: 1 });
        // A new conversation with the same id (turn 1) starts over.
        assert_eq!(turn(1, "big").action, PinAction::Started);
    }

    #[test]
    fn pins_expire_give_way_to_unusable_models_and_are_bounded() {
        let s = Sessions::new(Duration::from_secs(60), 2, 3);
        let t = Instant::now();
        s.apply("a", 1, "big", cost, |_| true, t);
        // The pinned model cannot serve this turn (say it lacks a capability): follow the policy.
        let moved = s.apply("a", 2, "small", cost, |m| m != "big", t);
        assert_eq!((moved.model.as_str(), moved.action), ("small", PinAction::Started));
        s.apply("a", 1, "big", cost, |_| true, t);
        let later = s.apply("a", 2, "small", cost, |_| true, t + Duration::from_secs(61));
        assert_eq!(later.action, PinAction::Started);
        s.apply("b", 1, "mid", cost, |_| true, t + Duration::from_secs(62));
        s.apply("c", 1, "mid", cost, |_| true, t + Duration::from_secs(63));
        assert_eq!(s.len(), 2);
    }
}
