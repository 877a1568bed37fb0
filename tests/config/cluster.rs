//! Three nodes: writes through followers, listeners and watches served by
//! a node other than the one that took the write.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use muster_client::config::{ConfigId, Labels};
use muster_client::{Client, ClientError};
use muster_types::config::{ConfigEvent, ConfigFormat, ListenItem};

use crate::util::{Cluster, Options};

fn held(data_id: &str, md5: &str) -> ListenItem {
    ListenItem {
        namespace: "default".into(),
        group: "web".into(),
        data_id: data_id.into(),
        md5: md5.into(),
    }
}

async fn next_change(
    events: &mut (impl futures::Stream<Item = muster_client::Result<ConfigEvent>> + Unpin),
) -> ConfigEvent {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("a config event within 10 s")
        .expect("the watch goes on")
        .expect("no watch error")
}

#[tokio::test]
async fn listeners_and_watches_hear_writes_made_through_other_nodes() {
    let cluster = Cluster::start(3, Options::default()).await;
    let leader = cluster.leader().await;
    let followers = cluster.others(leader);
    let urls = cluster.urls();
    let on = |index: usize| Client::new([urls[index].clone()]).expect("a client");
    let (publisher, listener) = (on(followers[0]), on(followers[1]));
    let app = ConfigId::new("default", "web", "app.yaml");
    let db = ConfigId::new("default", "web", "db.yaml");

    // A publish through a follower lands, with its author.
    let first = publisher
        .config_publish(&app, "v: 1\n", ConfigFormat::Yaml, Some("follower"))
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    let seen = on(leader).config_get(&app).await.unwrap().unwrap();
    assert_eq!(
        (seen.md5.as_str(), seen.published_by.as_str()),
        (first.md5.as_str(), "follower")
    );

    // A group watch on the third node, from the first publish on.
    let mut events = listener.watch_config("default", "web", None, Some(first.revision));

    // A stale listener is answered at once.
    let started = Instant::now();
    let answer = listener
        .config_listen(
            vec![held("app.yaml", "")],
            Labels::new(),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(answer.changed, [held("app.yaml", &first.md5)]);

    // An up-to-date listener gets an empty answer after its timeout.
    let started = Instant::now();
    let answer = listener
        .config_listen(
            vec![held("app.yaml", &first.md5), held("db.yaml", "")],
            Labels::new(),
            Duration::from_millis(800),
        )
        .await
        .unwrap();
    assert!(answer.changed.is_empty(), "{answer:?}");
    assert!(started.elapsed() >= Duration::from_millis(700));

    // A waiting listener returns when another node takes a publish.
    let waiting = {
        let listener = listener.clone();
        let md5 = first.md5.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = listener
                .config_listen(
                    vec![held("app.yaml", &md5)],
                    Labels::new(),
                    Duration::from_secs(30),
                )
                .await;
            (answer, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = publisher
        .config_publish(&app, "v: 2\n", ConfigFormat::Yaml, None)
        .await
        .unwrap();
    let (answer, waited) = tokio::time::timeout(Duration::from_secs(35), waiting)
        .await
        .expect("the listener answers")
        .unwrap();
    assert!(
        waited < Duration::from_secs(30),
        "it waited for its timeout"
    );
    let answer = answer.unwrap();
    assert_eq!(answer.changed, [held("app.yaml", &second.md5)]);
    assert!(answer.revision >= second.revision, "{answer:?}");

    // The watch saw both items' publishes, in order.
    let third = on(leader)
        .config_publish(&db, "pool: 5\n", ConfigFormat::Yaml, None)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        match next_change(&mut events).await {
            ConfigEvent::Published { revision, item } => {
                seen.push((item.data_id, item.version, revision));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            ("app.yaml".to_owned(), 2, second.revision),
            ("db.yaml".to_owned(), 1, third.revision),
        ]
    );

    // Listeners are gray-aware: only the selected one hears a gray release.
    let canary: Labels = [("canary".to_owned(), "true".to_owned())].into();
    let selected = {
        let listener = listener.clone();
        let (md5, labels) = (second.md5.clone(), canary.clone());
        tokio::spawn(async move {
            listener
                .config_listen(
                    vec![held("app.yaml", &md5)],
                    labels,
                    Duration::from_secs(30),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gray = publisher
        .config_gray_set(&app, "v: 3\n", canary.clone(), None)
        .await
        .unwrap();
    let gray_md5 = gray.gray.unwrap().md5;
    let answer = tokio::time::timeout(Duration::from_secs(35), selected)
        .await
        .expect("the selected listener answers")
        .unwrap()
        .unwrap();
    assert_eq!(answer.changed, [held("app.yaml", &gray_md5)]);
    let unselected = listener
        .config_listen(
            vec![held("app.yaml", &second.md5)],
            Labels::new(),
            Duration::from_millis(500),
        )
        .await
        .unwrap();
    assert!(unselected.changed.is_empty(), "{unselected:?}");
    match next_change(&mut events).await {
        ConfigEvent::Published { item, .. } => assert!(item.gray.is_some()),
        other => panic!("unexpected {other:?}"),
    }

    // A deleted item is a change for a listener that holds it.
    publisher.config_delete(&db).await.unwrap();
    let answer = listener
        .config_listen(
            vec![held("db.yaml", &third.md5)],
            Labels::new(),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(answer.changed, [held("db.yaml", "")]);
    match next_change(&mut events).await {
        ConfigEvent::Deleted { data_id, .. } => assert_eq!(data_id, "db.yaml"),
        other => panic!("unexpected {other:?}"),
    }

    // At most 1000 items per listener.
    let too_many = vec![held("app.yaml", ""); 1001];
    match listener
        .config_listen(too_many, Labels::new(), Duration::from_secs(1))
        .await
    {
        Err(ClientError::Api { status, body }) => {
            assert_eq!((status, body.field.as_deref()), (400, Some("items")));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
