//! One node: what a publisher and a reader see.

use muster_client::ClientError;
use muster_client::config::{ConfigId, Labels};
use muster_types::config::ConfigFormat;
use muster_types::error::ErrorCode;
use reqwest::Method;

use crate::single_node;
use crate::util::Api;

fn refusal(err: ClientError) -> (u16, muster_types::error::ErrorBody) {
    match err {
        ClientError::Api { status, body } => (status, body),
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn invalid_content_of_each_format_is_refused_with_its_line() {
    let (_node, client) = single_node("cfgformats", &[]).await;
    let cases = [
        (
            ConfigFormat::Yaml,
            "server:\n  port: 80\n  hosts: [a, b\n",
            "yaml",
        ),
        (
            ConfigFormat::Json,
            "{\n  \"a\": 1,\n  \"b\": ,\n}\n",
            "json",
        ),
        (
            ConfigFormat::Toml,
            "[server]\nport = 80\nport = 81\n",
            "toml",
        ),
        (
            ConfigFormat::Properties,
            "a=1\n# comment\nname=caf\\u00zz\n",
            "properties",
        ),
    ];
    for (format, content, name) in cases {
        let id = ConfigId::new("default", "formats", format!("bad.{name}"));
        let err = client
            .config_publish(&id, content, format, None)
            .await
            .expect_err(name);
        let (status, body) = refusal(err);
        assert_eq!(status, 400, "{name}: {body:?}");
        assert_eq!(body.error, ErrorCode::InvalidArgument, "{name}");
        assert_eq!(body.field.as_deref(), Some("content"), "{name}");
        assert!(
            body.message.contains(&format!("not valid {name}")) && body.message.contains("line "),
            "{name}: {}",
            body.message
        );
        assert!(client.config_get(&id).await.unwrap().is_none(), "{name}");
    }
    // The properties line is the one with the bad escape.
    let id = ConfigId::new("default", "formats", "bad.properties");
    let err = client
        .config_publish(&id, "a=1\n\nb=\\u12\n", ConfigFormat::Properties, None)
        .await
        .unwrap_err();
    assert!(refusal(err).1.message.contains("(line 3)"));
    // Valid content of each format goes through, and text takes anything.
    for (format, content) in [
        (ConfigFormat::Yaml, "a: [1, 2]\n"),
        (ConfigFormat::Json, "{\"a\": 1}"),
        (ConfigFormat::Toml, "[a]\nb = 1\n"),
        (ConfigFormat::Properties, "a = 1\nb: 2\n"),
        (ConfigFormat::Text, "{ not: json"),
    ] {
        let id = ConfigId::new("default", "formats", "good");
        let item = client
            .config_publish(&id, content, format, None)
            .await
            .unwrap();
        assert_eq!(item.content, content);
    }
    // Over the value limit: 413.
    let big = "x".repeat(muster_types::limits::MAX_VALUE_BYTES + 1);
    let id = ConfigId::new("default", "formats", "big");
    let err = client
        .config_publish(&id, big, ConfigFormat::Text, None)
        .await
        .unwrap_err();
    let (status, body) = refusal(err);
    assert_eq!((status, body.field.as_deref()), (413, Some("content")));
}

#[tokio::test]
async fn history_rollback_and_diff_round_trip_within_the_history_limit() {
    let (node, client) = single_node("cfghistory", &["--config-history-limit", "3"]).await;
    let id = ConfigId::new("default", "web", "app.yaml");
    let contents = [
        "port: 1\n",
        "port: 2\nname: web\n",
        "port: 3\nname: web\n",
        "port: 4\n",
    ];
    let mut published = Vec::new();
    for content in contents {
        let item = client
            .config_publish(&id, content, ConfigFormat::Yaml, Some("tester"))
            .await
            .unwrap();
        published.push(item);
    }
    let versions: Vec<u64> = published.iter().map(|i| i.version).collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    // What `printf 'port: 1\n' | md5sum` prints, as a Nacos client computes it.
    assert_eq!(published[0].md5, "774ae78218c5330426b1cdf8352e2f2e");
    assert_eq!(published[3].published_by, "tester");

    // Bounded by --config-history-limit: the oldest version is gone.
    let history = client.config_history(&id, 0).await.unwrap();
    let listed: Vec<u64> = history.versions.iter().map(|v| v.version).collect();
    assert_eq!(listed, [4, 3, 2]);
    let err = client.config_version(&id, 1).await.unwrap_err();
    let (status, body) = refusal(err);
    assert_eq!((status, body.field.as_deref()), (404, Some("version")));

    // Diff between two kept versions.
    let diff = client.config_diff(&id, 2, Some(3)).await.unwrap();
    assert!(diff.contains("-port: 2\n+port: 3\n"), "{diff}");
    assert!(diff.contains(" name: web"), "{diff}");
    let to_current = client.config_diff(&id, 3, None).await.unwrap();
    assert!(to_current.contains("+port: 4"), "{to_current}");

    // Rollback publishes version 2's content as version 5.
    let old = client.config_version(&id, 2).await.unwrap();
    let rolled = client
        .config_rollback(&id, 2, Some("rollbacker"))
        .await
        .unwrap();
    assert_eq!(rolled.version, 5);
    assert_eq!(rolled.published_by, "rollbacker");
    assert_eq!(rolled.content, old.content);
    assert_eq!(rolled.md5, old.md5);
    assert_eq!(rolled.sha256, old.sha256);
    let history = client.config_history(&id, 0).await.unwrap();
    assert_eq!(history.versions[0].version, 5);
    assert_eq!(history.versions[0].rolled_back_from, Some(2));
    assert_eq!(history.versions.len(), 3);
    let current = client.config_get(&id).await.unwrap().unwrap();
    assert_eq!((current.version, current.md5.clone()), (5, old.md5.clone()));
    let err = client.config_rollback(&id, 1, None).await.unwrap_err();
    assert_eq!(refusal(err).0, 404);

    // Raw content with the MD5 as ETag, and 304 when the reader has it.
    let api = Api::new();
    let url = format!("{}/v1/config/default/web/app.yaml?raw", node.client_url());
    let raw = api.get(&url).await.unwrap();
    assert_eq!(raw.status, 200);
    assert_eq!(raw.bytes, old.content.as_bytes());
    assert!(raw.header("content-type").unwrap().contains("yaml"));
    let etag = raw.header("etag").unwrap();
    assert_eq!(etag, format!("\"{}\"", old.md5));
    let cached = api
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status().as_u16(), 304);

    // Delete keeps the history; a re-created item continues the versions.
    client.config_delete(&id).await.unwrap();
    assert!(client.config_get(&id).await.unwrap().is_none());
    assert_eq!(
        client.config_history(&id, 0).await.unwrap().versions.len(),
        3
    );
    let again = client
        .config_publish(&id, "port: 6\n", ConfigFormat::Yaml, None)
        .await
        .unwrap();
    assert_eq!(again.version, 6);
    let err = client
        .config_delete(&ConfigId::new("default", "web", "nope"))
        .await;
    assert_eq!(refusal(err.unwrap_err()).0, 404);
}

#[tokio::test]
async fn gray_content_goes_only_to_matching_labels_then_promote_and_cancel() {
    let (node, client) = single_node("cfggray", &[]).await;
    let id = ConfigId::new("default", "web", "app.properties");
    let stable = client
        .config_publish(&id, "color=blue\n", ConfigFormat::Properties, None)
        .await
        .unwrap();
    let canary: Labels = [("canary".to_owned(), "true".to_owned())].into();
    let selector = canary.clone();

    // Gray content is validated against the item's format.
    let err = client
        .config_gray_set(&id, "bad=\\u1\n", selector.clone(), None)
        .await
        .unwrap_err();
    assert_eq!(refusal(err).1.field.as_deref(), Some("content"));
    let missing = ConfigId::new("default", "web", "missing");
    assert_eq!(
        refusal(
            client
                .config_gray_set(&missing, "a=1", selector.clone(), None)
                .await
                .unwrap_err()
        )
        .0,
        404
    );

    client
        .config_gray_set(&id, "color=green\n", selector.clone(), None)
        .await
        .unwrap();
    let plain = client.config_get(&id).await.unwrap().unwrap();
    assert_eq!(plain.content, "color=blue\n");
    assert!(!plain.served_gray);
    assert_eq!(plain.md5, stable.md5);
    let other: Labels = [("canary".to_owned(), "false".to_owned())].into();
    let not_selected = client
        .config_get_with_labels(&id, &other)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(not_selected.content, "color=blue\n");
    let selected = client
        .config_get_with_labels(&id, &canary)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(selected.content, "color=green\n");
    assert!(selected.served_gray);
    assert_ne!(selected.md5, stable.md5);
    assert_eq!(selected.version, stable.version, "gray is not a version");
    // The raw view honours labels too (repeated `label=` form).
    let api = Api::new();
    let raw = api
        .call(
            Method::GET,
            &format!(
                "{}/v1/config/default/web/app.properties?raw&label=canary:true&label=zone:eu",
                node.client_url()
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(raw.bytes, b"color=green\n");
    assert_eq!(raw.header("x-muster-config-gray").as_deref(), Some("true"));

    // Promote: the gray content becomes the next stable version.
    let promoted = client.config_gray_promote(&id, None).await.unwrap();
    assert_eq!(promoted.version, stable.version + 1);
    assert_eq!(promoted.content, "color=green\n");
    assert!(promoted.gray.is_none());
    let plain = client.config_get(&id).await.unwrap().unwrap();
    assert_eq!(plain.content, "color=green\n");
    assert_eq!(
        refusal(client.config_gray_promote(&id, None).await.unwrap_err()).0,
        404
    );

    // Cancel: everyone is back on stable.
    client
        .config_gray_set(&id, "color=red\n", selector, None)
        .await
        .unwrap();
    let cancelled = client.config_gray_cancel(&id).await.unwrap();
    assert!(cancelled.gray.is_none());
    let selected = client
        .config_get_with_labels(&id, &canary)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(selected.content, "color=green\n");
    assert!(!selected.served_gray);
    let err = client.config_gray_cancel(&id).await.unwrap_err();
    let (status, body) = refusal(err);
    assert_eq!((status, body.field.as_deref()), (404, Some("gray")));
}

#[tokio::test]
async fn config_items_live_in_existing_namespaces_and_keep_them_alive() {
    let (_node, client) = single_node("cfgnamespaces", &[]).await;
    let id = ConfigId::new("staging", "web", "app.yaml");
    let err = client
        .config_publish(&id, "a: 1\n", ConfigFormat::Yaml, None)
        .await
        .expect_err("an unknown namespace");
    let (status, body) = refusal(err);
    assert_eq!(status, 404, "{body:?}");
    assert_eq!(body.field.as_deref(), Some("namespace"));

    client.create_namespace("staging", "").await.unwrap();
    client
        .config_publish(&id, "a: 1\n", ConfigFormat::Yaml, None)
        .await
        .unwrap();
    let (status, body) = refusal(client.delete_namespace("staging").await.unwrap_err());
    assert_eq!(status, 409, "{body:?}");
    assert!(body.message.contains("config items"), "{}", body.message);

    client.config_delete(&id).await.unwrap();
    client.delete_namespace("staging").await.unwrap();
}
