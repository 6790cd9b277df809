//! The dashboard's sign-in: an admin key posted once to `/ui/login` becomes a session cookie, so the key is
//! never in a URL, a page or the browser's storage. The cookie holds its expiry and an HMAC-SHA256, under the
//! server's session secret, of the expiry and the admin key's digest. It cannot be made without the secret
//! (knowing a key's digest, as `admin_keys_sha256` holds it, is not enough); replicas given the same secret
//! (`server.session_secret_env`) accept each other's sessions; removing the key from the config ends its
//! sessions.

use sha2::{Digest, Sha256};

/// The cookie's name.
pub const COOKIE: &str = "switchyard_ui";
/// How long a session lasts, milliseconds (12 hours).
pub const LIFETIME_MS: i64 = 12 * 3_600_000;
/// How far another replica's clock may be ahead of this one's, milliseconds.
const CLOCK_SKEW_MS: i64 = 5 * 60_000;
/// The shortest session secret accepted from the environment, in bytes.
const MIN_SECRET: usize = 32;
/// What the MAC covers besides the expiry, so a MAC made for another purpose never passes as a session.
const PURPOSE: &[u8] = b"switchyard dashboard session v1:";

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
fn hmac(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut inner = Sha256::new();
    let mut outer = Sha256::new();
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The secret sessions are signed with.
#[derive(Clone)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The secret from the environment variable `env` (`server.session_secret_env`), else a random one.
    pub fn new(env: Option<&str>) -> Result<Self, String> {
        match env {
            Some(var) => {
                let value = std::env::var(var).map_err(|_| {
                    format!("server.session_secret_env names {var}, which is not set: set it to a random string of at least {MIN_SECRET} characters, the same on every replica")
                })?;
                if value.len() < MIN_SECRET {
                    return Err(format!(
                        "{var} (server.session_secret_env) holds {} characters; use at least {MIN_SECRET} random ones",
                        value.len()
                    ));
                }
                Ok(Self(Sha256::digest(value.as_bytes()).into()))
            }
            None => {
                let mut bytes = [0u8; 32];
                std::io::Read::read_exact(
                    &mut std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?,
                    &mut bytes,
                )
                .map_err(|e| format!("cannot read /dev/urandom for the dashboard's session secret: {e}"))?;
                Ok(Self(bytes))
            }
        }
    }

    /// A fixed secret, for tests.
    #[cfg(test)]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

fn mac(secret: &Secret, key_digest: &[u8; 32], expires_ms: i64) -> [u8; 32] {
    hmac(&secret.0, &[PURPOSE, key_digest, b":", expires_ms.to_string().as_bytes()].concat())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A session token for the admin key with digest `key_digest`, valid until `now_ms` + [`LIFETIME_MS`].
pub fn mint(secret: &Secret, key_digest: &[u8; 32], now_ms: i64) -> String {
    let expires = now_ms + LIFETIME_MS;
    format!("{expires}.{}", hex(&mac(secret, key_digest, expires)))
}

/// Whether `token` is a live session of one of the admin keys (`digests`), signed with `secret`. Every key is compared, in
/// constant time, whatever the first ones say.
pub fn valid(secret: &Secret, token: &str, digests: &[[u8; 32]], now_ms: i64) -> bool {
    let Some((expires, presented)) = token.split_once('.') else { return false };
    let Ok(expires) = expires.parse::<i64>() else { return false };
    if expires <= now_ms || expires > now_ms.saturating_add(LIFETIME_MS + CLOCK_SKEW_MS) {
        return false;
    }
    digests.iter().fold(false, |found, d| {
        let expected = hex(&mac(secret, d, expires));
        let same = expected.len() == presented.len()
            && expected.bytes().zip(presented.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        found | same
    })
}

/// The session token in a request's `Cookie` headers.
pub fn from_headers(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_an_independent_implementation() {
        // RFC 4231's first case's data under a 32-byte key of 0x0b, against the value Python's hmac module gives
        // (`hmac.new(bytes([0x0b] * 32), b"Hi There", hashlib.sha256).hexdigest()`).
        let key = [0x0b; 32];
        assert_eq!(hex(&hmac(&key, b"Hi There")), "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7");
    }

    #[test]
    fn a_session_lives_for_its_key_its_secret_and_its_time() {
        let (secret, key, other) = (Secret::from_bytes([1; 32]), [7u8; 32], [8u8; 32]);
        let token = mint(&secret, &key, 1_000);
        assert!(valid(&secret, &token, &[other, key], 2_000));
        assert!(!valid(&secret, &token, &[other], 2_000), "another key's session");
        assert!(!valid(&Secret::from_bytes([2; 32]), &token, &[key], 2_000), "another secret's session");
        assert!(!valid(&secret, &token, &[key], 1_000 + LIFETIME_MS), "expired");
        // Minted on a replica whose clock is a minute ahead: still good here.
        assert!(valid(&secret, &mint(&secret, &key, 61_000), &[key], 1_000));
        let forged_expiry = token.replacen(&(1_000 + LIFETIME_MS).to_string(), &(2_000 + LIFETIME_MS).to_string(), 1);
        assert!(!valid(&secret, &forged_expiry, &[key], 2_000), "a changed expiry breaks the MAC");
        assert!(!valid(&secret, "garbage", &[key], 2_000) && !valid(&secret, "1.2", &[key], 0));
    }

    #[test]
    fn a_secret_from_the_environment_must_be_long_enough() {
        let err = Secret::new(Some("SWITCHYARD_TEST_SURELY_UNSET_SECRET")).unwrap_err();
        assert!(err.contains("is not set") && err.contains("at least 32"), "{err}");
        let (a, b) = (Secret::new(None).unwrap(), Secret::new(None).unwrap());
        assert_ne!(a.0, b.0, "random secrets differ");
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append(axum::http::header::COOKIE, "a=1; switchyard_ui=123.abc; b=2".parse().unwrap());
        assert_eq!(from_headers(&headers), Some("123.abc"));
    }
}
