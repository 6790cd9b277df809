//! `[cache]`: the response cache's settings, checked at start-up.

use serde::Deserialize;

/// How the response cache matches a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// No cache.
    #[default]
    Off,
    /// The same last user message (up to whitespace), everything else equal.
    Exact,
    /// Also a rewording of it: close in the routing embedding (`similarity`) and past the lexical guard.
    Semantic,
}

/// `[cache]`: answers kept for repeated and reworded requests.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// `off` (the default), `exact` or `semantic`.
    pub mode: CacheMode,
    /// How long an answer is served from the cache, in seconds.
    pub ttl_s: u64,
    /// Least cosine similarity of the routing embeddings for a semantic hit (the lexical guard must pass too).
    pub similarity: f32,
    /// Most answers kept by this replica (the oldest go first).
    pub max_entries: usize,
    /// Most bytes of answers kept by this replica (the oldest go first).
    pub max_bytes: usize,
    /// Largest answer kept, in bytes (a larger one is served but not cached).
    pub max_entry_bytes: usize,
}

/// The default `similarity`, chosen on `tests/data/cache-paraphrases.jsonl` and checked on the held-out
/// `cache-paraphrases-holdout.jsonl` (see the README's cache section).
pub const DEFAULT_SIMILARITY: f32 = 0.90;

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            mode: CacheMode::Off,
            ttl_s: 3600,
            similarity: DEFAULT_SIMILARITY,
            max_entries: 10_000,
            max_bytes: 256 * 1024 * 1024,
            max_entry_bytes: 1024 * 1024,
        }
    }
}

impl CacheConfig {
    /// Checks the settings; the error names the key.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        let bad = |key: &'static str, problem: String| Err((key, problem));
        if self.ttl_s == 0 || self.ttl_s > 30 * 86_400 {
            return bad("cache.ttl_s", format!("must be in 1..=2592000 seconds (30 days), got {}", self.ttl_s));
        }
        if !(self.similarity > 0.0 && self.similarity <= 1.0) {
            return bad(
                "cache.similarity",
                format!("must be in (0, 1] (a cosine; {DEFAULT_SIMILARITY} by default), got {}", self.similarity),
            );
        }
        if self.max_entries == 0 {
            return bad("cache.max_entries", "must be at least 1 (set cache.mode = \"off\" for no cache)".into());
        }
        if self.max_entry_bytes == 0 || self.max_entry_bytes > self.max_bytes {
            return bad(
                "cache.max_entry_bytes",
                format!("must be in 1..=cache.max_bytes ({}), got {}", self.max_bytes, self.max_entry_bytes),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert_eq!(CacheConfig::default().validate(), Ok(()));
        let key = |c: CacheConfig| c.validate().unwrap_err().0;
        assert_eq!(key(CacheConfig { ttl_s: 0, ..CacheConfig::default() }), "cache.ttl_s");
        assert_eq!(key(CacheConfig { similarity: 1.5, ..CacheConfig::default() }), "cache.similarity");
        assert_eq!(key(CacheConfig { similarity: f32::NAN, ..CacheConfig::default() }), "cache.similarity");
        assert_eq!(key(CacheConfig { max_entries: 0, ..CacheConfig::default() }), "cache.max_entries");
        assert_eq!(key(CacheConfig { max_entry_bytes: 0, ..CacheConfig::default() }), "cache.max_entry_bytes");
        let parsed: CacheConfig = toml::from_str("mode = \"semantic\"\nttl_s = 60").unwrap();
        assert_eq!((parsed.mode, parsed.ttl_s), (CacheMode::Semantic, 60));
        assert!(toml::from_str::<CacheConfig>("modes = \"exact\"").unwrap_err().to_string().contains("modes"));
    }
}
