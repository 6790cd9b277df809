//! The response cache (`[cache]`): answers kept for repeated and reworded requests, served without an upstream
//! call.
//!
//! - **What may hit:** a request whose scope ([`scope::scope`]: the client key, the model it resolved to,
//!   the system prompt, earlier turns, tools, response format, sampling) equals a cached request's, and whose
//!   last user message is the same text (`exact`), or (`semantic`) close to it in the routing embedding, which
//!   the router has already computed, and worded alike ([`guard`]).
//! - **What may be reused:** answers sampled at temperature 0, or any answer when the client says
//!   `x-switchyard-cache: reuse`; `cache-control: no-cache` skips the lookup, `no-store` the cache.
//! - **Where:** this replica's bounded map ([`store::Local`]), and with `[state] url` Redis as well
//!   ([`replicated`]), so replicas share answers; Redis out of reach only means fewer hits.
//!
//! Answers are kept whole in OpenAI's shape; a streamed request replays one as SSE ([`replay`]), and the
//! Messages API translates it as it translates any answer. This module owns the matching and the storage;
//! the gateway ([`crate::http::chat`]) decides when to look up and what to log.

pub mod config;
pub mod guard;
pub mod replay;
mod replicated;
pub mod scope;
pub mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

pub use config::{CacheConfig, CacheMode};
use store::{Entry, Local, Probe};

/// A request's way into the cache: its scope and last user message, and what it may do.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// [`scope::scope`] of the request.
    pub scope: [u8; 32],
    /// The last user message.
    pub prompt: String,
    /// Its routing embedding (semantic mode).
    pub embedding: Option<Vec<f32>>,
    /// Whether to look for a cached answer (not after `cache-control: no-cache`).
    pub lookup: bool,
}

/// The cache's counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Requests answered from the cache.
    pub hits: AtomicU64,
    /// Requests looked up and not found.
    pub misses: AtomicU64,
    /// Requests that could not use the cache (sampled above temperature 0, `no-store`).
    pub bypassed: AtomicU64,
    /// Answers stored.
    pub stores: AtomicU64,
    /// Upstream spend the hits saved, in nano-USD.
    pub saved_nano_usd: AtomicU64,
}

/// A hit: the cached answer and how similar its prompt was.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The cached answer.
    pub entry: Arc<Entry>,
    /// Cosine similarity of the prompts' embeddings (1 for the same text).
    pub similarity: f32,
}

/// The response cache.
pub struct ResponseCache {
    config: CacheConfig,
    local: Mutex<Local>,
    shared: Option<Arc<crate::replicas::SharedState>>,
    /// What the metrics show.
    pub stats: CacheStats,
}

impl ResponseCache {
    /// The cache `config` asks for (none when `mode = "off"`), shared through `shared` when given.
    pub fn new(config: &CacheConfig, shared: Option<Arc<crate::replicas::SharedState>>) -> Option<Self> {
        (config.mode != CacheMode::Off).then(|| Self {
            local: Mutex::new(Local::new(config.max_entries, config.max_bytes)),
            config: config.clone(),
            shared,
            stats: CacheStats::default(),
        })
    }

    /// Exact or semantic.
    pub fn mode(&self) -> CacheMode {
        self.config.mode
    }

    /// Largest answer kept, in bytes.
    pub fn max_entry_bytes(&self) -> usize {
        self.config.max_entry_bytes
    }

    fn local(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached answer `ticket` hits: this replica's first, then the shared one's (kept here once found).
    /// Counts the hit or the miss.
    pub async fn lookup(&self, ticket: &Ticket) -> Option<Hit> {
        let now_ms = switchyard_store::now_ms();
        let probe = Probe {
            prompt: &ticket.prompt,
            embedding: ticket.embedding.as_deref(),
            mode: self.config.mode,
            similarity: self.config.similarity,
            now_ms,
        };
        let mut hit = self.local().find(&ticket.scope, &probe).map(|(entry, similarity)| Hit { entry, similarity });
        if hit.is_none() {
            if let Some(shared) = &self.shared {
                if let Some((entry, similarity)) = shared.cache_find(&ticket.scope, &probe).await {
                    let bytes = entry.answer.to_string().len() + entry.prompt.len();
                    if bytes <= self.config.max_entry_bytes {
                        self.local().insert(ticket.scope, entry.clone(), bytes, now_ms);
                    }
                    hit = Some(Hit { entry: Arc::new(entry), similarity });
                }
            }
        }
        match &hit {
            Some(h) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                let nano = (h.entry.cost_usd.max(0.0) * 1e9).round() as u64;
                self.stats.saved_nano_usd.fetch_add(nano, Ordering::Relaxed);
            }
            None => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
            }
        }
        hit
    }

    /// Keeps `answer` (by `model`, at `cost_usd`) for `ticket`'s scope when it is worth keeping (finished,
    /// not empty, within `max_entry_bytes`); the shared copy is written in the background.
    pub fn store(&self, ticket: Ticket, answer: Value, model: &str, cost_usd: f64) {
        if !replay::cacheable(&answer) {
            return;
        }
        let bytes = answer.to_string().len() + ticket.prompt.len();
        if bytes > self.config.max_entry_bytes {
            return;
        }
        let now_ms = switchyard_store::now_ms();
        let ttl_ms = (self.config.ttl_s * 1000) as i64;
        let entry = Entry {
            prompt: ticket.prompt,
            embedding: ticket.embedding,
            answer,
            model: model.to_string(),
            cost_usd,
            expires_ms: now_ms + ttl_ms,
        };
        self.stats.stores.fetch_add(1, Ordering::Relaxed);
        if let (Some(shared), Ok(runtime)) = (self.shared.clone(), tokio::runtime::Handle::try_current()) {
            let (scope, shared_entry) = (ticket.scope, entry.clone());
            runtime.spawn(async move { shared.cache_put(&scope, &shared_entry, ttl_ms).await });
        }
        self.local().insert(ticket.scope, entry, bytes, now_ms);
    }

    /// Appends the cache's metrics.
    pub fn render(&self, out: &mut String) {
        use crate::metrics::scalar;
        let s = &self.stats;
        let help = "Requests answered from the response cache.";
        scalar(out, "switchyard_cache_hits_total", "counter", help, s.hits.load(Ordering::Relaxed));
        let help = "Requests looked up in the response cache and not found.";
        scalar(out, "switchyard_cache_misses_total", "counter", help, s.misses.load(Ordering::Relaxed));
        let help = "Requests that could not use the response cache (sampled above temperature 0, no-store).";
        scalar(out, "switchyard_cache_bypassed_total", "counter", help, s.bypassed.load(Ordering::Relaxed));
        let help = "Answers stored in the response cache.";
        scalar(out, "switchyard_cache_stores_total", "counter", help, s.stores.load(Ordering::Relaxed));
        let help = "Upstream spend the response cache's hits saved, USD (what the cached answers cost).";
        let saved = s.saved_nano_usd.load(Ordering::Relaxed) as f64 / 1e9;
        scalar(out, "switchyard_cache_saved_usd_total", "counter", help, saved);
        let (entries, bytes) = {
            let local = self.local();
            (local.len(), local.bytes())
        };
        scalar(out, "switchyard_cache_entries", "gauge", "Answers in this replica's response cache.", entries);
        scalar(out, "switchyard_cache_bytes", "gauge", "Bytes of answers in this replica's response cache.", bytes);
    }
}
