//! Conversation pins shared by the replicas: one Redis string per conversation, written after each turn.

use std::sync::Arc;
use std::time::Duration;

use super::wire::StoredPin;
use super::SharedState;
use crate::routing::sessions::SessionPin;

impl SharedState {
    pub(super) fn pin_key(&self, id: &str) -> String {
        format!("{}:pin:{id}", self.prefix)
    }

    /// Writes a conversation's pin after a turn, for `ttl`.
    pub async fn save_pin(self: &Arc<Self>, pin: &SessionPin, ttl: Duration) {
        let cheaper_turns = match pin.action {
            crate::routing::sessions::PinAction::Held { cheaper_turns } => cheaper_turns,
            _ => 0,
        };
        let Ok(value) = serde_json::to_string(&StoredPin { model: pin.model.clone(), cheaper_turns }) else { return };
        let key = self.pin_key(&pin.id);
        let ms = ttl.as_millis().max(1) as u64;
        let _: Option<()> = self
            .call("pin", |mut c| async move {
                redis::cmd("SET").arg(key).arg(value).arg("PX").arg(ms).query_async(&mut c).await
            })
            .await;
    }
}
