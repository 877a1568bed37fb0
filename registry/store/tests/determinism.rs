//! Replicas applying the same commands agree, whether or not one of them was
//! restored from a snapshot on the way, and compaction never changes what a
//! permitted read or watch returns.

use muster_store::{Command, Keyspace};
use muster_types::kv::{
    Compare, CompareOp, CompareTarget, DeleteRequest, PutRequest, RangeRequest, RangeResponse,
    TxnOp, TxnRequest,
};
use muster_types::watch::Event;
use muster_types::{Blob, Revision};

/// A tiny linear congruential generator: reproducible without a rand crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Few keys under few prefixes, so commands collide often.
    fn key(&mut self) -> String {
        format!(
            "{}/{}",
            ["a", "b", "c"][self.below(3) as usize],
            self.below(6)
        )
    }

    fn put(&mut self) -> PutRequest {
        PutRequest {
            key: self.key(),
            value: Blob::from(format!("v{}", self.below(1000)).as_str()),
            lease: [None, Some(0), Some(self.below(4) + 1)][self.below(3) as usize],
            prev_revision: (self.below(5) == 0).then(|| self.below(30)),
            prev_kv: self.below(2) == 0,
        }
    }

    fn delete(&mut self) -> DeleteRequest {
        let prefix = self.below(4) == 0;
        DeleteRequest {
            key: if prefix {
                ["a/", "b/", ""][self.below(3) as usize].to_owned()
            } else {
                self.key()
            },
            prefix,
            prev_kv: self.below(2) == 0,
        }
    }

    fn txn(&mut self) -> TxnRequest {
        let compare = (0..self.below(3))
            .map(|_| Compare {
                key: self.key(),
                op: [
                    CompareOp::Equal,
                    CompareOp::NotEqual,
                    CompareOp::Less,
                    CompareOp::Greater,
                ][self.below(4) as usize],
                target: CompareTarget::Version(self.below(3)),
            })
            .collect();
        let mut branch = || -> Vec<TxnOp> {
            (0..self.below(4))
                .map(|_| match self.below(3) {
                    0 => TxnOp::Put(self.put()),
                    1 => TxnOp::Delete(self.delete()),
                    _ => TxnOp::Get(RangeRequest {
                        key: self.key(),
                        ..RangeRequest::default()
                    }),
                })
                .collect()
        };
        TxnRequest {
            compare,
            success: branch(),
            failure: branch(),
        }
    }

    fn command(&mut self, revision: Revision) -> Command {
        match self.below(20) {
            0..=7 => Command::Put(self.put()),
            8..=10 => Command::Delete(self.delete()),
            11..=15 => Command::Txn(self.txn()),
            16 => Command::Compact {
                revision: revision.saturating_sub(self.below(10)),
            },
            17 | 18 => Command::LeaseGrant {
                id: self.below(4) + 1,
                ttl: 30,
            },
            _ => Command::LeaseRevoke {
                id: self.below(4) + 1,
            },
        }
    }
}

/// Everything a client could observe from `from` on: every key at every
/// revision, and every event.
fn observe(ks: &Keyspace, from: Revision) -> (Vec<RangeResponse>, Vec<Event>) {
    let reads = (from..=ks.revision())
        .map(|revision| {
            ks.range(&RangeRequest {
                key: String::new(),
                prefix: true,
                revision: Some(revision),
                ..RangeRequest::default()
            })
            .unwrap()
        })
        .collect();
    let events = ks.events_since("", true, from, usize::MAX).unwrap();
    (reads, events)
}

#[test]
fn replicas_agree_across_a_snapshot() {
    for seed in 1..=20 {
        let mut rng = Lcg(seed);
        let mut plain = Keyspace::new();
        let mut restored = Keyspace::new();
        // A third replica that never compacts: the oracle for history.
        let mut uncompacted = Keyspace::new();
        let mut applied_events: Vec<Event> = Vec::new();
        for step in 0..400 {
            let command = rng.command(plain.revision());
            let outcome = plain.apply(&command);
            assert_eq!(
                restored.apply(&command),
                outcome,
                "seed {seed} step {step}: {command}"
            );
            if !matches!(command, Command::Compact { .. }) {
                uncompacted.apply(&command);
            }
            for event in &outcome.1 {
                assert_eq!(
                    event.kv.mod_revision,
                    plain.revision(),
                    "one revision per command"
                );
            }
            applied_events.extend(outcome.1);
            if step == 200 {
                restored = Keyspace::from_snapshot(&restored.to_snapshot()).unwrap();
                assert_eq!(restored, plain);
            }
        }
        assert_eq!(restored, plain, "seed {seed}");
        assert_eq!(restored.to_snapshot(), plain.to_snapshot());
        assert!(plain.revision() > 50, "seed {seed} wrote too little");

        let from = plain.compacted_revision();
        assert_eq!(
            observe(&restored, from),
            observe(&plain, from),
            "seed {seed}"
        );
        assert_eq!(
            observe(&uncompacted, from),
            observe(&plain, from),
            "seed {seed}"
        );

        // A watch from the start sees what apply reported, in key order
        // within each revision.
        applied_events
            .sort_by(|a, b| (a.kv.mod_revision, &a.kv.key).cmp(&(b.kv.mod_revision, &b.kv.key)));
        assert_eq!(
            uncompacted.events_since("", true, 0, usize::MAX).unwrap(),
            applied_events,
            "seed {seed}"
        );
    }
}
