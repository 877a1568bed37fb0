//! Change events. A watch streams them as newline-delimited JSON (or SSE),
//! one [`WatchMessage`] per line.

use serde::{Deserialize, Serialize};

use crate::kv::KeyValue;
use crate::{Blob, LeaseId, Revision};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Put,
    Delete,
}

/// One key's change at one revision, as the store records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// After a put: the new key-value. After a delete: the key, with
    /// `mod_revision` the delete's revision and everything else empty.
    pub kv: KeyValue,
    /// The key-value before this change, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_kv: Option<KeyValue>,
}

/// An event as a watcher sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub key: String,
    #[serde(default)]
    pub value: Blob,
    pub mod_revision: Revision,
    #[serde(default)]
    pub create_revision: Revision,
    #[serde(default)]
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseId>,
    /// The previous value, when the watch asked for it and there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_value: Option<Blob>,
}

impl WatchEvent {
    pub fn from_event(event: &Event, with_prev: bool) -> Self {
        WatchEvent {
            key: event.kv.key.clone(),
            value: event.kv.value.clone(),
            mod_revision: event.kv.mod_revision,
            create_revision: event.kv.create_revision,
            version: event.kv.version,
            lease: event.kv.lease,
            prev_value: if with_prev {
                event.prev_kv.as_ref().map(|kv| kv.value.clone())
            } else {
                None
            },
        }
    }
}

/// Why a watch ended with an error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchErrorCode {
    /// The requested revision was compacted: re-read at `compacted_revision`
    /// or later, then watch from there.
    Compacted,
    /// The watcher fell too far behind; resume from `resume_revision`.
    SlowWatcher,
    /// The node is shutting down or lost the store; resume on another node.
    Unavailable,
}

/// One line of a watch stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatchMessage {
    Put(WatchEvent),
    Delete(WatchEvent),
    /// Sent when the watch is idle: every change up to `revision` has been
    /// delivered, so a resume from `revision` misses nothing.
    Progress {
        revision: Revision,
    },
    Error {
        code: WatchErrorCode,
        message: String,
        /// With `compacted`: the oldest revision still available.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compacted_revision: Option<Revision>,
        /// Resume with `from_revision` set to this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_revision: Option<Revision>,
    },
}

impl WatchMessage {
    pub fn from_event(event: &Event, with_prev: bool) -> Self {
        let wire = WatchEvent::from_event(event, with_prev);
        match event.kind {
            EventKind::Put => WatchMessage::Put(wire),
            EventKind::Delete => WatchMessage::Delete(wire),
        }
    }

    /// The revision a client resumes after once it has seen this message.
    pub fn revision(&self) -> Option<Revision> {
        match self {
            WatchMessage::Put(e) | WatchMessage::Delete(e) => Some(e.mod_revision),
            WatchMessage::Progress { revision } => Some(*revision),
            WatchMessage::Error { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shape() {
        let msg = WatchMessage::Put(WatchEvent {
            key: "a".into(),
            value: Blob::from("v"),
            mod_revision: 7,
            create_revision: 7,
            version: 1,
            lease: None,
            prev_value: None,
        });
        let line = serde_json::to_string(&msg).unwrap();
        assert_eq!(
            line,
            r#"{"type":"put","key":"a","value":"dg==","mod_revision":7,"create_revision":7,"version":1}"#
        );
        assert_eq!(serde_json::from_str::<WatchMessage>(&line).unwrap(), msg);
        let progress = serde_json::to_string(&WatchMessage::Progress { revision: 9 }).unwrap();
        assert_eq!(progress, r#"{"type":"progress","revision":9}"#);
    }
}
