//! The response cache in the replicas' shared state: per scope, one Redis hash indexes the answers (field
//! `{expiry}:{id}`, so that fields sort by expiry; value: the prompt, its embedding quantised to 8 bits, the
//! model, the cost), and each answer is a string of its own with the same time to live. A lookup reads the
//! scope's index (at most [`SCOPE_CAP`] answers), matches it as this replica matches its own, and reads the
//! one answer it hit. Redis out of reach, or late, is a miss.

use std::sync::{Arc, LazyLock};

use redis::Script;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::store::{best_match, Entry, Probe};
use crate::replicas::SharedState;

/// Most answers a scope keeps in Redis (the soonest to expire go first).
const SCOPE_CAP: usize = 256;

/// KEYS: index hash, answer key. ARGV: field, index value, answer, ttl ms, cap, answer keys' prefix. Past the
/// cap, the fields soonest to expire go, with their answers (a field is `{expiry:013}:{id}`).
static PUT: LazyLock<Script> = LazyLock::new(|| {
    crate::replicas::script(
        r"
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local cap = tonumber(ARGV[5])
local n = redis.call('HLEN', KEYS[1])
if n > cap then
  local fields = redis.call('HKEYS', KEYS[1])
  table.sort(fields)
  for i = 1, n - cap do
    redis.call('HDEL', KEYS[1], fields[i])
    redis.call('DEL', ARGV[6] .. string.sub(fields[i], 15))
  end
end
return n
",
    )
});

/// One answer in a scope's index.
#[derive(Debug, Serialize, Deserialize)]
struct Indexed {
    /// The prompt.
    p: String,
    /// The embedding, quantised: `q[i] / 127 * s`, as hex.
    #[serde(default)]
    e: Option<String>,
    /// The quantisation's scale.
    #[serde(default)]
    s: f32,
    /// The model that answered.
    m: String,
    /// What it cost.
    c: f64,
    /// Expiry, ms since the Unix epoch.
    x: i64,
    /// The answer's id.
    a: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

/// The embedding as signed bytes and its scale (the largest magnitude).
fn quantise(v: &[f32]) -> (String, f32) {
    let scale = v.iter().fold(0f32, |m, x| m.max(x.abs())).max(f32::MIN_POSITIVE);
    let q: Vec<u8> = v.iter().map(|x| ((x / scale * 127.0).round().clamp(-127.0, 127.0) as i8) as u8).collect();
    (hex(&q), scale)
}

/// Back to unit length (the cosine is then a dot product).
fn dequantise(text: &str, scale: f32) -> Option<Vec<f32>> {
    let v: Vec<f32> = unhex(text)?.into_iter().map(|b| f32::from(b as i8) / 127.0 * scale).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm > 0.0).then(|| v.into_iter().map(|x| x / norm).collect())
}

impl SharedState {
    fn cache_index_key(&self, scope: &[u8; 32]) -> String {
        self.key(&format!("cache:{}", hex(scope)))
    }

    fn cache_answer_key(&self, id: &str) -> String {
        self.key(&format!("cache:answer:{id}"))
    }

    /// Writes an answer under `scope` for `ttl_ms`.
    pub(crate) async fn cache_put(self: &Arc<Self>, scope: &[u8; 32], entry: &Entry, ttl_ms: i64) {
        let id = self.member();
        let (e, s) = match entry.embedding.as_deref().map(quantise) {
            Some((e, s)) => (Some(e), s),
            None => (None, 0.0),
        };
        let indexed = Indexed {
            p: entry.prompt.clone(),
            e,
            s,
            m: entry.model.clone(),
            c: entry.cost_usd,
            x: entry.expires_ms,
            a: id.clone(),
        };
        let Ok(value) = serde_json::to_string(&indexed) else { return };
        let field = format!("{:013}:{id}", entry.expires_ms.max(0));
        let (index, answer_key, answer) =
            (self.cache_index_key(scope), self.cache_answer_key(&id), entry.answer.to_string());
        let answers = self.cache_answer_key("");
        let _: Option<i64> = self
            .call("cache put", |mut c| async move {
                PUT.key(index)
                    .key(answer_key)
                    .arg(field)
                    .arg(value)
                    .arg(answer)
                    .arg(ttl_ms.max(1))
                    .arg(SCOPE_CAP)
                    .arg(answers)
                    .invoke_async(&mut c)
                    .await
            })
            .await;
    }

    /// The answer `probe` hits in `scope`'s shared index, with its similarity.
    pub(crate) async fn cache_find(self: &Arc<Self>, scope: &[u8; 32], probe: &Probe<'_>) -> Option<(Entry, f32)> {
        let index = self.cache_index_key(scope);
        let fields: Vec<(String, String)> = self
            .call("cache index", |mut c| async move { redis::cmd("HGETALL").arg(index).query_async(&mut c).await })
            .await?;
        let indexed: Vec<(Indexed, Option<Vec<f32>>)> = fields
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_str::<Indexed>(&v).ok())
            .map(|i| {
                let embedding = i.e.as_deref().and_then(|e| dequantise(e, i.s));
                (i, embedding)
            })
            .collect();
        let candidates = indexed.iter().map(|pair| (pair.0.p.as_str(), pair.1.as_deref(), pair.0.x, pair));
        let ((hit, embedding), similarity) = best_match(candidates, probe)?;
        let key = self.cache_answer_key(&hit.a);
        let answer: Option<String> = self
            .call("cache answer", |mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        let answer = serde_json::from_str::<Value>(&answer?).ok()?;
        Some((
            Entry {
                prompt: hit.p.clone(),
                embedding: embedding.clone(),
                answer,
                model: hit.m.clone(),
                cost_usd: hit.c,
                expires_ms: hit.x,
            },
            similarity,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quantised_embedding_keeps_its_direction() {
        let v: Vec<f32> = (0..384).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let v: Vec<f32> = v.into_iter().map(|x| x / norm).collect();
        let (text, scale) = quantise(&v);
        assert_eq!(text.len(), 768);
        let back = dequantise(&text, scale).unwrap();
        let cosine: f32 = v.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!(cosine > 0.9999, "{cosine}");
        assert_eq!(unhex("0aff"), Some(vec![10, 255]));
        assert_eq!(unhex("zz"), None);
    }
}
