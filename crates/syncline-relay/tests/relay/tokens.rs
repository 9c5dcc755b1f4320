//! Token lifetimes and keys, end to end: a subscription ends when its
//! token expires, secrets shorter than 32 bytes are refused at start,
//! rotated secrets are both accepted (key ids), and tokens living longer
//! than `--max-token-ttl` are refused.

use syncline_protocol::{ClientFrame, DocId, ErrorCode, PROTOCOL_VERSION, RelayFrame};
use syncline_relay::auth::{self, Claims, Rights, Secret};
use tokio::time::timeout;

use crate::common::{Client, RelayProcess, TIMEOUT, delta, doc, seqs};

const SECRET: &str = "an auth secret for tests, 32 bytes or more";
const OLD_SECRET: &str = "the secret before the rotation, also 32+ bytes";

fn token(secret: &str, doc: DocId, rights: Rights, expires_at: u64) -> String {
    let claims = Claims {
        doc,
        rights,
        expires_at,
    };
    auth::mint(&Secret::new(secret).unwrap(), claims)
}

async fn authorize(client: &mut Client, doc: DocId, token: String) {
    client.send(&ClientFrame::Authorize { doc, token }).await;
}

#[tokio::test]
async fn a_subscription_ends_when_its_token_expires_and_resumes_with_a_fresh_one() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(data.path(), &["--auth-secret", SECRET]).await;
    let url = relay.url();
    let soon = auth::unix_now() + 2;
    let mut v3 = Client::greeted_current(&url, 1).await;
    authorize(&mut v3, doc(1), token(SECRET, doc(1), Rights::Read, soon)).await;
    v3.subscribe(doc(1), 0).await;
    let (mut v1, _) = Client::greeted(&url).await;
    authorize(&mut v1, doc(1), token(SECRET, doc(1), Rights::Read, soon)).await;
    v1.subscribe(doc(1), 0).await;

    let message = v3.expect_doc_error(doc(1), ErrorCode::TokenExpired).await;
    assert!(message.contains("Subscribe again"), "{message}");
    v1.expect_doc_error(doc(1), ErrorCode::Unauthorized).await;

    // Unsubscribed: a new delta does not reach them.
    let (mut writer, _) = Client::greeted(&url).await;
    let later = auth::unix_now() + 3600;
    authorize(
        &mut writer,
        doc(1),
        token(SECRET, doc(1), Rights::Write, later),
    )
    .await;
    assert_eq!(writer.push(doc(1), vec![delta(1)]).await, 1);
    v3.ping(1).await;
    v1.ping(1).await;

    // A fresh token and a new Subscribe: it catches up.
    authorize(&mut v3, doc(1), token(SECRET, doc(1), Rights::Read, later)).await;
    assert_eq!(seqs(&v3.subscribe(doc(1), 0).await.0), vec![1]);
    assert_eq!(writer.push(doc(1), vec![delta(2)]).await, 2);
    match v3.recv().await {
        RelayFrame::Tentative { .. } | RelayFrame::Committed { .. } => {}
        other => panic!("expected live delivery, got {other:?}"),
    }
}

#[tokio::test]
async fn a_secret_shorter_than_32_bytes_is_refused_at_start() {
    let data = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncline-relay"))
        .args(["--listen", "127.0.0.1:0", "--auth-secret", "too short"])
        .arg("--data")
        .arg(data.path())
        .env_remove("SYNCLINE_AUTH_SECRET")
        .output();
    let output = timeout(TIMEOUT, output).await.unwrap().unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "it never listened");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 32"), "{stderr}");
    assert!(!stderr.contains("too short"), "the secret is not echoed");
}

#[tokio::test]
async fn rotated_secrets_are_both_accepted_and_old_format_tokens_still_work() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--auth-secret", SECRET, "--auth-secret", OLD_SECRET];
    let relay = RelayProcess::start_with(data.path(), &args).await;
    let url = relay.url();
    let later = auth::unix_now() + 3600;
    let mut client = Client::greeted_current(&url, 1).await;
    // Minted by the binary with each secret: sl2 tokens, with key ids.
    let mint = syncline_relay::testing::mint_token;
    let new = mint(SECRET, &doc(1).to_string(), "write", None).await;
    let old = mint(OLD_SECRET, &doc(2).to_string(), "write", None).await;
    authorize(&mut client, doc(1), new).await;
    authorize(&mut client, doc(2), old).await;
    assert_eq!(client.push(doc(1), vec![delta(1)]).await, 1);
    assert_eq!(client.push(doc(2), vec![delta(2)]).await, 1);
    // An sl1 token (no key id), as backends minted them before.
    let signed = format!("sl1.{}.write.{later}", doc(3));
    let sl1 = {
        use base64::Engine;
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(OLD_SECRET.as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        let sig = mac.finalize().into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    };
    authorize(&mut client, doc(3), format!("{signed}.{sl1}")).await;
    assert_eq!(client.push(doc(3), vec![delta(3)]).await, 1);
    // A secret the relay does not hold.
    let other = "a third secret, which this relay never had";
    authorize(
        &mut client,
        doc(4),
        token(other, doc(4), Rights::Write, later),
    )
    .await;
    let message = client
        .expect_doc_error(doc(4), ErrorCode::Unauthorized)
        .await;
    assert!(message.contains("does not have"), "{message}");
}

#[tokio::test]
async fn a_token_living_longer_than_the_maximum_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--auth-secret", SECRET, "--max-token-ttl", "1h"];
    let relay = RelayProcess::start_with(data.path(), &args).await;
    let mut client = Client::greeted_current(&relay.url(), 1).await;
    let too_far = auth::unix_now() + 7200;
    authorize(
        &mut client,
        doc(1),
        token(SECRET, doc(1), Rights::Write, too_far),
    )
    .await;
    client
        .send(&ClientFrame::Push {
            doc: doc(1),
            deltas: vec![delta(1)],
        })
        .await;
    let message = client
        .expect_doc_error(doc(1), ErrorCode::Unauthorized)
        .await;
    assert!(message.contains("maximum token lifetime"), "{message}");
    // So the push had no token.
    client
        .expect_doc_error(doc(1), ErrorCode::Unauthorized)
        .await;
    // In Hello, such a token is fatal like any invalid one.
    let hello = token(SECRET, doc(1), Rights::Write, too_far);
    let mut fresh = Client::connect(&relay.url()).await;
    fresh
        .send(&ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            replica: [2; 16],
            token: Some(hello),
        })
        .await;
    fresh.expect_fatal(ErrorCode::Unauthorized, 1008).await;
    let within = auth::unix_now() + 3000;
    authorize(
        &mut client,
        doc(1),
        token(SECRET, doc(1), Rights::Write, within),
    )
    .await;
    assert_eq!(client.push(doc(1), vec![delta(1)]).await, 1);
}
