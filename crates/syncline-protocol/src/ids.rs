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

const BASE58_ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
/// 58⁵: five base58 digits per limb, and a limb times 2³² fits a `u64`.
const LIMB: u64 = 656_356_768;

/// Base58 (the Bitcoin alphabet, as `bs58` writes it), computed in limbs
/// of five digits from 32-bit words of the input: an id is printed for
/// every log key, and this is ~10× fewer operations than digit by digit.
fn base58(bytes: &[u8]) -> String {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    // The number, little-endian, in base 58⁵.
    let mut limbs: Vec<u32> = Vec::with_capacity(bytes.len() / 3 + 1);
    let (head, words) = bytes.split_at(bytes.len() % 4);
    let head = (!head.is_empty()).then(|| {
        let value = head.iter().fold(0u64, |v, b| v << 8 | u64::from(*b));
        (value, 1u64 << (8 * head.len()))
    });
    let words = words.chunks_exact(4).map(|w| {
        let word = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
        (u64::from(word), 1u64 << 32)
    });
    for (value, radix) in head.into_iter().chain(words) {
        let mut carry = value;
        for limb in &mut limbs {
            let x = u64::from(*limb) * radix + carry;
            *limb = (x % LIMB) as u32;
            carry = x / LIMB;
        }
        while carry > 0 {
            limbs.push((carry % LIMB) as u32);
            carry /= LIMB;
        }
    }
    let mut digits: Vec<u8> = Vec::with_capacity(limbs.len() * 5);
    for mut limb in limbs {
        for _ in 0..5 {
            digits.push((limb % 58) as u8);
            limb /= 58;
        }
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let mut text = String::with_capacity(zeros + digits.len());
    text.extend(std::iter::repeat_n('1', zeros));
    text.extend(
        digits
            .iter()
            .rev()
            .map(|d| char::from(BASE58_ALPHABET[*d as usize])),
    );
    text
}

macro_rules! id_formatting {
    ($ty:ident, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&base58(&self.0))
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
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn base58_is_what_bs58_writes(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(base58(&bytes), bs58::encode(&bytes).into_string());
        }

        #[test]
        fn base58_of_ids_with_leading_zeros(zeros in 0usize..32, tail in any::<[u8; 32]>()) {
            let mut bytes = tail;
            bytes[..zeros].fill(0);
            prop_assert_eq!(base58(&bytes), bs58::encode(&bytes).into_string());
        }
    }

    #[test]
    fn base58_edge_cases() {
        for bytes in [&[][..], &[0], &[0, 0], &[255; 32], &[0, 0, 1], &[57], &[58]] {
            assert_eq!(base58(bytes), bs58::encode(bytes).into_string());
        }
    }

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
