//! Document URLs: the shareable string that names a document and carries
//! its key.
//!
//! `syncline:<base58 doc id>#<base58 key>`. The key sits in the fragment,
//! which browsers never send to a server: whoever has the URL can read and
//! write the document; the relay, which only ever sees the id, can't. The
//! id derives from the key ([`DocUrl::for_key`]): the relay checks with it
//! that a write was made with the key (see `syncline_protocol::proof`).
//! URLs made before that (any id) still open, read-only.

use syncline_protocol::DocId;

use crate::EngineError;
use crate::seal::DocKey;

const SCHEME: &str = "syncline:";

/// A document's id and key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DocUrl {
    pub doc: DocId,
    pub key: DocKey,
}

impl DocUrl {
    /// The URL of the document with this key: its id derives from the key.
    pub fn for_key(key: DocKey) -> DocUrl {
        DocUrl {
            doc: key.signer().doc_id(),
            key,
        }
    }

    /// Whether the id derives from the key, so writes can be proven to the
    /// relay; `false` for URLs made before signed writes.
    pub fn is_provable(&self) -> bool {
        self.key.signer().doc_id() == self.doc
    }
}

impl std::fmt::Display for DocUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = bs58::encode(&self.key.0).into_string();
        write!(f, "{SCHEME}{}#{key}", self.doc)
    }
}

impl std::str::FromStr for DocUrl {
    type Err = EngineError;

    fn from_str(url: &str) -> Result<DocUrl, EngineError> {
        let bad = |why: &str| EngineError::BadUrl {
            url: url.chars().take(24).collect::<String>() + "…",
            why: why.to_string(),
        };
        let rest = url
            .trim()
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it must start with `syncline:`"))?;
        let (id, key) = rest
            .split_once('#')
            .ok_or_else(|| bad("it has no `#key` part; copy the whole URL"))?;
        let doc = id
            .parse()
            .map_err(|_| bad("the document id is not valid"))?;
        let key: [u8; 32] = bs58::decode(key)
            .into_vec()
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| bad("the key is not valid"))?;
        Ok(DocUrl {
            doc,
            key: DocKey(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_round_trip_and_garbage_is_rejected() {
        let url = DocUrl {
            doc: DocId([42; 16]),
            key: DocKey([9; 32]),
        };
        let text = url.to_string();
        assert!(text.starts_with("syncline:"));
        assert_eq!(text.parse::<DocUrl>().unwrap(), url);
        let bare_id = url.doc.to_string();
        for bad in [
            "",
            "syncline:",
            "syncline:!!#abc",
            "http://x",
            &format!("syncline:{bare_id}"),
            &format!("syncline:{bare_id}#short"),
        ] {
            assert_eq!(bad.parse::<DocUrl>().unwrap_err().code(), "BadUrl", "{bad}");
        }
    }

    #[test]
    fn errors_never_echo_the_key() {
        let text = DocUrl {
            doc: DocId([1; 16]),
            key: DocKey([200; 32]),
        }
        .to_string();
        let broken = text.replace("syncline:", "syncline:0");
        let message = broken.parse::<DocUrl>().unwrap_err().to_string();
        let key_part = text.split('#').nth(1).unwrap();
        assert!(!message.contains(key_part), "{message}");
    }
}
