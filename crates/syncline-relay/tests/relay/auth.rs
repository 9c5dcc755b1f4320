//! Signed tokens: the matrix of who may do what, end to end, and minting
//! them with `syncline-relay token`.

use std::process::Stdio;

use syncline_protocol::{ClientFrame, DeltaId, DocId, ErrorCode, PROTOCOL_VERSION, RelayFrame};
use syncline_relay::auth::{self, Claims, Rights, Secret};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::timeout;

use crate::common::{Client, RelayProcess, TIMEOUT, delta, doc, get_metric, seqs};

const SECRET: &str = "an auth secret for tests, 32 bytes or more";

/// Mints a token with the binary's `token` subcommand.
async fn cli_token(doc_arg: &str, rights: &str, ttl: &str) -> String {
    syncline_relay::testing::mint_token(SECRET, doc_arg, rights, Some(ttl)).await
}

/// Mints a token in-process (for claims the CLI cannot make, like expired).
fn token(doc: DocId, rights: Rights, expires_at: u64) -> String {
    let secret = Secret::new(SECRET).unwrap();
    auth::mint(
        &secret,
        Claims {
            doc,
            rights,
            expires_at,
        },
    )
}

fn in_an_hour() -> u64 {
    auth::unix_now() + 3600
}

async fn secured_relay(data: &std::path::Path) -> RelayProcess {
    RelayProcess::start_with(data, &["--auth-secret", SECRET]).await
}

#[tokio::test]
async fn the_token_subcommand_prints_one_verifiable_token() {
    let id = doc(1).to_string();
    let before = auth::unix_now();
    for doc_arg in [
        id.clone(),
        format!("syncline:{id}"),
        format!("syncline:{id}#key=secret"),
    ] {
        let printed = cli_token(&doc_arg, "write", "2h").await;
        let claims = auth::verify(&Secret::new(SECRET).unwrap(), &printed, before).unwrap();
        assert_eq!(claims.doc, doc(1));
        assert_eq!(claims.rights, Rights::Write);
        assert!((before + 7200..=auth::unix_now() + 7200).contains(&claims.expires_at));
    }
    let read = cli_token(&id, "read", "90").await;
    let kid = Secret::new(SECRET).unwrap().kid();
    assert!(read.starts_with(&format!("sl2.{kid}.{id}.read.")), "{read}");

    // A bad document is a clear error and a non-zero exit.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncline-relay"))
        .args([
            "token",
            "--secret",
            SECRET,
            "--doc",
            "syncline:nope",
            "--rights",
            "read",
        ])
        .output();
    let output = timeout(TIMEOUT, output).await.unwrap().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a document URL"), "{stderr}");
}

#[tokio::test]
async fn the_token_matrix() {
    let data = tempfile::tempdir().unwrap();
    let relay = secured_relay(data.path()).await;
    let url = relay.url();
    let write_1 = cli_token(&format!("syncline:{}", doc(1)), "write", "1h").await;
    let read_1 = cli_token(&doc(1).to_string(), "read", "1h").await;

    // Write token in Hello: subscribe, push, snapshot all work.
    let (mut writer, _) = Client::greeted_as(&url, [1; 16], Some(write_1.clone())).await;
    writer.subscribe(doc(1), 0).await;
    assert_eq!(writer.push(doc(1), vec![delta(1)]).await, 1);

    // No token at all: connected, but every document is refused.
    let (mut anonymous, _) = Client::greeted(&url).await;
    anonymous
        .send(&ClientFrame::Subscribe {
            doc: doc(1),
            since: 0,
        })
        .await;
    let message = anonymous
        .expect_doc_error(doc(1), ErrorCode::Unauthorized)
        .await;
    assert!(message.contains("Authorize"), "says what to do: {message}");
    anonymous
        .send(&ClientFrame::Push {
            doc: doc(1),
            deltas: vec![delta(9)],
        })
        .await;
    anonymous
        .expect_doc_error(doc(1), ErrorCode::Unauthorized)
        .await;
    anonymous.ping(1).await;

    // Read token via Authorize: subscribe and presence yes, push and
    // snapshot no.
    let (mut reader, _) = Client::greeted_with(&url, PROTOCOL_VERSION, [2; 16], None).await;
    reader
        .send(&ClientFrame::Authorize {
            doc: doc(1),
            token: read_1,
        })
        .await;
    let (log, _) = reader.subscribe(doc(1), 0).await;
    assert_eq!(seqs(&log), vec![1]);
    reader
        .send(&ClientFrame::Push {
            doc: doc(1),
            deltas: vec![delta(2)],
        })
        .await;
    let message = reader.expect_doc_error(doc(1), ErrorCode::ReadOnly).await;
    assert!(message.contains("read only"), "{message}");
    reader
        .send(&ClientFrame::Snapshot {
            doc: doc(1),
            covers_seq: 1,
            id: DeltaId([0xee; 32]),
            bytes: vec![1],
        })
        .await;
    reader.expect_doc_error(doc(1), ErrorCode::ReadOnly).await;
    reader
        .send(&ClientFrame::Presence {
            doc: doc(1),
            bytes: b"viewing".to_vec(),
        })
        .await;
    match writer.recv().await {
        RelayFrame::Presence { from, bytes, .. } => {
            assert_eq!((from, &bytes[..]), ([2; 16], &b"viewing"[..]))
        }
        other => panic!("expected Presence, got {other:?}"),
    }
    // The refused push was not stored; the writer's next push is seq 2.
    assert_eq!(writer.push(doc(1), vec![delta(3)]).await, 2);
    match reader.recv().await {
        RelayFrame::Tentative { deltas, .. } => assert_eq!(deltas, vec![delta(3)]),
        other => panic!("expected Tentative, got {other:?}"),
    }
    match reader.recv().await {
        RelayFrame::Committed { after, seq, .. } => assert_eq!((after, seq), (1, 2)),
        other => panic!("expected Committed, got {other:?}"),
    }

    // A version 1 or 2 client knows only `Unauthorized`: it gets that for
    // a read-only push.
    let (mut old_reader, _) = Client::greeted_with(&url, 2, [4; 16], None).await;
    old_reader
        .send(&ClientFrame::Authorize {
            doc: doc(1),
            token: cli_token(&doc(1).to_string(), "read", "1h").await,
        })
        .await;
    old_reader
        .send(&ClientFrame::Push {
            doc: doc(1),
            deltas: vec![delta(5)],
        })
        .await;
    let message = old_reader
        .expect_doc_error(doc(1), ErrorCode::Unauthorized)
        .await;
    assert!(message.contains("read only"), "{message}");

    // Expired, another document's, tampered: refused per document.
    let (mut client, _) = Client::greeted_with(&url, PROTOCOL_VERSION, [5; 16], None).await;
    let expired = token(doc(1), Rights::Write, auth::unix_now() - 1);
    client
        .send(&ClientFrame::Authorize {
            doc: doc(1),
            token: expired,
        })
        .await;
    let message = client
        .expect_doc_error(doc(1), ErrorCode::TokenExpired)
        .await;
    assert!(message.contains("expired"), "{message}");
    client
        .send(&ClientFrame::Authorize {
            doc: doc(2),
            token: write_1.clone(),
        })
        .await;
    let message = client
        .expect_doc_error(doc(2), ErrorCode::Unauthorized)
        .await;
    assert!(
        message.contains(&doc(1).to_string()),
        "names the token's doc: {message}"
    );
    client
        .send(&ClientFrame::Subscribe {
            doc: doc(2),
            since: 0,
        })
        .await;
    client
        .expect_doc_error(doc(2), ErrorCode::Unauthorized)
        .await;
    let mut tampered = token(doc(2), Rights::Write, in_an_hour());
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    client
        .send(&ClientFrame::Authorize {
            doc: doc(2),
            token: tampered,
        })
        .await;
    let message = client
        .expect_doc_error(doc(2), ErrorCode::Unauthorized)
        .await;
    assert!(message.contains("signature"), "{message}");
    let upgraded = token(doc(2), Rights::Read, in_an_hour()).replacen(".read.", ".write.", 1);
    client
        .send(&ClientFrame::Authorize {
            doc: doc(2),
            token: upgraded,
        })
        .await;
    client
        .expect_doc_error(doc(2), ErrorCode::Unauthorized)
        .await;
    // ... and the connection still works with a good token.
    let write_2 = token(doc(2), Rights::Write, in_an_hour());
    client
        .send(&ClientFrame::Authorize {
            doc: doc(2),
            token: write_2,
        })
        .await;
    assert_eq!(client.push(doc(2), vec![delta(4)]).await, 1);

    // A bad token in Hello is fatal: Error{Unauthorized}, close 1008.
    for bad in [
        token(doc(1), Rights::Write, auth::unix_now() - 1),
        "sl1.not-a-token".to_owned(),
        write_1.replacen(".write.", ".read.", 1),
    ] {
        let mut client = Client::connect(&url).await;
        client
            .send(&ClientFrame::Hello {
                version: PROTOCOL_VERSION,
                replica: [3; 16],
                token: Some(bad),
            })
            .await;
        client.expect_fatal(ErrorCode::Unauthorized, 1008).await;
    }

    // Every refusal was counted.
    let failures = |reason: &'static str| {
        let addr = relay.addr;
        async move {
            get_metric(
                addr,
                &format!("syncline_auth_failures_total{{reason=\"{reason}\"}}"),
            )
            .await
        }
    };
    assert_eq!(failures("missing").await, 3.0);
    assert_eq!(failures("read_only").await, 3.0);
    assert_eq!(failures("expired").await, 2.0);
    assert_eq!(failures("wrong_doc").await, 1.0);
    assert_eq!(failures("invalid").await, 4.0);
    writer.ping(9).await;
}

#[tokio::test]
async fn open_mode_warns_loudly_and_ignores_tokens() {
    let data = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncline-relay"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .env_remove("SYNCLINE_AUTH_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let warning = timeout(TIMEOUT, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if line.contains("OPEN MODE") {
                return line;
            }
        }
        panic!("the relay exited without the open-mode warning");
    })
    .await
    .expect("the warning comes at startup");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("--auth-secret"), "{warning}");
    drop(child);

    // Tokens, valid or not, change nothing in open mode.
    let relay = RelayProcess::start(data.path()).await;
    let (mut client, _) = Client::greeted_as(&relay.url(), [1; 16], Some("whatever".into())).await;
    client
        .send(&ClientFrame::Authorize {
            doc: doc(1),
            token: "junk".into(),
        })
        .await;
    assert_eq!(client.push(doc(1), vec![delta(1)]).await, 1);
}
