//! The session's share of the relay's bounds ([`crate::guard`]): the
//! hello deadline, storage quotas, and subscriptions that end when their
//! token expires.
//!
//! A push over a storage quota ([`crate::quota`]) is refused with
//! `DocError{doc, QuotaExceeded}`, or `LimitExceeded` before protocol
//! version 3 (which has no such code).
//!
//! With tokens required, a subscription lives only as long as the token
//! that allowed it (the latest valid one presented for its document). When
//! it expires the relay unsubscribes the connection from the document and
//! sends `DocError{doc, TokenExpired}` (`Unauthorized` before protocol
//! version 3), counted as an `expired` auth failure. A client that
//! presents a fresh token before then (`Authorize`) keeps its
//! subscription; one that presents it after subscribes again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use syncline_protocol::{DocId, ErrorCode};

use super::{End, Session};
use crate::auth;
use crate::metrics::AuthFailure;
use crate::quota::QuotaExceeded;

impl Session {
    /// Whether a valid `Hello` was received.
    pub(crate) fn greeted(&self) -> bool {
        self.greeted
    }

    /// When the earliest token behind a subscription expires, in unix
    /// seconds (`None`: open mode, or no subscription).
    fn next_expiry(&self) -> Option<u64> {
        self.shared.config.auth.as_ref()?;
        self.subscriptions
            .iter()
            .filter_map(|doc| self.grants.get(doc))
            .map(|claims| claims.expires_at)
            .min()
    }

    /// How long until a subscription's token expires (`None`: none can).
    pub(crate) fn until_token_expiry(&self) -> Option<Duration> {
        let at = self.next_expiry()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Some(Duration::from_secs(at).saturating_sub(now))
    }

    /// Ends every subscription whose token has expired, telling the client.
    pub(crate) async fn end_expired_subscriptions(&mut self) -> Result<(), End> {
        let now = auth::unix_now();
        let mut expired: Vec<(DocId, u64)> = self
            .subscriptions
            .iter()
            .filter_map(|doc| Some((*doc, self.grants.get(doc)?.expires_at)))
            .filter(|(_, at)| *at <= now)
            .collect();
        if expired.is_empty() {
            return Ok(());
        }
        expired.sort();
        // Answers keep the order of the frames.
        self.finish_pushes().await?;
        for (doc, at) in expired {
            self.unsubscribe(doc);
            let message = format!(
                "the token for document {doc} expired at {at} (unix seconds), so its subscription ended: send Authorize with a fresh token, then Subscribe again"
            );
            self.deny(doc, (AuthFailure::Expired, message)).await?;
        }
        Ok(())
    }

    /// Refuses a push that would pass a storage quota.
    pub(super) async fn over_quota(&mut self, doc: DocId, why: QuotaExceeded) -> Result<(), End> {
        let code = match self.version {
            ..3 => ErrorCode::LimitExceeded,
            _ => ErrorCode::QuotaExceeded,
        };
        self.doc_error(doc, code, &why.to_string()).await
    }
}
