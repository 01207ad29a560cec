//! PKCE (RFC 7636), S256 only: challenges and verifiers are 43 to 128 characters of the
//! unreserved set, and `BASE64URL(SHA256(verifier)) == challenge`, compared in constant time.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::tokens::ct_eq;

/// Whether `s` is a well-formed challenge or verifier: 43–128 unreserved characters.
pub fn well_formed(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of a verifier.
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// Whether `verifier` answers `challenge`.
pub fn verify(verifier: &str, challenge: &str) -> bool {
    well_formed(verifier) && ct_eq(challenge_of(verifier).as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            challenge_of(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(verify(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!verify(
            "wrong-verifier-wrong-verifier-wrong-verifier",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn lengths_and_characters_are_checked() {
        assert!(!well_formed(&"a".repeat(42)));
        assert!(well_formed(&"a".repeat(43)));
        assert!(well_formed(&"a".repeat(128)));
        assert!(!well_formed(&"a".repeat(129)));
        assert!(!well_formed(&format!("{}+", "a".repeat(42))));
    }
}
