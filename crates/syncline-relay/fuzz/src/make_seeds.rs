//! Writes seed inputs for the `session` target: short scripted sessions
//! in both configurations (open and token-guarded, roomy and tiny limits),
//! so the fuzzer starts from well-formed frames and valid tokens.

use std::path::PathBuf;

use syncline_protocol::{ClientFrame, DeltaId, PROTOCOL_VERSION, PushDelta};
use syncline_relay::fuzzing::{encode_input, token};

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "corpus/session".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let doc = syncline_relay::test_docs::doc;
    let hello = |replica: u8, token: Option<String>| ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        replica: [replica; 16],
        token,
    };
    // Writes signed for replica 1, the writer of the scripts below.
    let push = |d: u8, n: u8| {
        let push = ClientFrame::Push {
            doc: doc(d),
            deltas: vec![PushDelta {
                id: DeltaId([n; 32]),
                bytes: vec![n; 8],
            }],
        };
        syncline_relay::test_docs::sign(push, &[1; 16])
    };
    let scripts: Vec<Vec<(u8, ClientFrame)>> = vec![
        vec![
            (0, hello(1, Some(token(doc(0), true)))),
            (1, hello(2, Some(token(doc(0), false)))),
            (
                1,
                ClientFrame::Subscribe {
                    doc: doc(0),
                    since: 0,
                },
            ),
            (0, push(0, 1)),
            (0, push(0, 2)),
            (
                1,
                ClientFrame::Presence {
                    doc: doc(0),
                    bytes: b"cursor".to_vec(),
                },
            ),
            (
                0,
                ClientFrame::Snapshot {
                    doc: doc(0),
                    covers_seq: 2,
                    id: DeltaId([9; 32]),
                    bytes: vec![9; 8],
                },
            ),
            (2, hello(3, None)),
            (
                2,
                ClientFrame::Authorize {
                    doc: doc(0),
                    token: token(doc(0), false),
                },
            ),
            (
                2,
                ClientFrame::Subscribe {
                    doc: doc(0),
                    since: 0,
                },
            ),
            (1, ClientFrame::Unsubscribe { doc: doc(0) }),
            (0, ClientFrame::Ping { nonce: 7 }),
        ],
        vec![
            (0, hello(1, None)),
            (
                0,
                ClientFrame::Authorize {
                    doc: doc(1),
                    token: token(doc(1), true),
                },
            ),
            (0, push(1, 1)),
            (1, hello(2, None)),
            (
                1,
                ClientFrame::Authorize {
                    doc: doc(1),
                    token: token(doc(2), true),
                },
            ),
            (
                1,
                ClientFrame::Subscribe {
                    doc: doc(1),
                    since: 0,
                },
            ),
            (1, push(1, 2)),
        ],
        (0..12u8)
            .map(|n| match n {
                0 => (0, hello(1, None)),
                1 => (1, hello(2, None)),
                n if n % 2 == 0 => (
                    1,
                    ClientFrame::Subscribe {
                        doc: doc(n % 5),
                        since: 0,
                    },
                ),
                n => (0, push(n % 5, n)),
            })
            .collect(),
    ];
    let mut written = 0;
    for (i, script) in scripts.iter().enumerate() {
        for config in 0..4u8 {
            std::fs::write(
                dir.join(format!("seed-{i}-{config}")),
                encode_input(config, script),
            )?;
            written += 1;
        }
    }
    println!("wrote {written} seeds to {}", dir.display());
    Ok(())
}
