//! The connection policy under simulated time: every input and every
//! deadline of [`Dialer`], one rule per test.

use syncline_protocol::{ClientFrame, ErrorCode, decode_client};

use super::*;

const CONFIG: DialerConfig = DialerConfig {
    connect_timeout_ms: 1_000,
    heartbeat_ms: 3_000,
    pong_timeout_ms: 500,
    backoff_base_ms: 100,
    backoff_cap_ms: 1_000,
};

fn dialer(relays: usize, seed: u8) -> Dialer {
    Dialer::new(relays, CONFIG, [seed; 32])
}

/// A dialer whose first attempt's socket opened at `at`.
fn open_at(relays: usize, at: u64) -> Dialer {
    let mut d = dialer(relays, 1);
    d.start(at);
    d.opened(at);
    d.take_actions();
    d
}

fn rejected(code: ErrorCode, fatal: bool) -> EngineError {
    EngineError::RelayRejected {
        code,
        message: "no".into(),
        fatal,
    }
}

#[test]
fn nothing_happens_before_start_and_start_connects_to_the_first_relay() {
    let mut d = dialer(2, 1);
    assert_eq!(d.state(), DialState::Waiting);
    assert_eq!(d.next_deadline(), None);
    d.tick(1_000_000);
    assert_eq!(d.take_actions(), vec![]);
    d.start(10);
    assert_eq!(d.take_actions(), vec![DialAction::Connect { relay: 0 }]);
    assert_eq!((d.state(), d.attempt()), (DialState::Connecting, 1));
    d.start(20);
    assert_eq!(d.take_actions(), vec![], "start works once");
}

#[test]
fn no_relay_means_no_attempt_and_no_deadline() {
    let mut d = dialer(0, 1);
    d.start(0);
    d.wake(0);
    d.tick(u64::MAX);
    assert_eq!(d.state(), DialState::NoRelay);
    assert_eq!(d.take_actions(), vec![]);
    assert_eq!(d.next_deadline(), None);
}

#[test]
fn backoff_grows_with_full_jitter_to_the_cap() {
    // Every attempt refused by the only relay: each waits a backoff whose
    // bound doubles from the base to the cap.
    let bounds = [100, 200, 400, 800, 1_000, 1_000, 1_000];
    let mut longest = [0u64; 7];
    let mut shortest = [u64::MAX; 7];
    for seed in 0..=255u8 {
        let mut d = dialer(1, seed);
        let mut now = 0;
        d.start(now);
        for (n, bound) in bounds.iter().enumerate() {
            assert_eq!(d.attempt(), n as u32 + 1);
            d.closed(now);
            assert_eq!(d.state(), DialState::Waiting);
            let retry_at = d.next_deadline().expect("a retry is scheduled");
            let delay = retry_at - now;
            assert!(delay <= *bound, "attempt {}: {delay} > {bound}", n + 1);
            longest[n] = longest[n].max(delay);
            shortest[n] = shortest[n].min(delay);
            // Nothing before the deadline; the attempt exactly at it.
            d.take_actions();
            if delay > 0 {
                d.tick(retry_at - 1);
                assert_eq!(d.take_actions(), vec![]);
            }
            now = retry_at;
            d.tick(now);
            assert_eq!(d.take_actions(), vec![DialAction::Connect { relay: 0 }]);
        }
    }
    // Full jitter: the delays spread over the whole range, 0 to the bound.
    for (n, bound) in bounds.iter().enumerate() {
        assert!(
            longest[n] >= bound * 9 / 10,
            "attempt {}: at most {}",
            n + 1,
            longest[n]
        );
        assert!(
            shortest[n] <= bound / 10,
            "attempt {}: at least {}",
            n + 1,
            shortest[n]
        );
    }
}

#[test]
fn the_backoff_starts_over_after_a_ready_session() {
    for seed in 0..=63u8 {
        let mut d = dialer(1, seed);
        let mut now = 0;
        d.start(now);
        for _ in 0..5 {
            d.closed(now);
            now = d.next_deadline().unwrap();
            d.tick(now);
        }
        assert_eq!(d.attempt(), 6);
        d.opened(now);
        // Open is not enough: the relay may refuse the handshake.
        assert_eq!(d.attempt(), 6);
        d.session_ready();
        assert_eq!(d.attempt(), 0);
        d.closed(now);
        let delay = d.next_deadline().unwrap() - now;
        assert!(delay <= CONFIG.backoff_base_ms, "{delay}");
    }
}

#[test]
fn an_attempt_that_does_not_open_in_time_is_abandoned() {
    let mut d = dialer(1, 1);
    d.start(100);
    d.take_actions();
    assert_eq!(d.next_deadline(), Some(1_100));
    d.tick(1_099);
    assert_eq!(d.take_actions(), vec![]);
    d.tick(1_100);
    assert_eq!(d.take_actions(), vec![DialAction::Close]);
    assert_eq!(d.state(), DialState::Waiting);
    assert_eq!(
        d.last_error(),
        Some(&DialError::ConnectTimeout { ms: 1_000 })
    );
    assert_eq!(
        d.last_error().unwrap().code(),
        SynclineErrorCode::ConnectTimeout
    );
}

#[test]
fn a_timed_out_attempt_moves_to_the_next_relay_at_once() {
    let mut d = dialer(2, 1);
    d.start(0);
    d.take_actions();
    d.tick(1_000);
    assert_eq!(
        d.take_actions(),
        vec![DialAction::Close, DialAction::Connect { relay: 1 }]
    );
    assert_eq!(d.next_deadline(), Some(2_000));
}

#[test]
fn an_open_socket_is_pinged_and_dropped_when_the_ping_goes_unanswered() {
    let mut d = open_at(2, 1_000);
    assert_eq!(d.next_deadline(), Some(4_000));
    d.tick(3_999);
    assert_eq!(d.take_actions(), vec![]);
    d.tick(4_000);
    let actions = d.take_actions();
    let [DialAction::Send(bytes)] = actions.as_slice() else {
        panic!("one ping: {actions:?}");
    };
    assert!(matches!(decode_client(bytes), Ok(ClientFrame::Ping { .. })));
    // Answered (any frame will do): the next ping a heartbeat after this one.
    assert_eq!(d.next_deadline(), Some(4_500));
    d.received(4_100);
    assert_eq!(d.next_deadline(), Some(7_000));
    d.tick(7_000);
    assert_eq!(d.take_actions().len(), 1, "the second ping");
    assert_eq!(d.next_deadline(), Some(7_500));
    d.tick(7_499);
    assert_eq!(d.take_actions(), vec![]);
    // Unanswered: the socket is taken for half-open.
    d.tick(7_500);
    assert_eq!(d.take_actions(), vec![DialAction::Close]);
    assert_eq!(d.state(), DialState::Waiting);
    assert_eq!(
        d.last_error().map(DialError::code),
        Some(SynclineErrorCode::HeartbeatTimeout)
    );
    // Like any lost connection: the next relay, after the backoff.
    assert_eq!(d.relay(), 1);
    let retry_at = d.next_deadline().unwrap();
    assert!((7_500..=7_600).contains(&retry_at), "{retry_at}");
}

#[test]
fn pings_carry_distinct_nonces() {
    let mut d = open_at(1, 0);
    let mut nonces = Vec::new();
    for i in 1..=3u64 {
        d.tick(i * 3_000);
        for action in d.take_actions() {
            if let DialAction::Send(bytes) = action
                && let Ok(ClientFrame::Ping { nonce }) = decode_client(&bytes)
            {
                nonces.push(nonce);
            }
        }
        d.received(i * 3_000);
    }
    assert_eq!(nonces.len(), 3);
    nonces.dedup();
    assert_eq!(nonces.len(), 3, "{nonces:?}");
}

#[test]
fn a_refused_relay_is_left_for_the_next_at_once_until_each_refused() {
    let mut d = dialer(3, 1);
    d.start(0);
    assert_eq!(d.take_actions(), vec![DialAction::Connect { relay: 0 }]);
    d.closed(5);
    assert_eq!(
        d.take_actions(),
        vec![DialAction::Close, DialAction::Connect { relay: 1 }]
    );
    d.closed(6);
    assert_eq!(
        d.take_actions(),
        vec![DialAction::Close, DialAction::Connect { relay: 2 }]
    );
    // All three refused in a row: now the backoff.
    d.closed(7);
    assert_eq!(d.take_actions(), vec![DialAction::Close]);
    assert_eq!(d.state(), DialState::Waiting);
    let retry_at = d.next_deadline().unwrap();
    d.tick(retry_at);
    assert_eq!(d.take_actions(), vec![DialAction::Connect { relay: 0 }]);
    // A success in between resets the count of refusals.
    d.opened(retry_at);
    d.closed(retry_at);
    d.take_actions();
    let retry_at = d.next_deadline().unwrap();
    d.tick(retry_at);
    d.closed(retry_at);
    assert_eq!(
        d.take_actions(),
        vec![
            DialAction::Connect { relay: 1 },
            DialAction::Close,
            DialAction::Connect { relay: 2 }
        ]
    );
}

#[test]
fn a_lost_connection_waits_the_backoff_and_moves_to_the_next_relay() {
    let mut d = open_at(2, 0);
    d.session_ready();
    d.closed(50);
    assert_eq!(d.take_actions(), vec![DialAction::Close]);
    assert_eq!(d.state(), DialState::Waiting);
    assert_eq!(d.relay(), 1);
    let retry_at = d.next_deadline().unwrap();
    assert!((50..=150).contains(&retry_at), "{retry_at}");
    d.tick(retry_at);
    assert_eq!(d.take_actions(), vec![DialAction::Connect { relay: 1 }]);
}

#[test]
fn the_engine_giving_up_ends_the_attempt_like_a_loss() {
    let mut d = open_at(1, 0);
    d.engine_gave_up(10);
    assert_eq!(d.take_actions(), vec![DialAction::Close]);
    assert_eq!(d.state(), DialState::Waiting);
    // Late: nothing to give up.
    d.engine_gave_up(11);
    assert_eq!(d.take_actions(), vec![]);
}

#[test]
fn final_refusals_stop_dialing_and_others_do_not() {
    for code in [ErrorCode::Unauthorized, ErrorCode::UnsupportedVersion] {
        let mut d = open_at(2, 0);
        assert!(!d.engine_error(&rejected(code, false)), "not fatal");
        assert!(d.engine_error(&rejected(code, true)));
        assert_eq!(d.take_actions(), vec![DialAction::Close]);
        assert_eq!(d.state(), DialState::Closed);
        assert_eq!(d.next_deadline(), None);
        assert_eq!(
            d.last_error().map(DialError::code),
            Some(SynclineErrorCode::RelayRejected)
        );
        // Nothing brings it back.
        d.closed(1);
        d.wake(2);
        d.tick(u64::MAX);
        d.resume(3);
        assert_eq!(d.take_actions(), vec![]);
    }
    let mut d = open_at(1, 0);
    assert!(!d.engine_error(&rejected(ErrorCode::LimitExceeded, true)));
    assert!(!d.engine_error(&EngineError::BadTabMessage("x".into())));
    assert_eq!(d.state(), DialState::Open);
}

#[test]
fn a_bad_url_stops_dialing() {
    let mut d = dialer(1, 1);
    d.start(0);
    d.take_actions();
    d.bad_url("ws://[", "SyntaxError");
    assert_eq!(d.take_actions(), vec![DialAction::Close]);
    assert_eq!(d.state(), DialState::Closed);
    assert_eq!(
        d.last_error().map(DialError::code),
        Some(SynclineErrorCode::BadRelayUrl)
    );
}

#[test]
fn online_or_a_visible_page_retries_at_once() {
    let config = DialerConfig {
        backoff_base_ms: 100_000,
        backoff_cap_ms: 100_000,
        ..CONFIG
    };
    let mut d = Dialer::new(1, config, [7; 32]);
    d.start(0);
    d.opened(0);
    d.closed(10);
    d.take_actions();
    // Waiting out a long backoff (unless the dice said 0).
    d.wake(20);
    assert_eq!(d.take_actions(), vec![DialAction::Connect { relay: 0 }]);
    assert_eq!(d.state(), DialState::Connecting);
    // Waking while connecting or open changes nothing.
    d.wake(30);
    d.opened(40);
    d.wake(50);
    assert_eq!(d.take_actions(), vec![]);
}

#[test]
fn offline_ends_the_attempt_at_once_and_retries_after_the_backoff() {
    let mut d = open_at(1, 0);
    d.offline(10);
    assert_eq!(d.take_actions(), vec![DialAction::Close]);
    assert_eq!(d.state(), DialState::Waiting);
    assert_eq!(d.last_error(), Some(&DialError::Offline));
    assert!(d.next_deadline().is_some());
    // Offline while waiting changes nothing.
    d.offline(11);
    assert_eq!(d.take_actions(), vec![]);
}

#[test]
fn pause_closes_and_waits_for_resume() {
    let mut d = open_at(1, 0);
    d.pause();
    assert_eq!(d.take_actions(), vec![DialAction::Close]);
    assert_eq!((d.state(), d.attempt()), (DialState::Paused, 0));
    assert_eq!(d.next_deadline(), None);
    d.wake(5);
    d.tick(u64::MAX);
    assert_eq!(d.take_actions(), vec![]);
    d.resume(10);
    assert_eq!(d.take_actions(), vec![DialAction::Connect { relay: 0 }]);
    assert_eq!(d.next_deadline(), Some(1_010));
}

#[test]
fn stop_is_for_good() {
    let mut d = open_at(1, 0);
    d.stop();
    assert_eq!(d.take_actions(), vec![DialAction::Close]);
    assert_eq!(d.state(), DialState::Closed);
    d.resume(1);
    d.wake(1);
    d.stop();
    assert_eq!(d.take_actions(), vec![]);
}

#[test]
fn news_of_an_old_socket_changes_nothing() {
    let mut d = dialer(1, 1);
    d.start(0);
    d.closed(1);
    d.take_actions();
    let waiting = d.next_deadline();
    d.opened(2);
    d.received(2);
    d.closed(3);
    assert_eq!(d.take_actions(), vec![]);
    assert_eq!(
        (d.state(), d.next_deadline()),
        (DialState::Waiting, waiting)
    );
}

#[test]
fn the_bound_saturates() {
    let config = DialerConfig {
        backoff_base_ms: u64::MAX / 2,
        backoff_cap_ms: u64::MAX,
        ..CONFIG
    };
    assert_eq!(config.backoff_bound_ms(u32::MAX), u64::MAX);
    assert_eq!(DialerConfig::default().backoff_bound_ms(1), 250);
    assert_eq!(DialerConfig::default().backoff_bound_ms(100), 10_000);
    assert!(full_jitter(u64::MAX, 5) == 5);
}
