//! What the shared state keeps in Redis, and how it reads back: a deployment's health (JSON in one hash), a
//! conversation's pin (JSON under its own key), and what a failed connection means for messages.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::gateway::deployments::Deployments;
use crate::gateway::health::{Health, SharedHealth};

/// A session pin as Redis keeps it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredPin {
    pub(super) model: String,
    pub(super) cheaper_turns: u32,
}

/// What a failed connection means, for messages: a refused password, or no answer.
pub(super) fn why(e: &redis::RedisError) -> String {
    let text = e.to_string();
    let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
        || ["WRONGPASS", "NOAUTH", "invalid password", "invalid username-password"].iter().any(|w| text.contains(w));
    if auth {
        format!("Redis refused the password or user in state.url ({text})")
    } else {
        format!("Redis does not answer ({text})")
    }
}

/// Takes the health hash (`[deployment, json, ...]`, read at Redis time `now`) as this replica's view.
pub(super) fn apply_health(now: f64, flat: &[String], health: &Health, deployments: &Deployments) {
    if flat.is_empty() {
        return;
    }
    for pair in flat.chunks_exact(2) {
        let (Some(up), Ok(view)) = (deployments.named(&pair[0]), serde_json::from_str::<StoredHealth>(&pair[1])) else {
            continue;
        };
        let cooling = (view.cool_until > now).then(|| Duration::from_millis((view.cool_until - now) as u64));
        health.adopt(
            up,
            &SharedHealth {
                consecutive_failures: view.fails as u32,
                cooling_for: cooling,
                latency_ms: view.lat,
                error_rate: view.err,
                calls: view.calls as u64,
            },
        );
    }
}

/// A deployment's health as the `observe` script writes it.
#[derive(Debug, Deserialize)]
struct StoredHealth {
    #[serde(default)]
    fails: f64,
    #[serde(default)]
    cool_until: f64,
    lat: Option<f64>,
    #[serde(default)]
    err: f64,
    #[serde(default)]
    calls: f64,
}
