//! Client keys: who may call `/v1/*`, and each key's limits — requests and tokens per minute, a spending
//! budget per day, month or in total, and the models it may use (LiteLLM's virtual keys).
//!
//! Keys are `[[keys]]` tables; `server.client_keys` still works, as keys without limits. The file holds a
//! key's secret only indirectly: the name of an environment variable (`key_env`) or its SHA-256
//! (`key_sha256`). Usage is counted here and, with `[state] url`, in Redis, which then decides for every
//! replica ([`crate::replicas`]); spend is restored at start-up from the decision log, so a restart does not reset
//! a budget.
//!
//! Limits are exact for requests: a request takes its slot under a lock, so `rpm = N` lets N through in any
//! 60 seconds and refuses the next. Tokens and spend are counted from what upstreams report when a call ends,
//! so calls already in flight when a limit is reached can overshoot it by their own size.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::error::ApiError;
pub use crate::limits::budget::BudgetPeriod;

mod config;
pub(crate) mod replicated;
pub use config::KeyConfig;
pub(crate) use config::{bearer, digest, parse_digest, same_digest, validate};

/// A key the server knows, with its limits and what it has used.
#[derive(Debug)]
pub struct ClientKey {
    /// The key's name.
    pub name: String,
    digest: [u8; 32],
    config: KeyConfig,
    usage: Mutex<KeyUsage>,
    /// Permits for the key's requests in flight (`server.max_concurrency_per_key`), once set.
    slots: std::sync::OnceLock<Arc<tokio::sync::Semaphore>>,
    /// Spend charged while the replicas' shared state was out of reach: the budget period's start and the
    /// amount, written back on the next connection ([`replicated::BudgetResync`]).
    unsynced: Mutex<Option<(i64, f64)>>,
}

#[derive(Debug, Default)]
struct KeyUsage {
    /// When each request of the last minute was admitted.
    requests: VecDeque<Instant>,
    /// Tokens reported in the last minute, with when.
    tokens: VecDeque<(Instant, u64)>,
    tokens_in_window: u64,
    /// Spend in the current budget period, and the period's start and end.
    spend_usd: f64,
    period: (i64, Option<i64>),
}

const MINUTE: Duration = Duration::from_secs(60);

impl KeyUsage {
    fn expire(&mut self, now: Instant) {
        while self.requests.front().is_some_and(|t| now.duration_since(*t) >= MINUTE) {
            self.requests.pop_front();
        }
        while let Some((t, n)) = self.tokens.front().copied() {
            if now.duration_since(t) < MINUTE {
                break;
            }
            self.tokens.pop_front();
            self.tokens_in_window -= n;
        }
    }

    fn roll(&mut self, period: BudgetPeriod, now_ms: i64) {
        if self.period.1.is_some_and(|end| now_ms >= end) {
            self.period = period.bounds(now_ms);
            self.spend_usd = 0.0;
        }
    }
}

/// What a request asks of its key's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A request that may spend (the gateway): budget, rpm and tpm apply.
    Spend,
    /// A request that only decides (`/v1/route`): rpm applies.
    Decide,
}

impl ClientKey {
    fn new(config: KeyConfig, digest: [u8; 32], spent: f64, now_ms: i64) -> Self {
        let usage = KeyUsage { spend_usd: spent, period: config.budget_period.bounds(now_ms), ..KeyUsage::default() };
        let slots = std::sync::OnceLock::new();
        Self { name: config.name.clone(), digest, config, usage: Mutex::new(usage), slots, unsynced: Mutex::new(None) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeyUsage> {
        self.usage.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a request, taking a slot of the per-minute limit, or refuses it with the OpenAI-shaped 429
    /// (`budget_exceeded` or `rate_limit_exceeded`, with `retry-after`).
    pub fn admit(&self, what: Admission, now: Instant, now_ms: i64) -> Result<(), ApiError> {
        let mut u = self.lock();
        u.expire(now);
        u.roll(self.config.budget_period, now_ms);
        if let (Admission::Spend, Some(budget)) = (what, self.config.budget_usd) {
            if u.spend_usd >= budget {
                return Err(self.refuse_budget(u.spend_usd, u.period.1, now_ms));
            }
        }
        let wait =
            |since: Instant| (MINUTE.saturating_sub(now.duration_since(since)).as_millis() as u64).div_ceil(1000);
        if let Some(rpm) = self.config.rpm {
            if u.requests.len() >= rpm as usize {
                return Err(self.over_rpm(u.requests.front().map_or(60, |t| wait(*t).max(1))));
            }
        }
        if let (Admission::Spend, Some(tpm)) = (what, self.config.tpm) {
            if u.tokens_in_window >= tpm {
                // Waiting until enough of the window's tokens expire to fall under the limit.
                let mut left = u.tokens_in_window;
                let mut retry = 60;
                for (t, n) in &u.tokens {
                    left -= n;
                    if left < tpm {
                        retry = wait(*t).max(1);
                        break;
                    }
                }
                return Err(self.over_tpm(u.tokens_in_window, retry));
            }
        }
        u.requests.push_back(now);
        Ok(())
    }

    /// The refusal of a request over the key's budget, having spent `spent` in a period ending at `end`.
    fn refuse_budget(&self, spent: f64, end: Option<i64>, now_ms: i64) -> ApiError {
        let (renews, retry_after_s) = match end {
            Some(end) => {
                let s = ((end - now_ms).max(0) as u64).div_ceil(1000);
                (format!("; it renews in {}", human(s)), Some(s))
            }
            None => ("; raise budget_usd to continue".to_string(), None),
        };
        ApiError::RateLimited {
            code: "budget_exceeded",
            message: format!(
                "key {:?} has spent ${spent:.6} of its {} budget of ${}{renews}",
                self.name,
                self.config.budget_period.word(),
                self.config.budget_usd.unwrap_or(0.0)
            ),
            retry_after_s,
        }
    }

    /// The refusal of a request over the budget, as the shared state counted `spent` (`now_ms` dates it).
    pub(crate) fn over_budget(&self, spent: f64, now_ms: i64) -> ApiError {
        self.refuse_budget(spent, self.config.budget_period.bounds(now_ms).1, now_ms)
    }

    /// The refusal of a request over the requests-per-minute limit, which frees a slot in `retry` seconds.
    pub(crate) fn over_rpm(&self, retry: u64) -> ApiError {
        let rpm = self.config.rpm.unwrap_or(0);
        ApiError::RateLimited {
            code: "rate_limit_exceeded",
            message: format!("key {:?} is over its limit of {rpm} requests per minute; retry in {retry} s", self.name),
            retry_after_s: Some(retry),
        }
    }

    /// The refusal of a request over the tokens-per-minute limit, with `used` tokens in the window.
    pub(crate) fn over_tpm(&self, used: u64, retry: u64) -> ApiError {
        let tpm = self.config.tpm.unwrap_or(0);
        ApiError::RateLimited {
            code: "rate_limit_exceeded",
            message: format!("key {:?} used {used} of its {tpm} tokens per minute; retry in {retry} s", self.name),
            retry_after_s: Some(retry),
        }
    }

    /// Requests per minute, if limited.
    pub fn rpm(&self) -> Option<u32> {
        self.config.rpm
    }

    /// Tokens per minute, if limited.
    pub fn tpm(&self) -> Option<u64> {
        self.config.tpm
    }

    /// Requests admitted and tokens reported in the last minute (this replica's count).
    pub fn minute_use(&self, now: Instant) -> (u64, u64) {
        let mut u = self.lock();
        u.expire(now);
        (u.requests.len() as u64, u.tokens_in_window)
    }

    /// The budget in USD, if any.
    pub fn budget(&self) -> Option<f64> {
        self.config.budget_usd
    }

    /// The budget's period.
    pub fn budget_period(&self) -> BudgetPeriod {
        self.config.budget_period
    }

    /// Counts what a call used: its reported tokens toward tpm, its cost toward the budget.
    pub fn charge(&self, tokens: u64, cost_usd: f64, now: Instant, now_ms: i64) {
        let mut u = self.lock();
        u.expire(now);
        u.roll(self.config.budget_period, now_ms);
        if tokens > 0 {
            u.tokens.push_back((now, tokens));
            u.tokens_in_window += tokens;
        }
        u.spend_usd += cost_usd.max(0.0);
    }

    /// A slot for one more request in flight, or `None` when the key has `limit` in flight already.
    pub(crate) fn try_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let unlimited = || Arc::new(tokio::sync::Semaphore::new(tokio::sync::Semaphore::MAX_PERMITS));
        self.slots.get_or_init(unlimited).clone().try_acquire_owned().ok()
    }

    /// Whether the key may use `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.config.allowed_models.as_ref().is_none_or(|m| m.iter().any(|a| a == model))
    }

    /// The models the key is limited to, if any.
    pub fn allowed_models(&self) -> Option<&[String]> {
        self.config.allowed_models.as_deref()
    }

    /// Spend in the budget period holding `now_ms` (zero when that period has not been charged yet).
    pub fn spend_at(&self, now_ms: i64) -> f64 {
        let mut u = self.lock();
        u.roll(self.config.budget_period, now_ms);
        u.spend_usd
    }

    /// Spend in the current budget period, and the budget (for `/metrics`).
    pub fn spend(&self) -> (f64, Option<f64>) {
        (self.lock().spend_usd, self.config.budget_usd)
    }

    /// Keeps spend the shared state did not get (it was out of reach), for the budget period starting at
    /// `period`; spend of an earlier period is dropped (that period is over).
    fn keep_unsynced(&self, period: i64, usd: f64) {
        let mut unsynced = self.unsynced.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = unsynced.get_or_insert((period, 0.0));
        if entry.0 != period {
            *entry = (period, 0.0);
        }
        entry.1 += usd;
    }

    /// The spend kept for the shared state: its period's start and the amount.
    fn unsynced(&self) -> Option<(i64, f64)> {
        *self.unsynced.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes `usd` of `period`'s kept spend off, once the shared state has it (what was kept meanwhile stays).
    fn settle_unsynced(&self, period: i64, usd: f64) {
        let mut unsynced = self.unsynced.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = unsynced.as_mut().filter(|e| e.0 == period) {
            entry.1 -= usd;
        }
        if unsynced.is_some_and(|e| e.1 <= 1e-12) {
            *unsynced = None;
        }
    }
}

fn human(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

/// The keys a server accepts. Without any, `/v1/*` needs no key.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<Arc<ClientKey>>,
}

/// A key whose secret cannot be found at start-up.
#[derive(Debug, thiserror::Error)]
#[error("key {name:?}: environment variable {var} is not set; export the key in it, or use key_sha256")]
pub struct MissingSecret {
    /// The key's name.
    pub name: String,
    /// The variable.
    pub var: String,
}

impl KeyRing {
    /// The keys of `[[keys]]` (secrets read from the environment now) and `server.client_keys` (named
    /// `client_keys#1`, ...). `spent(name, since_ms)` gives a key's spend since its period began.
    pub fn new(
        keys: &[KeyConfig],
        client_keys: &[String],
        env: impl Fn(&str) -> Option<String>,
        mut spent: impl FnMut(&str, i64) -> f64,
        now_ms: i64,
    ) -> Result<Self, MissingSecret> {
        let mut ring = Vec::new();
        for k in keys {
            let digest = match (&k.key_env, &k.key_sha256) {
                (Some(var), _) => digest(
                    env(var)
                        .filter(|v| !v.trim().is_empty())
                        .ok_or_else(|| MissingSecret { name: k.name.clone(), var: var.clone() })?
                        .trim(),
                ),
                (None, Some(hex)) => parse_digest(hex).unwrap_or_default(),
                (None, None) => continue,
            };
            let since = k.budget_period.bounds(now_ms).0;
            let already = if k.budget_usd.is_some() { spent(&k.name, since) } else { 0.0 };
            ring.push(Arc::new(ClientKey::new(k.clone(), digest, already, now_ms)));
        }
        for (i, secret) in client_keys.iter().enumerate() {
            let config = KeyConfig {
                name: format!("client_keys#{}", i + 1),
                key_env: None,
                key_sha256: None,
                rpm: None,
                tpm: None,
                budget_usd: None,
                budget_period: BudgetPeriod::Total,
                allowed_models: None,
            };
            ring.push(Arc::new(ClientKey::new(config, digest(secret.trim()), 0.0, now_ms)));
        }
        Ok(Self { keys: ring })
    }

    /// Each key may have at most `per_key` requests in flight (a key's limit is set once; later calls leave
    /// it).
    pub fn with_concurrency(self, per_key: usize) -> Self {
        for key in &self.keys {
            let _ = key.slots.set(Arc::new(tokio::sync::Semaphore::new(per_key.max(1))));
        }
        self
    }

    /// Whether `/v1/*` is open (no keys configured).
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key whose secret is `presented`. Every key's digest is compared in constant time, so how long
    /// the search takes says nothing about the keys.
    pub fn find(&self, presented: &str) -> Option<Arc<ClientKey>> {
        let d = digest(presented.trim());
        let mut found = None;
        for k in &self.keys {
            if same_digest(&k.digest, &d) && found.is_none() {
                found = Some(k.clone());
            }
        }
        found
    }

    /// Every key.
    pub fn all(&self) -> &[Arc<ClientKey>] {
        &self.keys
    }
}

/// The key a `/v1/*` request came with (a request and response extension; `None` when the server is open).
#[derive(Debug, Clone, Default)]
pub struct Caller(pub Option<Arc<ClientKey>>);

impl Caller {
    /// The key's name, for logs and metrics.
    pub fn name(&self) -> Option<String> {
        self.0.as_ref().map(|k| k.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::budget::DAY_MS;

    fn key(extra: &str) -> KeyConfig {
        toml::from_str(&format!("name = \"k\"\nkey_sha256 = \"{}\"\n{extra}", "ab".repeat(32))).unwrap()
    }

    fn ring(config: KeyConfig, spent: f64) -> Arc<ClientKey> {
        let r = KeyRing::new(&[config], &[], |_| None, |_, _| spent, 0).unwrap();
        r.all()[0].clone()
    }

    #[test]
    fn rpm_admits_exactly_n_a_minute() {
        let k = ring(key("rpm = 3"), 0.0);
        let t = Instant::now();
        for _ in 0..3 {
            k.admit(Admission::Decide, t, 0).unwrap();
        }
        let err = k.admit(Admission::Spend, t + Duration::from_secs(20), 0).unwrap_err();
        assert!(
            matches!(err, ApiError::RateLimited { code: "rate_limit_exceeded", retry_after_s: Some(40), .. }),
            "{err:?}"
        );
        // A minute after the first, its slot is free again.
        k.admit(Admission::Decide, t + Duration::from_secs(60), 0).unwrap();
    }

    #[test]
    fn tokens_and_budget_are_counted_from_what_calls_used() {
        let k = ring(key("tpm = 20\nbudget_usd = 1.0\nbudget_period = \"day\""), 0.25);
        let t = Instant::now();
        for _ in 0..2 {
            k.admit(Admission::Spend, t, 1000).unwrap();
            k.charge(8, 0.25, t, 1000);
        }
        k.admit(Admission::Spend, t, 1000).unwrap();
        k.charge(8, 0.25, t, 1000);
        let err = k.admit(Admission::Spend, t, 1000).unwrap_err();
        // Spend is 0.25 (restored) + 0.75 = 1.0: the budget goes first.
        assert_eq!(err.code(), "budget_exceeded", "{err}");
        assert!(err.to_string().contains("daily budget of $1"), "{err}");
        // A decision that spends nothing is not held by the budget or tpm.
        k.admit(Admission::Decide, t, 1000).unwrap();
        // The next day the budget renews; tokens are still over tpm within the minute.
        let err = k.admit(Admission::Spend, t, DAY_MS + 5).unwrap_err();
        assert!(err.to_string().contains("tokens per minute"), "{err}");
        k.admit(Admission::Spend, t + MINUTE, DAY_MS + 5).unwrap();
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_digest() {
        let config: KeyConfig = toml::from_str("name = \"a\"\nkey_env = \"A_KEY\"").unwrap();
        let err = KeyRing::new(std::slice::from_ref(&config), &[], |_| None, |_, _| 0.0, 0).unwrap_err();
        assert!(err.to_string().contains("A_KEY is not set"), "{err}");
        let ring = KeyRing::new(&[config], &["plain".into()], |_| Some("s3cret".into()), |_, _| 0.0, 0).unwrap();
        assert_eq!(ring.find("s3cret").map(|k| k.name.clone()).as_deref(), Some("a"));
        assert_eq!(ring.find("plain").map(|k| k.name.clone()).as_deref(), Some("client_keys#1"));
        assert!(ring.find("other").is_none());
        let hashed = KeyConfig { key_env: None, key_sha256: Some(hex(&digest("hashed"))), ..key("") };
        assert!(KeyRing::new(&[hashed], &[], |_| None, |_, _| 0.0, 0).unwrap().find("hashed").is_some());
    }

    fn hex(d: &[u8; 32]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        let header = |v: &'static str| axum::http::HeaderValue::from_static(v);
        for value in ["Bearer abc", "bearer abc", "BEARER  abc ", " Bearer abc"] {
            assert_eq!(bearer(Some(&header(value))), Some("abc"), "{value:?}");
        }
        for value in ["Basic abc", "Bearer", "Bearer ", "abc"] {
            assert_eq!(bearer(Some(&header(value))), None, "{value:?}");
        }
        assert!(same_digest(&digest("a"), &digest("a")) && !same_digest(&digest("a"), &digest("b")));
    }

    #[test]
    fn a_key_has_at_most_its_share_in_flight() {
        let ring = KeyRing::new(&[key("")], &[], |_| None, |_, _| 0.0, 0).unwrap().with_concurrency(2);
        let k = ring.all()[0].clone();
        let (a, b) = (k.try_slot(), k.try_slot());
        assert!(a.is_some() && b.is_some() && k.try_slot().is_none());
        drop(a);
        assert!(k.try_slot().is_some(), "a finished request gives its slot back");
    }

    #[test]
    fn bad_keys_name_the_problem() {
        let cases = [
            ("name = \"a\"", "has no secret"),
            ("name = \"a\"\nkey_sha256 = \"xyz\"", "64 hex digits"),
            ("name = \"a\"\nkey_env = \"A\"\nbudget_usd = -5.0", "budget_usd must be a number >= 0"),
            ("name = \"a\"\nkey_env = \"A\"\nrpm = 0", "at least 1"),
            ("name = \"a\"\nkey_env = \"A\"\nallowed_models = [\"zz\"]", "\"zz\", which is not in [[models]]"),
        ];
        for (text, needle) in cases {
            let config: KeyConfig = toml::from_str(text).unwrap();
            let err = validate(&[config], |m| m == "known").unwrap_err();
            assert!(err.contains(needle) && err.contains("key \"a\""), "{text}: {err}");
        }
        let a: KeyConfig = toml::from_str("name = \"a\"\nkey_env = \"A\"").unwrap();
        assert!(validate(&[a.clone(), a], |_| true).unwrap_err().contains("defined twice"));
    }
}
