use super::*;
use proptest::prelude::*;

fn doc() -> DocId {
    DocId([3; 16])
}

#[test]
fn every_frame_round_trips() {
    let client = [
        ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            replica: [1; 16],
            token: Some("t".into()),
        },
        ClientFrame::Subscribe {
            doc: doc(),
            since: 42,
        },
        ClientFrame::Push {
            doc: doc(),
            deltas: vec![PushDelta {
                id: DeltaId([9; 32]),
                bytes: vec![1, 2, 3],
            }],
        },
        ClientFrame::Ping { nonce: u64::MAX },
        ClientFrame::Unsubscribe { doc: doc() },
        ClientFrame::Authorize {
            doc: doc(),
            token: "tok".into(),
        },
        ClientFrame::Presence {
            doc: doc(),
            bytes: vec![4; 10],
        },
        ClientFrame::Snapshot {
            doc: doc(),
            covers_seq: 9,
            id: DeltaId([6; 32]),
            bytes: vec![5; 20],
        },
        ClientFrame::SignedMessage {
            doc: doc(),
            to: Some([7; 16]),
            bytes: vec![6; 12],
            proof: WriteProof {
                public_key: [1; 32],
                signature: Signature([2; 64]),
            },
        },
    ];
    for frame in client {
        assert_eq!(decode_client(&encode_client(&frame)).unwrap(), frame);
    }
    let relay = [
        RelayFrame::Welcome {
            version: 1,
            epoch: [5; 16],
            limits: Limits::default(),
        },
        RelayFrame::Error {
            code: ErrorCode::Unauthorized,
            message: "no".into(),
            fatal: true,
        },
        RelayFrame::Deltas {
            doc: doc(),
            items: vec![SequencedDelta {
                seq: 1,
                id: DeltaId([2; 32]),
                bytes: vec![0; 100],
            }],
            caught_up: true,
        },
        RelayFrame::Ack {
            doc: doc(),
            ids: vec![DeltaId([2; 32])],
            seq: 7,
        },
        RelayFrame::Pong { nonce: 0 },
        RelayFrame::Presence {
            doc: doc(),
            from: [8; 16],
            bytes: vec![1],
        },
        RelayFrame::DocError {
            doc: doc(),
            code: ErrorCode::Unauthorized,
            message: "read only".into(),
        },
        RelayFrame::Tentative {
            doc: doc(),
            deltas: vec![PushDelta {
                id: DeltaId([4; 32]),
                bytes: vec![7; 30],
            }],
        },
        RelayFrame::Committed {
            doc: doc(),
            after: 6,
            seq: 9,
            ids: vec![DeltaId([4; 32]), DeltaId([5; 32])],
        },
        RelayFrame::Message {
            doc: doc(),
            from: [8; 16],
            to: None,
            bytes: vec![3; 9],
        },
    ];
    for frame in relay {
        assert_eq!(decode_relay(&encode_relay(&frame)).unwrap(), frame);
    }
}

#[test]
fn delta_bytes_are_encoded_compactly() {
    let frame = ClientFrame::Push {
        doc: doc(),
        deltas: vec![PushDelta {
            id: DeltaId([0; 32]),
            bytes: vec![0xff; 1000],
        }],
    };
    // tag + doc + count + id + length prefix + payload: no per-byte overhead.
    assert!(encode_client(&frame).len() < 1000 + 16 + 32 + 8);
}

#[test]
fn trailing_bytes_and_unknown_variants_are_rejected() {
    let mut bytes = encode_client(&ClientFrame::Ping { nonce: 1 });
    bytes.push(0);
    assert!(matches!(
        decode_client(&bytes),
        Err(ProtocolError::Malformed(_))
    ));
    assert!(matches!(
        decode_client(&[200]),
        Err(ProtocolError::Malformed(_))
    ));
    assert!(matches!(
        decode_relay(&[]),
        Err(ProtocolError::Malformed(_))
    ));
}

#[test]
fn oversized_frames_and_empty_pushes_are_rejected() {
    let huge = vec![0u8; MAX_FRAME_BYTES + 1];
    assert!(matches!(
        decode_client(&huge),
        Err(ProtocolError::FrameTooLarge { .. })
    ));
    let empty = encode_client(&ClientFrame::Push {
        doc: doc(),
        deltas: vec![],
    });
    assert!(matches!(
        decode_client(&empty),
        Err(ProtocolError::OutOfBounds(_))
    ));
}

#[test]
fn live_frames_beyond_their_bounds_are_rejected() {
    let empty_range = encode_relay(&RelayFrame::Committed {
        doc: doc(),
        after: 5,
        seq: 5,
        ids: vec![],
    });
    assert!(matches!(
        decode_relay(&empty_range),
        Err(ProtocolError::OutOfBounds(_))
    ));
    let too_many_ids = encode_relay(&RelayFrame::Committed {
        doc: doc(),
        after: 0,
        seq: 10_000,
        ids: vec![DeltaId([1; 32]); MAX_DELTAS_PER_FRAME + 1],
    });
    assert!(matches!(
        decode_relay(&too_many_ids),
        Err(ProtocolError::OutOfBounds(_))
    ));
    let delta = PushDelta {
        id: DeltaId([2; 32]),
        bytes: vec![],
    };
    let too_many_deltas = encode_relay(&RelayFrame::Tentative {
        doc: doc(),
        deltas: vec![delta; MAX_DELTAS_PER_FRAME + 1],
    });
    assert!(matches!(
        decode_relay(&too_many_deltas),
        Err(ProtocolError::OutOfBounds(_))
    ));
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_client(&bytes);
        let _ = decode_relay(&bytes);
    }

    #[test]
    fn pushes_round_trip(since in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..256)) {
        let frame = ClientFrame::Push { doc: doc(), deltas: vec![PushDelta { id: DeltaId([1; 32]), bytes: payload }] };
        prop_assert_eq!(decode_client(&encode_client(&frame)).unwrap(), frame);
        let sub = ClientFrame::Subscribe { doc: doc(), since };
        prop_assert_eq!(decode_client(&encode_client(&sub)).unwrap(), sub);
    }
}

#[test]
fn message_frames_keep_their_indices_and_digests_bind_the_addressee() {
    // Appended variants: an older decoder sees an unknown index.
    let frame = ClientFrame::SignedMessage {
        doc: doc(),
        to: None,
        bytes: vec![],
        proof: WriteProof {
            public_key: [0; 32],
            signature: Signature([0; 64]),
        },
    };
    assert_eq!(encode_client(&frame)[0], 11);
    let relayed = RelayFrame::Message {
        doc: doc(),
        from: [0; 16],
        to: None,
        bytes: vec![],
    };
    assert_eq!(encode_relay(&relayed)[0], 9);
    let everyone = proof::message_digest(&doc(), &[1; 16], None, b"hi");
    let one = proof::message_digest(&doc(), &[1; 16], Some(&[0; 16]), b"hi");
    let other_sender = proof::message_digest(&doc(), &[2; 16], None, b"hi");
    assert_ne!(everyone, one);
    assert_ne!(everyone, other_sender);
    assert_ne!(everyone, proof::presence_digest(&doc(), &[1; 16], b"hi"));
}
