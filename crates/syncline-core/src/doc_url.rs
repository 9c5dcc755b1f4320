//! Document URLs: the shareable string that names a document.
//!
//! `syncline:<base58 doc id>`. (The encryption issue adds the document key
//! in a `#fragment`, which browsers never send to a server.)

use syncline_protocol::DocId;

use crate::EngineError;

const SCHEME: &str = "syncline:";

pub fn format_doc_url(doc: &DocId) -> String {
    format!("{SCHEME}{doc}")
}

/// Parses `syncline:<id>`; a bare `<id>` is accepted too.
pub fn parse_doc_url(url: &str) -> Result<DocId, EngineError> {
    let id = url.trim().strip_prefix(SCHEME).unwrap_or(url.trim());
    id.parse()
        .map_err(|_| EngineError::BadUrl(url.chars().take(80).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_round_trip_and_garbage_is_rejected() {
        let doc = DocId([42; 16]);
        let url = format_doc_url(&doc);
        assert!(url.starts_with("syncline:"));
        assert_eq!(parse_doc_url(&url).unwrap(), doc);
        assert_eq!(parse_doc_url(&doc.to_string()).unwrap(), doc);
        for bad in ["", "syncline:", "syncline:!!", "http://x", "syncline:abc"] {
            assert_eq!(parse_doc_url(bad).unwrap_err().code(), "BadUrl");
        }
    }
}
