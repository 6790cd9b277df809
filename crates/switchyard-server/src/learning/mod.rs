//! Online learning in the server (`[learning] online = true`): every feedback score, and every upstream
//! outcome that signals quality (an empty answer, a refusal, a cut at the caller's `max_tokens`), updates the
//! answering model's posteriors in the prompt's domains (see [`switchyard_core::Posteriors`]), and every
//! decision routes on predictions moved by them.
//!
//! What the router predicted for a request is remembered by request id until its feedback arrives (the most
//! recent [`PENDING_CAP`] requests). The posteriors are kept in `learning.state_file` (written atomically
//! when they changed, at most every [`SAVE_EVERY`], and at shutdown) and, per model, reset when a reloaded
//! router predicts differently for that model.
//!
//! Feedback cannot be turned against other tenants (see [`scores`]): a request's score counts once however
//! often it is sent (a resend replaces it, for `learning.key_share_window_s` after the first count), one client
//! key's feedback (new scores and rescores alike) moves a (model, domain) cell by at most
//! `learning.max_key_share` of it per window, only requests an upstream answered through the server are
//! learned from (the feedback handler checks that against the decision log), and only in the cells of the
//! estimates they were answered with.

pub mod config;
mod replicated;
pub mod scores;
mod share;

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchyard_core::{OnlineSettings, Posteriors, Prediction, Router};

use crate::replicas::SharedState;
use replicated::SharedCells;

pub use config::LearningConfig;
pub use scores::Verdict;

/// Requests whose predictions are remembered for their feedback.
pub const PENDING_CAP: usize = 100_000;
/// Most time between a change of the posteriors and its write to the state file.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// What the router predicted for the model that answered a request.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Observation {
    /// The model that answered.
    pub model: String,
    /// The prompt's domains with their probabilities.
    pub domains: Vec<(String, f64)>,
    /// The router's P(success) for it, before the online shift.
    pub predicted: f64,
}

/// A prediction remembered for a request's feedback (here, and with `[state] url` in Redis): what was
/// predicted, when the request was answered and against which estimates of the answering model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Remembered {
    /// What was predicted.
    #[serde(flatten)]
    pub observation: Observation,
    /// When the request was answered, milliseconds since the Unix epoch (0: unknown, kept by an older version).
    #[serde(default)]
    pub answered_ms: i64,
    /// The fingerprint of the answering model's estimates when it answered (`None`: unknown): feedback after a
    /// reload that changed them is not learned from, as the cells it was counted in started afresh.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// Where an outcome came from, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A client's feedback score.
    Feedback,
    /// An empty answer.
    Empty,
    /// An answer that starts like a refusal.
    Refusal,
    /// An answer cut at the caller's `max_tokens`.
    Length,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Self::Feedback => "feedback",
            Self::Empty => "empty",
            Self::Refusal => "refusal",
            Self::Length => "length",
        }
    }
}

/// A remembered prediction, with the feedback score counted for it so far.
struct Entry {
    remembered: Remembered,
    /// The score the posteriors hold for this request (a resend replaces it).
    applied: Option<Applied>,
}

/// The feedback score counted for a request.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Applied {
    /// The score.
    score: f64,
    /// When the feedback that sent it arrived (ms since the Unix epoch): an older one does not replace it.
    ts_ms: i64,
    /// When the request's first score was counted: it can be replaced for `learning.key_share_window_s` after.
    counted_ms: i64,
}

#[derive(Default)]
struct Pending {
    order: VecDeque<String>,
    by_id: HashMap<String, Entry>,
}

impl Pending {
    /// Remembers `entry` for `request_id` (keeping the newest [`PENDING_CAP`]).
    fn insert(&mut self, request_id: &str, entry: Entry) {
        if self.by_id.insert(request_id.to_string(), entry).is_none() {
            self.order.push_back(request_id.to_string());
        }
        while self.order.len() > PENDING_CAP {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }
}

/// The server's online learning state.
pub struct Learning {
    settings: OnlineSettings,
    posteriors: Mutex<Posteriors>,
    pending: Mutex<Pending>,
    path: PathBuf,
    refusals: Vec<String>,
    /// Changes made, and the count at the last save.
    changes: AtomicU64,
    saved: AtomicU64,
    updates: Mutex<HashMap<&'static str, u64>>,
    /// Feedback stored but not learned from, by reason.
    unlearned: Mutex<HashMap<&'static str, u64>>,
    /// Each client key's recent feedback per cell, and the most it may make up of one.
    shares: Mutex<share::Shares>,
    /// With `[state] url`: the replicas' shared cells, and when they were last read.
    shared: Option<Arc<SharedCells>>,
    sync_every: Duration,
    last_sync: Mutex<Option<Instant>>,
    /// How long a prediction stays in Redis for feedback on another replica.
    feedback_window: Duration,
}

impl Learning {
    /// Opens the state file (when there is one) and keeps the cells learned against `router`'s current
    /// estimates. An unreadable file is an error: it holds what was learned, so it is not overwritten.
    pub fn open(config: &LearningConfig, router: &Router) -> Result<Self, String> {
        let learning = Self::with(config, read_state(&config.state_file)?);
        learning.align(router);
        Ok(learning)
    }

    /// The state for `config`, starting from `posteriors`.
    fn with(config: &LearningConfig, posteriors: Posteriors) -> Self {
        Self {
            settings: config.settings(),
            posteriors: Mutex::new(posteriors),
            pending: Mutex::new(Pending::default()),
            path: config.state_file.clone(),
            refusals: config.refusal_patterns.iter().map(|p| p.trim().to_lowercase()).collect(),
            changes: AtomicU64::new(0),
            saved: AtomicU64::new(0),
            updates: Mutex::new(HashMap::new()),
            unlearned: Mutex::new(HashMap::new()),
            shares: Mutex::new(share::Shares::new(
                config.max_key_share,
                Duration::from_secs(config.key_share_window_s),
            )),
            shared: None,
            sync_every: Duration::from_millis(config.sync_ms),
            last_sync: Mutex::new(None),
            feedback_window: Duration::from_secs(config.feedback_window_s),
        }
    }

    /// Shares the posteriors with the other replicas through Redis: outcomes are added there too, and the
    /// cells are read back every `learning.sync_ms`.
    pub fn share(&mut self, shared: Arc<SharedState>) {
        self.shared = Some(SharedCells::new(shared));
    }

    /// Reads the shared cells back from Redis when they are due (every `learning.sync_ms`); Redis's cells
    /// replace this replica's for every model that has some there. Without Redis, or while it does not
    /// answer, the replica goes on with its own.
    pub async fn sync(&self) {
        let Some(shared) = &self.shared else { return };
        {
            let mut last = self.last_sync.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < self.sync_every) {
                return;
            }
            *last = Some(Instant::now());
        }
        let models: Vec<(String, String)> =
            self.lock().fingerprints.iter().map(|(m, f)| (m.clone(), f.clone())).collect();
        let Some(read) = shared.read_online(&models).await else { return };
        let mut posteriors = self.lock();
        for (model, cells) in read.into_iter().filter(|(_, cells)| !cells.is_empty()) {
            posteriors.cells.insert(model, cells);
        }
    }

    /// Keeps the cells of the models whose estimates `router` leaves as they were; the others start afresh.
    pub fn align(&self, router: &Router) {
        let reset = self.lock().align(&router.model_fingerprints());
        if !reset.is_empty() {
            tracing::info!("online learning: starting afresh for {} (their estimates changed)", reset.join(", "));
            self.changes.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Posteriors> {
        self.posteriors.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The domains a prediction's outcome counts in: its domain probabilities, or one `all` cell for a router
    /// without domains.
    pub fn domains(prediction: &Prediction) -> Vec<(String, f64)> {
        if prediction.domains.is_empty() {
            return vec![("all".to_string(), 1.0)];
        }
        prediction.domains.iter().filter(|d| d.p >= 0.01).map(|d| (d.domain.clone(), d.p)).collect()
    }

    /// Moves every model's P(success) in `prediction` by its posteriors; returns the router's own values, in
    /// model order.
    pub fn adjust(&self, prediction: &mut Prediction) -> Vec<f64> {
        let domains = Self::domains(prediction);
        let posteriors = self.lock();
        prediction
            .models
            .iter_mut()
            .map(|e| {
                let raw = e.p_success;
                e.p_success = posteriors.adjust(&e.model, &domains, raw, &self.settings);
                raw
            })
            .collect()
    }

    /// Remembers what was predicted for the model that answered `request_id`, for its feedback; with
    /// `[state] url`, in Redis too (for `learning.feedback_window_s`), so that feedback sent to any replica
    /// is learned from.
    pub fn remember(&self, request_id: &str, observation: Observation) {
        self.remember_at(request_id, observation, switchyard_store::now_ms());
    }

    /// [`Self::remember`], answered at `now_ms`; with the fingerprint of the model's estimates now.
    fn remember_at(&self, request_id: &str, observation: Observation, now_ms: i64) {
        let fingerprint = self.lock().fingerprints.get(&observation.model).cloned();
        let remembered = Remembered { observation, answered_ms: now_ms, fingerprint };
        if let (Some(shared), Ok(runtime)) = (self.shared.clone(), tokio::runtime::Handle::try_current()) {
            let (id, r, ttl) = (request_id.to_string(), remembered.clone(), self.feedback_window);
            runtime.spawn(async move { shared.save_observation(&id, &r, ttl).await });
        }
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Remembered again (it should not be), the request keeps the score counted for it.
        let applied = pending.by_id.get(request_id).and_then(|e| e.applied);
        pending.insert(request_id, Entry { remembered, applied });
    }

    /// Counts an outcome (and, with `[state] url`, adds it to the shared cells in the background).
    pub fn observe(&self, o: &Observation, score: f64, source: Source) {
        let fingerprint = {
            let mut posteriors = self.lock();
            posteriors.observe(&o.model, &o.domains, score, o.predicted, &self.settings);
            posteriors.fingerprints.get(&o.model).cloned()
        };
        if let (Some(shared), Some(fingerprint), Ok(runtime)) =
            (self.shared.clone(), fingerprint, tokio::runtime::Handle::try_current())
        {
            let (o, half_life) = (o.clone(), self.settings.half_life);
            runtime.spawn(async move {
                shared.learn(&o.model, &fingerprint, &o.domains, score, o.predicted, half_life).await;
            });
        }
        self.changes.fetch_add(1, Ordering::Relaxed);
        *self.updates.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(source.label()).or_default() += 1;
    }

    /// What an upstream answer says about its quality, if anything: empty, a refusal, or cut at the
    /// caller's `max_tokens` (`finish_reason` "length" when the caller set one).
    pub fn judge(&self, text: &str, finish_reason: Option<&str>, caller_max_tokens: bool) -> Option<Source> {
        let trimmed = text.trim();
        if trimmed.is_empty() && finish_reason != Some("tool_calls") {
            return Some(Source::Empty);
        }
        if switchyard_store::starts_like_refusal(trimmed, &self.refusals) {
            return Some(Source::Refusal);
        }
        if caller_max_tokens && finish_reason == Some("length") {
            return Some(Source::Length);
        }
        None
    }

    /// Writes the posteriors to the state file when they changed since the last write (atomically: a
    /// temporary file renamed into place).
    pub fn save(&self) -> std::io::Result<()> {
        let changes = self.changes.load(Ordering::Relaxed);
        if changes == self.saved.load(Ordering::Relaxed) {
            return Ok(());
        }
        let json = serde_json::to_vec_pretty(&*self.lock()).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &self.path)?;
        self.saved.store(changes, Ordering::Relaxed);
        Ok(())
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Prometheus gauges per model and domain: the router's mean prediction against the mean observed score
    /// over the (discounted) observations, the observations, and their weight in the posterior; and updates
    /// by source.
    pub fn render(&self, out: &mut String) {
        let cells: Vec<(String, String, switchyard_core::Cell)> = {
            let posteriors = self.lock();
            posteriors
                .cells
                .iter()
                .flat_map(|(m, cells)| cells.iter().map(move |(d, c)| (m.clone(), d.clone(), *c)))
                .collect()
        };
        let series = [
            (
                "switchyard_predicted_success",
                "The router's mean predicted P(success) for the observed outcomes, by model and domain.",
            ),
            (
                "switchyard_observed_success",
                "The mean observed score (feedback and upstream signals, recent first), by model and domain.",
            ),
            (
                "switchyard_online_observations",
                "Observations behind the online posterior (discounted), by model and domain.",
            ),
            (
                "switchyard_online_weight",
                "The observations' weight in the posterior, n / (n + prior_strength), by model and domain.",
            ),
        ];
        let k = self.settings.prior_strength;
        for (i, (name, help)) in series.iter().enumerate() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (model, domain, c) in cells.iter().filter(|(_, _, c)| c.n > 1e-9) {
                let value = [c.predicted / c.n, c.successes / c.n, c.n, c.weight(k)][i];
                let (model, domain) = (crate::metrics::escape(model), crate::metrics::escape(domain));
                let _ = writeln!(out, "{name}{{model=\"{model}\",domain=\"{domain}\"}} {value}");
            }
        }
        out.push_str("# HELP switchyard_online_updates_total Outcomes counted by online learning, by source.\n");
        out.push_str("# TYPE switchyard_online_updates_total counter\n");
        let updates = self.updates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for source in ["feedback", "empty", "refusal", "length"] {
            let _ = writeln!(
                out,
                "switchyard_online_updates_total{{source=\"{source}\"}} {}",
                updates.get(source).copied().unwrap_or(0)
            );
        }
        drop(updates);
        out.push_str(
            "# HELP switchyard_online_feedback_unlearned_total Feedback stored but not learned from online, by \
             reason.\n# TYPE switchyard_online_feedback_unlearned_total counter\n",
        );
        let unlearned = self.unlearned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for reason in scores::UNLEARNED {
            let n = unlearned.get(reason).copied().unwrap_or(0);
            let _ = writeln!(out, "switchyard_online_feedback_unlearned_total{{reason=\"{reason}\"}} {n}");
        }
    }
}

/// The posteriors in `path`, or none when it does not exist yet.
fn read_state(path: &Path) -> Result<Posteriors, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "learning.state_file {} is not a switchyard online-learning state ({e}); it holds what was learned \
                 online, so it is not overwritten: move it away (or delete it to start afresh)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Posteriors::default()),
        Err(e) => Err(format!("cannot read learning.state_file {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learning(dir: &Path) -> Learning {
        let config = LearningConfig { online: true, state_file: dir.join("online.json"), ..Default::default() };
        Learning::with(&config, Posteriors::default())
    }

    #[tokio::test]
    async fn feedback_counts_for_remembered_requests_and_survives_a_save() {
        let dir = tempfile::tempdir().unwrap();
        let l = learning(dir.path());
        let o = Observation { model: "m".into(), domains: vec![("math".into(), 1.0)], predicted: 0.9 };
        l.remember("sy-1", o);
        let now = switchyard_store::now_ms();
        assert_eq!(l.feedback("sy-1", None, 0.0, now).await, Verdict::Counted);
        assert_eq!(l.feedback("sy-unknown", None, 0.0, now).await, Verdict::NotRemembered);
        l.save().unwrap();
        let read = read_state(&dir.path().join("online.json")).unwrap();
        assert_eq!(read.cells["m"]["math"].n, 1.0);
        std::fs::write(dir.path().join("bad.json"), "{").unwrap();
        let e = read_state(&dir.path().join("bad.json")).unwrap_err();
        assert!(e.contains("not overwritten"), "{e}");
    }

    #[test]
    fn upstream_answers_are_judged() {
        let dir = tempfile::tempdir().unwrap();
        let l = learning(dir.path());
        assert_eq!(l.judge("  ", Some("stop"), false), Some(Source::Empty));
        assert_eq!(l.judge("", Some("tool_calls"), false), None);
        assert_eq!(l.judge("I'm sorry, but I can't help with that.", Some("stop"), false), Some(Source::Refusal));
        assert_eq!(l.judge("The answer is 4.", Some("length"), true), Some(Source::Length));
        assert_eq!(l.judge("The answer is 4.", Some("length"), false), None);
        assert_eq!(l.judge("The answer is 4.", Some("stop"), true), None);
    }
}
