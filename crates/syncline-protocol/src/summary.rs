//! What a frame is, without what it carries: its kind, the document it
//! concerns, how many deltas or ids it holds and, for a refusal, the
//! relay's error code. Tools that show traffic (the browser devtools'
//! event log) record these; never the payload, a token or a proof.

use crate::{ClientFrame, DocId, ErrorCode, RelayFrame, decode_client, decode_relay};

/// A frame's outline: nothing secret, nothing of its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSummary {
    /// The frame's variant name (`"SignedPush"`, `"Tentative"`, …), or
    /// `"Undecodable"` for bytes that are no frame.
    pub kind: &'static str,
    /// The document it concerns, if one.
    pub doc: Option<DocId>,
    /// Deltas (pushes, catch-up pages, tentative) or ids (acks, commits) it carries.
    pub items: usize,
    /// The relay's code, for `Error` and `DocError`.
    pub code: Option<ErrorCode>,
}

impl FrameSummary {
    fn of(kind: &'static str, doc: Option<DocId>, items: usize) -> FrameSummary {
        FrameSummary {
            kind,
            doc,
            items,
            code: None,
        }
    }

    const UNDECODABLE: FrameSummary = FrameSummary {
        kind: "Undecodable",
        doc: None,
        items: 0,
        code: None,
    };

    /// Outlines a frame a client sends (bytes that are no client frame
    /// give kind `"Undecodable"`).
    pub fn client(bytes: &[u8]) -> FrameSummary {
        decode_client(bytes).map_or(Self::UNDECODABLE, |frame| Self::of_client(&frame))
    }

    /// Outlines a frame a relay sends.
    pub fn relay(bytes: &[u8]) -> FrameSummary {
        decode_relay(bytes).map_or(Self::UNDECODABLE, |frame| Self::of_relay(&frame))
    }

    fn of_client(frame: &ClientFrame) -> FrameSummary {
        match frame {
            ClientFrame::Hello { .. } => Self::of("Hello", None, 0),
            ClientFrame::Ping { .. } => Self::of("Ping", None, 0),
            ClientFrame::Subscribe { doc, .. } => Self::of("Subscribe", Some(*doc), 0),
            ClientFrame::Unsubscribe { doc } => Self::of("Unsubscribe", Some(*doc), 0),
            ClientFrame::Authorize { doc, .. } => Self::of("Authorize", Some(*doc), 0),
            ClientFrame::Push { doc, deltas } => Self::of("Push", Some(*doc), deltas.len()),
            ClientFrame::SignedPush { doc, deltas, .. } => {
                Self::of("SignedPush", Some(*doc), deltas.len())
            }
            ClientFrame::Presence { doc, .. } => Self::of("Presence", Some(*doc), 0),
            ClientFrame::SignedPresence { doc, .. } => Self::of("SignedPresence", Some(*doc), 0),
            ClientFrame::Snapshot { doc, .. } => Self::of("Snapshot", Some(*doc), 1),
            ClientFrame::SignedSnapshot { doc, .. } => Self::of("SignedSnapshot", Some(*doc), 1),
            ClientFrame::SignedMessage { doc, .. } => Self::of("SignedMessage", Some(*doc), 1),
        }
    }

    fn of_relay(frame: &RelayFrame) -> FrameSummary {
        match frame {
            RelayFrame::Welcome { .. } => Self::of("Welcome", None, 0),
            RelayFrame::Pong { .. } => Self::of("Pong", None, 0),
            RelayFrame::Error { code, .. } => FrameSummary {
                code: Some(*code),
                ..Self::of("Error", None, 0)
            },
            RelayFrame::DocError { doc, code, .. } => FrameSummary {
                code: Some(*code),
                ..Self::of("DocError", Some(*doc), 0)
            },
            RelayFrame::Deltas { doc, items, .. } => Self::of("Deltas", Some(*doc), items.len()),
            RelayFrame::Ack { doc, ids, .. } => Self::of("Ack", Some(*doc), ids.len()),
            RelayFrame::Presence { doc, .. } => Self::of("Presence", Some(*doc), 0),
            RelayFrame::Tentative { doc, deltas } => {
                Self::of("Tentative", Some(*doc), deltas.len())
            }
            RelayFrame::Committed { doc, ids, .. } => Self::of("Committed", Some(*doc), ids.len()),
            RelayFrame::Message { doc, .. } => Self::of("Message", Some(*doc), 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeltaId, PushDelta, encode_client, encode_relay};

    #[test]
    fn outlines_carry_kind_doc_count_and_code_but_no_payload() {
        let doc = DocId([7; 16]);
        let push = ClientFrame::Push {
            doc,
            deltas: vec![PushDelta {
                id: DeltaId([1; 32]),
                bytes: vec![9; 40],
            }],
        };
        let summary = FrameSummary::client(&encode_client(&push));
        assert_eq!(summary, FrameSummary::of("Push", Some(doc), 1));
        let refused = RelayFrame::DocError {
            doc,
            code: ErrorCode::ReadOnly,
            message: "read only".into(),
        };
        let summary = FrameSummary::relay(&encode_relay(&refused));
        assert_eq!(
            (summary.kind, summary.code),
            ("DocError", Some(ErrorCode::ReadOnly))
        );
        let hello = ClientFrame::Hello {
            version: 3,
            replica: [0; 16],
            token: Some("secret-token".into()),
        };
        assert_eq!(
            FrameSummary::client(&encode_client(&hello)),
            FrameSummary::of("Hello", None, 0)
        );
        assert_eq!(FrameSummary::relay(&[0xff, 0xff, 0xff]).kind, "Undecodable");
        assert_eq!(FrameSummary::client(&[]).kind, "Undecodable");
    }
}
