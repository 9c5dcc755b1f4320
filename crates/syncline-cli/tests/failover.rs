//! `--relay` given several times: the CLI fails over between the relays of
//! a cluster (real relays on a real Postgres, started by the test).

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{Relay, json, run, run_ok, stderr};
use syncline_relay::testing::services::{Nats, Postgres, free_port};

#[tokio::test]
async fn the_cli_moves_on_from_a_dead_relay_to_the_next_at_once() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-failover");
    let postgres = Postgres::start(&dir);
    let nats = Nats::start();
    let (store, bus) = (postgres.url(), nats.url());
    let a = Relay::start_cluster(&store, Some(&bus), &[]).await;
    let b = Relay::start_cluster(&store, Some(&bus), &[]).await;
    let nobody = format!("ws://127.0.0.1:{}", free_port());

    // The first relay listed refuses: the next one serves, without backoff.
    let started = Instant::now();
    let out = run_ok(&[
        "--relay",
        &nobody,
        "--relay",
        &a.url(),
        "create",
        "--init",
        r#"{"items":[]}"#,
    ])
    .await;
    let url = out.trim().to_string();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Relay A dies; a push listing A then B is acked by B, into the shared log.
    let a_url = a.url();
    a.kill9().await;
    run_ok(&[
        "--relay",
        &a_url,
        "--relay",
        &b.url(),
        "push",
        &url,
        "/items",
        "\"milk\"",
    ])
    .await;
    let value = json(&run_ok(&["--relay", &b.url(), "get", &url]).await);
    assert_eq!(value, serde_json::json!({ "items": ["milk"] }));

    // A comma-separated list in one flag works too; a bad entry is refused.
    let both = format!("{a_url},{}", b.url());
    let value = json(&run_ok(&["--relay", &both, "get", &url]).await);
    assert_eq!(value, serde_json::json!({ "items": ["milk"] }));
    let bad = run(&["--relay", &format!("{},http://x", b.url()), "get", &url]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}
