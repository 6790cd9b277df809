//! What routing keeps in the replicas' shared state: conversations' session pins (one Redis string each,
//! written after every turn, with its time to live), and the read that brings a decision up to date — every
//! deployment's health and the conversation's pin, in one round trip. Redis is the truth: a pin it does not
//! hold is dropped here too.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use redis::Script;
use serde::{Deserialize, Serialize};

use crate::gateway::deployments::Deployments;
use crate::gateway::health::Health;
use crate::gateway::replicated::{apply_health, health_key};
use crate::replicas::{HashAt, SharedState};
use crate::routing::sessions::{PinAction, SessionPin, Sessions};

/// KEYS: health hash, [pin]. ARGV: with health (1/0). Returns Redis's time, the health hash (empty without),
/// the pin (or nil).
static READ: LazyLock<Script> = LazyLock::new(|| {
    crate::replicas::script(
        r"
local pin = false
if #KEYS > 1 then pin = redis.call('GET', KEYS[2]) end
local health = {}
if ARGV[1] == '1' then health = redis.call('HGETALL', KEYS[1]) end
return {tostring(now), health, pin}
",
    )
});

/// A session pin as Redis keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct StoredPin {
    model: String,
    cheaper_turns: u32,
}

fn pin_key(shared: &SharedState, id: &str) -> String {
    shared.key(&format!("pin:{id}"))
}

/// Writes a conversation's pin after a turn, for `ttl`.
pub(crate) async fn save_pin(shared: &Arc<SharedState>, pin: &SessionPin, ttl: Duration) {
    let cheaper_turns = match pin.action {
        PinAction::Held { cheaper_turns } => cheaper_turns,
        _ => 0,
    };
    let Ok(value) = serde_json::to_string(&StoredPin { model: pin.model.clone(), cheaper_turns }) else { return };
    let key = pin_key(shared, &pin.id);
    let ms = ttl.as_millis().max(1) as u64;
    let _: Option<()> = shared
        .call("pin", |mut c| async move {
            redis::cmd("SET").arg(key).arg(value).arg("PX").arg(ms).query_async(&mut c).await
        })
        .await;
}

/// Reads every deployment's shared health into `health` (unless `health_read`: the admission read it already)
/// and the conversation's pin (if `conversation`) into `sessions`, in one round trip; nothing to read, no call.
pub(crate) async fn sync(
    shared: &Arc<SharedState>,
    health: &Health,
    deployments: &Deployments,
    sessions: &Sessions,
    conversation: Option<&str>,
    health_read: bool,
) {
    if health_read && conversation.is_none() {
        return;
    }
    let mut invocation = READ.prepare_invoke();
    invocation.key(health_key(shared));
    if let Some(id) = conversation {
        invocation.key(pin_key(shared, id));
    }
    invocation.arg(if health_read { "0" } else { "1" });
    let reply: Option<(String, Vec<String>, Option<String>)> =
        shared.call("read", |mut c| async move { invocation.invoke_async(&mut c).await }).await;
    let Some((now, fields, pin)) = reply else { return };
    apply_health(&HashAt { now_ms: now.parse().unwrap_or(0.0), fields }, health, deployments);
    if let Some(id) = conversation {
        let stored = pin.and_then(|p| serde_json::from_str::<StoredPin>(&p).ok());
        sessions.adopt(id, stored.map(|p| (p.model, p.cheaper_turns)), Instant::now());
    }
}
