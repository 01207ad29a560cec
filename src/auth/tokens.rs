//! Tokens: JWT access tokens (`jsonwebtoken`, HS256 only — a token claiming another algorithm,
//! `none` included, is rejected) with `iss`, `aud` (the resource), `sub` (the client), `scope`,
//! `exp`, `iat`, `jti` and `gid` (the grant, so that revoking a grant kills its access tokens);
//! opaque refresh tokens and authorization codes from the system CSPRNG, stored only as SHA-256
//! hashes; and constant-time comparison for secrets.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// The only scope this server grants.
pub const SCOPE: &str = "mcp:tools";

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer URL.
    pub iss: String,
    /// The resource the token is for.
    pub aud: String,
    /// The client the token was issued to.
    pub sub: String,
    /// Space-separated scopes.
    pub scope: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time, seconds since the epoch.
    pub iat: u64,
    /// Unique token id.
    pub jti: String,
    /// The grant (authorization) the token belongs to.
    pub gid: String,
}

impl Claims {
    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// Why an access token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its `exp`.
    #[error("The access token expired")]
    Expired,
    /// Issued for another resource.
    #[error("The access token was issued for another resource")]
    WrongAudience,
    /// Not a token of this server (bad signature, bad format, other issuer or algorithm).
    #[error("The access token is invalid")]
    Invalid,
}

/// The HMAC key of access tokens.
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl SigningKey {
    /// A key from raw bytes (at least 32).
    pub fn new(secret: &[u8]) -> SigningKey {
        SigningKey {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        // unwrap-free: HS256 signing of a serializable struct cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .unwrap_or_default()
    }

    /// Verifies signature, algorithm, issuer, expiry (at `now`, seconds) and audience.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audiences: &[String],
        now: u64,
    ) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry and audience are checked below against our own clock and list.
        validation.validate_exp = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?
            .claims;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if !audiences.iter().any(|a| a == &claims.aud) {
            return Err(TokenError::WrongAudience);
        }
        Ok(claims)
    }
}

/// The id of a signing key (`kid` in the token header): 16 hex digits of an HMAC of a fixed
/// label under the key. Names the key without revealing it, and without being a plain hash of
/// it (two deployments that chose one key are not linked by a public fingerprint).
pub fn key_id(secret: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::sign(&key, b"openclaw-mcp key id").as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A signing key and its id.
struct Key {
    kid: String,
    /// When replicas start signing with it (ms since the epoch).
    active_at: i64,
    key: SigningKey,
}

impl Key {
    fn new(secret: &[u8], active_at: i64) -> Key {
        Key {
            kid: key_id(secret),
            active_at,
            key: SigningKey::new(secret),
        }
    }
}

/// The keys access tokens are signed and checked with: the configured key
/// (`MCP_TOKEN_SIGNING_KEY`), if any, and the stored ones (the data directory's, or the shared
/// ones in PostgreSQL, several during a rotation). Tokens are signed with the configured key
/// when there is one, else with the newest stored key already active; they are accepted when
/// signed by any of them (a token without `kid`, from an earlier release, is tried against all).
///
/// A stored key is retired `retire_after` (the access-token lifetime and a margin) once a newer
/// key became active: every token it signed has expired by then, so a token signed with it
/// is refused from that moment on every replica, whenever the key is actually deleted.
#[derive(Default)]
pub struct KeySet {
    configured: Option<Key>,
    stored: Vec<Key>,
    retire_after_ms: i64,
}

impl KeySet {
    /// The set of the configured key and the stored `(secret, active_at)` keys.
    pub fn new(
        configured: Option<&[u8]>,
        stored: &[(Vec<u8>, i64)],
        retire_after: std::time::Duration,
    ) -> KeySet {
        let mut set = KeySet {
            configured: configured.map(|k| Key::new(k, 0)),
            stored: Vec::new(),
            retire_after_ms: retire_after.as_millis() as i64,
        };
        set.set_stored(stored);
        set
    }

    /// Whether the stored key `k` is retired at `now_ms`.
    fn retired(&self, k: &Key, now_ms: i64) -> bool {
        self.stored.iter().any(|n| {
            n.active_at > k.active_at && n.active_at.saturating_add(self.retire_after_ms) <= now_ms
        })
    }

    /// Replaces the stored keys (what the database holds now).
    pub fn set_stored(&mut self, stored: &[(Vec<u8>, i64)]) {
        let mut keys: Vec<Key> = stored.iter().map(|(s, at)| Key::new(s, *at)).collect();
        keys.sort_by_key(|k| k.active_at);
        self.stored = keys;
    }

    /// Whether any key can sign.
    pub fn can_sign(&self) -> bool {
        self.configured.is_some() || !self.stored.is_empty()
    }

    /// The kid tokens are signed with at `now_ms`.
    pub fn signer_id(&self, now_ms: i64) -> Option<&str> {
        self.signer(now_ms).map(|k| k.kid.as_str())
    }

    fn signer(&self, now_ms: i64) -> Option<&Key> {
        self.configured.as_ref().or_else(|| {
            self.stored
                .iter()
                .rev()
                .find(|k| k.active_at <= now_ms)
                .or_else(|| self.stored.first())
        })
    }

    /// Signs `claims` with the signing key of `now_ms`; `None` when there is no key yet (the
    /// shared store was never reached).
    pub fn sign(&self, claims: &Claims, now_ms: i64) -> Option<String> {
        let key = self.signer(now_ms)?;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.key.encoding).ok()
    }

    /// Verifies a token against the key its `kid` names (every key when it names none), as
    /// [`SigningKey::verify`] does.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audiences: &[String],
        now: u64,
    ) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let now_ms = (now as i64).saturating_mul(1000);
        let live = self.stored.iter().filter(|k| !self.retired(k, now_ms));
        let all = self.configured.iter().chain(live);
        for key in all {
            if header.kid.as_ref().is_some_and(|kid| kid != &key.kid) {
                continue;
            }
            // Expired and WrongAudience are found only once the signature matched.
            match key.key.verify(token, issuer, audiences, now) {
                Err(TokenError::Invalid) => {}
                checked => return checked,
            }
        }
        Err(TokenError::Invalid)
    }
}

/// `n` random bytes from the system CSPRNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // The system RNG failing is not something a server can work around.
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the system random number generator failed");
    buf
}

/// An opaque token: 32 random bytes, base64url.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(32))
}

/// The stored form of an opaque token or secret: hex SHA-256.
pub fn hash(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64, aud: &str) -> Claims {
        Claims {
            iss: "https://bridge.example".into(),
            aud: aud.into(),
            sub: "openclaw".into(),
            scope: SCOPE.into(),
            exp,
            iat: 1,
            jti: "j".into(),
            gid: "g".into(),
        }
    }

    #[test]
    fn a_token_round_trips_and_is_checked() {
        let key = SigningKey::new(&[7u8; 32]);
        let aud = vec!["https://bridge.example/mcp".to_string()];
        let token = key.sign(&claims(100, &aud[0]));
        assert_eq!(
            key.verify(&token, "https://bridge.example", &aud, 50)
                .unwrap()
                .sub,
            "openclaw"
        );
        assert_eq!(
            key.verify(&token, "https://bridge.example", &aud, 100),
            Err(TokenError::Expired)
        );
        assert_eq!(
            key.verify(&token, "https://other.example", &aud, 50),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            key.verify(
                &token,
                "https://bridge.example",
                &["https://x/mcp".into()],
                50
            ),
            Err(TokenError::WrongAudience)
        );
        let forged = SigningKey::new(&[8u8; 32]).sign(&claims(100, &aud[0]));
        assert_eq!(
            key.verify(&forged, "https://bridge.example", &aud, 50),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn alg_none_and_tampering_are_rejected() {
        let key = SigningKey::new(&[7u8; 32]);
        let aud = vec!["https://bridge.example/mcp".to_string()];
        let token = key.sign(&claims(100, &aud[0]));
        let parts: Vec<&str> = token.split('.').collect();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert_eq!(
            key.verify(&unsigned, "https://bridge.example", &aud, 50),
            Err(TokenError::Invalid)
        );
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["sub"] = "admin".into();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        );
        assert_eq!(
            key.verify(&tampered, "https://bridge.example", &aud, 50),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn hashes_and_comparisons() {
        assert_eq!(hash("abc").len(), 64);
        assert_ne!(random_token(), random_token());
        assert!(ct_eq(b"same", b"same"));
        assert!(!ct_eq(b"same", b"sane"));
        assert!(!ct_eq(b"same", b"same!"));
    }
}
