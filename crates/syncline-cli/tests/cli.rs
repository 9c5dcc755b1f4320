//! The `syncline` binary against the real relay binary, on 127.0.0.1.

mod support;

use std::path::Path;
use std::process::Stdio;

use serde_json::json;
use support::{Relay, TIMEOUT, json, relay_token, run, run_ok, stderr, syncline};
use syncline_core::{DocKey, DocUrl};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::timeout;

/// A well-formed document URL the relay has never heard of.
fn fresh_url(n: u8) -> String {
    let bytes: [u8; 32] = std::array::from_fn(|i| n.wrapping_add(i as u8));
    DocUrl::for_key(DocKey(bytes)).to_string()
}

/// Creates a document on `relay` and returns its URL.
async fn create(relay: &Relay, init: &str) -> String {
    let out = run_ok(&["--relay", &relay.url(), "create", "--init", init]).await;
    let url = out.trim().to_string();
    assert!(url.starts_with("syncline:") && url.contains('#'), "{out:?}");
    assert_eq!(out.lines().count(), 1, "only the URL on stdout: {out:?}");
    url
}

async fn get(relay: &Relay, url: &str) -> serde_json::Value {
    json(&run_ok(&["--relay", &relay.url(), "get", url]).await)
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            bytes.extend(all_bytes(&path));
        } else {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn create_then_get_round_trips() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path()).await;
    let init = r#"{"title":"groceries","items":[{"name":"milk","done":false}],"n":3}"#;
    let url = create(&relay, init).await;
    assert_eq!(get(&relay, &url).await, json(init));

    // The default document is an empty object.
    let empty = create(&relay, "{}").await;
    assert_eq!(get(&relay, &empty).await, json!({}));
    let default = run_ok(&["--relay", &relay.url(), "create"]).await;
    assert_eq!(get(&relay, default.trim()).await, json!({}));
}

#[tokio::test]
async fn set_and_push_then_get() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path()).await;
    let url = create(&relay, r#"{"title":"x","items":[],"meta":{"n":1}}"#).await;
    let r = relay.url();

    run_ok(&["--relay", &r, "set", &url, "/title", r#""groceries""#]).await;
    run_ok(&["--relay", &r, "push", &url, "/items", r#"{"name":"milk"}"#]).await;
    run_ok(&["--relay", &r, "push", &url, "/items", r#"{"name":"eggs"}"#]).await;
    run_ok(&["--relay", &r, "set", &url, "/items/0/done", "true"]).await;
    run_ok(&["--relay", &r, "set", &url, "/meta/n", "-5"]).await;
    run_ok(&["--relay", &r, "set", &url, "/meta/tags", r#"["a"]"#]).await;
    run_ok(&["--relay", &r, "push", &url, "/meta/tags", "\"b\""]).await;
    run_ok(&[
        "--relay",
        &r,
        "set",
        &url,
        "/items/1",
        r#"{"name":"bread"}"#,
    ])
    .await;

    assert_eq!(
        get(&relay, &url).await,
        json!({
            "title": "groceries",
            "items": [{"name": "milk", "done": true}, {"name": "bread"}],
            "meta": {"n": -5, "tags": ["a", "b"]}
        })
    );

    // The root itself: its fields are replaced.
    run_ok(&["--relay", &r, "set", &url, "", r#"{"fresh":1}"#]).await;
    assert_eq!(get(&relay, &url).await, json!({"fresh": 1}));
}

#[tokio::test]
async fn a_second_replica_reads_through_the_relay_which_only_sees_sealed_bytes() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path()).await;
    let r = relay.url();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (a.path().to_str().unwrap(), b.path().to_str().unwrap());
    let marker = "plaintext-marker-7f3a9c";

    let out = run_ok(&[
        "--relay",
        &r,
        "--state",
        a,
        "create",
        "--init",
        &format!(r#"{{"secret":"{marker}","list":[]}}"#),
    ])
    .await;
    let url = out.trim();
    run_ok(&["--relay", &r, "--state", a, "push", url, "/list", "1"]).await;

    // Replica B has never seen the document: all it has is the URL.
    let value = json(&run_ok(&["--relay", &r, "--state", b, "get", url]).await);
    assert_eq!(value, json!({"secret": marker, "list": [1]}));
    // B writes, A reads it back on its kept replica.
    run_ok(&["--relay", &r, "--state", b, "push", url, "/list", "2"]).await;
    let value = json(&run_ok(&["--relay", &r, "--state", a, "get", url]).await);
    assert_eq!(value, json!({"secret": marker, "list": [1, 2]}));

    // The relay's disk holds deltas, but never the plaintext nor the key.
    let stored = all_bytes(data.path());
    assert!(!stored.is_empty());
    assert!(!contains(&stored, marker), "the relay stored plaintext");
    let key = url.split('#').nth(1).unwrap();
    assert!(!contains(&stored, key), "the relay stored the key");
    // The replicas' own logs hold it (they have the key).
    assert!(contains(&all_bytes(Path::new(a)), marker));
}

/// `--state` holds document keys: the directory the CLI creates and the
/// log in it are for the owner only, and `--help` says so.
#[cfg(unix)]
#[tokio::test]
async fn a_new_state_directory_is_owner_only_and_help_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path()).await;
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("replica");
    let url = run_ok(&[
        "--relay",
        &relay.url(),
        "--state",
        state.to_str().unwrap(),
        "create",
        "--init",
        r#"{"list":[]}"#,
    ])
    .await;
    let key = url.trim().parse::<DocUrl>().unwrap().key.0;
    let stored = all_bytes(&state);
    assert!(
        stored.windows(key.len()).any(|w| w == key),
        "the state holds the document key"
    );
    assert_eq!(mode(&state), 0o700, "the state directory");
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    let help = run_ok(&["--help"]).await;
    assert!(
        help.contains("0700") && help.contains("0600"),
        "--help tells what --state's permissions are: {help}"
    );
}

#[tokio::test]
async fn a_kept_replica_reseeds_a_relay_that_lost_its_data() {
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    let first = tempfile::tempdir().unwrap();
    let relay = Relay::start(first.path()).await;
    let out = run_ok(&[
        "--relay",
        &relay.url(),
        "--state",
        state,
        "create",
        "--init",
        r#"{"kept":true,"list":[]}"#,
    ])
    .await;
    let url = out.trim().to_string();
    relay.kill9().await;

    // A brand-new relay (another epoch): the kept replica pushes its whole
    // state again before its own change is acked.
    let second = tempfile::tempdir().unwrap();
    let relay = Relay::start(second.path()).await;
    let r = relay.url();
    run_ok(&["--relay", &r, "--state", state, "push", &url, "/list", "1"]).await;
    assert_eq!(get(&relay, &url).await, json!({"kept": true, "list": [1]}));
}

#[tokio::test]
async fn bad_pointers_and_values_are_clear_errors() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path()).await;
    let url = create(&relay, r#"{"a":{"b":1},"items":[1],"s":"x"}"#).await;
    let r = relay.url();

    let cases: [(&[&str], &str); 7] = [
        (
            &["set", &url, "/a/nope/c", "1"],
            "segment `nope` does not exist: the object at `/a` has no such key",
        ),
        (
            &["set", &url, "/items/7", "1"],
            "segment `7` does not exist: the list has 1 item(s)",
        ),
        (
            &["set", &url, "/s/x", "1"],
            "segment `x` does not exist: `/s` is a string",
        ),
        (
            &["push", &url, "/a", "1"],
            "`/a`: cannot push: the value there is an object, not a list",
        ),
        (
            &["push", &url, "/missing", "1"],
            "segment `missing` does not exist",
        ),
        (&["set", &url, "no-slash", "1"], "is not a JSON pointer"),
        (&["set", &url, "/a/b", "milk"], "is not valid JSON"),
    ];
    for (args, message) in cases {
        let args = [&["--relay", r.as_str()], args].concat();
        let output = run(&args).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(message),
            "{args:?}: expected {message:?} in {:?}",
            stderr(&output)
        );
    }
    let output = run(&["--relay", &r, "get", "syncline:nonsense"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("is not a Syncline document URL"));
    // Nothing was changed by the failed commands.
    assert_eq!(
        get(&relay, &url).await,
        json!({"a": {"b": 1}, "items": [1], "s": "x"})
    );
}

#[tokio::test]
async fn set_fails_clearly_when_the_relay_is_unreachable() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let relay = format!("ws://127.0.0.1:{port}");
    let url = fresh_url(1);
    let output = run(&[
        "--relay",
        &relay,
        "--timeout",
        "1.5",
        "set",
        &url,
        "/a",
        "1",
    ])
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("timed out after 1.5s"), "{message}");
    assert!(message.contains(&relay), "{message}");
    assert!(message.contains("cannot connect"), "{message}");
}

#[tokio::test]
async fn set_times_out_clearly_when_the_relay_never_answers() {
    // Accepts TCP connections and then says nothing at all.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = format!("ws://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = fresh_url(2);
    let output = run(&["--relay", &relay, "--timeout", "1", "set", &url, "/a", "1"]).await;
    silent.abort();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("timed out after 1s"), "{message}");
    assert!(message.contains("still connecting"), "{message}");
}

#[tokio::test]
async fn relay_refusals_print_their_code_and_message() {
    let secret = "a-test-secret-that-is-long-enough-0123456789";
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start_with(data.path(), &["--auth-secret", secret]).await;
    let r = relay.url();
    // Any well-formed URL will do: the relay has never seen it.
    let url = &fresh_url(3);

    // A write token for the document works.
    let write = relay_token(secret, url, "write").await;
    run_ok(&["--relay", &r, "--token", &write, "set", url, "/a", "1"]).await;
    let value = run_ok(&["--relay", &r, "--token", &write, "get", url]).await;
    assert_eq!(json(&value), json!({"a": 1}));

    // A read token can read but not write.
    let read = relay_token(secret, url, "read").await;
    let output = run(&["--relay", &r, "--token", &read, "set", url, "/a", "2"]).await;
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("(ReadOnly)"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("read only"), "{}", stderr(&output));

    // A forged token is refused for its document.
    let output = run(&["--relay", &r, "--token", "sl1.forged", "get", url]).await;
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Unauthorized"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn a_token_command_gives_each_document_its_own_token() {
    let secret = "a-test-secret-that-is-long-enough-0123456789";
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start_with(data.path(), &["--auth-secret", secret]).await;
    let r = relay.url();
    let bin = syncline_relay::testing::relay_bin();
    let bin = bin.display();
    let minting = format!("'{bin}' token --secret '{secret}' --rights write --ttl 1h --doc");
    // `create` cannot know its document's id in advance: the command mints
    // a token for it once it exists.
    let created = run_ok(&[
        "--relay",
        &r,
        "--token-command",
        &minting,
        "create",
        "--init",
        r#"{"n":1}"#,
    ])
    .await;
    let url = created.trim();
    let value = run_ok(&["--relay", &r, "--token-command", &minting, "get", url]).await;
    assert_eq!(json(&value), json!({"n": 1}));

    // A command that fails: the document's refusal names it, exit 4.
    let output = run(&[
        "--relay",
        &r,
        "--token-command",
        "echo nope >&2; exit 3",
        "get",
        url,
    ])
    .await;
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("TokenProvider") && message.contains("nope"),
        "{message}"
    );
    assert!(!message.contains('#'), "the key never shows: {message}");
}

#[tokio::test]
async fn watch_prints_a_line_when_another_client_changes_the_doc() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path()).await;
    let r = relay.url();
    let url = create(&relay, r#"{"items":[]}"#).await;

    let mut watch = syncline()
        .args(["--relay", &r, "watch", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut next = async || {
        timeout(TIMEOUT, lines.next_line())
            .await
            .expect("watch prints in time")
            .unwrap()
            .expect("watch is still running")
    };
    assert_eq!(json(&next().await), json!({"items": []}));

    run_ok(&["--relay", &r, "push", &url, "/items", r#""milk""#]).await;
    assert_eq!(json(&next().await), json!({"items": ["milk"]}));
    run_ok(&["--relay", &r, "set", &url, "/done", "true"]).await;
    assert_eq!(
        json(&next().await),
        json!({"items": ["milk"], "done": true})
    );

    watch.start_kill().unwrap();
    timeout(TIMEOUT, watch.wait()).await.unwrap().unwrap();
}
