//! A key's configuration (`[[keys]]`), checked at start-up, and its secret: read as a digest, compared in
//! constant time, presented as a bearer token.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::limits::budget::BudgetPeriod;

/// One `[[keys]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key's name in logs, metrics and `logs stats --by key`.
    pub name: String,
    /// The environment variable holding the key.
    pub key_env: Option<String>,
    /// The key's SHA-256, hex (`printf %s "$KEY" | sha256sum`).
    pub key_sha256: Option<String>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens per minute, prompt and completion, as upstreams report them.
    pub tpm: Option<u64>,
    /// Spending limit in USD per `budget_period`, at catalog prices.
    pub budget_usd: Option<f64>,
    /// The budget's period (default: month).
    #[serde(default)]
    pub budget_period: BudgetPeriod,
    /// The only models this key may use (routed or named); absent: all.
    pub allowed_models: Option<Vec<String>>,
}

/// Checks `[[keys]]` and `server.client_keys` together; the error names the key.
pub(crate) fn validate(keys: &[KeyConfig], known_model: impl Fn(&str) -> bool) -> Result<(), String> {
    for (i, k) in keys.iter().enumerate() {
        let who = if k.name.trim().is_empty() { format!("#{}", i + 1) } else { format!("{:?}", k.name) };
        let bad = |problem: String| Err(format!("key {who}: {problem}"));
        if k.name.trim().is_empty() {
            return bad("name must not be empty".into());
        }
        if keys[..i].iter().any(|o| o.name == k.name) {
            return bad("is defined twice; key names must be unique".into());
        }
        match (&k.key_env, &k.key_sha256) {
            (None, None) => {
                return bad("has no secret: set key_env (an environment variable holding the key) or key_sha256".into())
            }
            (Some(_), Some(_)) => return bad("set key_env or key_sha256, not both".into()),
            (Some(var), None) if var.trim().is_empty() => return bad("key_env must name a variable".into()),
            (None, Some(hex)) if parse_digest(hex).is_none() => {
                return bad(format!("key_sha256 must be 64 hex digits (printf %s \"$KEY\" | sha256sum), got {hex:?}"))
            }
            _ => {}
        }
        if k.rpm == Some(0) || k.tpm == Some(0) {
            return bad("rpm and tpm must be at least 1 when given".into());
        }
        if let Some(b) = k.budget_usd {
            if !b.is_finite() || b < 0.0 {
                return bad(format!("budget_usd must be a number >= 0, got {b}"));
            }
        }
        if let Some(models) = &k.allowed_models {
            if models.is_empty() {
                return bad("allowed_models is empty; leave it out to allow every model".into());
            }
            if let Some(m) = models.iter().find(|m| !known_model(m)) {
                return bad(format!("allowed_models names {m:?}, which is not in [[models]]"));
            }
        }
    }
    Ok(())
}

pub(crate) fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

pub(crate) fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether two digests are equal, in time that does not depend on where they differ.
pub(crate) fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The bearer token of an `Authorization` header; the scheme's case does not matter (`Bearer`, `bearer`).
pub(crate) fn bearer(header: Option<&axum::http::HeaderValue>) -> Option<&str> {
    let value = header?.to_str().ok()?.trim_start();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}
