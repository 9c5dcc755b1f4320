//! Signed, per-document access tokens.
//!
//! With secrets configured (`--auth-secret`, at least [`MIN_SECRET_BYTES`]
//! each), a connection may touch a document only with a valid token for
//! it. A token is dot-separated fields, all URL-safe, in one of two
//! formats:
//!
//! ```text
//! sl2.<key id>.<doc id, base58>.<read|write>.<expiry, unix seconds>.<signature>
//! sl1.<doc id, base58>.<read|write>.<expiry, unix seconds>.<signature>
//! ```
//!
//! The signature is HMAC-SHA256, keyed with a secret, over everything
//! before the last dot, in unpadded base64url. So any backend can mint
//! tokens with a standard HMAC and no Syncline code; [`mint`] and
//! `syncline-relay token` do it here (format `sl2`).
//!
//! The **key id** ([`Secret::kid`]) names the secret that signed the token:
//! the first 8 characters of the unpadded base64url SHA-256 of
//! `syncline-kid:` followed by the secret. A relay holding several secrets
//! ([`Keys`], to rotate them: the new one and the old one are both
//! accepted for a while) checks an `sl2` token against the secret it names
//! only; an `sl1` token, which names none, against each in turn.
//!
//! Claims are deliberately few: the **document** (a token is for exactly
//! one), the **rights** (`read` lets a connection subscribe and send
//! presence; `write` also lets it push and snapshot) and the **expiry**.
//! A relay refuses a token whose expiry is further out than its maximum
//! lifetime ([`Keys::max_ttl`]), and ends a subscription when the token it
//! was made with expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use syncline_protocol::DocId;

/// The first field of tokens with a key id: what this relay mints.
pub const TOKEN_VERSION: &str = "sl2";

/// The first field of tokens without a key id (still accepted).
pub const TOKEN_VERSION_1: &str = "sl1";

/// The shortest secret accepted: HMAC-SHA256 wants a 32-byte key.
pub const MIN_SECRET_BYTES: usize = 32;

/// The longest token lifetime a relay accepts unless configured otherwise.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(7 * 86_400);

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
    /// A secret from its bytes (e.g. the `--auth-secret` string); at least
    /// [`MIN_SECRET_BYTES`] of them.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Secret, TokenError> {
        let bytes = bytes.into();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(TokenError::WeakSecret { len: bytes.len() });
        }
        Ok(Secret(bytes))
    }

    /// The key id of this secret, as `sl2` tokens carry it: 8 characters
    /// of base64url SHA-256 of `syncline-kid:` and the secret (it tells
    /// nothing usable about the secret).
    pub fn kid(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(b"syncline-kid:");
        hash.update(&self.0);
        let mut kid = URL_SAFE_NO_PAD.encode(hash.finalize());
        kid.truncate(8);
        kid
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
    /// A secret shorter than [`MIN_SECRET_BYTES`] was configured.
    #[error(
        "the auth secret is {len} bytes; it must be at least 32 random bytes: make one with `openssl rand -base64 48`"
    )]
    WeakSecret {
        /// Its length.
        len: usize,
    },
    /// An `sl2` token names a key this relay does not hold.
    #[error(
        "the token was signed with key {kid}, which this relay does not have: mint it with one of the relay's current secrets"
    )]
    UnknownKey {
        /// The key id it carried.
        kid: String,
    },
    /// The token's expiry is further out than the relay's maximum lifetime.
    #[error(
        "the token expires at {at} (unix seconds), more than {max_secs} s from now, beyond this relay's maximum token lifetime: mint a shorter-lived one"
    )]
    TooLong {
        /// The expiry it carried.
        at: u64,
        /// The maximum lifetime, in seconds.
        max_secs: u64,
    },
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

/// Signs `claims` into an `sl2` token carrying `secret`'s key id.
pub fn mint(secret: &Secret, claims: Claims) -> String {
    let signed = format!(
        "{TOKEN_VERSION}.{}.{}.{}.{}",
        secret.kid(),
        claims.doc,
        claims.rights.as_str(),
        claims.expires_at
    );
    let signature = URL_SAFE_NO_PAD.encode(secret.mac(&signed).finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// Checks `token`'s shape, signature (against `secret`) and expiry
/// (against `now`, in unix seconds) and returns its claims. Which document
/// it is for is the caller's business. No maximum lifetime: see
/// [`Keys::verify`].
pub fn verify(secret: &Secret, token: &str, now: u64) -> Result<Claims, TokenError> {
    let keys = Keys {
        secrets: vec![secret.clone()],
        max_ttl: Duration::MAX,
    };
    keys.verify(token, now)
}

/// The secrets a relay accepts tokens from, and their maximum lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Every accepted secret (at least one); the first is the current one.
    pub secrets: Vec<Secret>,
    /// Tokens expiring further out than this from now are refused.
    pub max_ttl: Duration,
}

impl Keys {
    /// `secrets` (not empty) with the [`DEFAULT_MAX_TTL`].
    pub fn new(secrets: Vec<Secret>) -> Keys {
        Keys {
            secrets,
            max_ttl: DEFAULT_MAX_TTL,
        }
    }

    /// Checks `token`'s shape, signature, expiry and lifetime at `now`
    /// (unix seconds) and returns its claims.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let (signed, signature) = token
            .rsplit_once('.')
            .ok_or(TokenError::Malformed("no signature"))?;
        let fields: Vec<&str> = signed.splitn(6, '.').collect();
        let (kid, claims) = match fields.as_slice() {
            [TOKEN_VERSION, kid, doc, rights, expiry] => (Some(*kid), [*doc, *rights, *expiry]),
            [TOKEN_VERSION_1, doc, rights, expiry] => (None, [*doc, *rights, *expiry]),
            [TOKEN_VERSION | TOKEN_VERSION_1, ..] => {
                return Err(TokenError::Malformed(
                    "expected sl2.kid.doc.rights.expiry.signature",
                ));
            }
            _ => return Err(TokenError::Malformed("unknown token version")),
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed("the signature is not base64url"))?;
        // Constant-time comparison, before any claim is trusted.
        let signed_by = |secret: &Secret| secret.mac(signed).verify_slice(&signature).is_ok();
        let verified = match kid {
            Some(kid) => {
                let secret = self
                    .secrets
                    .iter()
                    .find(|s| s.kid() == kid)
                    .ok_or_else(|| TokenError::UnknownKey {
                        kid: kid.chars().take(16).collect(),
                    })?;
                signed_by(secret)
            }
            None => self.secrets.iter().any(signed_by),
        };
        if !verified {
            return Err(TokenError::BadSignature);
        }
        let [doc, rights, expiry] = claims;
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
        let max_secs = self.max_ttl.as_secs();
        if claims.expires_at - now > max_secs {
            return Err(TokenError::TooLong {
                at: claims.expires_at,
                max_secs,
            });
        }
        Ok(claims)
    }
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
        let kid = secret().kid();
        assert_eq!(kid.len(), 8);
        assert!(token.starts_with(&format!("sl2.{kid}.{DOC}.write.1000.")));
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
        let other = Secret::new("another secret, also of 32 bytes or more").unwrap();
        assert_eq!(
            verify(&other, &token, 0),
            Err(TokenError::UnknownKey {
                kid: secret().kid()
            })
        );
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
            "sl2.kid.a.read.1",
            "sl2.a.b.c.d.e.f",
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
        assert_eq!(Secret::new(""), Err(TokenError::WeakSecret { len: 0 }));
        assert_eq!(
            Secret::new("31 bytes, one short of the 32.."),
            Err(TokenError::WeakSecret { len: 31 })
        );
        assert!(Secret::new("32 bytes: just what HMAC wants..").is_ok());
        assert_eq!(format!("{:?}", secret()), "Secret(..)");
    }

    /// An `sl1` token (no key id), signed as backends minted them before.
    fn sl1(secret: &Secret, claims: Claims) -> String {
        let signed = format!(
            "sl1.{}.{}.{}",
            claims.doc,
            claims.rights.as_str(),
            claims.expires_at
        );
        let signature = URL_SAFE_NO_PAD.encode(secret.mac(&signed).finalize().into_bytes());
        format!("{signed}.{signature}")
    }

    #[test]
    fn rotated_secrets_are_both_accepted_and_kids_pick_the_key() {
        let old = secret();
        let new = Secret::new("the new secret, rotated in this week, 32+").unwrap();
        assert_ne!(old.kid(), new.kid());
        let both = Keys::new(vec![new.clone(), old.clone()]);
        let only_new = Keys::new(vec![new.clone()]);
        let now = 1000;
        let c = claims(Rights::Read, now + 60);
        for token in [mint(&old, c), sl1(&old, c), mint(&new, c), sl1(&new, c)] {
            assert_eq!(both.verify(&token, now), Ok(c), "{token}");
        }
        assert_eq!(
            only_new.verify(&sl1(&old, c), now),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            only_new.verify(&mint(&old, c), now),
            Err(TokenError::UnknownKey { kid: old.kid() })
        );
        // A kid names the key: the other key's signature does not count.
        let forged = mint(&old, c).replacen(&old.kid(), &new.kid(), 1);
        assert_eq!(both.verify(&forged, now), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_living_longer_than_the_maximum_is_refused() {
        let keys = Keys {
            secrets: vec![secret()],
            max_ttl: Duration::from_secs(3600),
        };
        let now = 10_000;
        let ok = claims(Rights::Write, now + 3600);
        assert_eq!(keys.verify(&mint(&secret(), ok), now), Ok(ok));
        let long = claims(Rights::Write, now + 3601);
        assert_eq!(
            keys.verify(&mint(&secret(), long), now),
            Err(TokenError::TooLong {
                at: now + 3601,
                max_secs: 3600
            })
        );
        assert_eq!(
            keys.verify(&sl1(&secret(), long), now),
            Err(TokenError::TooLong {
                at: now + 3601,
                max_secs: 3600
            })
        );
        assert_eq!(Keys::new(vec![secret()]).max_ttl, DEFAULT_MAX_TTL);
    }
}
