//! Adding, promoting and removing members under write load.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use muster_types::cluster::{Member, MemberList, MemberRole};
use reqwest::Method;
use serde_json::json;

use crate::util::{Api, Cluster, Node, Options, next_port, wait_for, wait_until};

async fn background_writer(
    api: Api,
    urls: Vec<String>,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
) -> BTreeMap<String, String> {
    let mut acked = BTreeMap::new();
    let mut target = 0usize;
    for i in 0..50_000 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let (key, value) = (format!("m/{i:05}"), format!("v{i}"));
        for _ in 0..urls.len() * 2 {
            match api
                .put(&urls[target % urls.len()], &key, value.as_str(), "")
                .await
            {
                Ok(answer) if answer.status == 200 => {
                    acked.insert(key.clone(), value.clone());
                    count.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                _ => {
                    target += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    acked
}

fn member<'a>(list: &'a MemberList, name: &str) -> Option<&'a Member> {
    list.members.iter().find(|m| m.name == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_promote_and_remove_members_under_load() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    let api = cluster.api.clone();

    // A node that joins (etcd's `--initial-cluster-state existing`): it
    // never initializes a cluster of its own and waits to be added.
    let (client, peer) = (next_port(), next_port());
    let initial = format!("n4=http://127.0.0.1:{peer}");
    let mut n4 = Node::with_ports(
        "n4",
        client,
        peer,
        &initial,
        &["--initial-cluster-state", "existing"],
    );
    n4.start();
    let n4_url = n4.client_url();
    wait_until(
        Duration::from_secs(10),
        "n4 to answer /v1/status",
        async || api.status(&n4_url).await.is_ok(),
    )
    .await;
    let alone = api.status(&n4_url).await.unwrap();
    assert_eq!(
        alone.cluster_id, "",
        "n4 must not have initialized a cluster"
    );
    cluster.nodes.push(n4);

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(background_writer(
        api.clone(),
        cluster.urls()[..3].to_vec(),
        stop.clone(),
        count.clone(),
    ));

    let url = cluster.nodes[0].client_url();
    let before = api.members(&url).await.unwrap();
    assert_eq!(before.members.len(), 3);

    let acked_before_add = count.load(Ordering::SeqCst);
    let added = api
        .post_json(
            &format!("{url}/v1/cluster/members"),
            &json!({ "name": "n4", "peer_url": cluster.nodes[3].peer_url() }),
        )
        .await
        .unwrap();
    assert_eq!(added.status, 201, "{added:?}");
    let added: Member = added.json();
    assert_eq!(added.name, "n4");
    assert_eq!(added.role, MemberRole::Learner);
    assert_eq!(added.id, alone.id, "the member id is n4's own id");
    assert_eq!(added.client_url, n4_url);

    let after_add = api.members(&url).await.unwrap();
    assert_eq!(after_add.members.len(), 4);
    assert_eq!(member(&after_add, "n4").unwrap().role, MemberRole::Learner);
    assert!(after_add.membership_id > before.membership_id);

    // Adding it again is a conflict.
    let again = api
        .post_json(
            &format!("{url}/v1/cluster/members"),
            &json!({ "name": "n4", "peer_url": cluster.nodes[3].peer_url() }),
        )
        .await
        .unwrap();
    assert_eq!(again.status, 409, "{again:?}");
    assert_eq!(again.body["error"], json!("conflict"));

    // A stale expect_membership is refused, and changes nothing.
    let stale = api
        .post_json(
            &format!("{url}/v1/cluster/members/n4/promote"),
            &json!({ "expect_membership": before.membership_id }),
        )
        .await
        .unwrap();
    assert_eq!(stale.status, 409, "{stale:?}");
    assert_eq!(stale.body["error"], json!("conflict"));
    let unchanged = api.members(&url).await.unwrap();
    assert_eq!(member(&unchanged, "n4").unwrap().role, MemberRole::Learner);
    assert_eq!(unchanged.membership_id, after_add.membership_id);

    // An unknown name.
    let unknown = api
        .post_json(
            &format!("{url}/v1/cluster/members/nobody/promote"),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(unknown.status, 404, "{unknown:?}");
    assert_eq!(unknown.body["error"], json!("member_not_found"));

    // Promote once caught up (409 "not caught up" until then).
    let promoted: MemberList = wait_for(Duration::from_secs(15), "n4 to be promoted", async || {
        let answer = api
            .call(
                Method::POST,
                &format!("{url}/v1/cluster/members/n4/promote"),
                None,
            )
            .await
            .ok()?;
        match answer.status {
            200 => Some(answer.json()),
            409 | 503 => None,
            _ => panic!("promote: {answer:?}"),
        }
    })
    .await;
    assert_eq!(member(&promoted, "n4").unwrap().role, MemberRole::Voter);
    assert_eq!(
        promoted
            .members
            .iter()
            .filter(|m| m.role == MemberRole::Voter)
            .count(),
        4
    );
    let n4_url = cluster.nodes[3].client_url();
    wait_until(Duration::from_secs(10), "n4 ready as a voter", async || {
        api.ready(&n4_url).await
    })
    .await;

    // Remove a voter.
    let removed = api
        .call(
            Method::DELETE,
            &format!("{url}/v1/cluster/members/n2"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(removed.status, 200, "{removed:?}");
    let removed: MemberList = removed.json();
    assert!(member(&removed, "n2").is_none(), "{removed:?}");
    let names: Vec<&str> = removed.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{removed:?}");
    for name in ["n1", "n3", "n4"] {
        assert_eq!(
            member(&removed, name).map(|m| m.role),
            Some(MemberRole::Voter),
            "{removed:?}"
        );
    }
    let n2 = cluster.index_of("n2");
    cluster.nodes[n2].kill9();

    // Writes went on while the membership changed, and go on after.
    let acked_after_remove = count.load(Ordering::SeqCst);
    assert!(
        acked_after_remove > acked_before_add,
        "no write was acknowledged during the changes"
    );
    wait_until(
        Duration::from_secs(15),
        "30 more acknowledged writes",
        async || count.load(Ordering::SeqCst) >= acked_after_remove + 30,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let acked = writer.await.unwrap();
    eprintln!("{} writes acknowledged during the changes", acked.len());
    assert_eq!(acked.len(), count.load(Ordering::SeqCst));

    cluster.wait_healthy(3, Duration::from_secs(15)).await;
    let revision = cluster.wait_converged(Duration::from_secs(15)).await;
    for url in cluster.running_urls() {
        let list = api.members(&url).await.unwrap();
        assert!(member(&list, "n2").is_none(), "n2 still listed on {url}");
        let kvs = api.list_all(&url, "m/").await.unwrap();
        let present: BTreeMap<String, Vec<u8>> = kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value.into_vec()))
            .collect();
        for (key, value) in &acked {
            assert_eq!(
                present.get(key).map(Vec::as_slice),
                Some(value.as_bytes()),
                "acknowledged {key} on {url}"
            );
        }
        assert_eq!(api.status(&url).await.unwrap().revision, revision);
    }
}
