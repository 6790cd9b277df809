//! How the PostgreSQL log connects: the URL's settings, with TLS named the way libpq names it.
//!
//! - no `sslmode`, or `sslmode=disable`: a plain connection (a trusted network, a local proxy);
//! - `sslmode=prefer`: TLS when the server offers it;
//! - `sslmode=require`, `verify-ca` or `verify-full`: TLS or no connection.
//!
//! With TLS the server's certificate is always verified (stricter than libpq's `require`), against the system's
//! roots and, when the URL gives `sslrootcert=/path/ca.pem`, that file's certificates (a managed database's CA
//! bundle, or a private CA).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use postgres::{Client, NoTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Whether, and how, to use TLS.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tls {
    /// A plain connection.
    Off,
    /// TLS, verified against the system roots and `root` (a PEM file), if given.
    On {
        /// `sslrootcert`.
        root: Option<PathBuf>,
    },
}

/// Reads a `postgres://` URL: the client's settings, and TLS. `sslrootcert` is taken out (the client does not
/// know it) and libpq's `verify-ca` / `verify-full` become `require` (certificates are verified anyway).
pub(crate) fn target(url: &str) -> Result<(postgres::Config, Tls), String> {
    // The query starts at the first `?` after the user info: a password may hold a raw `?` or `&`.
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[after_scheme..].find('/').map_or(url.len(), |i| after_scheme + i);
    let host_start = url[after_scheme..authority_end].rfind('@').map_or(after_scheme, |i| after_scheme + i + 1);
    let (base, query) = match url[host_start..].find('?') {
        Some(i) => (&url[..host_start + i], &url[host_start + i + 1..]),
        None => (url, ""),
    };
    let (mut kept, mut root, mut mode) = (Vec::new(), None, None);
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param.split_once('=') {
            Some(("sslrootcert", path)) => root = Some(PathBuf::from(decode(path))),
            Some(("sslmode", value)) => {
                let value = match value {
                    "verify-ca" | "verify-full" => "require",
                    "disable" | "prefer" | "require" => value,
                    other => {
                        return Err(format!(
                            "sslmode={other} is not known; use disable, prefer, require, verify-ca or verify-full"
                        ))
                    }
                };
                mode = Some(value.to_string());
                kept.push(format!("sslmode={value}"));
            }
            _ => kept.push(param.to_string()),
        }
    }
    let rebuilt = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    let config: postgres::Config = rebuilt.parse().map_err(|e: postgres::Error| e.to_string())?;
    let tls = match mode.as_deref() {
        None | Some("disable") => {
            if root.is_some() {
                return Err("sslrootcert needs sslmode=require (or prefer, verify-ca, verify-full)".into());
            }
            Tls::Off
        }
        _ => Tls::On { root },
    };
    Ok((config, tls))
}

/// `%2F` and friends in a URL parameter.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a connection could not be made: the client's error, or TLS settings that cannot be used.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The client's (or the server's) error.
    Postgres(postgres::Error),
    /// `sslrootcert` cannot be read, or holds no certificate.
    RootCert(PathBuf, String),
}

/// Connects with `config`, over TLS when `tls` says so.
pub(crate) fn connect(config: &postgres::Config, tls: &Tls) -> Result<Client, ConnectError> {
    match tls {
        Tls::Off => config.connect(NoTls).map_err(ConnectError::Postgres),
        Tls::On { root } => {
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new(cached_client_config(root.as_deref())?);
            config.connect(connector).map_err(ConnectError::Postgres)
        }
    }
}

/// The TLS client settings for `root`, built once per process (reading the system's roots takes a while, and
/// a writer reconnecting through an outage asks again and again).
fn cached_client_config(root: Option<&Path>) -> Result<rustls::ClientConfig, ConnectError> {
    static CONFIGS: OnceLock<Mutex<HashMap<Option<PathBuf>, rustls::ClientConfig>>> = OnceLock::new();
    let configs = CONFIGS.get_or_init(Mutex::default);
    let key = root.map(Path::to_path_buf);
    if let Some(config) = configs.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(config);
    }
    let config = client_config(root)?;
    if let Ok(mut c) = configs.lock() {
        c.insert(key, config.clone());
    }
    Ok(config)
}

/// The TLS client settings: the system's roots, plus `root`'s certificates.
fn client_config(root: Option<&Path>) -> Result<rustls::ClientConfig, ConnectError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() && root.is_none() {
        tracing::warn!(
            "decision log: no system CA certificates found (install ca-certificates); give the server's CA with \
             sslrootcert=/path/ca.pem in log.url"
        );
    }
    if let Some(path) = root {
        let bad = |why: String| ConnectError::RootCert(path.to_path_buf(), why);
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("holds no PEM certificate".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::RootCert(root.map(Path::to_path_buf).unwrap_or_default(), e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_follows_libpq_names() {
        let (_, tls) = target("postgres://u:p@h:5432/db").unwrap();
        assert_eq!(tls, Tls::Off);
        let (config, tls) = target("postgres://u:p@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem").unwrap();
        assert_eq!(tls, Tls::On { root: Some(PathBuf::from("/etc/ca.pem")) });
        assert_eq!(config.get_ssl_mode(), postgres::config::SslMode::Require);
        let (config, tls) = target("postgres://u:p@h/db?sslmode=prefer&application_name=sy").unwrap();
        assert_eq!((tls, config.get_application_name()), (Tls::On { root: None }, Some("sy")));
        assert!(target("postgres://u@h/db?sslmode=allow").unwrap_err().contains("sslmode=allow is not known"));
        assert!(target("postgres://u@h/db?sslrootcert=/ca.pem").unwrap_err().contains("needs sslmode=require"));
        // A raw `?` or `&` in the password is the password's, not the query's.
        let (config, tls) = target("postgres://u:ab?c&d@h:5432/db?sslmode=require").unwrap();
        assert_eq!((tls, config.get_password()), (Tls::On { root: None }, Some(&b"ab?c&d"[..])));
        let (config, _) = target("postgres://u:pw@h?sslmode=disable").unwrap();
        assert_eq!(config.get_ssl_mode(), postgres::config::SslMode::Disable);
    }

    #[test]
    fn a_root_certificate_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(client_config(Some(&empty)), Err(ConnectError::RootCert(_, why)) if why.contains("no PEM")));
        assert!(matches!(client_config(Some(&dir.path().join("missing.pem"))), Err(ConnectError::RootCert(..))));
        assert!(client_config(None).is_ok());
    }
}
