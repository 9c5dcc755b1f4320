//! Ephemeral messages and requests between two [`Client`]s through the real
//! relay binary, and the example agent (`examples/agent.rs`) as a process.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Relay, TIMEOUT};
use syncline_cli::{Client, ClientConfig, ClientError, Event, FileStore, Tokens};
use syncline_core::{DocId, DocUrl, EngineError, SynclineErrorCode};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::broadcast::Receiver;
use tokio::time::timeout;

fn client(dir: &Path, relay: &str) -> Client {
    let store = FileStore::open(dir).expect("the store opens");
    let config = ClientConfig {
        relay: relay.to_string(),
        tokens: Tokens::None,
    };
    Client::start(store, config).expect("the client starts")
}

/// What must outlive a test's clients: the relay and the directories.
struct Keep {
    relay: Relay,
    _dirs: [TempDir; 3],
}

/// A relay and two replicas online on one document (bind the `Keep`: a
/// `_` pattern would drop the relay at once).
async fn pair() -> (Client, Client, DocUrl, Keep) {
    let dirs = [(); 3].map(|()| tempfile::tempdir().unwrap());
    let relay = Relay::start(dirs[0].path()).await;
    let a = client(dirs[1].path(), &relay.url());
    let b = client(dirs[2].path(), &relay.url());
    let url = a.create_doc(&json!({"items": []})).unwrap();
    a.wait_synced(TIMEOUT).await.unwrap();
    a.wait_caught_up(url.doc, TIMEOUT).await.unwrap();
    b.open_doc(&url).unwrap();
    b.wait_caught_up(url.doc, TIMEOUT).await.unwrap();
    let keep = Keep { relay, _dirs: dirs };
    (a, b, url, keep)
}

/// The handler's message of a `Remote` error, whose code it checks.
fn remote_message(err: &ClientError) -> &str {
    assert_eq!(err.code(), Some(SynclineErrorCode::RemoteError), "{err:?}");
    match err {
        ClientError::Remote { message, .. } => message,
        other => panic!("not a remote error: {other:?}"),
    }
}

/// The next message event (bounded): its document, sender and message.
async fn next_message(events: &mut Receiver<Event>) -> (DocId, [u8; 16], Value) {
    timeout(TIMEOUT, async {
        loop {
            if let Event::Message { doc, from, message } = events.recv().await.unwrap() {
                return (doc, from, message);
            }
        }
    })
    .await
    .expect("a message arrives")
}

fn serve_upper(client: &Client, doc: &DocId) {
    client
        .serve(doc, "upper", |payload| async move {
            match payload {
                Value::String(s) => Ok(Value::String(s.to_uppercase())),
                _ => Err("expected a string".to_string()),
            }
        })
        .unwrap();
}

#[tokio::test]
async fn a_broadcast_reaches_the_other_replica_with_its_sender_and_not_the_sender() {
    let (a, b, url, _keep) = pair().await;
    let (mut a_events, mut b_events) = (a.subscribe(), b.subscribe());

    assert!(a.broadcast(&url.doc, &json!({"typing": true})).unwrap());
    let (doc, from, message) = next_message(&mut b_events).await;
    assert_eq!((doc, from), (url.doc, a.replica()));
    assert_eq!(message, json!({"typing": true}));

    // B answers; the relay relays in order, so had A heard its own message
    // it would come first.
    assert!(b.broadcast(&url.doc, &json!("from b")).unwrap());
    let (_, from, message) = next_message(&mut a_events).await;
    assert_eq!((from, message), (b.replica(), json!("from b")));
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_message_that_is_not_json_is_an_error_event_and_messages_flow_on() {
    let (a, b, url, _keep) = pair().await;
    let mut b_events = b.subscribe();
    // Bytes no client of this API would send, straight through the engine.
    let sent = a.with_engine(|engine, _| engine.send_message(url.doc, b"{oops".to_vec()));
    assert!(sent.unwrap());
    assert!(a.broadcast(&url.doc, &json!("valid")).unwrap());
    let error = timeout(TIMEOUT, async {
        loop {
            match b_events.recv().await.unwrap() {
                Event::Error { code, message } => return (code, message),
                Event::Message { message, .. } => panic!("delivered: {message}"),
                _ => {}
            }
        }
    })
    .await
    .expect("an error event");
    assert_eq!(error.0, SynclineErrorCode::BadMessage);
    assert!(
        error.1.contains("is not JSON and was dropped"),
        "{}",
        error.1
    );
    let (_, _, message) = next_message(&mut b_events).await;
    assert_eq!(message, json!("valid"));
    assert!(b.failed().is_none());
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_request_gets_the_serving_replicas_result() {
    let (a, b, url, _keep) = pair().await;
    serve_upper(&b, &url.doc);
    let result = a
        .request(&url.doc, "upper", &json!("milk"), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(result, json!("MILK"));
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_request_nobody_serves_fails_with_no_server_after_the_timeout() {
    let (a, b, url, _keep) = pair().await;
    serve_upper(&b, &url.doc); // B is online, but serves another method
    let wait = Duration::from_millis(700);
    let started = Instant::now();
    let err = a
        .request(&url.doc, "lower", &json!("MILK"), wait)
        .await
        .unwrap_err();
    let took = started.elapsed();
    eprintln!("NoServer after {took:?} (timeout {wait:?})");
    assert!(
        matches!(&err, ClientError::NoServer { method, waited } if method == "lower" && *waited == wait),
        "{err:?}"
    );
    assert_eq!(err.code(), Some(SynclineErrorCode::NoServer));
    // The engine's deadline woke the client: about the timeout, not the
    // grace period after it.
    assert!(took >= wait - Duration::from_millis(20), "{took:?}");
    assert!(took < wait + Duration::from_millis(1500), "{took:?}");
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_handlers_error_reaches_the_caller_as_remote_with_its_code() {
    let (a, b, url, _keep) = pair().await;
    serve_upper(&b, &url.doc);
    let err = a
        .request(&url.doc, "upper", &json!(42), TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Remote { method, message } if method == "upper" && message == "expected a string"),
        "{err:?}"
    );
    assert_eq!(err.code(), Some(SynclineErrorCode::RemoteError));
    assert_eq!(
        err.to_string(),
        "the handler of `upper` failed: expected a string"
    );
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_handler_that_panics_fails_that_request_and_the_replica_serves_on() {
    let (a, b, url, _keep) = pair().await;
    serve_upper(&b, &url.doc);
    b.serve(&url.doc, "explode", |_| async { panic!("kaboom") })
        .unwrap();
    let err = a
        .request(&url.doc, "explode", &json!(null), TIMEOUT)
        .await
        .unwrap_err();
    let message = remote_message(&err);
    assert_eq!(message, "the handler of `explode` panicked: kaboom");
    let payload = json!("still here");
    let result = a.request(&url.doc, "upper", &payload, TIMEOUT).await;
    assert_eq!(result.unwrap(), json!("STILL HERE"));
    assert!(b.failed().is_none());
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused_and_nothing_is_sent() {
    let (a, b, url, _keep) = pair().await;
    let mut b_events = b.subscribe();
    let big = json!("x".repeat(70 * 1024));

    let err = a.broadcast(&url.doc, &big).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Engine(EngineError::MessageTooLarge { .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), Some(SynclineErrorCode::MessageTooLarge));
    let err = a
        .request(&url.doc, "upper", &big, TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(SynclineErrorCode::MessageTooLarge));

    // The next message B hears is the small one that follows.
    assert!(a.broadcast(&url.doc, &json!("small")).unwrap());
    let (_, _, message) = next_message(&mut b_events).await;
    assert_eq!(message, json!("small"));

    // A result too large to send reaches the caller as an error saying so.
    b.serve(&url.doc, "big", |_| async {
        Ok(json!("y".repeat(70 * 1024)))
    })
    .unwrap();
    let err = a
        .request(&url.doc, "big", &json!(null), TIMEOUT)
        .await
        .unwrap_err();
    let message = remote_message(&err);
    assert!(message.contains("exceeds the message limit"), "{message}");
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn offline_a_broadcast_is_not_sent_and_a_request_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let a = client(dir.path(), &format!("ws://{port}"));
    let url = a.create_doc(&json!({})).unwrap();

    assert!(!a.broadcast(&url.doc, &json!("anyone?")).unwrap());
    let started = Instant::now();
    let err = a
        .request(&url.doc, "upper", &json!("x"), TIMEOUT)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(err, ClientError::Engine(EngineError::MessagesOffline(_))),
        "{err:?}"
    );
    assert_eq!(err.code(), Some(SynclineErrorCode::Offline));
    a.close().await;
}

#[tokio::test]
async fn a_pending_request_fails_when_the_connection_drops() {
    let (a, b, url, keep) = pair().await;
    // B's handler says when it has the request, then never answers.
    let (arrived, has_it) = tokio::sync::mpsc::unbounded_channel();
    b.serve(&url.doc, "hang", move |_| {
        let _ = arrived.send(());
        async {
            std::future::pending::<()>().await;
            Ok(json!(null))
        }
    })
    .unwrap();
    let payload = json!(null);
    let (err, took) = {
        let request = a.request(&url.doc, "hang", &payload, TIMEOUT);
        tokio::pin!(request);
        let mut has_it = has_it;
        tokio::select! {
            result = &mut request => panic!("settled early: {result:?}"),
            got = timeout(TIMEOUT, has_it.recv()) => {
                got.expect("b's handler got the request before the relay died");
            }
        }
        let started = Instant::now();
        keep.relay.kill9().await;
        let err = timeout(TIMEOUT, request).await.unwrap().unwrap_err();
        (err, started.elapsed())
    };
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        matches!(&err, ClientError::Disconnected { method } if method == "hang"),
        "{err:?}"
    );
    assert_eq!(err.code(), Some(SynclineErrorCode::Offline));
    a.close().await;
    b.close().await;
}

/// `target/<profile>/examples/agent`, next to the test executable's
/// `target/<profile>/deps`; `cargo test` builds examples before tests.
fn agent_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in <target>/<profile>/deps");
    let path = profile_dir
        .join("examples")
        .join(format!("agent{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "the example agent is missing at {}: build it with `cargo build -p syncline-cli --example agent` \
         (a plain `cargo test` builds it)",
        path.display()
    );
    path
}

#[tokio::test]
async fn the_example_agent_serves_upper_and_fail_and_echoes_broadcasts() {
    let dirs = [(); 3].map(|()| tempfile::tempdir().unwrap());
    let relay = Relay::start(dirs[0].path()).await;
    let a = client(dirs[1].path(), &relay.url());
    let url = a.create_doc(&json!({"items": []})).unwrap();
    a.wait_synced(TIMEOUT).await.unwrap();
    a.wait_caught_up(url.doc, TIMEOUT).await.unwrap();

    let mut agent = Command::new(agent_bin())
        .args(["--relay", &relay.url(), "--doc", &url.to_string()])
        .arg("--state")
        .arg(dirs[2].path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the agent starts");
    let stdout = agent.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = timeout(TIMEOUT, lines.next_line()).await;
    assert_eq!(
        first
            .expect("the agent is ready in time")
            .unwrap()
            .as_deref(),
        Some("ready")
    );

    let doc = url.doc;
    let upper = a.request(&doc, "upper", &json!("milk"), TIMEOUT).await;
    assert_eq!(upper.unwrap(), json!("MILK"));
    let err = a
        .request(&doc, "upper", &json!([1]), TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(remote_message(&err), "expected a string");
    let err = a
        .request(&doc, "fail", &json!(null), TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(remote_message(&err), "the agent failed on purpose");

    let mut events = a.subscribe();
    assert!(a.broadcast(&doc, &json!({"n": 1})).unwrap());
    let (_, from, message) = next_message(&mut events).await;
    assert_ne!(from, a.replica());
    assert_eq!(message, json!({"echo": {"n": 1}}));

    agent.kill().await.unwrap();
    a.close().await;
}
