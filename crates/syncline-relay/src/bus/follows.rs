//! Which documents the other relays follow, so this one publishes a push's
//! uncommitted copy on the bus only when some other relay will use it.
//!
//! A relay *follows* a document while one of its clients subscribes to it
//! (the hub has a subscriber). It says so on `<prefix>.follows`:
//!
//! * **follow** `(ttl, docs)` when a document gains its first subscriber
//!   there (after its NATS subscription to the document's tentative subject
//!   is on the server, so a relay that hears of it can publish at once),
//!   and every refresh period ([`REFRESH_EVERY`] by default,
//!   `--bus-refresh-ms`) for all it follows, each good for `ttl`
//!   ([`TTL_REFRESHES`] periods) from when it is heard;
//! * **unfollow** `(docs)` when a document loses its last subscriber there;
//! * **ask** when it connects to NATS (first or again): every relay that
//!   hears it answers with a follow of everything it follows.
//!
//! Each relay keeps what it heard in [`Followers`]: per document, which
//! relays follow it and until when. [`Followers::followed`] is the test on
//! every push's path.
//!
//! **The bus is a hint, Postgres is the truth.** Announcements only steer
//! the tentative shortcut. Committed deltas still cross relays as before
//! (on `<prefix>.commits`, and repaired from Postgres by sequence), so:
//!
//! * a lost or late **follow** (NATS down or slow, the set full) means the
//!   follower's clients get those pushes at their commit instead of
//!   before it, until the next refresh: latency, nothing else;
//! * a lost **unfollow**, or a relay that died, means pushes keep going to
//!   a relay that drops them, until the entry expires: a little traffic;
//! * a relay that restarts asks, and hears everyone's follows at once.
//!
//! **Bounded.** At most [`MAX_REMOTE_FOLLOWS`] (document, relay) entries:
//! past it, new follows are ignored (counted) until expired entries are
//! swept, which happens every refresh period. A relay's own set is its
//! hub's subscribed documents, bounded by its connections and their
//! subscription limit; it is announced in messages of at most the bus's
//! payload limit.
//!
//! Everything here is sans-IO: time is an argument, and the codec is plain
//! bytes (a 4-byte little-endian TTL in milliseconds for a follow, then
//! 16-byte document ids).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::{Duration, Instant};

use syncline_protocol::DocId;

/// How often a relay announces everything it follows again, by default.
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);
/// How many refresh periods an announced follow lasts (so one or two lost
/// refreshes cost nothing).
pub const TTL_REFRESHES: u32 = 3;
/// Most (document, relay) follows remembered.
pub const MAX_REMOTE_FOLLOWS: usize = 100_000;

/// A relay's id on the bus.
pub type RelayId = [u8; 16];

/// A message on `<prefix>.follows`, without its kind byte and sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// The sender follows `docs`, for `ttl` from now.
    Follow { ttl: Duration, docs: Vec<DocId> },
    /// The sender no longer follows `docs`.
    Unfollow { docs: Vec<DocId> },
    /// The sender asks every relay to announce what it follows.
    Ask,
}

/// The message kinds of announcements (after the bus's other kinds).
pub const FOLLOW: u8 = 5;
pub const UNFOLLOW: u8 = 6;
pub const ASK: u8 = 7;

impl Announcement {
    /// Its kind byte and body.
    pub fn encode(&self) -> (u8, Vec<u8>) {
        fn ids(body: &mut Vec<u8>, docs: &[DocId]) {
            for doc in docs {
                body.extend_from_slice(&doc.0);
            }
        }
        match self {
            Announcement::Follow { ttl, docs } => {
                let millis = u32::try_from(ttl.as_millis()).unwrap_or(u32::MAX);
                let mut body = Vec::with_capacity(4 + 16 * docs.len());
                body.extend_from_slice(&millis.to_le_bytes());
                ids(&mut body, docs);
                (FOLLOW, body)
            }
            Announcement::Unfollow { docs } => {
                let mut body = Vec::with_capacity(16 * docs.len());
                ids(&mut body, docs);
                (UNFOLLOW, body)
            }
            Announcement::Ask => (ASK, Vec::new()),
        }
    }

    /// The announcement of kind `kind` with `body`, or `None` if it is not
    /// one (or is malformed).
    pub fn decode(kind: u8, body: &[u8]) -> Option<Announcement> {
        fn ids(body: &[u8]) -> Option<Vec<DocId>> {
            if !body.len().is_multiple_of(16) {
                return None;
            }
            let docs = body.chunks_exact(16);
            Some(
                docs.map(|id| DocId(id.try_into().expect("16 bytes")))
                    .collect(),
            )
        }
        match kind {
            FOLLOW => {
                let millis = u32::from_le_bytes(body.get(..4)?.try_into().ok()?);
                Some(Announcement::Follow {
                    ttl: Duration::from_millis(u64::from(millis)),
                    docs: ids(&body[4..])?,
                })
            }
            UNFOLLOW => Some(Announcement::Unfollow { docs: ids(body)? }),
            ASK if body.is_empty() => Some(Announcement::Ask),
            _ => None,
        }
    }

    /// Follows of `docs` for `ttl`, in messages whose bodies stay within
    /// `max_body` bytes (at least one document each).
    pub fn follows(docs: &[DocId], ttl: Duration, max_body: usize) -> Vec<Announcement> {
        let per_message = (max_body.saturating_sub(4) / 16).max(1);
        docs.chunks(per_message)
            .map(|docs| Announcement::Follow {
                ttl,
                docs: docs.to_vec(),
            })
            .collect()
    }
}

/// What the other relays follow, as heard.
#[derive(Debug, Default)]
pub struct Followers {
    docs: HashMap<DocId, Vec<(RelayId, Instant)>>,
    entries: usize,
}

impl Followers {
    /// Nothing heard.
    pub fn new() -> Followers {
        Followers::default()
    }

    /// Notes that `relay` follows `docs` until `until`. Returns how many
    /// new follows were ignored because the set is full (a renewal always
    /// counts).
    pub fn follow(&mut self, relay: RelayId, docs: &[DocId], until: Instant) -> usize {
        let mut ignored = 0;
        for &doc in docs {
            let full = self.entries >= MAX_REMOTE_FOLLOWS;
            let relays = match self.docs.entry(doc) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(_) if full => {
                    ignored += 1;
                    continue;
                }
                Entry::Vacant(entry) => entry.insert(Vec::new()),
            };
            match relays.iter_mut().find(|(r, _)| *r == relay) {
                Some((_, expiry)) => *expiry = until,
                None if full => ignored += 1,
                None => {
                    relays.push((relay, until));
                    self.entries += 1;
                }
            }
        }
        ignored
    }

    /// Notes that `relay` no longer follows `docs`.
    pub fn unfollow(&mut self, relay: RelayId, docs: &[DocId]) {
        for doc in docs {
            if let Entry::Occupied(mut entry) = self.docs.entry(*doc) {
                let before = entry.get().len();
                entry.get_mut().retain(|(r, _)| *r != relay);
                self.entries -= before - entry.get().len();
                if entry.get().is_empty() {
                    entry.remove();
                }
            }
        }
    }

    /// Whether another relay follows `doc` at `now`.
    pub fn followed(&self, doc: DocId, now: Instant) -> bool {
        self.docs
            .get(&doc)
            .is_some_and(|relays| relays.iter().any(|(_, until)| *until > now))
    }

    /// Forgets every follow that expired by `now`.
    pub fn sweep(&mut self, now: Instant) {
        let mut entries = 0;
        self.docs.retain(|_, relays| {
            relays.retain(|(_, until)| *until > now);
            entries += relays.len();
            !relays.is_empty()
        });
        self.entries = entries;
    }

    /// How many (document, relay) follows are remembered.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(6);
    const A: RelayId = [0xa; 16];
    const B: RelayId = [0xb; 16];

    fn doc(n: u32) -> DocId {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        DocId(id)
    }

    #[test]
    fn announcements_round_trip_and_reject_garbage() {
        let all = [
            Announcement::Follow {
                ttl: Duration::from_millis(6000),
                docs: vec![doc(1), doc(2)],
            },
            Announcement::Unfollow { docs: vec![doc(3)] },
            Announcement::Ask,
        ];
        for announcement in all {
            let (kind, body) = announcement.encode();
            assert_eq!(Announcement::decode(kind, &body), Some(announcement));
        }
        assert_eq!(Announcement::decode(FOLLOW, &[1, 0]), None, "no TTL");
        assert_eq!(Announcement::decode(UNFOLLOW, &[0; 17]), None, "a torn id");
        assert_eq!(Announcement::decode(ASK, &[0]), None);
        assert_eq!(Announcement::decode(1, &[]), None, "not an announcement");
    }

    #[test]
    fn follows_are_split_to_fit_a_message() {
        let docs: Vec<DocId> = (0..5).map(doc).collect();
        let ttl = REFRESH_EVERY * TTL_REFRESHES;
        let messages = Announcement::follows(&docs, ttl, 4 + 2 * 16);
        let sizes: Vec<usize> = messages
            .iter()
            .map(|m| match m {
                Announcement::Follow { docs, .. } => docs.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert!(messages.iter().all(|m| m.encode().1.len() <= 4 + 2 * 16));
        assert!(Announcement::follows(&[], ttl, 100).is_empty());
    }

    #[test]
    fn a_follow_lasts_until_it_expires_or_is_withdrawn() {
        let t0 = Instant::now();
        let mut followers = Followers::new();
        assert!(!followers.followed(doc(1), t0), "nobody follows at first");
        followers.follow(A, &[doc(1), doc(2)], t0 + TTL);
        followers.follow(B, &[doc(1)], t0 + Duration::from_secs(1));
        assert_eq!(followers.len(), 3);
        assert!(followers.followed(doc(1), t0));
        assert!(!followers.followed(doc(3), t0));

        followers.unfollow(A, &[doc(1)]);
        assert!(followers.followed(doc(1), t0), "B still follows it");
        let later = t0 + Duration::from_secs(2);
        assert!(!followers.followed(doc(1), later), "B's follow expired");
        assert!(followers.followed(doc(2), later));

        // A renewal moves the expiry; a sweep forgets what expired.
        followers.follow(A, &[doc(2)], later + TTL);
        followers.sweep(t0 + TTL);
        assert_eq!(followers.len(), 1);
        assert!(followers.followed(doc(2), t0 + TTL));
        followers.unfollow(A, &[doc(2), doc(9)]);
        assert!(followers.is_empty());
    }

    #[test]
    fn the_set_is_bounded_and_renewals_still_count() {
        let t0 = Instant::now();
        let soon = t0 + Duration::from_secs(1);
        let mut followers = Followers::new();
        let docs: Vec<DocId> = (0..MAX_REMOTE_FOLLOWS as u32).map(doc).collect();
        assert_eq!(followers.follow(A, &docs, soon), 0);
        assert_eq!(followers.len(), MAX_REMOTE_FOLLOWS);
        let extra = doc(MAX_REMOTE_FOLLOWS as u32);
        assert_eq!(followers.follow(B, &[extra, docs[0]], soon), 2);
        assert!(!followers.followed(extra, t0), "ignored: the set is full");
        assert_eq!(followers.follow(A, &[docs[0]], t0 + TTL), 0);
        assert_eq!(followers.len(), MAX_REMOTE_FOLLOWS);

        // Once the expired ones are swept, there is room again.
        followers.sweep(soon);
        assert_eq!(followers.len(), 1);
        assert_eq!(followers.follow(B, &[extra], t0 + TTL), 0);
        assert!(followers.followed(extra, soon));
    }
}
