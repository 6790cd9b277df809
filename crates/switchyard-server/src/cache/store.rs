//! This replica's cached answers: a bounded map (by entries and bytes, the oldest evicted first) with
//! expiry, and the matching rule shared with the Redis copy ([`best_match`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use super::config::CacheMode;
use super::guard;
use super::scope::exact_text;

/// One cached answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The last user message it answered.
    pub prompt: String,
    /// That message's routing embedding (semantic mode).
    pub embedding: Option<Vec<f32>>,
    /// The whole answer, in OpenAI's shape.
    pub answer: Value,
    /// The model that answered.
    pub model: String,
    /// What the answer cost upstream (what each hit saves).
    pub cost_usd: f64,
    /// When it expires, milliseconds since the Unix epoch.
    pub expires_ms: i64,
}

/// What a lookup is matched on.
#[derive(Debug, Clone, Copy)]
pub struct Probe<'a> {
    /// The last user message.
    pub prompt: &'a str,
    /// Its routing embedding (semantic mode).
    pub embedding: Option<&'a [f32]>,
    /// Exact or semantic.
    pub mode: CacheMode,
    /// Least cosine of a semantic hit.
    pub similarity: f32,
    /// Now, milliseconds since the Unix epoch.
    pub now_ms: i64,
}

/// Of candidates (prompt, embedding, expiry, item), the one `probe` hits: the same text (up to whitespace),
/// else in semantic mode the most similar one at or above `similarity` that passes the lexical guard.
pub fn best_match<'e, T>(
    candidates: impl Iterator<Item = (&'e str, Option<&'e [f32]>, i64, T)>,
    probe: &Probe<'_>,
) -> Option<(T, f32)> {
    let exact = exact_text(probe.prompt);
    let mut best: Option<(T, f32)> = None;
    for (prompt, embedding, expires_ms, item) in candidates {
        if expires_ms <= probe.now_ms {
            continue;
        }
        if exact_text(prompt) == exact {
            return Some((item, 1.0));
        }
        if probe.mode != CacheMode::Semantic {
            continue;
        }
        let (Some(a), Some(b)) = (embedding, probe.embedding) else { continue };
        let cosine = switchyard_core::dot(a, b);
        if cosine >= probe.similarity
            && best.as_ref().is_none_or(|(_, s)| cosine > *s)
            && guard::compatible(prompt, probe.prompt)
        {
            best = Some((item, cosine));
        }
    }
    best
}

/// An answer held: its scope, the answer, its bytes.
type Held = (Arc<[u8; 32]>, Arc<Entry>, usize);

/// The bounded map of this replica's answers.
#[derive(Debug)]
pub struct Local {
    entries: HashMap<u64, Held>,
    scopes: HashMap<[u8; 32], Vec<u64>>,
    order: VecDeque<u64>,
    next: u64,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Local {
    /// An empty map holding at most `max_entries` answers and `max_bytes` bytes.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            entries: HashMap::new(),
            scopes: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    /// Answers held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no answer.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds an answer of `bytes` bytes under `scope`, evicting the oldest answers past the bounds (and this
    /// scope's expired ones). The same prompt in the same scope replaces the older answer.
    pub fn insert(&mut self, scope: [u8; 32], entry: Entry, bytes: usize, now_ms: i64) {
        let exact = exact_text(&entry.prompt).to_string();
        let stale: Vec<u64> = self
            .scopes
            .get(&scope)
            .into_iter()
            .flatten()
            .copied()
            .filter(|id| {
                self.entries.get(id).is_some_and(|(_, e, _)| e.expires_ms <= now_ms || exact_text(&e.prompt) == exact)
            })
            .collect();
        for id in stale {
            self.remove(id);
        }
        let id = self.next;
        self.next += 1;
        self.entries.insert(id, (Arc::new(scope), Arc::new(entry), bytes));
        self.scopes.entry(scope).or_default().push(id);
        self.order.push_back(id);
        self.bytes += bytes;
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else { break };
            self.remove(oldest);
        }
        // Ids of answers removed before their turn (replaced, expired) are dropped from time to time.
        if self.order.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.order.retain(|id| entries.contains_key(id));
        }
    }

    fn remove(&mut self, id: u64) {
        let Some((scope, _, bytes)) = self.entries.remove(&id) else { return };
        self.bytes -= bytes;
        if let Some(ids) = self.scopes.get_mut(scope.as_ref()) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.scopes.remove(scope.as_ref());
            }
        }
        // `order` keeps the id; popping it later finds nothing to remove.
    }

    /// The answer `probe` hits in `scope`, with its similarity.
    pub fn find(&self, scope: &[u8; 32], probe: &Probe<'_>) -> Option<(Arc<Entry>, f32)> {
        let ids = self.scopes.get(scope)?;
        let candidates = ids
            .iter()
            .filter_map(|id| self.entries.get(id))
            .map(|(_, e, _)| (e.prompt.as_str(), e.embedding.as_deref(), e.expires_ms, e.clone()));
        best_match(candidates, probe)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(prompt: &str, embedding: Vec<f32>, expires_ms: i64) -> Entry {
        Entry {
            prompt: prompt.into(),
            embedding: Some(embedding),
            answer: json!({"choices": []}),
            model: "m".into(),
            cost_usd: 0.01,
            expires_ms,
        }
    }

    fn probe<'a>(prompt: &'a str, embedding: &'a [f32], mode: CacheMode, now_ms: i64) -> Probe<'a> {
        Probe { prompt, embedding: Some(embedding), mode, similarity: 0.9, now_ms }
    }

    #[test]
    fn hits_follow_the_mode_the_guard_and_the_ttl() {
        let mut local = Local::new(10, 1 << 20);
        let scope = [1u8; 32];
        local.insert(scope, entry("What is the capital of France?", vec![1.0, 0.0], 1_000), 100, 0);
        let near = [0.95f32, 0.312];
        // Exact: the same text, trimmed.
        assert!(local.find(&scope, &probe(" What is the capital of France?\n", &near, CacheMode::Exact, 10)).is_some());
        assert!(local.find(&scope, &probe("What is the capital  of France?", &near, CacheMode::Exact, 10)).is_none());
        assert!(local.find(&scope, &probe("Capital of France?", &near, CacheMode::Exact, 10)).is_none());
        // Semantic: close and worded alike.
        let hit = local.find(&scope, &probe("what's the capital of France", &near, CacheMode::Semantic, 10));
        assert!(hit.is_some_and(|(_, s)| s > 0.9));
        assert!(local
            .find(&scope, &probe("What is the capital of Germany?", &near, CacheMode::Semantic, 10))
            .is_none());
        assert!(local
            .find(&scope, &probe("what's the capital of France", &[0.0, 1.0], CacheMode::Semantic, 10))
            .is_none());
        // Another scope, and after the TTL.
        assert!(local
            .find(&[2u8; 32], &probe("What is the capital of France?", &near, CacheMode::Exact, 10))
            .is_none());
        assert!(local.find(&scope, &probe("What is the capital of France?", &near, CacheMode::Exact, 1_000)).is_none());
    }

    #[test]
    fn the_oldest_answers_go_first_past_the_bounds() {
        let mut local = Local::new(2, 250);
        for (i, prompt) in ["one", "two", "three"].iter().enumerate() {
            local.insert([0u8; 32], entry(prompt, vec![1.0], 10_000), 100, i as i64);
        }
        assert_eq!((local.len(), local.bytes()), (2, 200));
        let find = |local: &Local, p: &str| local.find(&[0u8; 32], &probe(p, &[1.0], CacheMode::Exact, 5)).is_some();
        assert!(!find(&local, "one") && find(&local, "two") && find(&local, "three"));
        // By bytes: a 200-byte answer leaves room for nothing else.
        local.insert([0u8; 32], entry("four", vec![1.0], 10_000), 200, 4);
        assert_eq!(local.len(), 1);
        assert!(find(&local, "four"));
        // The same prompt replaces its older answer.
        local.insert([0u8; 32], entry("four", vec![1.0], 20_000), 10, 5);
        assert_eq!((local.len(), local.bytes()), (1, 10));
    }
}
