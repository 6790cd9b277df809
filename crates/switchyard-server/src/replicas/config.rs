//! `[state]`: the settings of the shared state, checked before anything connects.

use redis::Client;
use serde::Deserialize;
use switchyard_store::redact;

/// `[state]`: where replicas share limits, budgets, health and session pins.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// `redis://[:password@]host:port[/db]`; without it, state lives in this process.
    pub url: Option<String>,
    /// Refuse to start when Redis cannot be reached (otherwise: start degraded, on local state, and reconnect).
    pub required: bool,
    /// Deadline of one Redis call on the request path, in milliseconds.
    pub timeout_ms: u64,
    /// Prefix of every Redis key, so several switchyard deployments can share one Redis.
    pub prefix: String,
    /// With a `rediss://` URL: a PEM file of the certificate authority to trust instead of the system's (a
    /// private CA, or a self-signed server).
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self { url: None, required: false, timeout_ms: 50, prefix: "switchyard".into(), ca_file: None }
    }
}

impl StateConfig {
    /// Checks the settings without connecting; the error names the key.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.url {
            let schemes = ["redis://", "rediss://", "valkey://", "valkeys://", "redis+unix://"];
            if !schemes.iter().any(|s| url.starts_with(s)) {
                return Err(format!(
                    "state.url must be a redis://[:password@]host:port[/db] URL (rediss:// for TLS, or \
                     redis+unix:///path), got {:?}",
                    redact(url)
                ));
            }
            Client::open(url.as_str())
                .map_err(|e| format!("state.url {:?} is not a valid Redis URL: {e}", redact(url)))?;
            if let Some(ca) = &self.ca_file {
                if !(url.starts_with("rediss://") || url.starts_with("valkeys://")) {
                    return Err("state.ca_file needs a TLS URL: rediss://host:port".into());
                }
                if !ca.is_file() {
                    return Err(format!("state.ca_file {} is not a file", ca.display()));
                }
                use rustls::pki_types::pem::PemObject;
                let certs = rustls::pki_types::CertificateDer::pem_file_iter(ca)
                    .map(|certs| certs.filter_map(Result::ok).count())
                    .unwrap_or(0);
                if certs == 0 {
                    return Err(format!("state.ca_file {} holds no PEM certificate", ca.display()));
                }
            }
        } else if self.required {
            return Err("state.required = true needs state.url (redis://host:port)".into());
        }
        if self.timeout_ms == 0 || self.timeout_ms > 10_000 {
            return Err(format!("state.timeout_ms must be in 1..=10000, got {}", self.timeout_ms));
        }
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return Err(format!("state.prefix must be a non-empty word, got {:?}", self.prefix));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_before_connecting() {
        let ok = StateConfig { url: Some("redis://:secret@127.0.0.1:6379/0".into()), ..StateConfig::default() };
        assert_eq!(ok.validate(), Ok(()));
        let bad = StateConfig { url: Some("http://127.0.0.1:6379".into()), ..StateConfig::default() };
        assert!(bad.validate().unwrap_err().contains("must be a redis://"));
        let garbled = StateConfig { url: Some("redis://:pw@host:notaport".into()), ..StateConfig::default() };
        let err = garbled.validate().unwrap_err();
        assert!(err.contains("not a valid Redis URL") && !err.contains(":pw@"), "{err}");
        let plain_ca = StateConfig { ca_file: Some("/etc/hosts".into()), ..ok.clone() };
        assert!(plain_ca.validate().unwrap_err().contains("needs a TLS URL"));
        let missing_ca = StateConfig {
            url: Some("rediss://h:6380".into()),
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..StateConfig::default()
        };
        assert!(missing_ca.validate().unwrap_err().contains("is not a file"));
        let required = StateConfig { required: true, ..StateConfig::default() };
        assert!(required.validate().unwrap_err().contains("needs state.url"));
        let slow = StateConfig { url: ok.url.clone(), timeout_ms: 0, ..StateConfig::default() };
        assert!(slow.validate().unwrap_err().contains("state.timeout_ms"));
        assert_eq!(redact("redis://user:pw@h:1/2"), "redis://user:***@h:1/2");
        assert_eq!(redact("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(redact("redis+unix:///run/redis.sock?db=1&pass=pw"), "redis+unix:///run/redis.sock?db=1&pass=***");
    }
}
