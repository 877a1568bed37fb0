//! The keyspace's rules, one test per rule.

mod common;

use common::*;
use muster_store::{Command, CommandResult, Keyspace, LeaseState, Rejection};
use muster_types::kv::{
    CompactResponse, Compare, CompareOp, CompareTarget, DeleteRequest, PutRequest, RangeRequest,
    TxnOp, TxnOpResponse, TxnRequest,
};
use muster_types::lease::{LeaseGrantResponse, LeaseRevokeResponse};
use muster_types::limits;
use muster_types::watch::{Event, EventKind};
use muster_types::{Blob, Revision};

fn compare(key: &str, op: CompareOp, target: CompareTarget) -> Compare {
    Compare {
        key: key.into(),
        op,
        target,
    }
}

fn txn_cmd(compare: Vec<Compare>, success: Vec<TxnOp>, failure: Vec<TxnOp>) -> Command {
    Command::Txn(TxnRequest {
        compare,
        success,
        failure,
    })
}

fn compact(ks: &mut Keyspace, revision: Revision) -> CompactResponse {
    match ks.apply(&Command::Compact { revision }) {
        (CommandResult::Compact(resp), events) => {
            assert!(events.is_empty());
            resp
        }
        other => panic!("compact failed: {other:?}"),
    }
}

mod revisions {
    use super::*;

    #[test]
    fn start_at_zero() {
        let ks = Keyspace::new();
        assert_eq!(ks.revision(), 0);
        assert_eq!(ks.compacted_revision(), 0);
        assert_eq!(ks.key_count(), 0);
        assert_eq!(ks, Keyspace::default());
        let resp = ks.range(&prefix_req("")).unwrap();
        assert_eq!(resp.revision, 0);
        assert!(resp.kvs.is_empty());
    }

    #[test]
    fn put_delete_recreate() {
        let mut ks = Keyspace::new();
        assert_eq!(put(&mut ks, "a", "1").revision, 1);
        assert_eq!(get(&ks, "a"), Some(kv("a", "1", 1, 1, 1)));
        assert_eq!(put(&mut ks, "a", "2").revision, 2);
        assert_eq!(get(&ks, "a"), Some(kv("a", "2", 1, 2, 2)));
        assert_eq!(put(&mut ks, "b", "x").revision, 3);
        assert_eq!(ks.key_count(), 2);

        let (resp, events) = delete(&mut ks, "a", false);
        assert_eq!(resp.revision, 4);
        assert_eq!(resp.deleted, 1);
        assert_eq!(resp.prev_kvs, vec![kv("a", "2", 1, 2, 2)]);
        assert_eq!(
            events,
            vec![Event {
                kind: EventKind::Delete,
                kv: tombstone("a", 4),
                prev_kv: Some(kv("a", "2", 1, 2, 2)),
            }]
        );
        assert_eq!(ks.revision(), 4);
        assert_eq!(get(&ks, "a"), None);
        assert_eq!(ks.key_count(), 1);

        // Deleting nothing takes no revision.
        let (resp, events) = delete(&mut ks, "a", false);
        assert_eq!((resp.revision, resp.deleted), (4, 0));
        assert!(resp.prev_kvs.is_empty());
        assert!(events.is_empty());
        assert_eq!(ks.revision(), 4);

        // A recreated key starts a new incarnation.
        assert_eq!(put(&mut ks, "a", "3").revision, 5);
        assert_eq!(get(&ks, "a"), Some(kv("a", "3", 5, 5, 1)));
        assert_eq!(ks.key_count(), 2);
    }

    #[test]
    fn put_events_carry_the_previous_value() {
        let mut ks = Keyspace::new();
        let (_, events) = ks.apply(&Command::Put(put_req("a", "1")));
        assert_eq!(
            events,
            vec![Event {
                kind: EventKind::Put,
                kv: kv("a", "1", 1, 1, 1),
                prev_kv: None,
            }]
        );
        let (result, events) = ks.apply(&Command::Put(PutRequest {
            prev_kv: true,
            ..put_req("a", "2")
        }));
        assert_eq!(events[0].prev_kv, Some(kv("a", "1", 1, 1, 1)));
        match result {
            CommandResult::Put(resp) => {
                assert_eq!(resp.revision, 2);
                assert_eq!(resp.prev_kv, Some(kv("a", "1", 1, 1, 1)));
            }
            other => panic!("{other:?}"),
        }
        // Without prev_kv the response leaves it out.
        assert_eq!(put(&mut ks, "a", "3").prev_kv, None);
    }

    #[test]
    fn grant_and_compact_take_no_revision() {
        let mut ks = Keyspace::new();
        put(&mut ks, "a", "1");
        grant(&mut ks, 7);
        assert_eq!(ks.revision(), 1);
        assert_eq!(
            compact(&mut ks, 1),
            CompactResponse {
                compacted_revision: 1,
                revision: 1
            }
        );
        assert_eq!(ks.revision(), 1);
    }
}

mod validation {
    use super::*;

    #[test]
    fn bad_keys_and_values_are_refused() {
        let mut ks = Keyspace::new();
        for key in ["", "a\nb", &"k".repeat(limits::MAX_KEY_BYTES + 1)] {
            let r = rejection(&mut ks, Command::Put(put_req(key, "v")));
            assert_eq!(invalid_field(&r), "key");
            let r = rejection(&mut ks, Command::Delete(delete_req(key, false)));
            assert_eq!(invalid_field(&r), "key");
            assert_eq!(invalid_field(&ks.range(&get_req(key)).unwrap_err()), "key");
        }
        let big = PutRequest {
            value: Blob(vec![0; limits::MAX_VALUE_BYTES + 1]),
            ..put_req("a", "")
        };
        assert_eq!(
            invalid_field(&rejection(&mut ks, Command::Put(big))),
            "value"
        );
        let largest = PutRequest {
            value: Blob(vec![0; limits::MAX_VALUE_BYTES]),
            ..put_req("a", "")
        };
        put_with(&mut ks, largest);
        // A bad prefix is refused too; the empty prefix means every key.
        assert_eq!(
            invalid_field(&ks.range(&prefix_req("a\u{0}")).unwrap_err()),
            "key"
        );
        assert_eq!(ks.range(&prefix_req("")).unwrap().kvs.len(), 1);
    }

    #[test]
    fn compare_and_swap() {
        let mut ks = Keyspace::new();
        let cas = |key: &str, value: &str, prev: Revision| {
            Command::Put(PutRequest {
                prev_revision: Some(prev),
                ..put_req(key, value)
            })
        };
        // 0: only if absent.
        assert!(matches!(
            ks.apply(&cas("a", "1", 0)).0,
            CommandResult::Put(_)
        ));
        assert_eq!(
            rejection(&mut ks, cas("a", "2", 0)),
            Rejection::CompareFailed {
                key: "a".into(),
                current_revision: 1
            }
        );
        put(&mut ks, "other", "x");
        assert_eq!(
            rejection(&mut ks, cas("a", "2", 2)),
            Rejection::CompareFailed {
                key: "a".into(),
                current_revision: 1
            }
        );
        assert!(matches!(
            ks.apply(&cas("a", "2", 1)).0,
            CommandResult::Put(_)
        ));
        assert_eq!(get(&ks, "a"), Some(kv("a", "2", 1, 3, 2)));
        // A deleted key counts as absent again.
        delete(&mut ks, "a", false);
        assert_eq!(
            rejection(&mut ks, cas("a", "3", 3)),
            Rejection::CompareFailed {
                key: "a".into(),
                current_revision: 0
            }
        );
        assert!(matches!(
            ks.apply(&cas("a", "3", 0)).0,
            CommandResult::Put(_)
        ));
    }
}

mod reads {
    use super::*;

    #[test]
    fn past_revisions() {
        let mut ks = Keyspace::new();
        put(&mut ks, "a", "1"); // 1
        put(&mut ks, "a", "2"); // 2
        delete(&mut ks, "a", false); // 3
        put(&mut ks, "a", "3"); // 4
        assert_eq!(get_at(&ks, "a", Some(1)), Some(kv("a", "1", 1, 1, 1)));
        assert_eq!(get_at(&ks, "a", Some(2)), Some(kv("a", "2", 1, 2, 2)));
        assert_eq!(get_at(&ks, "a", Some(3)), None);
        assert_eq!(get_at(&ks, "a", Some(4)), Some(kv("a", "3", 4, 4, 1)));
        assert_eq!(get_at(&ks, "a", Some(0)), get(&ks, "a"));

        let at_two = ks
            .range(&RangeRequest {
                revision: Some(2),
                ..get_req("a")
            })
            .unwrap();
        assert_eq!(at_two.revision, 2);
        assert_eq!(ks.range(&get_req("a")).unwrap().revision, 4);
        assert_eq!(
            ks.range(&RangeRequest {
                revision: Some(5),
                ..get_req("a")
            }),
            Err(Rejection::FutureRevision {
                requested: 5,
                current: 4
            })
        );
    }

    #[test]
    fn prefix_paging() {
        let mut ks = Keyspace::new();
        for i in 0..10 {
            put(&mut ks, &format!("p/{i}"), &i.to_string());
        }
        put(&mut ks, "p", "outside");
        put(&mut ks, "q/0", "outside");
        put(&mut ks, "o/9", "outside");
        // A deleted key is skipped and does not count against the limit.
        delete(&mut ks, "p/4", false);

        let page = |after: Option<&str>, limit: usize| {
            ks.range(&RangeRequest {
                key: "p/".into(),
                prefix: true,
                limit,
                after: after.map(str::to_owned),
                ..RangeRequest::default()
            })
            .unwrap()
        };
        let first = page(None, 3);
        assert_eq!(keys(&first.kvs), ["p/0", "p/1", "p/2"]);
        assert!(first.more);
        assert_eq!(first.next.as_deref(), Some("p/2"));
        assert_eq!(first.revision, ks.revision());

        let second = page(first.next.as_deref(), 3);
        assert_eq!(keys(&second.kvs), ["p/3", "p/5", "p/6"]);
        assert_eq!(second.next.as_deref(), Some("p/6"));

        let third = page(second.next.as_deref(), 3);
        assert_eq!(keys(&third.kvs), ["p/7", "p/8", "p/9"]);
        assert!(!third.more);
        assert_eq!(third.next, None);

        let all = page(None, 0);
        assert_eq!(all.kvs.len(), 9);
        assert!(!all.more);
        // `after` before the prefix starts at the prefix.
        assert_eq!(keys(&page(Some("a"), 1).kvs), ["p/0"]);
        assert!(page(Some("p/9"), 0).kvs.is_empty());

        let keys_only = ks
            .range(&RangeRequest {
                keys_only: true,
                ..prefix_req("q/")
            })
            .unwrap();
        assert_eq!(keys_only.kvs, vec![kv("q/0", "", 12, 12, 1)]);
    }

    #[test]
    fn default_and_maximum_limits() {
        let mut ks = Keyspace::new();
        for i in 0..=limits::MAX_RANGE_LIMIT {
            put(&mut ks, &format!("k/{i:05}"), "");
        }
        let default = ks.range(&prefix_req("k/")).unwrap();
        assert_eq!(default.kvs.len(), limits::DEFAULT_RANGE_LIMIT);
        assert!(default.more);
        let capped = ks
            .range(&RangeRequest {
                limit: usize::MAX,
                ..prefix_req("k/")
            })
            .unwrap();
        assert_eq!(capped.kvs.len(), limits::MAX_RANGE_LIMIT);
        assert!(capped.more);
        assert_eq!(
            capped.next,
            Some(format!("k/{:05}", limits::MAX_RANGE_LIMIT - 1))
        );
    }

    #[test]
    fn prefix_read_at_a_past_revision() {
        let mut ks = Keyspace::new();
        put(&mut ks, "d/a", "1"); // 1
        put(&mut ks, "d/b", "1"); // 2
        delete(&mut ks, "d/a", false); // 3
        put(&mut ks, "d/c", "1"); // 4
        let at = |revision| {
            let resp = ks
                .range(&RangeRequest {
                    revision: Some(revision),
                    ..prefix_req("d/")
                })
                .unwrap();
            assert_eq!(resp.revision, revision);
            keys(&resp.kvs).join(",")
        };
        assert_eq!(at(1), "d/a");
        assert_eq!(at(2), "d/a,d/b");
        assert_eq!(at(3), "d/b");
        assert_eq!(at(4), "d/b,d/c");
    }
}

mod deletes {
    use super::*;

    #[test]
    fn prefix_delete_is_one_revision_in_key_order() {
        let mut ks = Keyspace::new();
        put(&mut ks, "x/b", "2");
        put(&mut ks, "x/a", "1");
        put(&mut ks, "x", "kept");
        put(&mut ks, "y", "kept");
        let (resp, events) = delete(&mut ks, "x/", true);
        assert_eq!(resp.revision, 5);
        assert_eq!(resp.deleted, 2);
        assert_eq!(
            resp.prev_kvs,
            vec![kv("x/a", "1", 2, 2, 1), kv("x/b", "2", 1, 1, 1)]
        );
        assert_eq!(
            events,
            vec![
                Event {
                    kind: EventKind::Delete,
                    kv: tombstone("x/a", 5),
                    prev_kv: Some(kv("x/a", "1", 2, 2, 1)),
                },
                Event {
                    kind: EventKind::Delete,
                    kv: tombstone("x/b", 5),
                    prev_kv: Some(kv("x/b", "2", 1, 1, 1)),
                },
            ]
        );
        assert_eq!(ks.key_count(), 2);

        // Without prev_kv, none are returned.
        let (result, _) = ks.apply(&Command::Delete(DeleteRequest {
            key: String::new(),
            prefix: true,
            prev_kv: false,
        }));
        match result {
            CommandResult::Delete(resp) => {
                assert_eq!((resp.revision, resp.deleted), (6, 2));
                assert!(resp.prev_kvs.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ks.key_count(), 0);
    }
}

mod compaction {
    use super::*;

    /// Every key at every revision from `from` on, read both ways.
    fn snapshot_reads(
        ks: &Keyspace,
        from: Revision,
    ) -> Vec<(Revision, Vec<muster_types::kv::KeyValue>)> {
        (from..=ks.revision())
            .map(|revision| {
                let resp = ks
                    .range(&RangeRequest {
                        revision: Some(revision),
                        limit: limits::MAX_RANGE_LIMIT,
                        ..prefix_req("")
                    })
                    .unwrap();
                (revision, resp.kvs)
            })
            .collect()
    }

    fn history() -> Keyspace {
        let mut ks = Keyspace::new();
        put(&mut ks, "a", "1"); // 1
        put(&mut ks, "a", "2"); // 2
        put(&mut ks, "b", "1"); // 3
        delete(&mut ks, "a", false); // 4
        put(&mut ks, "c", "1"); // 5
        put(&mut ks, "b", "2"); // 6
        delete(&mut ks, "c", false); // 7
        put(&mut ks, "a", "3"); // 8
        ks
    }

    #[test]
    fn reads_at_or_after_the_compacted_revision_are_unchanged() {
        for at in 0..=8 {
            let original = history();
            let mut ks = original.clone();
            assert_eq!(
                compact(&mut ks, at),
                CompactResponse {
                    compacted_revision: at,
                    revision: 8
                }
            );
            assert_eq!(ks.compacted_revision(), at);
            assert_eq!(
                snapshot_reads(&ks, at),
                snapshot_reads(&original, at),
                "at {at}"
            );
            assert_eq!(
                ks.events_since("", true, at, usize::MAX).unwrap(),
                original.events_since("", true, at, usize::MAX).unwrap(),
                "at {at}"
            );
            assert_eq!(ks.key_count(), original.key_count());
        }
    }

    #[test]
    fn compacted_reads_are_refused() {
        let mut ks = history();
        compact(&mut ks, 5);
        assert_eq!(
            ks.range(&RangeRequest {
                revision: Some(4),
                ..get_req("a")
            }),
            Err(Rejection::Compacted {
                requested: 4,
                compacted_revision: 5
            })
        );
        // Exactly at the compacted revision is fine: a was deleted at 4.
        assert_eq!(get_at(&ks, "a", Some(5)), None);
        assert_eq!(get_at(&ks, "b", Some(5)), Some(kv("b", "1", 3, 3, 1)));
        assert_eq!(get_at(&ks, "c", Some(5)), Some(kv("c", "1", 5, 5, 1)));
        // a's tombstone at 4 went, so its next event has no prev_kv; c's
        // delete at 7 still finds the put it undid.
        let events = ks.events_since("", true, 5, usize::MAX).unwrap();
        let summary: Vec<_> = events
            .iter()
            .map(|e| (e.kv.key.as_str(), e.kv.mod_revision, e.prev_kv.is_some()))
            .collect();
        assert_eq!(summary, [("b", 6, true), ("c", 7, true), ("a", 8, false)]);
    }

    #[test]
    fn compaction_bounds() {
        let mut ks = history();
        assert_eq!(
            rejection(&mut ks, Command::Compact { revision: 9 }),
            Rejection::FutureRevision {
                requested: 9,
                current: 8
            }
        );
        compact(&mut ks, 4);
        assert_eq!(
            rejection(&mut ks, Command::Compact { revision: 3 }),
            Rejection::Compacted {
                requested: 3,
                compacted_revision: 4
            }
        );
        // Compacting again at the same revision is a no-op.
        let before = ks.clone();
        compact(&mut ks, 4);
        assert_eq!(ks, before);
        compact(&mut ks, 8);
        assert_eq!(get_at(&ks, "a", Some(8)), Some(kv("a", "3", 8, 8, 1)));
        assert_eq!(ks.events_since("", true, 8, 10).unwrap(), Vec::new());
    }
}

mod transactions {
    use super::*;

    fn lock(owner: &str) -> Command {
        txn_cmd(
            vec![compare("lock", CompareOp::Equal, CompareTarget::Version(0))],
            vec![op_put("lock", owner)],
            vec![op_get("lock")],
        )
    }

    #[test]
    fn lock_pattern() {
        let mut ks = Keyspace::new();
        let (resp, events) = txn(&mut ks, lock("me"));
        assert!(resp.succeeded);
        assert_eq!(resp.revision, 1);
        assert_eq!(events.len(), 1);
        match &resp.responses[..] {
            [TxnOpResponse::Put(put)] => assert_eq!(put.revision, 1),
            other => panic!("{other:?}"),
        }

        let (resp, events) = txn(&mut ks, lock("you"));
        assert!(!resp.succeeded);
        assert_eq!(resp.revision, 1);
        assert!(events.is_empty());
        assert_eq!(ks.revision(), 1);
        match &resp.responses[..] {
            [TxnOpResponse::Get(get)] => {
                assert_eq!(get.revision, 1);
                assert_eq!(get.kvs, vec![kv("lock", "me", 1, 1, 1)]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn all_writes_share_one_revision_in_op_order() {
        let mut ks = Keyspace::new();
        put(&mut ks, "c/1", "old");
        put(&mut ks, "c/2", "old");
        let (resp, events) = txn(
            &mut ks,
            txn_cmd(
                vec![],
                vec![
                    op_put("z", "1"),
                    TxnOp::Delete(delete_req("c/", true)),
                    op_put("a", "1"),
                ],
                vec![],
            ),
        );
        assert!(resp.succeeded);
        assert_eq!(resp.revision, 3);
        assert_eq!(ks.revision(), 3);
        let order: Vec<_> = events
            .iter()
            .map(|e| (e.kv.key.as_str(), e.kind, e.kv.mod_revision))
            .collect();
        assert_eq!(
            order,
            [
                ("z", EventKind::Put, 3),
                ("c/1", EventKind::Delete, 3),
                ("c/2", EventKind::Delete, 3),
                ("a", EventKind::Put, 3),
            ]
        );
        match &resp.responses[1] {
            TxnOpResponse::Delete(delete) => {
                assert_eq!((delete.revision, delete.deleted), (3, 2));
                assert_eq!(delete.prev_kvs.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        // A watcher sees the same revision in key order.
        let watched: Vec<_> = ks
            .events_since("", true, 2, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|e| e.kv.key)
            .collect();
        assert_eq!(watched, ["a", "c/1", "c/2", "z"]);
    }

    #[test]
    fn gets_see_earlier_writes() {
        let mut ks = Keyspace::new();
        put(&mut ks, "x", "old"); // 1
        put(&mut ks, "gone", "old"); // 2
        let (resp, _) = txn(
            &mut ks,
            txn_cmd(
                vec![],
                vec![
                    op_get("x"),
                    op_put("x", "new"),
                    op_get("x"),
                    TxnOp::Delete(delete_req("gone", false)),
                    TxnOp::Get(prefix_req("")),
                    TxnOp::Get(RangeRequest {
                        revision: Some(1),
                        ..prefix_req("")
                    }),
                ],
                vec![],
            ),
        );
        assert_eq!(resp.revision, 3);
        let gets: Vec<_> = resp
            .responses
            .iter()
            .filter_map(|r| match r {
                TxnOpResponse::Get(get) => Some(get),
                _ => None,
            })
            .collect();
        assert_eq!(gets[0].kvs, vec![kv("x", "old", 1, 1, 1)]);
        assert_eq!(gets[0].revision, 3);
        assert_eq!(gets[1].kvs, vec![kv("x", "new", 1, 3, 2)]);
        assert_eq!(keys(&gets[2].kvs), ["x"]);
        assert_eq!(gets[3].revision, 1);
        assert_eq!(gets[3].kvs, vec![kv("x", "old", 1, 1, 1)]);
    }

    #[test]
    fn branches_without_writes_take_no_revision() {
        let mut ks = Keyspace::new();
        put(&mut ks, "a", "1");
        let (resp, events) = txn(
            &mut ks,
            txn_cmd(
                vec![],
                vec![op_get("a"), TxnOp::Delete(delete_req("missing", false))],
                vec![op_put("a", "never")],
            ),
        );
        assert!(resp.succeeded);
        assert_eq!(resp.revision, 1);
        assert!(events.is_empty());
        assert_eq!(ks.revision(), 1);
        match &resp.responses[1] {
            TxnOpResponse::Delete(delete) => assert_eq!((delete.revision, delete.deleted), (1, 0)),
            other => panic!("{other:?}"),
        }
        let (resp, _) = txn(&mut ks, txn_cmd(vec![], vec![], vec![]));
        assert!(resp.succeeded && resp.responses.is_empty());
        assert_eq!(ks.revision(), 1);
    }

    #[test]
    fn compares() {
        let mut ks = Keyspace::new();
        grant(&mut ks, 9);
        put(&mut ks, "other", "x"); // 1
        put_on_lease(&mut ks, "k", "m", 9); // 2
        let holds =
            |ks: &mut Keyspace, c: Compare| txn(ks, txn_cmd(vec![c], vec![], vec![])).0.succeeded;
        use CompareOp::*;
        use CompareTarget::*;
        let cases = [
            ("k", Equal, Value(Blob::from("m")), true),
            ("k", Less, Value(Blob::from("n")), true),
            ("k", Less, Value(Blob::from("ma")), true),
            ("k", Greater, Value(Blob::from("")), true),
            ("k", NotEqual, Value(Blob::from("m")), false),
            ("k", Equal, Version(1), true),
            ("k", Greater, Version(1), false),
            ("k", Equal, CreateRevision(2), true),
            ("k", Less, ModRevision(3), true),
            ("k", Equal, Lease(9), true),
            ("k", Equal, Lease(0), false),
            // An absent key: empty value, zero version, revisions and lease.
            ("none", Equal, Value(Blob::default()), true),
            ("none", Equal, Version(0), true),
            ("none", Equal, CreateRevision(0), true),
            ("none", Equal, ModRevision(0), true),
            ("none", Equal, Lease(0), true),
            ("none", Less, Version(1), true),
        ];
        for (key, op, target, expected) in cases {
            let c = compare(key, op, target.clone());
            assert_eq!(holds(&mut ks, c), expected, "{key} {op:?} {target:?}");
        }
        // All compares must hold.
        let mixed = txn_cmd(
            vec![
                compare("k", Equal, Version(1)),
                compare("k", Equal, Version(2)),
            ],
            vec![],
            vec![],
        );
        assert!(!txn(&mut ks, mixed).0.succeeded);
        assert_eq!(ks.revision(), 2);
    }

    #[test]
    fn overlapping_writes_are_refused() {
        let mut ks = Keyspace::new();
        put(&mut ks, "a", "1");
        let cases = [
            vec![op_put("a", "1"), op_put("a", "2")],
            vec![op_put("a/b", "1"), TxnOp::Delete(delete_req("a/", true))],
            vec![TxnOp::Delete(delete_req("", true)), op_put("z", "1")],
            vec![TxnOp::Delete(delete_req("a", false)), op_put("a", "1")],
            vec![
                TxnOp::Delete(delete_req("a/b", true)),
                TxnOp::Delete(delete_req("a/", true)),
            ],
        ];
        for ops in cases {
            let r = rejection(&mut ks, txn_cmd(vec![], ops.clone(), vec![]));
            assert_eq!(invalid_field(&r), "txn", "{ops:?}");
            // The branch not taken is checked too.
            let r = rejection(&mut ks, txn_cmd(vec![], vec![], ops));
            assert_eq!(invalid_field(&r), "txn");
        }
        // Reads may touch written keys, and disjoint writes are fine.
        let ok = txn_cmd(
            vec![],
            vec![
                op_put("a", "2"),
                op_get("a"),
                op_put("ab", "1"),
                TxnOp::Delete(delete_req("a/", true)),
            ],
            vec![],
        );
        assert!(txn(&mut ks, ok).0.succeeded);
    }

    #[test]
    fn bad_ops_are_refused() {
        let mut ks = Keyspace::new();
        let bad_key = txn_cmd(vec![], vec![op_put("", "1")], vec![]);
        assert_eq!(invalid_field(&rejection(&mut ks, bad_key)), "txn");
        let bad_compare = txn_cmd(
            vec![compare("", CompareOp::Equal, CompareTarget::Version(0))],
            vec![],
            vec![],
        );
        assert_eq!(invalid_field(&rejection(&mut ks, bad_compare)), "txn");
        let bad_get = txn_cmd(vec![], vec![], vec![op_get("\u{7}")]);
        assert_eq!(invalid_field(&rejection(&mut ks, bad_get)), "txn");
        let future_get = txn_cmd(
            vec![],
            vec![
                op_put("a", "1"),
                TxnOp::Get(RangeRequest {
                    revision: Some(1),
                    ..get_req("a")
                }),
            ],
            vec![],
        );
        assert_eq!(
            rejection(&mut ks, future_get),
            Rejection::FutureRevision {
                requested: 1,
                current: 0
            }
        );
    }

    #[test]
    fn op_count_limit() {
        let mut ks = Keyspace::new();
        let ops = |n: usize| {
            (0..n)
                .map(|i| op_put(&format!("k{i}"), "v"))
                .collect::<Vec<_>>()
        };
        let too_many = txn_cmd(
            vec![compare("k", CompareOp::Equal, CompareTarget::Version(0))],
            ops(limits::MAX_TXN_OPS - 1),
            vec![op_get("k")],
        );
        assert_eq!(invalid_field(&rejection(&mut ks, too_many)), "txn");
        let (resp, events) = txn(&mut ks, txn_cmd(vec![], ops(limits::MAX_TXN_OPS), vec![]));
        assert_eq!(resp.revision, 1);
        assert_eq!(events.len(), limits::MAX_TXN_OPS);
        assert_eq!(ks.key_count(), limits::MAX_TXN_OPS);
    }

    #[test]
    fn stale_prev_revision_refuses_the_whole_txn() {
        let mut ks = Keyspace::new();
        put(&mut ks, "a", "1");
        let cmd = txn_cmd(
            vec![],
            vec![
                op_put("b", "1"),
                TxnOp::Put(PutRequest {
                    prev_revision: Some(0),
                    ..put_req("a", "2")
                }),
            ],
            vec![],
        );
        assert_eq!(
            rejection(&mut ks, cmd),
            Rejection::CompareFailed {
                key: "a".into(),
                current_revision: 1
            }
        );
        let cmd = txn_cmd(
            vec![],
            vec![TxnOp::Put(PutRequest {
                prev_revision: Some(1),
                prev_kv: true,
                ..put_req("a", "2")
            })],
            vec![],
        );
        let (resp, _) = txn(&mut ks, cmd);
        match &resp.responses[0] {
            TxnOpResponse::Put(put) => {
                assert_eq!(put.revision, 2);
                assert_eq!(put.prev_kv, Some(kv("a", "1", 1, 1, 1)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_lease_refuses_the_whole_txn() {
        let mut ks = Keyspace::new();
        let cmd = txn_cmd(
            vec![],
            vec![
                op_put("a", "1"),
                TxnOp::Put(PutRequest {
                    lease: Some(5),
                    ..put_req("b", "1")
                }),
            ],
            vec![],
        );
        assert_eq!(rejection(&mut ks, cmd), Rejection::LeaseNotFound { id: 5 });
    }
}

mod leases {
    use super::*;

    fn lease_keys(ks: &Keyspace, id: u64) -> Vec<String> {
        ks.lease(id).unwrap().keys
    }

    #[test]
    fn grant_rules() {
        let mut ks = Keyspace::new();
        let (result, _) = ks.apply(&Command::LeaseGrant { id: 3, ttl: 30 });
        assert_eq!(
            result,
            CommandResult::LeaseGrant(LeaseGrantResponse { id: 3, ttl: 30 })
        );
        let r = rejection(&mut ks, Command::LeaseGrant { id: 0, ttl: 30 });
        assert_eq!(invalid_field(&r), "id");
        assert_eq!(
            rejection(&mut ks, Command::LeaseGrant { id: 3, ttl: 30 }),
            Rejection::LeaseExists { id: 3 }
        );
        for ttl in [
            limits::MIN_LEASE_TTL_SECS - 1,
            limits::MAX_LEASE_TTL_SECS + 1,
            -5,
        ] {
            let r = rejection(&mut ks, Command::LeaseGrant { id: 4, ttl });
            assert_eq!(invalid_field(&r), "ttl");
        }
        grant(&mut ks, 1);
        let (result, _) = ks.apply(&Command::LeaseGrant {
            id: 2,
            ttl: limits::MAX_LEASE_TTL_SECS,
        });
        assert!(matches!(result, CommandResult::LeaseGrant(_)));
        assert_eq!(
            ks.leases().iter().map(|l| l.id).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(
            ks.lease(3),
            Some(LeaseState {
                id: 3,
                ttl: 30,
                keys: vec![]
            })
        );
        assert_eq!(ks.lease(4), None);
        assert_eq!(ks.revision(), 0);
    }

    #[test]
    fn attach_move_detach() {
        let mut ks = Keyspace::new();
        assert_eq!(
            rejection(
                &mut ks,
                Command::Put(PutRequest {
                    lease: Some(1),
                    ..put_req("a", "1")
                })
            ),
            Rejection::LeaseNotFound { id: 1 }
        );
        grant(&mut ks, 1);
        grant(&mut ks, 2);
        put_on_lease(&mut ks, "b", "1", 1);
        put_on_lease(&mut ks, "a", "1", 1);
        assert_eq!(lease_keys(&ks, 1), ["a", "b"]);
        assert_eq!(get(&ks, "a").unwrap().lease, Some(1));

        put_on_lease(&mut ks, "a", "2", 2);
        assert_eq!(lease_keys(&ks, 1), ["b"]);
        assert_eq!(lease_keys(&ks, 2), ["a"]);

        put(&mut ks, "a", "3");
        assert!(lease_keys(&ks, 2).is_empty());
        assert_eq!(get(&ks, "a").unwrap().lease, None);

        // Lease 0 means no lease, as in etcd.
        put_on_lease(&mut ks, "c", "1", 0);
        assert_eq!(get(&ks, "c").unwrap().lease, None);

        delete(&mut ks, "b", false);
        assert!(lease_keys(&ks, 1).is_empty());
    }

    #[test]
    fn revoke_deletes_keys_at_one_revision() {
        let mut ks = Keyspace::new();
        grant(&mut ks, 1);
        put_on_lease(&mut ks, "s/2", "x", 1); // 1
        put_on_lease(&mut ks, "s/1", "y", 1); // 2
        put(&mut ks, "s/3", "z"); // 3
        let (result, events) = ks.apply(&Command::LeaseRevoke { id: 1 });
        assert_eq!(
            result,
            CommandResult::LeaseRevoke(LeaseRevokeResponse {
                revision: 4,
                deleted: 2
            })
        );
        let expected_prev = |key: &str, value: &str, rev| muster_types::kv::KeyValue {
            lease: Some(1),
            ..kv(key, value, rev, rev, 1)
        };
        assert_eq!(
            events,
            vec![
                Event {
                    kind: EventKind::Delete,
                    kv: tombstone("s/1", 4),
                    prev_kv: Some(expected_prev("s/1", "y", 2)),
                },
                Event {
                    kind: EventKind::Delete,
                    kv: tombstone("s/2", 4),
                    prev_kv: Some(expected_prev("s/2", "x", 1)),
                },
            ]
        );
        assert_eq!(ks.lease(1), None);
        assert_eq!(ks.key_count(), 1);
        assert_eq!(
            rejection(&mut ks, Command::LeaseRevoke { id: 1 }),
            Rejection::LeaseNotFound { id: 1 }
        );

        // A lease without keys goes without a revision.
        grant(&mut ks, 2);
        let (result, events) = ks.apply(&Command::LeaseRevoke { id: 2 });
        assert_eq!(
            result,
            CommandResult::LeaseRevoke(LeaseRevokeResponse {
                revision: 4,
                deleted: 0
            })
        );
        assert!(events.is_empty());
        assert!(ks.leases().is_empty());
    }
}

mod events {
    use super::*;

    #[test]
    fn ordered_with_prev_kv_and_matching_apply() {
        let mut ks = Keyspace::new();
        let commands = [
            Command::Put(put_req("w/b", "1")),
            Command::Put(put_req("w/a", "1")),
            Command::Put(put_req("other", "1")),
            Command::Put(put_req("w/b", "2")),
            Command::Delete(delete_req("w/", true)),
        ];
        let mut applied = Vec::new();
        for cmd in &commands {
            applied.extend(ks.apply(cmd).1);
        }
        let watched = ks.events_since("w/", true, 0, usize::MAX).unwrap();
        let prefixed: Vec<Event> = applied
            .iter()
            .filter(|e| e.kv.key.starts_with("w/"))
            .cloned()
            .collect();
        assert_eq!(watched, prefixed);
        let summary: Vec<_> = watched
            .iter()
            .map(|e| (e.kv.mod_revision, e.kv.key.as_str(), e.kind))
            .collect();
        assert_eq!(
            summary,
            [
                (1, "w/b", EventKind::Put),
                (2, "w/a", EventKind::Put),
                (4, "w/b", EventKind::Put),
                (5, "w/a", EventKind::Delete),
                (5, "w/b", EventKind::Delete),
            ]
        );
        assert_eq!(watched[2].prev_kv, Some(kv("w/b", "1", 1, 1, 1)));
        assert_eq!(watched[4].prev_kv, Some(kv("w/b", "2", 1, 4, 2)));

        // One key, without the prefix, from its own history.
        let single = ks.events_since("w/b", false, 1, usize::MAX).unwrap();
        assert_eq!(single, vec![watched[2].clone(), watched[4].clone()]);
        assert_eq!(
            ks.events_since("w/b", false, 4, 1).unwrap(),
            vec![watched[4].clone()]
        );
        assert!(ks.events_since("w/", false, 0, 10).unwrap().is_empty());
        assert!(ks.events_since("", true, 5, 10).unwrap().is_empty());
        assert!(ks.events_since("", true, 0, 0).unwrap().is_empty());
    }

    #[test]
    fn limit_never_splits_a_revision() {
        let mut ks = Keyspace::new();
        put(&mut ks, "k/1", "a"); // 1
        let many = (0..3).map(|i| op_put(&format!("k/m{i}"), "b")).collect();
        txn(&mut ks, txn_cmd(vec![], many, vec![])); // 2
        put(&mut ks, "k/2", "c"); // 3
        let revisions = |limit| -> Vec<Revision> {
            ks.events_since("k/", true, 0, limit)
                .unwrap()
                .iter()
                .map(|e| e.kv.mod_revision)
                .collect()
        };
        assert_eq!(revisions(1), [1]);
        assert_eq!(revisions(2), [1, 2, 2, 2]);
        assert_eq!(revisions(4), [1, 2, 2, 2]);
        assert_eq!(revisions(5), [1, 2, 2, 2, 3]);
        let resumed: Vec<_> = ks
            .events_since("k/", true, 1, 1)
            .unwrap()
            .into_iter()
            .map(|e| e.kv.key)
            .collect();
        assert_eq!(resumed, ["k/m0", "k/m1", "k/m2"]);
    }

    #[test]
    fn compacted_history_is_refused() {
        let mut ks = Keyspace::new();
        put(&mut ks, "a", "1");
        put(&mut ks, "a", "2");
        put(&mut ks, "a", "3");
        compact(&mut ks, 2);
        assert_eq!(
            ks.events_since("a", false, 1, 10),
            Err(Rejection::Compacted {
                requested: 1,
                compacted_revision: 2
            })
        );
        assert_eq!(
            ks.events_since("", true, 1, 10),
            Err(Rejection::Compacted {
                requested: 1,
                compacted_revision: 2
            })
        );
        let events = ks.events_since("a", false, 2, 10).unwrap();
        assert_eq!(events.len(), 1);
        // The version compaction kept still serves as prev_kv.
        assert_eq!(events[0].prev_kv, Some(kv("a", "2", 1, 2, 2)));
        assert_eq!(ks.events_since("", true, 2, 10).unwrap(), events);
    }
}

mod snapshots {
    use super::*;

    fn busy() -> Keyspace {
        let mut ks = Keyspace::new();
        grant(&mut ks, 1);
        grant(&mut ks, 2);
        put_on_lease(&mut ks, "a", "1", 1);
        put(&mut ks, "a", "2");
        put_on_lease(&mut ks, "b", "1", 2);
        put_on_lease(&mut ks, "c", "1", 2);
        delete(&mut ks, "c", false);
        put(&mut ks, "d", "1");
        compact(&mut ks, 3);
        put(&mut ks, "d", "2");
        ks
    }

    #[test]
    fn round_trip_is_exact() {
        let ks = busy();
        let restored = Keyspace::from_snapshot(&ks.to_snapshot()).unwrap();
        assert_eq!(restored, ks);
        assert_eq!(restored.revision(), ks.revision());
        assert_eq!(restored.compacted_revision(), 3);
        assert_eq!(restored.key_count(), ks.key_count());
        assert_eq!(restored.leases(), ks.leases());
        assert_eq!(
            restored.events_since("", true, 3, usize::MAX),
            ks.events_since("", true, 3, usize::MAX)
        );
        assert_eq!(restored.to_snapshot(), ks.to_snapshot());
    }

    #[test]
    fn restored_keyspace_carries_on_identically() {
        let mut original = busy();
        let mut restored = Keyspace::from_snapshot(&original.to_snapshot()).unwrap();
        let commands = [
            Command::Put(put_req("e", "1")),
            Command::LeaseRevoke { id: 2 },
            Command::Txn(TxnRequest {
                compare: vec![compare("a", CompareOp::Equal, CompareTarget::Version(2))],
                success: vec![op_put("a", "3"), TxnOp::Delete(delete_req("d", false))],
                failure: vec![],
            }),
            Command::Compact { revision: 6 },
            Command::LeaseRevoke { id: 1 },
            Command::Delete(delete_req("", true)),
        ];
        for cmd in &commands {
            assert_eq!(original.apply(cmd), restored.apply(cmd), "{cmd}");
        }
        assert_eq!(original, restored);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(Keyspace::from_snapshot(b"").is_err());
        assert!(Keyspace::from_snapshot(b"\xc1not msgpack").is_err());
        let bytes = busy().to_snapshot();
        assert!(Keyspace::from_snapshot(&bytes[..bytes.len() / 2]).is_err());
    }
}
