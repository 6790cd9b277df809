//! What every handler shares: the configuration, the encoder and embedder, the routers in service (swapped
//! whole on reload), upstream deployments and their health, the metrics and the decision log's writer.

use std::sync::{Arc, Mutex, RwLock};

use switchyard_core::Router;
use switchyard_encoder::Encoder;
use switchyard_store::{DecisionRecord, Estimate, LogWriter, WriterOptions};

use crate::config::Config;
use crate::embedder::{Embedder, EmbedderOptions};
use crate::routing::routers::{load_router, ReloadReport, Routers, StartError};
use crate::routing::stages::Decided;

/// What every handler shares.
pub struct AppState {
    /// The prompt encoder.
    pub encoder: Arc<dyn Encoder>,
    /// The validated configuration.
    pub config: Config,
    /// The HTTP client for upstream calls (connection pools are shared).
    pub http: reqwest::Client,
    /// Permits for requests in flight on `/v1/*` (`server.max_concurrency`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Upstream health: consecutive failures, cooldowns and latency, by deployment.
    pub health: crate::gateway::health::Health,
    /// Each catalog model's deployments and fallbacks.
    pub deployments: crate::gateway::deployments::Deployments,
    /// Counters and latency histograms for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Conversations' session pins.
    pub sessions: crate::routing::sessions::Sessions,
    /// The state shared with other replicas through Redis (absent without `[state] url`).
    pub shared: Option<Arc<crate::replicas::SharedState>>,
    /// The decision log's writer (absent when `log.enabled = false`).
    pub log: Option<LogWriter>,
    /// The prompt embedder: cache, queue and inference thread.
    pub embedder: Embedder,
    /// The client keys, their limits and usage.
    pub keys: crate::limits::keys::KeyRing,
    /// Online learning (absent unless `learning.online`).
    pub learning: Option<Arc<crate::learning::Learning>>,
    /// The response cache (absent unless `cache.mode` is set).
    pub cache: Option<Arc<crate::cache::ResponseCache>>,
    /// Client connections not yet authenticated, and the limits on every connection.
    pub(crate) connections: Arc<crate::http::connection::Registry>,
    /// The connection the dashboard reads the decision log through.
    pub(crate) dashboard: crate::dashboard::Reader,
    /// The secret the dashboard's sign-in sessions are signed with.
    pub(crate) session_secret: crate::dashboard::session::Secret,
    routers: RwLock<Arc<Routers>>,
    reloading: Mutex<()>,
}

impl AppState {
    /// State for a loaded router, an encoder and a validated config: the config's default knob goes on the
    /// router, experiment arms' routers are loaded, rules compiled, and the decision log opened.
    pub fn new(router: Router, encoder: Arc<dyn Encoder>, config: Config) -> Result<Self, StartError> {
        let routers = Routers::assemble(router, &config, encoder.as_ref(), 1)?;
        let sessions = crate::routing::sessions::Sessions::new(
            std::time::Duration::from_secs(config.sessions.session_ttl_s),
            config.sessions.max_sessions,
            config.sessions.deescalate_after,
        );
        let keys = client_keys(&config)?;
        // Before anything else holds the keys: the limit is set on each key in place.
        let per_key = config.server.per_key_concurrency(keys.all().len());
        let keys = keys.with_concurrency(per_key);
        let shared = crate::replicas::SharedState::start(&config.state).map_err(StartError::State)?;
        if let Some(shared) = &shared {
            shared.register(Arc::new(crate::limits::keys::replicated::BudgetResync { keys: keys.all().to_vec() }));
        }
        let log = open_log(&config)?;
        let in_flight = Arc::new(tokio::sync::Semaphore::new(config.server.max_concurrency));
        let embedder = Embedder::start(
            encoder.clone(),
            EmbedderOptions {
                batch_tokens: config.encoder.batch_tokens,
                queue_capacity: config.encoder.queue_capacity,
                cache_entries: config.encoder.cache_entries,
                batch_wait: std::time::Duration::from_secs_f64(config.encoder.batch_wait_ms / 1e3),
            },
        )
        .map_err(StartError::Thread)?;
        for line in config.deprecations() {
            tracing::warn!("{line}");
        }
        let deployments = deployments(&config);
        let http = reqwest::Client::builder()
            .connect_timeout(config.server.connect_timeout())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StartError::Http(e.to_string()))?;
        let learning = config
            .learning
            .online
            .then(|| {
                crate::learning::Learning::open(&config.learning, &routers.main).map(|mut learning| {
                    if let Some(shared) = &shared {
                        learning.share(shared.clone());
                    }
                    Arc::new(learning)
                })
            })
            .transpose()
            .map_err(StartError::Learning)?;
        let connections = crate::http::connection::Registry::new(
            config.server.client_timeouts(),
            config.server.max_unauthenticated_connections,
        );
        let metrics = crate::metrics::Metrics::new(config.server.metrics_key_labels);
        let cache = crate::cache::ResponseCache::new(&config.cache, shared.clone()).map(Arc::new);
        Ok(Self {
            cache,
            connections,
            dashboard: crate::dashboard::Reader::default(),
            session_secret: crate::dashboard::session::Secret::new(config.server.session_secret_env.as_deref())
                .map_err(StartError::SessionSecret)?,
            learning,
            embedder,
            encoder,
            deployments,
            keys,
            config,
            http,
            in_flight,
            health: crate::gateway::health::Health::default(),
            metrics,
            sessions,
            shared,
            log,
            routers: RwLock::new(Arc::new(routers)),
            reloading: Mutex::new(()),
        })
    }

    /// The routers in service now (a request keeps the set it started with).
    pub fn routers(&self) -> Arc<Routers> {
        match self.routers.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the routers again from the configured folders and swaps them in. Requests in flight finish on
    /// the routers they started with; on any error the routers in service stay.
    pub fn reload(&self) -> Result<ReloadReport, StartError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let generation = self.routers().generation + 1;
        let main = load_router(&self.config.router.path, "router.path", self.encoder.as_ref())?;
        let routers = Arc::new(Routers::assemble(main, &self.config, self.encoder.as_ref(), generation)?);
        let report = routers.report();
        if let Some(learning) = &self.learning {
            learning.align(&routers.main);
        }
        match self.routers.write() {
            Ok(mut r) => *r = routers,
            Err(poisoned) => *poisoned.into_inner() = routers,
        }
        self.metrics.reload(generation);
        Ok(report)
    }

    /// With online learning: remembers what was predicted for the model that answered `request_id` (for its
    /// feedback), and counts what its answer says about quality, if anything (an empty answer, a refusal, a
    /// cut at the caller's `max_tokens`).
    pub(crate) fn learn(
        &self,
        request_id: &str,
        learned: Option<&crate::routing::stages::Learned>,
        model: &str,
        answer: Option<(&str, Option<&str>, bool)>,
    ) {
        let (Some(learning), Some(observation)) = (&self.learning, learned.and_then(|l| l.observation(model))) else {
            return;
        };
        if let Some(source) = answer.and_then(|(text, finish, capped)| learning.judge(text, finish, capped)) {
            learning.observe(&observation, 0.0, source);
        }
        learning.remember(request_id, observation);
    }

    /// Hands a finished request to the decision log (dropped and counted if its queue is full).
    pub fn log_request(&self, record: DecisionRecord) {
        if let (Some(experiment), Some(arm)) = (&record.experiment, &record.arm) {
            let finished = crate::metrics::ArmRequest {
                spend_usd: record.cost_usd.or(record.expected_cost_usd),
                fell_back: record.fell_back(),
                latency_s: record.latency_ms / 1e3,
                cut: record.finish_reason.as_deref().map(|f| f == "length"),
            };
            self.metrics.arm(experiment, arm, finished);
        }
        if let Some(log) = &self.log {
            log.log(record);
        }
    }

    /// A log record for a request, with the prompt as `log.prompts` says.
    pub(crate) fn new_record(&self, request_id: &str, endpoint: &str, prompt: &str) -> DecisionRecord {
        let mut record = DecisionRecord {
            request_id: request_id.to_string(),
            ts_ms: switchyard_store::now_ms(),
            endpoint: endpoint.to_string(),
            messages_count: 1,
            ..DecisionRecord::default()
        };
        record.set_prompt(prompt, self.config.log.prompts);
        record
    }
}

/// Fills a log record from a decision.
pub(crate) fn record_decision(record: &mut DecisionRecord, decided: &Decided) {
    let report = &decided.report;
    record.user.clone_from(&decided.user);
    record.experiment = decided.arm.as_ref().map(|a| a.experiment.clone());
    record.arm = decided.arm.as_ref().map(|a| a.arm.clone());
    record.rule.clone_from(&decided.rule);
    record.session = decided.session.as_ref().and_then(|p| serde_json::to_value(p).ok());
    record.policy = serde_json::to_value(&report.policy).ok();
    record.estimates = report
        .models
        .iter()
        .map(|m| Estimate { model: m.model.clone(), p: m.p_success, cost_usd: m.expected_cost_usd })
        .collect();
    record.decided_model = Some(report.model.clone());
    record.decision_ms = Some(report.timing_ms.encode + report.timing_ms.decide);
    record.propensity = Some(decided.propensity);
    record.explored = decided.explored;
    record.domain = report.domains.first().map(|d| d.domain.clone());
    record.complexity = Some(report.complexity);
}

/// The decision's expected cost for `model`.
pub(crate) fn expected_cost(record: &DecisionRecord, model: &str) -> Option<f64> {
    record.estimates.iter().find(|e| e.model == model).map(|e| e.cost_usd)
}

/// The client keys, their budgets continuing from the spend the decision log already holds for their current
/// period.
fn client_keys(config: &Config) -> Result<crate::limits::keys::KeyRing, StartError> {
    // Budgets continue from the spend the decision log already holds for their current period. The log is
    // read on a plain thread: a PostgreSQL client must not run on an async one.
    let location = config.log.location();
    let readable = config.log.enabled
        && match &location {
            switchyard_store::Location::Sqlite(path) => path.is_file(),
            switchyard_store::Location::Postgres(_) => true,
        };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut db = readable
                    .then(|| match switchyard_store::Database::open(&location) {
                        Ok(db) => Some(db),
                        Err(e) => {
                            tracing::warn!(
                                "budgets: cannot read their spend from the decision log ({e}); they start from \
                                 zero on this replica (with [state] url, Redis holds them)"
                            );
                            None
                        }
                    })
                    .flatten();
                crate::limits::keys::KeyRing::new(
                    &config.keys,
                    &config.server.client_keys,
                    |var| std::env::var(var).ok(),
                    |name, since| db.as_mut().and_then(|d| d.spend_of(name, since).ok()).unwrap_or(0.0),
                    switchyard_store::now_ms(),
                )
            })
            .join()
    })
    .map_err(|_| StartError::Http("reading the budgets' spend panicked".into()))?
    .map_err(StartError::from)
}

/// The decision log's writer, when the log is on.
fn open_log(config: &Config) -> Result<Option<LogWriter>, StartError> {
    Ok(if config.log.enabled {
        Some(LogWriter::start(&WriterOptions {
            path: config.log.path.clone(),
            url: config.log.url.clone(),
            spool: config.log.spool.clone(),
            required: config.log.required,
            queue_capacity: config.log.queue_capacity,
            retention_days: (config.log.retention_days > 0).then_some(config.log.retention_days),
        })?)
    } else {
        None
    })
}

/// Every model's deployments, with a warning for each whose key is not in the environment.
fn deployments(config: &Config) -> crate::gateway::deployments::Deployments {
    let deployments = crate::gateway::deployments::Deployments::new(&config.models);
    for up in deployments.all() {
        if let Some(var) = up.api_key_env.as_deref().filter(|v| std::env::var_os(v).is_none()) {
            tracing::warn!(
                model = up.model,
                deployment = up.name,
                "api_key_env {var} is not set: calls to this deployment go without a key"
            );
        }
    }
    deployments
}
