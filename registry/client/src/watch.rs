//! Watches that survive disconnects.
//!
//! A watch reconnects (to any endpoint, with bounded backoff and attempts)
//! on transport errors, silence, `slow_watcher` and `unavailable`, and
//! resumes where it left off, so the consumer sees each change once. Only
//! `compacted` (the history it needs is gone) and refusals end it early.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{BoxStream, Stream, StreamExt};
use muster_types::error::{ErrorBody, ErrorCode};
use muster_types::watch::{EventKind, WatchErrorCode, WatchEvent, WatchMessage};
use muster_types::{Revision, limits};
use reqwest::Method;

use crate::reconnect::{self, Failure, Feed};
use crate::{Call, Client, ClientError, Result};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchOptions {
    pub key: String,
    /// Watch every key starting with `key` ("" with prefix: all keys).
    pub prefix: bool,
    /// Deliver changes after this revision (exclusive); `None`: from now.
    pub from_revision: Option<Revision>,
    /// Include each key's previous value.
    pub prev_value: bool,
}

/// One change of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: EventKind,
    pub event: WatchEvent,
}

impl From<Change> for WatchMessage {
    fn from(change: Change) -> Self {
        match change.kind {
            EventKind::Put => WatchMessage::Put(change.event),
            EventKind::Delete => WatchMessage::Delete(change.event),
        }
    }
}

/// A stream of changes; ends after yielding an error it cannot recover from.
pub struct Watch {
    inner: BoxStream<'static, Result<Change>>,
}

impl Stream for Watch {
    type Item = Result<Change>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl Client {
    /// Streams changes of a key or prefix. Nothing is sent until the stream
    /// is first polled.
    pub fn watch(&self, options: WatchOptions) -> Result<Watch> {
        if !options.prefix {
            limits::check_key(&options.key).map_err(ClientError::InvalidArgument)?;
        }
        let feed = KvFeed {
            resume: Resume::new(options.from_revision),
            options,
        };
        Ok(Watch {
            inner: reconnect::stream(self.clone(), feed),
        })
    }
}

/// Where to resume so that no change is lost or repeated.
///
/// Several changes can share a revision (a transaction), so a revision only
/// counts as complete once a later one, or a progress message, is seen.
/// Resuming replays the incomplete revision; the changes of it already
/// delivered are skipped by count, as the server sends them in a fixed order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resume {
    /// Every change up to here was delivered; resume after it.
    complete: Option<Revision>,
    /// Revision of the last change delivered.
    last: Revision,
    /// Changes delivered at `last`.
    delivered_at_last: u32,
    /// Replayed changes at `last` still to drop on this connection.
    skip: u32,
}

impl Resume {
    pub(crate) fn new(from_revision: Option<Revision>) -> Self {
        Resume {
            complete: from_revision,
            last: from_revision.unwrap_or(0),
            delivered_at_last: 0,
            skip: 0,
        }
    }

    /// The `from_revision` to ask for.
    pub(crate) fn resume_from(&self) -> Option<Revision> {
        self.complete
    }

    /// A connection opened; `started_at` is the revision the server said it
    /// watches from (its `x-muster-revision`), used by a watch "from now".
    pub(crate) fn connected(&mut self, started_at: Option<Revision>) {
        if self.complete.is_none() {
            self.complete = started_at;
        }
        self.skip = self.delivered_at_last;
    }

    /// Whether a change at `revision` is new to the consumer.
    pub(crate) fn accept(&mut self, revision: Revision) -> bool {
        match revision.cmp(&self.last) {
            std::cmp::Ordering::Less => false,
            // `last` reached through `from_revision` or progress: complete.
            std::cmp::Ordering::Equal if self.delivered_at_last == 0 => false,
            std::cmp::Ordering::Equal if self.skip > 0 => {
                self.skip -= 1;
                false
            }
            std::cmp::Ordering::Equal => {
                self.delivered_at_last += 1;
                true
            }
            std::cmp::Ordering::Greater => {
                self.complete = Some(self.complete.unwrap_or(0).max(revision - 1));
                self.last = revision;
                self.delivered_at_last = 1;
                self.skip = 0;
                true
            }
        }
    }

    pub(crate) fn progress(&mut self, revision: Revision) {
        self.complete = Some(self.complete.unwrap_or(0).max(revision));
        if revision >= self.last {
            self.last = revision;
            self.delivered_at_last = 0;
            self.skip = 0;
        }
    }

    /// The server asked to resume from `revision`; replays are filtered.
    pub(crate) fn resume_at(&mut self, revision: Revision) {
        self.complete = Some(self.complete.map_or(revision, |c| c.min(revision)));
    }
}

/// The KV watch's side of the reconnecting stream.
struct KvFeed {
    options: WatchOptions,
    resume: Resume,
}

impl Feed for KvFeed {
    type Message = WatchMessage;
    type Item = Change;
    const NAME: &'static str = "watch";

    fn open(&self) -> Call {
        let WatchOptions {
            key,
            prefix,
            from_revision: _,
            prev_value,
        } = &self.options;
        let mut call = Call::new(Method::GET, "/v1/watch")
            .query("key", key)
            .flag("prefix", *prefix)
            .flag("prev_value", *prev_value);
        if let Some(from) = self.resume.resume_from() {
            call = call.query("from_revision", from);
        }
        call
    }

    fn opened(&mut self, started_at: Option<Revision>) {
        self.resume.connected(started_at);
    }

    fn message(
        &mut self,
        message: WatchMessage,
        ready: &mut VecDeque<Result<Change>>,
    ) -> std::result::Result<(), Failure> {
        let (kind, event) = match message {
            WatchMessage::Put(event) => (EventKind::Put, event),
            WatchMessage::Delete(event) => (EventKind::Delete, event),
            WatchMessage::Progress { revision } => {
                self.resume.progress(revision);
                return Ok(());
            }
            WatchMessage::Error {
                code,
                message,
                compacted_revision,
                resume_revision,
            } => {
                return Err(match code {
                    WatchErrorCode::Compacted => {
                        let mut body = ErrorBody::new(ErrorCode::Compacted, message);
                        body.compacted_revision = compacted_revision;
                        Failure::Fatal(ClientError::Api { status: 410, body })
                    }
                    WatchErrorCode::SlowWatcher | WatchErrorCode::Unavailable => {
                        if let Some(revision) = resume_revision {
                            self.resume.resume_at(revision);
                        }
                        let mut body = ErrorBody::new(ErrorCode::Unavailable, message);
                        body.field = Some("watch".into());
                        Failure::Retry {
                            error: ClientError::Api { status: 503, body },
                            avoid: code == WatchErrorCode::Unavailable,
                        }
                    }
                });
            }
        };
        if self.resume.accept(event.mod_revision) {
            ready.push_back(Ok(Change { kind, event }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_now_takes_the_start_revision_from_the_server() {
        let mut resume = Resume::new(None);
        assert_eq!(resume.resume_from(), None);
        resume.connected(Some(41));
        assert_eq!(resume.resume_from(), Some(41));
        // A later connection keeps the position instead.
        resume.connected(Some(99));
        assert_eq!(resume.resume_from(), Some(41));
    }

    #[test]
    fn single_change_revisions_resume_after_the_last_one_seen() {
        let mut resume = Resume::new(Some(10));
        assert!(resume.accept(11));
        assert!(resume.accept(12));
        // 12 may have more changes to come, so resume replays it...
        assert_eq!(resume.resume_from(), Some(11));
        resume.connected(None);
        // ...dropping the change already delivered.
        assert!(!resume.accept(12));
        assert!(resume.accept(13));
        // A progress message says 13 is complete.
        resume.progress(13);
        assert_eq!(resume.resume_from(), Some(13));
        resume.connected(None);
        assert!(resume.accept(14));
    }

    #[test]
    fn a_transaction_cut_in_the_middle_is_completed_once() {
        let mut resume = Resume::new(Some(5));
        assert!(resume.accept(6)); // txn at 6: a
        assert!(resume.accept(6)); // b
        // Disconnected before c.
        assert_eq!(resume.resume_from(), Some(5));
        resume.connected(None);
        assert!(!resume.accept(6)); // a again
        assert!(!resume.accept(6)); // b again
        assert!(resume.accept(6)); // c, new
        assert!(resume.accept(7));
        assert_eq!(resume.resume_from(), Some(6));
    }

    #[test]
    fn stale_and_repeated_changes_are_dropped() {
        let mut resume = Resume::new(Some(5));
        assert!(!resume.accept(5));
        assert!(!resume.accept(3));
        assert!(resume.accept(8));
        assert!(!resume.accept(7));
    }

    #[test]
    fn server_resume_hint_never_moves_forward() {
        let mut resume = Resume::new(Some(5));
        assert!(resume.accept(9));
        assert!(resume.accept(10));
        resume.resume_at(7);
        assert_eq!(resume.resume_from(), Some(7));
        resume.connected(None);
        assert!(!resume.accept(8));
        assert!(!resume.accept(9));
        assert!(!resume.accept(10));
        assert!(resume.accept(11));
        let mut ahead = Resume::new(Some(5));
        ahead.resume_at(50);
        assert_eq!(ahead.resume_from(), Some(5));
    }
}
