//! Identifiers that cross the wire: documents and deltas.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A document's id: 128 random bits, printed in base58 (URL-safe, no
/// look-alike characters).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DocId(pub [u8; 16]);

/// A delta's id: HMAC-SHA256 of its plaintext under the document key
/// (computed by the client; the relay, without the key, treats it as
/// opaque), so the same delta pushed twice has the same id and the relay
/// stores it once.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeltaId(pub [u8; 32]);

/// A string that is not a valid id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{input}` is not a valid {what}: expected {expected} bytes in base58")]
pub struct IdParseError {
    input: String,
    what: &'static str,
    expected: usize,
}

fn parse_base58<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], IdParseError> {
    let err = || IdParseError {
        input: s.chars().take(64).collect(),
        what,
        expected: N,
    };
    let bytes = bs58::decode(s).into_vec().map_err(|_| err())?;
    bytes.try_into().map_err(|_| err())
}

macro_rules! id_formatting {
    ($ty:ident, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&bs58::encode(&self.0).into_string())
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "({})"), self)
            }
        }

        impl FromStr for $ty {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_base58(s, $what).map($ty)
            }
        }
    };
}

id_formatting!(DocId, "document id");
id_formatting!(DeltaId, "delta id");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_id_round_trips_through_base58() {
        let id = DocId([7; 16]);
        let text = id.to_string();
        assert!(text.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(text.parse::<DocId>().unwrap(), id);
    }

    #[test]
    fn wrong_length_or_alphabet_is_a_typed_error() {
        assert!("abc".parse::<DocId>().is_err());
        assert!("0OIl".parse::<DocId>().is_err());
        let delta_text = DeltaId([1; 32]).to_string();
        assert!(delta_text.parse::<DocId>().is_err());
    }
}
