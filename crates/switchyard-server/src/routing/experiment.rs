//! A/B experiments: traffic split between arms (each its own router and/or knob) by a sticky hash of the
//! user or session id, with configured weights. The same id always lands in the same arm.

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
    /// The arms (at least two).
    pub arms: Vec<ArmConfig>,
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
                })
                .collect(),
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
