//! The server's configuration: one TOML file, validated at start-up with errors that name the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use switchyard_core::{Catalog, Knob, ModelCard};
use switchyard_encoder::Precision;
use switchyard_store::{PromptLogging, ResponseLogging};

use crate::limits::keys::KeyConfig;
use crate::routing::experiment::ExperimentConfig;
use crate::routing::rules::{Rule, RuleConfig};

pub(crate) mod server;
pub use server::{ClientTimeouts, KeyLabels, ServerConfig};

/// Everything `switchyard serve` reads from `switchyard.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listening address, keys and limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// The router and its default knob.
    #[serde(default)]
    pub router: RouterConfig,
    /// Conversations: session pins (`[sessions]`; `[routing]`, its old name, is still read).
    #[serde(default, alias = "routing")]
    pub sessions: SessionsConfig,
    /// Where the encoder model comes from.
    #[serde(default)]
    pub encoder: EncoderConfig,
    /// The decision log.
    #[serde(default)]
    pub log: LogConfig,
    /// State shared by replicas (limits, budgets, health, session pins) in Redis.
    #[serde(default)]
    pub state: crate::replicas::StateConfig,
    /// Online learning from feedback and upstream outcomes.
    #[serde(default)]
    pub learning: crate::learning::LearningConfig,
    /// The response cache (off unless `mode` is set).
    #[serde(default)]
    pub cache: crate::cache::CacheConfig,
    /// Named sets of models that rules can restrict the choice to, e.g. `premium = ["gpt-4o", "o1"]`.
    #[serde(default)]
    pub tiers: BTreeMap<String, Vec<String>>,
    /// Rules applied before the learned policy, in order; the first match wins.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// An A/B experiment between routers or policies.
    pub experiment: Option<ExperimentConfig>,
    /// The model catalog (upstreams, prices); optional for routing decisions.
    #[serde(default)]
    pub models: Vec<ModelCard>,
    /// Client keys with their limits and budgets (`server.client_keys` are keys without limits).
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// What validation built, kept for serving: the catalog indexed by name, the rules compiled.
    #[serde(skip)]
    compiled: Compiled,
}

/// What validating a config builds, kept so that serving does not build it again.
#[derive(Debug, Clone, Default)]
struct Compiled {
    /// `[[models]]` positions by name.
    index: HashMap<String, usize>,
    /// `[[rules]]`, compiled, in order (their `similar_to` examples not yet embedded).
    rules: Vec<Rule>,
}

/// Built from the rest of the config, so two configs that agree on it agree on this.
impl PartialEq for Compiled {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// `[log]`: the decision log (SQLite), written off the request path.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Log every routed request (needed for `/v1/feedback` and `switchyard logs`).
    pub enabled: bool,
    /// The SQLite file (created with its folder if missing), unless `url` is set.
    pub path: PathBuf,
    /// A PostgreSQL database instead of the SQLite file: `postgres://user:pass@host:port/db`. Several replicas
    /// can share it; the tables are created on first start and checked on every start.
    pub url: Option<String>,
    /// With `url`: a local SQLite file that holds rows while PostgreSQL is out of reach; they are replayed in
    /// order when it answers again. Give each replica its own.
    pub spool: PathBuf,
    /// With `url`: refuse to start when PostgreSQL is out of reach (otherwise the server starts with rows going
    /// to the spool, and connects when the database answers). A wrong password or database is always an error.
    pub required: bool,
    /// `full` keeps prompt text (export needs it); `hash` keeps only its SHA-256.
    pub prompts: PromptLogging,
    /// What is kept of each answer: `full`, `truncate` (the first `max_response_chars` characters), `hash` (its
    /// SHA-256) or `off`. By default it follows `prompts`: `truncate` when prompts are kept, `hash` when not.
    pub responses: Option<ResponseLogging>,
    /// Characters of an answer kept by `responses = "truncate"`.
    pub max_response_chars: usize,
    /// Rows waiting to be written before new ones are dropped (and counted) rather than slow requests down.
    pub queue_capacity: usize,
    /// Delete requests older than this many days (0: keep everything).
    pub retention_days: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: PathBuf::from("logs/decisions.sqlite"),
            url: None,
            spool: PathBuf::from("logs/spool.sqlite"),
            required: false,
            prompts: PromptLogging::Full,
            responses: None,
            max_response_chars: 4000,
            queue_capacity: 10_000,
            retention_days: 30,
        }
    }
}

/// `[sessions]`: how conversations keep their model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Keep a conversation on the model it started with (escalating at once, de-escalating slowly).
    pub session_pinning: bool,
    /// Turns in a row that must all say a cheaper model would do before a conversation moves down.
    pub deescalate_after: u32,
    /// How long a conversation's pin outlives its last turn, in seconds.
    pub session_ttl_s: u64,
    /// Most conversations pinned at once (the least recently used go first).
    pub max_sessions: usize,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self { session_pinning: true, deescalate_after: 3, session_ttl_s: 3600, max_sessions: 100_000 }
    }
}

/// `[router]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    /// Router folder (from `switchyard train`).
    pub path: PathBuf,
    /// Default quality bar, overriding the router's own default policy.
    pub min_quality: Option<f64>,
    /// Default willingness to pay (USD per success), overriding the router's own default policy.
    pub willingness_to_pay: Option<f64>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("models/default"), min_quality: None, willingness_to_pay: None }
    }
}

/// `[encoder]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// Use exactly this model folder (else the usual search: models/, the Hub, the PyPI wheel).
    pub model_dir: Option<PathBuf>,
    /// Truncation, in tokens (default 256).
    pub max_tokens: Option<usize>,
    /// The encoder's matrix arithmetic: `"f32"` or `"int8"` (see `switchyard_encoder::Precision`).
    pub precision: Precision,
    /// Most tokens the inference thread embeds in one forward pass (a batch under load).
    pub batch_tokens: usize,
    /// Prompts waiting for the inference thread before new ones get 429.
    pub queue_capacity: usize,
    /// Recent prompts whose embeddings are cached (0: no cache).
    pub cache_entries: usize,
    /// Under load, the longest a forward pass waits for the queue to refill to the previous pass's size, in
    /// milliseconds (0: never wait). An idle server never waits.
    pub batch_wait_ms: f64,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            model_dir: None,
            max_tokens: None,
            precision: Precision::F32,
            batch_tokens: 2048,
            queue_capacity: 1024,
            cache_entries: 10_000,
            batch_wait_ms: 2.0,
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Malformed TOML, a wrong type or an unknown key (the message names it, with line and column).
    #[error("config {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value out of range.
    #[error("config {path}: `{key}` {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, e.g. `server.listen`.
        key: &'static str,
        /// What is wrong and what is expected.
        problem: String,
    },
    /// The `[[models]]` catalog is invalid.
    #[error(transparent)]
    Catalog(#[from] switchyard_core::CatalogError),
}

impl LogConfig {
    /// Where the log is written: `url` when set, else `path`.
    pub fn location(&self) -> switchyard_store::Location {
        self.url
            .clone()
            .map_or_else(|| switchyard_store::Location::Sqlite(self.path.clone()), switchyard_store::Location::Postgres)
    }

    /// What is kept of answers: `responses`, else what `prompts` implies (whoever keeps prompts keeps answers,
    /// cut at `max_response_chars`; hashed prompts mean hashed answers).
    pub fn response_logging(&self) -> ResponseLogging {
        self.responses.unwrap_or(match self.prompts {
            PromptLogging::Full => ResponseLogging::Truncate,
            PromptLogging::Hash => ResponseLogging::Hash,
        })
    }

    /// Settings that are allowed but probably not meant, each as a sentence for the start-up log: answers kept
    /// in clear while prompts are hashed (an answer often repeats its prompt).
    pub fn warnings(&self) -> Vec<String> {
        let clear = matches!(self.response_logging(), ResponseLogging::Full | ResponseLogging::Truncate);
        if self.enabled && self.prompts == PromptLogging::Hash && clear {
            return vec![
                "log.prompts = \"hash\" but log.responses keeps answers in clear, and answers often quote their \
                 prompts; set log.responses = \"hash\" to keep neither"
                    .into(),
            ];
        }
        Vec::new()
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config TOML; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::parse_with_overrides(text, path, &[])
    }

    /// Parses config TOML with `key=value` overrides on top (`server.max_attempts=5`; the value is read as a
    /// TOML value, else as a string), then validates. Every setting can be overridden this way.
    pub fn parse_with_overrides(text: &str, path: &Path, overrides: &[(String, String)]) -> Result<Self, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse { path: path.to_path_buf(), message };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        for (key, value) in overrides {
            let parts: Vec<&str> = key.split('.').collect();
            let Some((last, sections)) = parts.split_last() else { continue };
            let mut node = &mut table;
            for section in sections {
                let entry = node.entry(section.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                node = entry
                    .as_table_mut()
                    .ok_or_else(|| parse_err(format!("override {key}: `{section}` is not a table")))?;
            }
            let parsed = toml::from_str::<toml::Table>(&format!("v = {value}")).ok().and_then(|mut t| t.remove("v"));
            node.insert(last.to_string(), parsed.unwrap_or_else(|| toml::Value::String(value.clone())));
        }
        let mut config: Config =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
        config.compiled = config.check(path)?;
        Ok(config)
    }

    /// Overrides from environment variables `SWITCHYARD__SECTION__KEY=value` (e.g.
    /// `SWITCHYARD__SERVER__MAX_ATTEMPTS=5` sets `server.max_attempts`).
    pub fn env_overrides(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
        vars.filter_map(|(k, v)| {
            let rest = k.strip_prefix("SWITCHYARD__")?;
            Some((rest.to_ascii_lowercase().replace("__", "."), v))
        })
        .collect()
    }

    /// Checks every value, naming the first bad key.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        self.check(path).map(drop)
    }

    /// The catalog model named `name`.
    pub fn model(&self, name: &str) -> Option<&ModelCard> {
        let indexed = self.compiled.index.get(name).and_then(|&i| self.models.get(i)).filter(|m| m.name == name);
        // A config changed after it was read is looked through.
        indexed.or_else(|| self.models.iter().find(|m| m.name == name))
    }

    /// The rules, compiled (their `similar_to` examples not yet embedded); compiled again if they were changed
    /// after the config was read.
    pub fn compiled_rules(&self) -> Result<Vec<Rule>, (String, String)> {
        let same = self.compiled.rules.len() == self.rules.len()
            && self.compiled.rules.iter().zip(&self.rules).all(|(c, r)| &c.config == r);
        if same {
            return Ok(self.compiled.rules.clone());
        }
        self.rules.iter().map(|r| Rule::new(r.clone(), &self.tiers).map_err(|e| (r.name.clone(), e))).collect()
    }

    /// Checks every value, naming the first bad key, and returns what serving keeps of the check.
    fn check(&self, path: &Path) -> Result<Compiled, ConfigError> {
        let invalid = |key, problem: String| ConfigError::Invalid { path: path.to_path_buf(), key, problem };
        self.check_server(path)?;
        let rules = self.check_models_and_rules(path)?;
        if let Some(e) = &self.experiment {
            e.validate().map_err(|e| invalid("experiment", e))?;
        }
        if self.router.min_quality.is_some() && self.router.willingness_to_pay.is_some() {
            return Err(invalid("router.min_quality", "and router.willingness_to_pay are exclusive; set one".into()));
        }
        if let Some(knob) = self.default_knob() {
            knob.validate().map_err(|e| invalid("router", e.to_string()))?;
        }
        self.state.validate().map_err(|e| invalid("state", e))?;
        self.learning.validate().map_err(|(key, problem)| invalid(key, problem))?;
        self.cache.validate().map_err(|(key, problem)| invalid(key, problem))?;
        if let Some(url) = &self.log.url {
            switchyard_store::check_url(url).map_err(|e| invalid("log.url", e))?;
        }
        if let Some(n) = self.encoder.max_tokens {
            if !(2..=512).contains(&n) {
                return Err(invalid("encoder.max_tokens", format!("must be between 2 and 512, got {n}")));
            }
        }
        if !self.models.is_empty() {
            Catalog::new(self.models.clone())?;
        }
        let index = self.models.iter().enumerate().map(|(i, m)| (m.name.clone(), i)).collect();
        Ok(Compiled { index, rules })
    }

    /// The `[server]`, `[sessions]` and `[encoder]` numbers, and the keys' formats.
    fn check_server(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, problem: String| ConfigError::Invalid { path: path.to_path_buf(), key, problem };
        self.listen_addr().map_err(|e| invalid("server.listen", e))?;
        let counts = [
            ("server.max_body_bytes", self.server.max_body_bytes as u64),
            ("server.max_prompt_chars", self.server.max_prompt_chars as u64),
            ("server.max_concurrency", self.server.max_concurrency as u64),
            ("server.max_attempts", self.server.max_attempts as u64),
            ("server.connect_timeout_ms", self.server.connect_timeout_ms),
            ("server.first_byte_timeout_ms", self.server.first_byte_timeout_ms.unwrap_or(1)),
            ("server.upstream_timeout_ms", self.server.upstream_timeout_ms.unwrap_or(1)),
            ("server.idle_timeout_ms", self.server.idle_timeout_ms),
            ("server.shutdown_grace_ms", self.server.shutdown_grace_ms),
            ("sessions.deescalate_after", u64::from(self.sessions.deescalate_after)),
            ("sessions.session_ttl_s", self.sessions.session_ttl_s),
            ("sessions.max_sessions", self.sessions.max_sessions as u64),
            ("server.cooldown_failures", u64::from(self.server.cooldown_failures)),
            ("encoder.batch_tokens", self.encoder.batch_tokens as u64),
            ("encoder.queue_capacity", self.encoder.queue_capacity as u64),
            ("log.queue_capacity", self.log.queue_capacity as u64),
            ("log.max_response_chars", self.log.max_response_chars as u64),
            ("server.header_timeout_ms", self.server.header_timeout_ms),
            ("server.body_timeout_ms", self.server.body_timeout_ms),
            ("server.keepalive_timeout_ms", self.server.keepalive_timeout_ms),
            ("server.send_timeout_ms", self.server.send_timeout_ms),
            ("server.max_concurrency_per_key", self.server.max_concurrency_per_key.unwrap_or(1) as u64),
            ("server.max_unauthenticated_connections", self.server.max_unauthenticated_connections as u64),
            ("server.max_id_bytes", self.server.max_id_bytes as u64),
        ];
        if let Some((key, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return Err(invalid(key, "must be at least 1".into()));
        }
        if self.server.first_byte_timeout_ms.is_some() && self.server.upstream_timeout_ms.is_some() {
            return Err(invalid(
                "server.upstream_timeout_ms",
                "is a deprecated alias of server.first_byte_timeout_ms; set only first_byte_timeout_ms".into(),
            ));
        }
        if !(0.0..=1000.0).contains(&self.encoder.batch_wait_ms) {
            return Err(invalid("encoder.batch_wait_ms", "must be between 0 and 1000 (milliseconds)".into()));
        }
        if let Some(hex) = self.server.admin_keys_sha256.iter().find(|h| crate::limits::keys::parse_digest(h).is_none())
        {
            return Err(invalid(
                "server.admin_keys_sha256",
                format!("must hold 64 hex digits each (printf %s \"$KEY\" | sha256sum), got {hex:?}"),
            ));
        }
        for (key, keys) in [
            ("server.client_keys", &self.server.client_keys),
            ("server.admin_keys", &self.server.admin_keys),
            ("server.metrics_keys", &self.server.metrics_keys),
        ] {
            if keys.iter().any(|k| k.trim().is_empty()) {
                return Err(invalid(key, "must not contain empty keys".into()));
            }
        }
        Ok(())
    }

    /// Tiers, rules and keys name models of the catalog (when there is one); the rules compile.
    fn check_models_and_rules(&self, path: &Path) -> Result<Vec<Rule>, ConfigError> {
        let invalid = |key, problem: String| ConfigError::Invalid { path: path.to_path_buf(), key, problem };
        let mut rules = Vec::with_capacity(self.rules.len());
        let known = |m: &String| self.models.is_empty() || self.models.iter().any(|c| &c.name == m);
        for (name, models) in &self.tiers {
            if models.is_empty() {
                return Err(invalid("tiers", format!("tier {name:?} has no models")));
            }
            if let Some(m) = models.iter().find(|m| !known(m)) {
                return Err(invalid("tiers", format!("tier {name:?} names {m:?}, which is not in [[models]]")));
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let name = if rule.name.is_empty() { format!("#{}", i + 1) } else { format!("{:?}", rule.name) };
            let compiled =
                Rule::new(rule.clone(), &self.tiers).map_err(|e| invalid("rules", format!("rule {name}: {e}")))?;
            if self.rules[..i].iter().any(|r| r.name == rule.name) {
                return Err(invalid("rules", format!("rule {name} is defined twice")));
            }
            if let Some(m) = rule.then.model.as_ref().filter(|m| !known(m)) {
                return Err(invalid("rules", format!("rule {name} sends to {m:?}, which is not in [[models]]")));
            }
            rules.push(compiled);
        }
        crate::limits::keys::validate(&self.keys, |m| known(&m.to_string())).map_err(|e| invalid("keys", e))?;
        Ok(rules)
    }

    /// Settings that still work but will go: one line each, for a warning at start-up.
    pub fn deprecations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(ms) = self.server.upstream_timeout_ms {
            out.push(format!(
                "server.upstream_timeout_ms = {ms} is deprecated: it now means server.first_byte_timeout_ms (time \
                 to the first byte); rename it. server.idle_timeout_ms bounds the silence between stream chunks"
            ));
        }
        out
    }

    /// The listening address.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.server
            .listen
            .parse()
            .map_err(|e| format!("must be an address like 127.0.0.1:8080, got {:?} ({e})", self.server.listen))
    }

    /// The default knob the config sets, if any.
    pub fn default_knob(&self) -> Option<Knob> {
        Knob::from_options(self.router.min_quality, self.router.willingness_to_pay)
    }
}

#[cfg(test)]
mod tests;
