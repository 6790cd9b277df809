//! `[learning]`: online learning from feedback and upstream outcomes.

use std::path::PathBuf;

use serde::Deserialize;
use switchyard_core::OnlineSettings;

use switchyard_store::REFUSAL_PATTERNS as REFUSALS;

/// Longest `feedback_window_s`: 30 days.
pub const MAX_FEEDBACK_WINDOW_S: u64 = 30 * 86_400;

/// `[learning]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearningConfig {
    /// Update per-(model, domain) posteriors from feedback scores and upstream outcomes, and route on them.
    pub online: bool,
    /// Pseudo-observations behind the router's own prediction: outcomes needed to move a (model, domain)
    /// halfway to what was observed.
    pub prior_strength: f64,
    /// Observations of a (model, domain) after which an earlier one counts half.
    pub half_life: f64,
    /// Where the posteriors are kept between restarts (without `[state] url`).
    pub state_file: PathBuf,
    /// Answers starting with one of these (ignoring case) count as failures.
    pub refusal_patterns: Vec<String>,
    /// Share of routed decisions (0 to 0.5) sent to a model other than the policy's choice, by Thompson
    /// sampling among the eligible models whose P(success) is at least `explore_floor`. Not for session- or
    /// rule-pinned requests. Every decision logs its propensity either way.
    pub explore: f64,
    /// The least P(success) a model needs to be explored.
    pub explore_floor: f64,
    /// With `[state] url`: how often (milliseconds) a replica reads the shared posteriors back from Redis, on
    /// the decision path (0: before every decision).
    pub sync_ms: u64,
    /// With `[state] url`: how long (seconds) a decision's prediction stays in Redis for feedback that reaches
    /// another replica than the one that answered (without Redis, each replica remembers its last 100,000).
    pub feedback_window_s: u64,
    /// The most one client key's feedback may make up of a (model, domain) cell, in (0, 1]: feedback from a
    /// key is learned from only while the key's feedback in that cell over the last `key_share_window_s`
    /// (its weight, domain probability included) stays within this share of the cell's pseudo-observations
    /// (`prior_strength` plus its observations). Feedback over it is stored (and exported) but not learned
    /// from, and the feedback answer says so. 1 turns the cap off; requests made without a key (a server with
    /// no `[[keys]]`) are not capped. A resent score that replaces a counted one is charged by how far it moves
    /// the cell (its weight times the change of score), and a score can be replaced only within
    /// `key_share_window_s` of its first count, so new scores and rescores together move a cell by at most the
    /// key's share of it a window: with the defaults (0.25, κ = 20) a key alone moves an unobserved cell by at
    /// most about 6.7 observations' worth in a window (x ≤ 0.25 · (20 + x)), and later windows by a quarter of
    /// what the cell holds then. A deployment whose feedback all comes from one key should set it to 1, or that
    /// key's feedback is learned from this slowly too.
    pub max_key_share: f64,
    /// The window (seconds) over which a key's share of a cell is counted (a fixed window that starts with the
    /// key's first counted feedback in the cell), and for which a request's counted score can be replaced.
    pub key_share_window_s: u64,
}

impl Default for LearningConfig {
    fn default() -> Self {
        let settings = OnlineSettings::default();
        Self {
            online: false,
            prior_strength: settings.prior_strength,
            half_life: settings.half_life,
            state_file: PathBuf::from("logs/online.json"),
            refusal_patterns: REFUSALS.iter().map(|s| (*s).to_string()).collect(),
            explore: 0.0,
            explore_floor: 0.5,
            sync_ms: 1000,
            feedback_window_s: 3_600,
            max_key_share: 0.25,
            key_share_window_s: 3_600,
        }
    }
}

impl LearningConfig {
    /// The posteriors' settings.
    pub fn settings(&self) -> OnlineSettings {
        OnlineSettings { prior_strength: self.prior_strength, half_life: self.half_life }
    }

    /// Checks the values; the error names the key and the fix.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.prior_strength.is_finite() && self.prior_strength > 0.0) {
            return Err((
                "learning.prior_strength",
                format!(
                    "must be a positive number of pseudo-observations (20 is typical), got {}",
                    self.prior_strength
                ),
            ));
        }
        if !(self.half_life.is_finite() && self.half_life > 0.0) {
            return Err((
                "learning.half_life",
                format!("must be a positive number of observations (200 is typical), got {}", self.half_life),
            ));
        }
        if !(0.0..=0.5).contains(&self.explore) {
            return Err((
                "learning.explore",
                format!(
                    "must be between 0 and 0.5 (the share of routed decisions that explore; 0.02 is typical), got {}",
                    self.explore
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.explore_floor) {
            return Err((
                "learning.explore_floor",
                format!("must be a P(success) between 0 and 1, got {}", self.explore_floor),
            ));
        }
        if self.refusal_patterns.iter().any(|p| p.trim().is_empty()) {
            return Err(("learning.refusal_patterns", "must not contain empty patterns".into()));
        }
        if !(1..=MAX_FEEDBACK_WINDOW_S).contains(&self.feedback_window_s) {
            return Err((
                "learning.feedback_window_s",
                format!(
                    "must be between 1 second and 30 days ({MAX_FEEDBACK_WINDOW_S}): how long feedback on another \
                     replica can still be learned from (3600 is the default), got {}",
                    self.feedback_window_s
                ),
            ));
        }
        if !(self.max_key_share > 0.0 && self.max_key_share <= 1.0) {
            return Err((
                "learning.max_key_share",
                format!(
                    "must be a share in (0, 1]: the most one client key's feedback may make up of a (model, domain) \
                     cell (0.25 is the default; 1 turns the cap off), got {}",
                    self.max_key_share
                ),
            ));
        }
        if !(1..=MAX_FEEDBACK_WINDOW_S).contains(&self.key_share_window_s) {
            return Err((
                "learning.key_share_window_s",
                format!(
                    "must be between 1 second and 30 days ({MAX_FEEDBACK_WINDOW_S}): the window over which a key's \
                     share of a cell is counted (3600 is the default), got {}",
                    self.key_share_window_s
                ),
            ));
        }
        if self.online && self.state_file.as_os_str().is_empty() {
            return Err(("learning.state_file", "must name a file to keep the posteriors in".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_key() {
        assert!(LearningConfig::default().validate().is_ok());
        let bad = |c: LearningConfig| c.validate().unwrap_err().0;
        assert_eq!(bad(LearningConfig { prior_strength: 0.0, ..Default::default() }), "learning.prior_strength");
        assert_eq!(bad(LearningConfig { half_life: f64::NAN, ..Default::default() }), "learning.half_life");
        assert_eq!(
            bad(LearningConfig { refusal_patterns: vec![" ".into()], ..Default::default() }),
            "learning.refusal_patterns"
        );
        assert_eq!(bad(LearningConfig { feedback_window_s: 0, ..Default::default() }), "learning.feedback_window_s");
        let forever = LearningConfig { feedback_window_s: u64::MAX, ..Default::default() };
        assert_eq!(bad(forever), "learning.feedback_window_s");
        for share in [0.0, -0.1, 1.5, f64::NAN] {
            assert_eq!(bad(LearningConfig { max_key_share: share, ..Default::default() }), "learning.max_key_share");
        }
        assert!(LearningConfig { max_key_share: 1.0, ..Default::default() }.validate().is_ok());
        let never = LearningConfig { key_share_window_s: 0, ..Default::default() };
        assert_eq!(bad(never), "learning.key_share_window_s");
        let parsed: LearningConfig = toml::from_str("max_key_share = 0.5\nkey_share_window_s = 60").unwrap();
        assert_eq!((parsed.max_key_share, parsed.key_share_window_s), (0.5, 60));
    }
}
