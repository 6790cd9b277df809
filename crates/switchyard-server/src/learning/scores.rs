//! Feedback in online learning, guarded so that it cannot be turned against other tenants.
//!
//! - **Once per request.** The score counted for a request is remembered with its prediction. A resend does
//!   not add an observation: it replaces the earlier score, moving the cells' successes by the difference
//!   (`w · (new − old)` per domain, kept within `[0, n]`), so however often a request is scored it is worth
//!   one observation, holding its latest score. (The difference is applied at full weight: after later
//!   observations have faded the original, a resend moves the cell by at most one observation's weight.)
//! - **A key's share.** A request made with a client key is learned from only while that key's feedback in
//!   each of the prompt's (model, domain) cells stays within `learning.max_key_share` of the cell's
//!   pseudo-observations over `learning.key_share_window_s` (see `share.rs`). Feedback over it is stored
//!   but not learned from. Requests made without a key are not capped (a server without keys has no tenants).
//! - **Answered requests only.** The handler learns only from requests an upstream answered through the
//!   server (the decision log says so); a `/v1/route` decision's score is [`Verdict::RoutedOnly`].
//!
//! With `[state] url` the replicas share this: one Redis script ([`crate::shared::online`]) settles each
//! score atomically against the shared cells, the request's counted score (kept in Redis for
//! `learning.feedback_window_s`, like the prediction) and the key's share there, so a resend to another
//! replica replaces the score too, and a key's share counts over every replica. The replica then applies
//! what Redis decided to its own cells (which the next sync replaces with Redis's anyway). While Redis does not
//! answer, this replica decides alone, on what it knows, and the score is written to Redis when it answers
//! again; the script, keyed by request id, neither counts it twice nor lets it replace a later score's count.
//! With Redis, feedback is learned from only within `learning.feedback_window_s` of the answer.

use std::time::{Duration, Instant};

use switchyard_core::{OnlineSettings, Posteriors};

use super::{Entry, Learning, Observation};

/// What online learning did with a stored feedback score.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The request's first score: counted as one observation.
    Counted,
    /// A score had been counted for the request: the new one replaced it (no observation added).
    Replaced,
    /// Online learning is off.
    Off,
    /// The request was a `/v1/route` decision, which no upstream answered through the server.
    RoutedOnly,
    /// The request's prediction is not remembered (answered too long ago, before a restart, or while Redis
    /// was out of reach).
    NotRemembered,
    /// The key's feedback already makes up `learning.max_key_share` of this (model, domain) cell.
    KeyShare {
        /// The model.
        model: String,
        /// The domain.
        domain: String,
    },
}

impl Verdict {
    /// Whether the posteriors learned from the score.
    pub fn learned(&self) -> bool {
        matches!(self, Self::Counted | Self::Replaced)
    }

    /// Why the score was not learned from: a code and a sentence for the client (`None` when it was).
    pub fn reason(&self) -> Option<(&'static str, String)> {
        let stored = "the score is stored (for `switchyard logs export`)";
        Some(match self {
            Self::Counted | Self::Replaced => return None,
            Self::Off => ("online_off", format!("online learning is off ([learning] online = false); {stored}")),
            Self::RoutedOnly => (
                "routed_only",
                format!(
                    "the request was a /v1/route decision that no upstream answered through switchyard, so online \
                     learning does not learn from it; {stored}, marked \"routed_only\"; send the request through \
                     /v1/chat/completions to have its feedback learned from"
                ),
            ),
            Self::NotRemembered => (
                "not_remembered",
                format!(
                    "the request's prediction is no longer remembered (answered too long ago, before a restart, or \
                     while the shared state was out of reach); {stored}"
                ),
            ),
            Self::KeyShare { model, domain } => (
                "key_share",
                format!(
                    "this key's feedback already makes up the most one key may of what online learning knows about \
                     {model} in {domain} (learning.max_key_share, over learning.key_share_window_s); {stored}; \
                     feedback is learned from again as other traffic is observed or the window passes"
                ),
            ),
        })
    }

    fn label(&self) -> Option<&'static str> {
        Some(match self {
            Self::RoutedOnly => "routed_only",
            Self::NotRemembered => "not_remembered",
            Self::KeyShare { .. } => "key_share",
            _ => return None,
        })
    }
}

/// A feedback score to settle in the shared cells.
pub(crate) struct Scoring<'a> {
    /// The request scored.
    pub(crate) request_id: &'a str,
    /// The fingerprint of the answering model's estimates.
    pub(crate) fingerprint: &'a str,
    /// What was predicted for it.
    pub(crate) observation: &'a Observation,
    /// The score.
    pub(crate) score: f64,
    /// The posteriors' settings.
    pub(crate) settings: OnlineSettings,
    /// The client key whose share is checked (`None`: no cap).
    pub(crate) key: Option<&'a str>,
    /// The most a key may make up of a cell.
    pub(crate) max_share: f64,
    /// The window a key's share is counted over.
    pub(crate) window: Duration,
    /// How long the request's counted score is kept.
    pub(crate) ttl: Duration,
}

/// How a score was settled, by Redis (on the shared cells) or by this replica.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Settled {
    /// Counted as a new observation.
    Counted,
    /// Replaced the request's earlier score, this one.
    Replaced(f64),
    /// Not learned from: the key's share of this domain's cell is used up.
    OverShare(String),
}

impl Learning {
    /// Learns from a feedback score for `request_id`, made with client key `key` (see the module docs).
    pub async fn feedback(&self, request_id: &str, key: Option<&str>, score: f64) -> Verdict {
        let Some(observation) = self.recall(request_id).await else {
            self.unlearned(&Verdict::NotRemembered);
            return Verdict::NotRemembered;
        };
        let (max_share, window) = {
            let shares = self.shares.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (shares.max(), shares.window())
        };
        let key = key.filter(|_| max_share < 1.0);
        let fingerprint = self.lock().fingerprints.get(&observation.model).cloned();
        let from_shared = match (&self.shared, fingerprint) {
            (Some(shared), Some(fingerprint)) => {
                let scoring = Scoring {
                    request_id,
                    fingerprint: &fingerprint,
                    observation: &observation,
                    score,
                    settings: self.settings,
                    key,
                    max_share,
                    window,
                    ttl: self.feedback_window,
                };
                shared.score(&scoring).await
            }
            _ => None,
        };
        let verdict = match self.settle(request_id, key, &observation, score, from_shared) {
            Settled::Counted => Verdict::Counted,
            Settled::Replaced(_) => Verdict::Replaced,
            Settled::OverShare(domain) => Verdict::KeyShare { model: observation.model.clone(), domain },
        };
        self.unlearned(&verdict);
        verdict
    }

    /// Counts a score that was stored but not learned from, for the metrics (learned ones are not counted).
    pub fn unlearned(&self, verdict: &Verdict) {
        if let Some(label) = verdict.label() {
            *self.unlearned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(label).or_default() += 1;
        }
    }

    /// The prediction remembered for `request_id`: this replica's, or (with `[state] url`) the one the
    /// answering replica kept in Redis. With Redis, only within `learning.feedback_window_s` of the answer,
    /// as long as Redis keeps the request's counted score.
    async fn recall(&self, request_id: &str) -> Option<Observation> {
        let local = {
            let pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let fresh = |e: &&Entry| self.shared.is_none() || e.at.elapsed() < self.feedback_window;
            pending.by_id.get(request_id).filter(fresh).map(|e| e.observation.clone())
        };
        let shared = match local {
            Some(o) => return Some(o),
            None => self.shared.as_ref()?,
        };
        // The answering replica writes the prediction in the background as it answers: feedback that arrives
        // here first waits for it a little, as the feedback handler waits for the log row.
        let mut found = shared.load_observation(request_id).await;
        for ms in [50, 150] {
            if found.is_some() || shared.is_degraded() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(ms)).await;
            found = shared.load_observation(request_id).await;
        }
        found
    }

    /// Decides (unless Redis did: `from_shared`) and applies a score to this replica's cells, remembering it as
    /// the request's counted score.
    fn settle(
        &self,
        request_id: &str,
        key: Option<&str>,
        o: &Observation,
        score: f64,
        from_shared: Option<Settled>,
    ) -> Settled {
        let now = switchyard_store::now_ms();
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut posteriors = self.lock();
        let mut shares = self.shares.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let settled = from_shared.unwrap_or_else(|| match pending.by_id.get(request_id).and_then(|e| e.applied) {
            Some(previous) => Settled::Replaced(previous),
            None => {
                let cells = posteriors.cells.get(&o.model);
                let over =
                    key.and_then(|k| shares.over(k, &o.model, &o.domains, cells, self.settings.prior_strength, now));
                over.map_or(Settled::Counted, Settled::OverShare)
            }
        });
        match &settled {
            Settled::Counted => {
                posteriors.observe(&o.model, &o.domains, score, o.predicted, &self.settings);
                if let Some(k) = key {
                    shares.add(k, &o.model, &o.domains, now);
                }
            }
            Settled::Replaced(previous) => replace(&mut posteriors, o, score - previous),
            Settled::OverShare(_) => return settled,
        }
        match pending.by_id.get_mut(request_id) {
            Some(entry) => entry.applied = Some(score),
            None => {
                let entry = Entry { observation: o.clone(), applied: Some(score), at: Instant::now() };
                pending.insert(request_id, entry);
            }
        }
        drop((pending, posteriors, shares));
        self.changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if settled == Settled::Counted {
            let mut updates = self.updates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *updates.entry(super::Source::Feedback.label()).or_default() += 1;
        }
        settled
    }
}

/// Moves the cells of a counted observation by `delta` successes per unit of weight (a resent score's
/// difference), keeping each cell's successes within `[0, n]`.
fn replace(posteriors: &mut Posteriors, o: &Observation, delta: f64) {
    let Some(cells) = posteriors.cells.get_mut(&o.model) else { return };
    for (domain, w) in o.domains.iter().filter(|(_, w)| *w > 0.0) {
        if let Some(cell) = cells.get_mut(domain) {
            cell.successes = (cell.successes + w * delta).clamp(0.0, cell.n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learning::LearningConfig;

    fn learning(config: LearningConfig) -> Learning {
        Learning::with(&LearningConfig { online: true, ..config }, Posteriors::default())
    }

    fn math(predicted: f64) -> Observation {
        Observation { model: "m".into(), domains: vec![("math".into(), 1.0)], predicted }
    }

    #[tokio::test]
    async fn a_resent_score_replaces_the_first_and_adds_no_observation() {
        let l = learning(LearningConfig::default());
        l.remember("sy-1", math(0.8));
        assert_eq!(l.feedback("sy-1", Some("team-a"), 0.0).await, Verdict::Counted);
        for _ in 0..300 {
            assert_eq!(l.feedback("sy-1", Some("team-a"), 0.0).await, Verdict::Replaced);
        }
        let cell = l.lock().cells["m"]["math"];
        assert_eq!((cell.n, cell.successes), (1.0, 0.0), "300 resends are still one observation");
        assert_eq!(l.feedback("sy-1", Some("team-a"), 1.0).await, Verdict::Replaced);
        assert_eq!(l.lock().cells["m"]["math"].successes, 1.0, "the latest score is the one counted");
        let mut text = String::new();
        l.render(&mut text);
        assert!(text.contains("switchyard_online_updates_total{source=\"feedback\"} 1\n"), "{text}");
    }

    #[tokio::test]
    async fn a_key_moves_a_cell_only_up_to_its_share() {
        let l = learning(LearningConfig::default());
        let mut verdicts = Vec::new();
        for i in 0..20 {
            l.remember(&format!("a-{i}"), math(0.8));
            verdicts.push(l.feedback(&format!("a-{i}"), Some("team-a"), 0.0).await);
        }
        // κ = 20: 6 observations are within a quarter of the cell (6 ≤ 0.25 · 26), a 7th is not.
        let counted = verdicts.iter().filter(|v| **v == Verdict::Counted).count();
        assert_eq!(counted, 6, "{verdicts:?}");
        let over = Verdict::KeyShare { model: "m".into(), domain: "math".into() };
        assert_eq!(verdicts[19], over);
        assert!(over.reason().unwrap().1.contains("learning.max_key_share"));
        let n = l.lock().cells["m"]["math"].n;
        assert!((n - 6.0).abs() < 0.1, "six observations (faded by half_life): {n}");
        // Another key, and requests made without a key, are learned from.
        l.remember("b-1", math(0.8));
        assert_eq!(l.feedback("b-1", Some("team-b"), 1.0).await, Verdict::Counted);
        for i in 0..30 {
            l.remember(&format!("open-{i}"), math(0.8));
            assert_eq!(l.feedback(&format!("open-{i}"), None, 1.0).await, Verdict::Counted);
        }
        // A score already counted can still be replaced over the share.
        assert_eq!(l.feedback("a-0", Some("team-a"), 1.0).await, Verdict::Replaced);
        let mut text = String::new();
        l.render(&mut text);
        assert!(text.contains("switchyard_online_feedback_unlearned_total{reason=\"key_share\"} 14"), "{text}");
        // With max_key_share = 1 there is no cap.
        let open = learning(LearningConfig { max_key_share: 1.0, ..Default::default() });
        for i in 0..20 {
            open.remember(&format!("a-{i}"), math(0.8));
            assert_eq!(open.feedback(&format!("a-{i}"), Some("team-a"), 0.0).await, Verdict::Counted);
        }
    }
}
