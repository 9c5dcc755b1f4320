//! Signed, per-document access tokens.
//!
//! With a secret configured (`--auth-secret`), a connection may touch a
//! document only with a valid token for it. A token is five dot-separated
//! fields, all URL-safe:
//!
//! ```text
//! sl1.<doc id, base58>.<read|write>.<expiry, unix seconds>.<signature>
//! ```
//!
//! The signature is HMAC-SHA256, keyed with the secret, over everything
//! before the last dot (`sl1.<doc>.<rights>.<expiry>`), in unpadded
//! base64url. So any backend can mint tokens with a standard HMAC and no
//! Syncline code; [`mint`] and `syncline-relay token` do it here.
//!
//! Claims are deliberately few: the **document** (a token is for exactly
//! one), the **rights** (`read` lets a connection subscribe and send
//! presence; `write` also lets it push and snapshot) and the **expiry**
//! (checked whenever the token is used for a request; an established
//! subscription is not cut when its token expires later).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use syncline_protocol::DocId;

/// The first field of every token this relay issues and accepts.
pub const TOKEN_VERSION: &str = "sl1";

/// What a token allows on its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rights {
    /// Subscribe (catch up, receive live deltas) and send presence.
    Read,
    /// Everything `Read` allows, plus push and snapshot.
    Write,
}

impl Rights {
    /// The spelling in tokens and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Rights::Read => "read",
            Rights::Write => "write",
        }
    }
}

impl std::str::FromStr for Rights {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Rights, TokenError> {
        match s {
            "read" => Ok(Rights::Read),
            "write" => Ok(Rights::Write),
            _ => Err(TokenError::Malformed("rights must be `read` or `write`")),
        }
    }
}

/// What a token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    /// The one document the token is for.
    pub doc: DocId,
    /// What it allows there.
    pub rights: Rights,
    /// When it stops being valid, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// The HMAC key tokens are signed with. Its `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret from its bytes (e.g. the `--auth-secret` string).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Secret, TokenError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(TokenError::EmptySecret);
        }
        Ok(Secret(bytes))
    }

    /// Whether the secret is shorter than the 32 bytes HMAC-SHA256 wants.
    pub fn is_weak(&self) -> bool {
        self.0.len() < 32
    }

    fn mac(&self, signed: &str) -> Hmac<Sha256> {
        // HMAC takes a key of any length; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(signed.as_bytes());
        mac
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a token (or an argument to mint one) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token does not have the `sl1.doc.rights.expiry.signature` shape.
    #[error("the token is malformed ({0}); mint one with `syncline-relay token`")]
    Malformed(&'static str),
    /// The signature does not match: another secret, or the token was
    /// altered.
    #[error("the token's signature does not verify: it was signed with another secret or altered")]
    BadSignature,
    /// The token has expired.
    #[error("the token expired at {at} (unix seconds); get a fresh one")]
    Expired {
        /// The expiry it carried.
        at: u64,
    },
    /// An empty secret was configured.
    #[error("the auth secret must not be empty")]
    EmptySecret,
    /// A document argument is neither `syncline:<id>` nor a bare id.
    #[error("`{0}` is not a document URL (`syncline:<id>`) or id")]
    BadDoc(String),
    /// A time-to-live argument could not be read.
    #[error("`{0}` is not a duration: use e.g. 90s, 30m, 1h or 7d")]
    BadTtl(String),
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs `claims` into a token.
pub fn mint(secret: &Secret, claims: Claims) -> String {
    let signed = format!(
        "{TOKEN_VERSION}.{}.{}.{}",
        claims.doc,
        claims.rights.as_str(),
        claims.expires_at
    );
    let signature = URL_SAFE_NO_PAD.encode(secret.mac(&signed).finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// Checks `token`'s shape, signature and expiry (against `now`, in unix
/// seconds) and returns its claims. Which document it is for is the
/// caller's business.
pub fn verify(secret: &Secret, token: &str, now: u64) -> Result<Claims, TokenError> {
    let (signed, signature) = token
        .rsplit_once('.')
        .ok_or(TokenError::Malformed("no signature"))?;
    let mut fields = signed.split('.');
    let (Some(version), Some(doc), Some(rights), Some(expiry), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(TokenError::Malformed("expected five dot-separated fields"));
    };
    if version != TOKEN_VERSION {
        return Err(TokenError::Malformed("unknown token version"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed("the signature is not base64url"))?;
    // Constant-time comparison, before any claim is trusted.
    secret
        .mac(signed)
        .verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    let claims = Claims {
        doc: doc
            .parse()
            .map_err(|_| TokenError::Malformed("bad document id"))?,
        rights: rights.parse()?,
        expires_at: expiry
            .parse()
            .map_err(|_| TokenError::Malformed("bad expiry"))?,
    };
    if claims.expires_at <= now {
        return Err(TokenError::Expired {
            at: claims.expires_at,
        });
    }
    Ok(claims)
}

/// Reads a document URL (`syncline:<id>`, optionally followed by `#…` or
/// `?…`) or a bare base58 id.
pub fn parse_doc(input: &str) -> Result<DocId, TokenError> {
    let trimmed = input.trim();
    let id = trimmed.strip_prefix("syncline:").unwrap_or(trimmed);
    let id = id.trim_start_matches('/');
    let id = id.split(['#', '?']).next().unwrap_or_default();
    id.parse()
        .map_err(|_| TokenError::BadDoc(input.chars().take(80).collect()))
}

/// Reads a time-to-live: a number with an optional unit `s`, `m`, `h` or
/// `d` (`90`, `90s`, `30m`, `1h`, `7d`).
pub fn parse_ttl(input: &str) -> Result<Duration, TokenError> {
    let bad = || TokenError::BadTtl(input.chars().take(40).collect());
    let s = input.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let seconds = number.checked_mul(scale).ok_or_else(bad)?;
    if seconds == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: DocId = DocId([3; 16]);

    fn secret() -> Secret {
        Secret::new("correct horse battery staple, long enough").unwrap()
    }

    fn claims(rights: Rights, expires_at: u64) -> Claims {
        Claims {
            doc: DOC,
            rights,
            expires_at,
        }
    }

    #[test]
    fn a_minted_token_verifies_until_it_expires() {
        let token = mint(&secret(), claims(Rights::Write, 1000));
        assert!(token.starts_with(&format!("sl1.{DOC}.write.1000.")));
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        );
        assert_eq!(
            verify(&secret(), &token, 999),
            Ok(claims(Rights::Write, 1000))
        );
        assert_eq!(
            verify(&secret(), &token, 1000),
            Err(TokenError::Expired { at: 1000 })
        );
    }

    #[test]
    fn any_change_or_another_secret_breaks_the_signature() {
        let token = mint(&secret(), claims(Rights::Read, 1000));
        let upgraded = token.replacen(".read.", ".write.", 1);
        assert_eq!(
            verify(&secret(), &upgraded, 0),
            Err(TokenError::BadSignature)
        );
        let extended = token.replacen(".1000.", ".9000.", 1);
        assert_eq!(
            verify(&secret(), &extended, 0),
            Err(TokenError::BadSignature)
        );
        let other = Secret::new("another secret").unwrap();
        assert_eq!(verify(&other, &token, 0), Err(TokenError::BadSignature));
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            verify(&secret(), &flipped, 0),
            Err(TokenError::BadSignature)
        );
        for bad in [
            "",
            "sl1",
            "sl1.x.read.1.sig",
            "sl2.a.b.c.d",
            "a.b.c.d.e.f",
            "sl1.a.read.1.!!",
        ] {
            assert!(
                matches!(
                    verify(&secret(), bad, 0),
                    Err(TokenError::Malformed(_) | TokenError::BadSignature)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn documents_are_read_from_urls_or_bare_ids() {
        let id = DOC.to_string();
        for input in [
            id.clone(),
            format!("syncline:{id}"),
            format!("syncline:{id}#key=abc"),
            format!(" syncline://{id}?x "),
        ] {
            assert_eq!(parse_doc(&input), Ok(DOC), "{input}");
        }
        assert!(parse_doc("syncline:").is_err());
        assert!(parse_doc("https://example.com").is_err());
    }

    #[test]
    fn ttls_take_a_unit() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["", "h", "0", "1w", "-1h", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
        assert!(Secret::new("").is_err());
        assert!(!secret().is_weak());
        assert!(Secret::new("short").unwrap().is_weak());
        assert_eq!(format!("{:?}", secret()), "Secret(..)");
    }
}
