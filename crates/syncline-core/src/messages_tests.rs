//! Messages and requests between two engines, with the relay's part
//! (verify, route by `to`, stamp `from`) done by hand.

use serde_json::json;
use syncline_protocol::{
    ClientFrame, Limits, PROTOCOL_VERSION, RelayFrame, decode_client, encode_relay, proof,
};

use super::{MAX_MESSAGE_BYTES, RequestFailure};
use crate::engine::{Effect, Engine, Output};
use crate::{DocId, DocUrl, EngineError};

const T0: u64 = 1_000_000;

fn welcome(version: u32) -> Vec<u8> {
    encode_relay(&RelayFrame::Welcome {
        version,
        epoch: [3; 16],
        limits: Limits::default(),
    })
}

/// An engine welcomed at protocol `version` as replica `[n; 16]`, with `url` open.
fn peer(n: u8, url: &DocUrl, version: u32) -> Engine {
    let mut engine = Engine::new([n; 32]);
    engine.set_compaction_enabled(false);
    engine.connected([n; 16], None, T0);
    engine.received(&welcome(version), T0);
    engine.open_doc(url, T0).unwrap();
    engine.take_outputs();
    engine
}

fn doc_url() -> DocUrl {
    let mut maker = Engine::new([9; 32]);
    maker.create_doc(&json!({}), T0).unwrap()
}

/// The messages `engine` sent, checked as the relay checks them, as the
/// frames the relay would deliver (`from` is the sender's replica).
fn relayed(engine: &mut Engine, from: [u8; 16]) -> Vec<(Option<[u8; 16]>, Vec<u8>)> {
    let mut frames = Vec::new();
    for output in engine.take_outputs() {
        if let Output::Effect(Effect::Send(bytes)) = output
            && let Ok(ClientFrame::SignedMessage {
                doc,
                to,
                bytes,
                proof: write_proof,
            }) = decode_client(&bytes)
        {
            let digest = proof::message_digest(&doc, &from, to.as_ref(), &bytes);
            proof::verify(&doc, &digest, &write_proof).expect("a valid proof");
            let frame = RelayFrame::Message {
                doc,
                from,
                to,
                bytes,
            };
            frames.push((to, encode_relay(&frame)));
        }
    }
    frames
}

fn deliver(engine: &mut Engine, frames: &[(Option<[u8; 16]>, Vec<u8>)]) -> Vec<Output> {
    for (_, frame) in frames {
        engine.received(frame, T0);
    }
    engine.take_outputs()
}

#[test]
fn a_message_reaches_the_peer_sealed_and_is_refused_when_too_large() {
    let url = doc_url();
    let (mut a, mut b) = (
        peer(1, &url, PROTOCOL_VERSION),
        peer(2, &url, PROTOCOL_VERSION),
    );
    assert!(matches!(
        a.send_message(url.doc, b"hello".to_vec()),
        Ok(true)
    ));
    let frames = relayed(&mut a, [1; 16]);
    assert_eq!(frames.len(), 1);
    assert!(
        !frames[0].1.windows(5).any(|w| w == b"hello"),
        "the relay sees only ciphertext"
    );
    let outputs = deliver(&mut b, &frames);
    assert!(matches!(
        outputs.as_slice(),
        [Output::Message { doc, from: [1, ..], message }] if *doc == url.doc && message == b"hello"
    ));
    let big = vec![7; MAX_MESSAGE_BYTES];
    assert!(matches!(
        a.send_message(url.doc, big),
        Err(EngineError::MessageTooLarge { .. })
    ));
    assert!(relayed(&mut a, [1; 16]).is_empty(), "nothing was sent");
}

#[test]
fn a_message_under_another_sender_or_document_does_not_open() {
    let url = doc_url();
    let (mut a, mut b) = (
        peer(1, &url, PROTOCOL_VERSION),
        peer(2, &url, PROTOCOL_VERSION),
    );
    a.send_message(url.doc, b"x".to_vec()).unwrap();
    // A relay that lies about `from` (it verified the real sender).
    let forged: Vec<_> = relayed(&mut a, [1; 16])
        .into_iter()
        .map(|(_, frame)| match syncline_protocol::decode_relay(&frame) {
            Ok(RelayFrame::Message { doc, to, bytes, .. }) => {
                let from = [5; 16];
                (
                    to,
                    encode_relay(&RelayFrame::Message {
                        doc,
                        from,
                        to,
                        bytes,
                    }),
                )
            }
            other => panic!("{other:?}"),
        })
        .collect();
    let outputs = deliver(&mut b, &forged);
    assert!(matches!(
        outputs.as_slice(),
        [Output::Effect(Effect::Error(
            EngineError::BadMessage { .. }
        ))]
    ));
}

#[test]
fn nothing_is_sent_offline_or_to_an_older_relay() {
    let url = doc_url();
    let mut old = peer(1, &url, 3);
    assert!(matches!(
        old.send_message(url.doc, b"x".to_vec()),
        Ok(false)
    ));
    assert!(matches!(
        old.request(url.doc, "m", vec![], 1000, T0),
        Err(EngineError::MessagesOffline(_))
    ));
    let mut a = peer(1, &url, PROTOCOL_VERSION);
    a.disconnected();
    assert!(matches!(a.send_message(url.doc, b"x".to_vec()), Ok(false)));
    assert!(relayed(&mut a, [1; 16]).is_empty());
    let missing = DocId([0; 16]);
    assert!(matches!(
        a.send_message(missing, vec![]),
        Err(EngineError::DocNotFound(_))
    ));
}

#[test]
fn a_request_is_answered_by_the_serving_peer_only_once() {
    let url = doc_url();
    let mut client = peer(1, &url, PROTOCOL_VERSION);
    let mut server = peer(2, &url, PROTOCOL_VERSION);
    let mut bystander = peer(3, &url, PROTOCOL_VERSION);
    server.serve(url.doc, "upper").unwrap();
    let id = client
        .request(url.doc, "upper", b"abc".to_vec(), 5_000, T0)
        .unwrap();
    let asked = relayed(&mut client, [1; 16]);
    assert!(
        deliver(&mut bystander, &asked).is_empty(),
        "not served there"
    );
    let outputs = deliver(&mut server, &asked);
    let [
        Output::Request {
            from,
            id: got,
            method,
            payload,
            ..
        },
    ] = outputs.as_slice()
    else {
        panic!("one request expected, got {outputs:?}");
    };
    assert_eq!((*from, *got, method.as_str()), ([1; 16], id, "upper"));
    let upper = payload.to_ascii_uppercase();
    assert!(matches!(
        server.reply(url.doc, *from, id, Ok(upper)),
        Ok(true)
    ));
    let replies = relayed(&mut server, [2; 16]);
    assert_eq!(replies[0].0, Some([1; 16]), "addressed to the requester");
    let outputs = deliver(&mut client, &replies);
    assert!(matches!(
        outputs.as_slice(),
        [Output::Reply { id: got, result: Ok(r), .. }] if *got == id && r == b"ABC"
    ));
    assert!(deliver(&mut client, &replies).is_empty(), "settled once");
    assert_eq!(client.next_deadline().filter(|d| *d < T0 + 5_000), None);
}

#[test]
fn a_handler_error_and_a_missing_server_settle_the_request() {
    let url = doc_url();
    let mut client = peer(1, &url, PROTOCOL_VERSION);
    let mut server = peer(2, &url, PROTOCOL_VERSION);
    server.serve(url.doc, "fail").unwrap();
    let id = client.request(url.doc, "fail", vec![], 5_000, T0).unwrap();
    let asked = relayed(&mut client, [1; 16]);
    deliver(&mut server, &asked);
    server
        .reply(url.doc, [1; 16], id, Err("boom".into()))
        .unwrap();
    let outputs = deliver(&mut client, &relayed(&mut server, [2; 16]));
    assert!(matches!(
        outputs.as_slice(),
        [Output::Reply { result: Err(RequestFailure::Remote(m)), .. }] if m == "boom"
    ));

    let id = client
        .request(url.doc, "nobody", vec![], 2_000, T0)
        .unwrap();
    assert_eq!(client.next_deadline(), Some(T0 + 2_000));
    client.take_outputs();
    client.tick(T0 + 1_999);
    assert!(client.take_outputs().is_empty(), "not before the deadline");
    client.tick(T0 + 2_000);
    assert!(matches!(
        client.take_outputs().as_slice(),
        [Output::Reply { id: got, result: Err(RequestFailure::NoServer), .. }] if *got == id
    ));
    assert_eq!(client.next_deadline().filter(|d| *d <= T0 + 2_000), None);
}

#[test]
fn a_result_too_large_becomes_an_error_reply_and_a_dropped_connection_settles_requests() {
    let url = doc_url();
    let mut client = peer(1, &url, PROTOCOL_VERSION);
    let mut server = peer(2, &url, PROTOCOL_VERSION);
    server.serve(url.doc, "big").unwrap();
    let id = client.request(url.doc, "big", vec![], 5_000, T0).unwrap();
    deliver(&mut server, &relayed(&mut client, [1; 16]));
    let huge = vec![1; MAX_MESSAGE_BYTES];
    assert!(matches!(
        server.reply(url.doc, [1; 16], id, Ok(huge)),
        Err(EngineError::MessageTooLarge { .. })
    ));
    let outputs = deliver(&mut client, &relayed(&mut server, [2; 16]));
    assert!(matches!(
        outputs.as_slice(),
        [Output::Reply { result: Err(RequestFailure::Remote(m)), .. }] if m.contains("exceeds")
    ));

    client.request(url.doc, "big", vec![], 5_000, T0).unwrap();
    client.take_outputs();
    client.disconnected();
    let outputs = client.take_outputs();
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Reply {
            result: Err(RequestFailure::Disconnected),
            ..
        }
    )));
    assert!(matches!(
        client.request(url.doc, "", vec![], 1, T0),
        Err(EngineError::BadMethod { .. })
    ));
}
