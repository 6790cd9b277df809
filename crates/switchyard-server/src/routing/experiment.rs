//! A/B experiments: traffic split between arms by a sticky hash of the user or session id, with configured
//! weights; the same id always lands in the same arm. An arm may set its own router, knob, system prompt or
//! model; an experiment may be scoped with a rule's `when` clause (requests outside it are not in it).

use std::path::PathBuf;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use switchyard_core::Knob;

use crate::routing::query::Query;

/// `[experiment]` in the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Shown in logs, headers and metrics; part of the hash, so renaming an experiment reshuffles its users.
    pub name: String,
    /// What makes an assignment sticky: `user` or `session`.
    #[serde(default)]
    pub key: StickyKey,
    /// Only requests that match this (a rule's `when` clause: header, metadata, regex, keywords, length,
    /// similar_to) are in the experiment; without it, every routed request is.
    pub when: Option<crate::routing::rules::Condition>,
    /// The arms (at least two).
    pub arms: Vec<ArmConfig>,
}

/// How an arm's `system_prompt` meets the request's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemMode {
    /// Before the request's system prompt (a new system message when it has none).
    #[default]
    Prepend,
    /// Instead of the request's system prompt(s).
    Replace,
}

/// Which id an experiment hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StickyKey {
    /// `x-switchyard-user` header, else the body's `user`, else `metadata.user_id`.
    #[default]
    User,
    /// `x-switchyard-session` header, else `metadata.session_id`.
    Session,
}

/// `[[experiment.arms]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmConfig {
    /// The arm's name.
    pub name: String,
    /// Relative share of traffic (> 0).
    pub weight: f64,
    /// A router folder for this arm (default: the main router).
    pub router: Option<PathBuf>,
    /// A quality bar for this arm (default: the router's).
    pub min_quality: Option<f64>,
    /// A willingness to pay for this arm (default: the router's).
    pub willingness_to_pay: Option<f64>,
    /// A system prompt this arm's requests reach the model with (`system_mode` says how).
    pub system_prompt: Option<String>,
    /// `prepend` (default) or `replace` the request's own system prompt.
    #[serde(default)]
    pub system_mode: SystemMode,
    /// Send this arm's requests to this catalog model (the learned ranking still supplies the fallbacks).
    pub model: Option<String>,
}

impl StickyKey {
    /// The id of this kind a request carries, if any (empty ids count as none).
    pub fn id(self, q: &Query) -> Option<String> {
        match self {
            StickyKey::User => q.header("x-switchyard-user").or(q.user.as_deref()).or_else(|| q.meta("user_id")),
            StickyKey::Session => q.header("x-switchyard-session").or_else(|| q.meta("session_id")),
        }
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
    }
}

impl ArmConfig {
    /// The knob this arm sets, if any.
    pub fn knob(&self) -> Option<Knob> {
        Knob::from_options(self.min_quality, self.willingness_to_pay)
    }

    /// Puts this arm's system prompt on a chat request's `messages` (OpenAI's shape): before the first system
    /// message's text, or as a new first message (`prepend`); in place of every system message (`replace`).
    pub fn apply_system_prompt(&self, messages: &mut Vec<serde_json::Value>) {
        let Some(prompt) = &self.system_prompt else { return };
        let is_system = |m: &serde_json::Value| {
            m.get("role").and_then(serde_json::Value::as_str).is_some_and(|r| r == "system" || r == "developer")
        };
        if self.system_mode == SystemMode::Replace {
            messages.retain(|m| !is_system(m));
        }
        if let Some(first) = messages.first_mut().filter(|m| is_system(m)) {
            if let Some(text) = first.get("content").and_then(serde_json::Value::as_str) {
                first["content"] = serde_json::Value::String(format!("{prompt}\n\n{text}"));
                return;
            }
        }
        messages.insert(0, serde_json::json!({"role": "system", "content": prompt}));
    }
}

impl ExperimentConfig {
    /// Checks names, weights and knobs; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("experiment.name must not be empty".into());
        }
        if self.arms.len() < 2 {
            return Err("an experiment needs at least two [[experiment.arms]]".into());
        }
        for (i, arm) in self.arms.iter().enumerate() {
            if arm.name.trim().is_empty() {
                return Err(format!("experiment.arms[{i}].name must not be empty"));
            }
            if self.arms[..i].iter().any(|a| a.name == arm.name) {
                return Err(format!("experiment arm {:?} is defined twice", arm.name));
            }
            if !arm.weight.is_finite() || arm.weight <= 0.0 {
                return Err(format!("experiment arm {:?}: weight must be > 0, got {}", arm.name, arm.weight));
            }
            if arm.min_quality.is_some() && arm.willingness_to_pay.is_some() {
                return Err(format!("experiment arm {:?}: set min_quality or willingness_to_pay, not both", arm.name));
            }
            if let Some(k) = arm.knob() {
                k.validate().map_err(|e| format!("experiment arm {:?}: {e}", arm.name))?;
            }
            if arm.system_prompt.as_deref().is_some_and(|p| p.trim().is_empty()) {
                return Err(format!("experiment arm {:?}: system_prompt is empty; leave it out instead", arm.name));
            }
        }
        Ok(())
    }

    /// The arm for an id: a SHA-256 of the experiment name and the id, read as a point in [0, 1), falls in
    /// one arm's share of the cumulative weights.
    pub fn assign(&self, id: &str) -> usize {
        let digest = Sha256::digest(format!("{}\u{0}{id}", self.name).as_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        let point = (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
        let total: f64 = self.arms.iter().map(|a| a.weight).sum();
        let mut edge = 0.0;
        for (i, arm) in self.arms.iter().enumerate() {
            edge += arm.weight / total;
            if point < edge {
                return i;
            }
        }
        self.arms.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(weights: &[f64]) -> ExperimentConfig {
        ExperimentConfig {
            name: "exp".into(),
            key: StickyKey::User,
            arms: weights
                .iter()
                .enumerate()
                .map(|(i, &weight)| ArmConfig {
                    name: format!("arm{i}"),
                    weight,
                    router: None,
                    min_quality: None,
                    willingness_to_pay: None,
                    system_prompt: None,
                    system_mode: SystemMode::Prepend,
                    model: None,
                })
                .collect(),
            when: None,
        }
    }

    #[test]
    fn assignment_is_sticky_and_follows_the_weights() {
        let e = experiment(&[1.0, 3.0]);
        for id in ["alice", "bob", "carol"] {
            let first = e.assign(id);
            assert!((0..100).all(|_| e.assign(id) == first), "{id} changed arms");
        }
        let n = 20_000;
        let in_second = (0..n).filter(|i| e.assign(&format!("user-{i}")) == 1).count();
        let share = in_second as f64 / n as f64;
        // Binomial sd at n = 20000, p = 0.75 is 0.003; 0.015 is five of them.
        assert!((share - 0.75).abs() < 0.015, "share {share}");
        // Another experiment name reshuffles users independently.
        let mut other = experiment(&[1.0, 3.0]);
        other.name = "other".into();
        let same = (0..n).filter(|i| e.assign(&format!("user-{i}")) == other.assign(&format!("user-{i}"))).count();
        let expected = 0.25 * 0.25 + 0.75 * 0.75;
        assert!((same as f64 / n as f64 - expected).abs() < 0.02);
    }

    #[test]
    fn sticky_ids_come_from_headers_then_body() {
        let query = |headers: &[(&str, &str)], user: Option<&str>, meta: &[(&str, &str)]| Query {
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            metadata: meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            user: user.map(str::to_string),
            ..Query::default()
        };
        let user = StickyKey::User;
        assert_eq!(user.id(&query(&[], Some("u1"), &[])).as_deref(), Some("u1"));
        assert_eq!(user.id(&query(&[], None, &[("user_id", "u2")])).as_deref(), Some("u2"));
        assert_eq!(user.id(&query(&[("x-switchyard-user", "u3")], Some("u1"), &[])).as_deref(), Some("u3"));
        let session = StickyKey::Session;
        assert_eq!(session.id(&query(&[("x-switchyard-user", "u3")], Some("u1"), &[])), None);
        assert_eq!(session.id(&query(&[], None, &[("session_id", "s")])).as_deref(), Some("s"));
    }

    #[test]
    fn an_arm_prepends_or_replaces_the_system_prompt() {
        use serde_json::json;
        let mut arm = experiment(&[1.0, 1.0]).arms.remove(0);
        arm.system_prompt = Some("Be terse.".into());
        let user = json!({"role": "user", "content": "hi"});
        let mut bare = vec![user.clone()];
        arm.apply_system_prompt(&mut bare);
        assert_eq!(bare, [json!({"role": "system", "content": "Be terse."}), user.clone()]);
        let mut own = vec![json!({"role": "system", "content": "You are a pirate."}), user.clone()];
        arm.apply_system_prompt(&mut own);
        assert_eq!(own[0]["content"], "Be terse.\n\nYou are a pirate.");
        arm.system_mode = SystemMode::Replace;
        let mut replaced = vec![json!({"role": "system", "content": "You are a pirate."}), user.clone()];
        arm.apply_system_prompt(&mut replaced);
        assert_eq!(replaced, [json!({"role": "system", "content": "Be terse."}), user]);
    }

    #[test]
    fn bad_experiments_say_what_is_wrong() {
        assert!(experiment(&[1.0]).validate().unwrap_err().contains("at least two"));
        assert!(experiment(&[1.0, 0.0]).validate().unwrap_err().contains("weight must be > 0"));
        let mut twice = experiment(&[1.0, 1.0]);
        twice.arms[1].name = "arm0".into();
        assert!(twice.validate().unwrap_err().contains("defined twice"));
        let mut knob = experiment(&[1.0, 1.0]);
        knob.arms[0].min_quality = Some(3.0);
        assert!(knob.validate().unwrap_err().contains("min_quality"));
        experiment(&[0.5, 0.5]).validate().unwrap();
    }
}
