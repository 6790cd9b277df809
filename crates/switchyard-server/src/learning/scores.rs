//! Feedback in online learning, guarded so that it cannot be turned against other tenants.
//!
//! - **Once per request.** The score counted for a request is remembered with its prediction. A resend does
//!   not add an observation: it replaces the earlier score, moving the cells' successes by the difference
//!   (`w · (new − old)` per domain, kept within `[0, n]`), so however often a request is scored it is worth
//!   one observation, holding its latest score. (The difference is applied at full weight: after later
//!   observations have faded the original, a resend moves the cell by at most one observation's weight.)
//!   A score can be replaced for `learning.key_share_window_s` after the request's first score was counted
//!   ([`Verdict::RescoreClosed`] after), and a score older than the one counted (by the millisecond its
//!   feedback arrived in; of two in the same millisecond, the one settled last stands) does not replace it
//!   ([`Verdict::Superseded`]).
//! - **A key's share.** A request made with a client key is learned from only while that key's feedback in
//!   each of the prompt's (model, domain) cells stays within `learning.max_key_share` of the cell's
//!   pseudo-observations over `learning.key_share_window_s` (see `share.rs`). A replaced score is charged by how
//!   far it moves the cell (`w · |new − old|`), so rescoring old requests moves a cell no further than new
//!   scores could. Feedback over it is stored but not learned from. Requests made without a key are not capped
//!   (a server without keys has no tenants).
//! - **Answered requests only.** The handler learns only from requests an upstream answered through the
//!   server (the decision log says so); a `/v1/route` decision's score is [`Verdict::RoutedOnly`], a gateway
//!   request no upstream answered [`Verdict::Unanswered`]. Feedback counts in the cells of the estimates the
//!   request was answered with: after a reload that changed them it is [`Verdict::EstimatesChanged`].
//!
//! With `[state] url` the replicas share this: one Redis script ([`crate::replicas::online`]) settles each
//! score atomically against the shared cells, the request's counted score (kept in Redis as long as the
//! request can be learned from, with the time it was counted and the time its feedback arrived) and the key's
//! share there, so a resend to another replica replaces the score too, and a key's share counts over every
//! replica. The replica then applies what Redis decided to its own cells (which the next sync replaces with
//! Redis's anyway). While Redis does not answer, this replica decides alone, on what it knows, and a score it
//! learned from is written to Redis when it answers again; the script, keyed by request id, never counts it
//! twice, and a score that arrived before the one Redis counted since (sent to another replica) does not
//! replace it. With Redis, feedback is learned from only within `learning.feedback_window_s` of the answer.

use std::time::Duration;

use switchyard_core::{OnlineSettings, Posteriors};

use super::share::{Charge, Shares};
use super::{Applied, Entry, Learning, Remembered};

/// The reasons a stored score was not learned from, as the metrics count them.
pub const UNLEARNED: [&str; 7] =
    ["routed_only", "unanswered", "not_remembered", "key_share", "rescore_closed", "superseded", "estimates_changed"];

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
    /// The request went through the gateway, but no upstream answered it.
    Unanswered,
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
    /// The request's score was counted more than `learning.key_share_window_s` ago: it is no longer replaced.
    RescoreClosed,
    /// A score for the request that arrived later than this one is counted already.
    Superseded,
    /// The model's estimates changed (a router reload) since the request was answered: its cells started
    /// afresh, and the request's prediction no longer speaks for them.
    EstimatesChanged {
        /// The model.
        model: String,
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
        let label = self.label()?;
        Some((
            label,
            match self {
                Self::Off => format!("online learning is off ([learning] online = false); {stored}"),
                Self::RoutedOnly => format!(
                    "the request was a /v1/route decision that no upstream answered through switchyard, so online \
                     learning does not learn from it; {stored}, marked \"routed_only\"; send the request through \
                     /v1/chat/completions to have its feedback learned from"
                ),
                Self::Unanswered => "no upstream answered the request (every attempt failed, or the upstream refused \
                                     it), so there is no answer to learn about; the score is stored (`switchyard \
                                     logs export` leaves out requests no model answered)"
                    .to_string(),
                Self::NotRemembered => format!(
                    "the request's prediction is no longer remembered (answered too long ago, before a restart, or \
                     while the shared state was out of reach); {stored}"
                ),
                Self::KeyShare { model, domain } => format!(
                    "this key's feedback already makes up the most one key may of what online learning knows about \
                     {model} in {domain} (learning.max_key_share, over learning.key_share_window_s; a resent score \
                     counts by how far it moves the estimate); {stored}; feedback is learned from again as other \
                     traffic is observed or the window passes"
                ),
                Self::RescoreClosed => format!(
                    "the request's score was counted more than learning.key_share_window_s ago, so a new score no \
                     longer replaces it in online learning; {stored}"
                ),
                Self::Superseded => format!(
                    "a score for this request sent later than this one is already counted (it arrived first at \
                     another replica); {stored}"
                ),
                Self::EstimatesChanged { model } => format!(
                    "the router was reloaded with other estimates for {model} since the request was answered, and \
                     online learning started afresh for it; {stored}"
                ),
                Self::Counted | Self::Replaced => return None,
            },
        ))
    }

    /// The reason's code, for the metrics and the answer (`None` when learned from).
    fn label(&self) -> Option<&'static str> {
        Some(match self {
            Self::Counted | Self::Replaced => return None,
            Self::Off => "online_off",
            Self::RoutedOnly => "routed_only",
            Self::Unanswered => "unanswered",
            Self::NotRemembered => "not_remembered",
            Self::KeyShare { .. } => "key_share",
            Self::RescoreClosed => "rescore_closed",
            Self::Superseded => "superseded",
            Self::EstimatesChanged { .. } => "estimates_changed",
        })
    }
}

/// A feedback score to settle (in the shared cells, or on this replica).
pub(crate) struct Scoring<'a> {
    /// The request scored.
    pub(crate) request_id: &'a str,
    /// The fingerprint of the answering model's estimates now (the shared cells' key).
    pub(crate) fingerprint: Option<&'a str>,
    /// What was predicted for it, and when it was answered.
    pub(crate) remembered: &'a Remembered,
    /// The score.
    pub(crate) score: f64,
    /// When the feedback arrived, milliseconds since the Unix epoch.
    pub(crate) ts_ms: i64,
    /// The posteriors' settings.
    pub(crate) settings: OnlineSettings,
    /// The client key whose share is checked (`None`: no cap).
    pub(crate) key: Option<&'a str>,
    /// The most a key may make up of a cell.
    pub(crate) max_share: f64,
    /// The window a key's share is counted over, and for which a counted score can be replaced.
    pub(crate) window: Duration,
    /// Until when the request can be counted (its answer plus `learning.feedback_window_s`), ms since the epoch.
    pub(crate) until_ms: i64,
}

/// How a score was settled, by Redis (on the shared cells) or by this replica.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Settled {
    /// Counted as a new observation.
    Counted,
    /// Replaced the request's earlier score `previous`, first counted at `counted_ms`.
    Replaced {
        /// The score replaced.
        previous: f64,
        /// When the request's first score was counted, ms since the epoch.
        counted_ms: i64,
    },
    /// Not learned from: the key's share of this domain's cell is used up.
    OverShare(String),
    /// Not learned from: the counted score was counted more than the window ago.
    Closed,
    /// Not learned from: a score that arrived later is counted.
    Superseded,
    /// Not learned from: the request can no longer be counted (answered over `feedback_window_s` ago).
    Expired,
}

/// Milliseconds in `d`, as an `i64`.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Learning {
    /// Learns from a feedback score for `request_id`, made with client key `key`, that arrived at `ts_ms`
    /// (milliseconds since the Unix epoch; see the module docs).
    pub async fn feedback(&self, request_id: &str, key: Option<&str>, score: f64, ts_ms: i64) -> Verdict {
        let verdict = self.learn_score(request_id, key, score, ts_ms).await;
        self.unlearned(&verdict);
        verdict
    }

    async fn learn_score(&self, request_id: &str, key: Option<&str>, score: f64, ts_ms: i64) -> Verdict {
        let Some(remembered) = self.recall(request_id, ts_ms).await else {
            return Verdict::NotRemembered;
        };
        let model = remembered.observation.model.clone();
        let fingerprint = self.lock().fingerprints.get(&model).cloned();
        if remembered.fingerprint.is_some() && remembered.fingerprint != fingerprint {
            return Verdict::EstimatesChanged { model };
        }
        let (max_share, window) = {
            let shares = self.shares.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (shares.max(), shares.window())
        };
        let scoring = Scoring {
            request_id,
            fingerprint: fingerprint.as_deref(),
            remembered: &remembered,
            score,
            ts_ms,
            settings: self.settings,
            key: key.filter(|_| max_share < 1.0),
            max_share,
            window,
            until_ms: remembered.answered_ms.saturating_add(millis(self.feedback_window)),
        };
        let shared = self.shared.as_ref().filter(|_| fingerprint.is_some());
        let from_shared = match shared {
            Some(shared) => shared.score(&scoring).await,
            None => None,
        };
        let decided_here = from_shared.is_none();
        let settled = self.settle(&scoring, from_shared);
        // Decided here while Redis did not answer: a score learned from is written to Redis when it does (one
        // not learned from is not, or Redis could count what the client was told was not).
        if let Some(shared) = shared.filter(|_| decided_here) {
            if matches!(settled, Settled::Counted | Settled::Replaced { .. }) {
                shared.keep_score(&scoring);
            }
        }
        match settled {
            Settled::Counted => Verdict::Counted,
            Settled::Replaced { .. } => Verdict::Replaced,
            Settled::OverShare(domain) => Verdict::KeyShare { model, domain },
            Settled::Closed => Verdict::RescoreClosed,
            Settled::Superseded => Verdict::Superseded,
            Settled::Expired => Verdict::NotRemembered,
        }
    }

    /// Counts a score that was stored but not learned from, for the metrics (learned ones are not counted).
    pub fn unlearned(&self, verdict: &Verdict) {
        if let Some(label) = verdict.label().filter(|l| UNLEARNED.contains(l)) {
            *self.unlearned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(label).or_default() += 1;
        }
    }

    /// The prediction remembered for `request_id`: this replica's, or (with `[state] url`) the one the
    /// answering replica kept in Redis. With Redis, only within `learning.feedback_window_s` of the answer
    /// (`now_ms`: the feedback's arrival).
    async fn recall(&self, request_id: &str, now_ms: i64) -> Option<Remembered> {
        let window = millis(self.feedback_window);
        let local = {
            let pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let fresh = |e: &&Entry| self.shared.is_none() || now_ms - e.remembered.answered_ms < window;
            pending.by_id.get(request_id).filter(fresh).map(|e| e.remembered.clone())
        };
        let shared = match local {
            Some(r) => return Some(r),
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
        // Kept by an older version, without its answer's time: counted from now.
        found.map(|r| if r.answered_ms == 0 { Remembered { answered_ms: now_ms, ..r } } else { r })
    }

    /// Decides (unless Redis did: `from_shared`) and applies a score to this replica's cells, remembering it as
    /// the request's counted score.
    fn settle(&self, s: &Scoring<'_>, from_shared: Option<Settled>) -> Settled {
        let o = &s.remembered.observation;
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut posteriors = self.lock();
        let mut shares = self.shares.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let applied = pending.by_id.get(s.request_id).and_then(|e| e.applied);
        let settled = from_shared.unwrap_or_else(|| decide(s, applied, &posteriors, &shares));
        let (charge, counted_ms) = match &settled {
            Settled::Counted => {
                posteriors.observe(&o.model, &o.domains, s.score, o.predicted, &self.settings);
                (Charge::COUNT, s.ts_ms)
            }
            Settled::Replaced { previous, counted_ms } => {
                replace(&mut posteriors, s, s.score - previous);
                (Charge::replace(s.score - previous), *counted_ms)
            }
            _ => return settled,
        };
        if let Some(k) = s.key {
            shares.add(k, o, charge, s.ts_ms);
        }
        let applied = Some(Applied { score: s.score, ts_ms: s.ts_ms, counted_ms });
        match pending.by_id.get_mut(s.request_id) {
            Some(entry) => entry.applied = applied,
            // Settled by Redis on a replica that did not answer the request: remembered with its answer's time,
            // so that it is forgotten here when Redis forgets it.
            None => pending.insert(s.request_id, Entry { remembered: s.remembered.clone(), applied }),
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

/// What this replica decides alone for score `s`, given the score counted for the request so far (`applied`).
fn decide(s: &Scoring<'_>, applied: Option<Applied>, posteriors: &Posteriors, shares: &Shares) -> Settled {
    let o = &s.remembered.observation;
    let cells = posteriors.cells.get(&o.model);
    let over = |charge| s.key.and_then(|k| shares.over(k, o, cells, s.settings.prior_strength, charge, s.ts_ms));
    match applied {
        Some(a) if s.ts_ms < a.ts_ms => Settled::Superseded,
        Some(a) if s.ts_ms - a.counted_ms >= millis(s.window) => Settled::Closed,
        Some(a) => over(Charge::replace(s.score - a.score))
            .map_or(Settled::Replaced { previous: a.score, counted_ms: a.counted_ms }, Settled::OverShare),
        None => over(Charge::COUNT).map_or(Settled::Counted, Settled::OverShare),
    }
}

/// Moves the cells of a counted observation by `delta` successes per unit of weight (a resent score's
/// difference), keeping each cell's successes within `[0, n]`.
fn replace(posteriors: &mut Posteriors, s: &Scoring<'_>, delta: f64) {
    let o = &s.remembered.observation;
    let Some(cells) = posteriors.cells.get_mut(&o.model) else { return };
    for (domain, w) in o.domains.iter().filter(|(_, w)| *w > 0.0) {
        if let Some(cell) = cells.get_mut(domain) {
            cell.successes = (cell.successes + w * delta).clamp(0.0, cell.n);
        }
    }
}

#[cfg(test)]
mod tests;
