//! Routes applied changes to watchers.
//!
//! The store calls [`Dispatcher::publish`] while it holds the keyspace write
//! lock, so publishing never blocks: a watcher whose queue is full is cut off
//! (and told so) instead of slowing down apply.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use muster_types::Revision;
use muster_types::limits::MAX_WATCHERS;
use muster_types::watch::Event;
use tokio::sync::mpsc;

/// Revisions a watcher may have queued before it counts as slow.
pub const WATCHER_QUEUE: usize = 1024;

/// The events of one revision that match one watcher.
pub type Batch = Vec<Event>;

#[derive(Debug, thiserror::Error)]
#[error("this node serves {MAX_WATCHERS} watchers already")]
pub struct TooManyWatchers;

struct Subscriber {
    key: String,
    prefix: bool,
    tx: mpsc::Sender<Batch>,
    lagged: Arc<AtomicBool>,
}

impl Subscriber {
    fn matches(&self, key: &str) -> bool {
        if self.prefix {
            key.starts_with(&self.key)
        } else {
            key == self.key
        }
    }
}

#[derive(Default)]
struct Subscribers {
    next_id: u64,
    by_id: HashMap<u64, Subscriber>,
}

#[derive(Default)]
pub struct Dispatcher {
    subscribers: Arc<Mutex<Subscribers>>,
}

/// A watcher's end: receives batches until dropped or cut off.
pub struct Subscription {
    id: u64,
    pub receiver: mpsc::Receiver<Batch>,
    lagged: Arc<AtomicBool>,
    subscribers: Arc<Mutex<Subscribers>>,
}

impl Subscription {
    /// True once the dispatcher cut this watcher off for falling behind (or
    /// because the node's state was replaced by a snapshot).
    pub fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.subscribers).by_id.remove(&self.id);
    }
}

fn lock(subscribers: &Mutex<Subscribers>) -> std::sync::MutexGuard<'_, Subscribers> {
    // A panic while holding this lock leaves the map consistent (every
    // operation is a single insert/remove), so poisoning is not fatal.
    subscribers
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Dispatcher {
    pub fn subscribe(&self, key: &str, prefix: bool) -> Result<Subscription, TooManyWatchers> {
        let mut subs = lock(&self.subscribers);
        if subs.by_id.len() >= MAX_WATCHERS {
            return Err(TooManyWatchers);
        }
        let (tx, receiver) = mpsc::channel(WATCHER_QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        subs.next_id += 1;
        let id = subs.next_id;
        subs.by_id.insert(
            id,
            Subscriber {
                key: key.to_owned(),
                prefix,
                tx,
                lagged: lagged.clone(),
            },
        );
        Ok(Subscription {
            id,
            receiver,
            lagged,
            subscribers: self.subscribers.clone(),
        })
    }

    pub fn watcher_count(&self) -> usize {
        lock(&self.subscribers).by_id.len()
    }

    /// Hands the events of one revision to every watcher they match.
    pub fn publish(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut subs = lock(&self.subscribers);
        subs.by_id.retain(|_, sub| {
            let batch: Batch = events
                .iter()
                .filter(|event| sub.matches(&event.kv.key))
                .cloned()
                .collect();
            if batch.is_empty() {
                return !sub.tx.is_closed();
            }
            match sub.tx.try_send(batch) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.lagged.store(true, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Cuts every watcher off so it resumes from history: used when a
    /// snapshot replaces the state and the events in between were never
    /// applied here.
    pub fn reset_all(&self) {
        let mut subs = lock(&self.subscribers);
        for sub in subs.by_id.values() {
            sub.lagged.store(true, Ordering::Release);
        }
        subs.by_id.clear();
    }
}

/// The highest revision in a batch.
pub fn batch_revision(batch: &[Event]) -> Option<Revision> {
    batch.iter().map(|event| event.kv.mod_revision).max()
}

#[cfg(test)]
mod tests {
    use muster_types::Blob;
    use muster_types::kv::KeyValue;
    use muster_types::watch::EventKind;

    use super::*;

    fn put(key: &str, revision: Revision) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.into(),
                value: Blob::from("v"),
                create_revision: revision,
                mod_revision: revision,
                version: 1,
                lease: None,
            },
            prev_kv: None,
        }
    }

    #[test]
    fn routes_by_key_and_prefix() {
        let dispatcher = Dispatcher::default();
        let mut exact = dispatcher.subscribe("a/1", false).unwrap();
        let mut prefix = dispatcher.subscribe("a/", true).unwrap();
        dispatcher.publish(&[put("a/1", 1), put("a/2", 1)]);
        dispatcher.publish(&[put("b", 2)]);
        let got = exact.receiver.try_recv().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].kv.key, "a/1");
        assert!(exact.receiver.try_recv().is_err());
        assert_eq!(prefix.receiver.try_recv().unwrap().len(), 2);
        assert!(prefix.receiver.try_recv().is_err());
    }

    #[test]
    fn a_full_queue_cuts_the_watcher_off_without_blocking() {
        let dispatcher = Dispatcher::default();
        let slow = dispatcher.subscribe("k", false).unwrap();
        for revision in 1..=WATCHER_QUEUE as u64 + 1 {
            dispatcher.publish(&[put("k", revision)]);
        }
        assert!(slow.lagged());
        assert_eq!(dispatcher.watcher_count(), 0);
    }

    #[test]
    fn dropping_unsubscribes() {
        let dispatcher = Dispatcher::default();
        let sub = dispatcher.subscribe("k", false).unwrap();
        assert_eq!(dispatcher.watcher_count(), 1);
        drop(sub);
        assert_eq!(dispatcher.watcher_count(), 0);
    }
}
