//! Per-connection limits, and the token buckets that enforce rates.
//!
//! | limit               | exceeded →                                                    |
//! |---------------------|---------------------------------------------------------------|
//! | frame size          | `Error{LimitExceeded, fatal}`, close 1009 (message too big)   |
//! | frames per second   | `Error{LimitExceeded, fatal}`, close 1013 (try again later)   |
//! | bytes per second    | `Error{LimitExceeded, fatal}`, close 1013 (try again later)   |
//! | subscriptions       | `DocError{doc, LimitExceeded}`; the connection stays open     |
//! | delta / snapshot    | `DocError{doc, LimitExceeded}`; the connection stays open     |
//! | presence size       | `DocError{doc, LimitExceeded}`; the connection stays open     |
//! | message size        | `DocError{doc, LimitExceeded}`; the connection stays open     |
//! | messages per second | `DocError{doc, RateLimited}`: that message is dropped; the connection stays open |
//!
//! Rates are per connection, not per document, so exceeding one ends the
//! connection: a client that floods is cut off at once, without the relay
//! buffering or answering anything more of it, and a well-behaved client
//! reconnects with backoff (1013 says "try again later"). A refusal about
//! one document's request is a `DocError` and nothing else changes.
//! Ephemeral messages have their own, lower rate: a chatty app loses the
//! messages over it (each refused with `RateLimited`), not its connection.

use std::time::Instant;

use syncline_protocol::MAX_FRAME_BYTES;

/// The limits each connection runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Largest WebSocket message accepted, in bytes (at most the protocol's
    /// [`MAX_FRAME_BYTES`]); announced in `Welcome`.
    pub max_frame_bytes: usize,
    /// Most documents one connection may subscribe to at once.
    pub max_subscriptions: usize,
    /// Largest presence message, in bytes.
    pub max_presence_bytes: usize,
    /// Largest sealed ephemeral message, in bytes.
    pub max_message_bytes: usize,
    /// Sustained ephemeral messages per second (0: unlimited); bursts up
    /// to twice that.
    pub messages_per_sec: u32,
    /// Sustained frames per second (0: unlimited); bursts up to twice that.
    pub frames_per_sec: u32,
    /// Sustained bytes per second (0: unlimited); bursts up to twice that,
    /// and always enough for one frame of the largest size.
    pub bytes_per_sec: u64,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_frame_bytes: MAX_FRAME_BYTES,
            max_subscriptions: 1000,
            max_presence_bytes: 16 * 1024,
            max_message_bytes: syncline_protocol::MAX_MESSAGE_BYTES,
            messages_per_sec: 100,
            frames_per_sec: 1000,
            bytes_per_sec: 32 * 1024 * 1024,
        }
    }
}

impl ConnLimits {
    /// Clamps each limit into a workable range.
    pub fn normalized(mut self) -> ConnLimits {
        self.max_frame_bytes = self.max_frame_bytes.clamp(1024, MAX_FRAME_BYTES);
        self.max_subscriptions = self.max_subscriptions.max(1);
        self.max_presence_bytes = self.max_presence_bytes.min(self.max_frame_bytes);
        self.max_message_bytes = self.max_message_bytes.min(self.max_frame_bytes);
        self
    }
}

/// A token bucket: holds up to `capacity` tokens, refilled at `rate` per
/// second; a request takes some or is refused.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(capacity: f64, rate: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            capacity,
            rate,
            tokens: capacity,
            last: now,
        }
    }

    /// Takes `n` tokens if the bucket holds them at `now`.
    pub fn try_take(&mut self, n: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

impl ConnLimits {
    /// The bucket for a connection's ephemeral messages (`None`: unlimited).
    pub fn message_bucket(&self, now: Instant) -> Option<TokenBucket> {
        (self.messages_per_sec > 0).then(|| {
            let rate = f64::from(self.messages_per_sec);
            TokenBucket::new(2.0 * rate, rate, now)
        })
    }
}

/// Which rate a connection exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateExceeded {
    /// Frames per second.
    Frames,
    /// Bytes per second.
    Bytes,
}

/// A connection's frame and byte rate limits.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    frames: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
}

impl RateLimiter {
    /// Full buckets for `limits`.
    pub fn new(limits: &ConnLimits, now: Instant) -> RateLimiter {
        let frames = (limits.frames_per_sec > 0).then(|| {
            let rate = f64::from(limits.frames_per_sec);
            TokenBucket::new(2.0 * rate, rate, now)
        });
        let bytes = (limits.bytes_per_sec > 0).then(|| {
            let rate = limits.bytes_per_sec as f64;
            let capacity = (2.0 * rate).max(limits.max_frame_bytes as f64);
            TokenBucket::new(capacity, rate, now)
        });
        RateLimiter { frames, bytes }
    }

    /// Accounts for one received message of `len` bytes.
    pub fn check(&mut self, len: usize, now: Instant) -> Result<(), RateExceeded> {
        if let Some(frames) = &mut self.frames
            && !frames.try_take(1.0, now)
        {
            return Err(RateExceeded::Frames);
        }
        if let Some(bytes) = &mut self.bytes
            && !bytes.try_take(len as f64, now)
        {
            return Err(RateExceeded::Bytes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(4.0, 2.0, t0);
        for _ in 0..4 {
            assert!(bucket.try_take(1.0, t0));
        }
        assert!(!bucket.try_take(1.0, t0), "the burst is spent");
        let later = t0 + Duration::from_millis(500);
        assert!(bucket.try_take(1.0, later), "half a second refills one");
        assert!(!bucket.try_take(1.0, later));
        let much_later = t0 + Duration::from_secs(60);
        for _ in 0..4 {
            assert!(bucket.try_take(1.0, much_later));
        }
        assert!(
            !bucket.try_take(1.0, much_later),
            "refill stops at capacity"
        );
    }

    #[test]
    fn the_limiter_checks_frames_then_bytes_and_zero_disables() {
        let t0 = Instant::now();
        let limits = ConnLimits {
            frames_per_sec: 1,
            bytes_per_sec: 100,
            max_frame_bytes: 1024,
            ..ConnLimits::default()
        };
        let mut limiter = RateLimiter::new(&limits, t0);
        assert_eq!(limiter.check(1024, t0), Ok(()), "one largest frame fits");
        assert_eq!(limiter.check(1, t0), Err(RateExceeded::Bytes));
        assert_eq!(limiter.check(0, t0), Err(RateExceeded::Frames));
        let off = ConnLimits {
            frames_per_sec: 0,
            bytes_per_sec: 0,
            ..ConnLimits::default()
        };
        let mut limiter = RateLimiter::new(&off, t0);
        for _ in 0..10_000 {
            assert_eq!(limiter.check(1 << 20, t0), Ok(()));
        }
    }

    #[test]
    fn limits_are_clamped() {
        let limits = ConnLimits {
            max_frame_bytes: usize::MAX,
            max_subscriptions: 0,
            max_presence_bytes: usize::MAX,
            ..ConnLimits::default()
        }
        .normalized();
        assert_eq!(limits.max_frame_bytes, MAX_FRAME_BYTES);
        assert_eq!(limits.max_subscriptions, 1);
        assert_eq!(limits.max_presence_bytes, MAX_FRAME_BYTES);
    }
}
