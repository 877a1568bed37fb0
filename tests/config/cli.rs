//! `muster config` end to end.

use std::process::Output;
use std::time::Duration;

use tokio::process::Command;

use crate::single_node;

async fn muster(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_muster"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MUSTER_") {
            command.env_remove(name);
        }
    }
    command
        .env_remove("RUST_LOG")
        .env("USER", "cli-user")
        .args(["--endpoints", endpoint, "--timeout", "5s"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("run muster");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        tokio::io::AsyncWriteExt::write_all(&mut input, text.as_bytes())
            .await
            .expect("write stdin");
    }
    drop(input);
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("muster {args:?} did not finish"))
        .expect("muster output")
}

fn ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn publish_get_history_diff_rollback_and_gray_from_the_command_line() {
    let (node, _client) = single_node("cfgcli", &[]).await;
    let url = node.client_url();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, "port: 80\n").unwrap();
    let file = file.to_str().unwrap();
    let item = ["app.yaml", "-g", "web"];
    let run = async |args: &[&str], stdin: Option<&str>| muster(&url, args, stdin).await;

    let out = ok(
        &run(
            &[
                &["config", "publish"][..],
                &item,
                &["--format", "yaml", "-f", file],
            ]
            .concat(),
            None,
        )
        .await,
        "publish from a file",
    );
    assert!(
        out.starts_with("OK default/web/app.yaml version=1"),
        "{out}"
    );
    ok(
        &run(
            &[&["config", "publish"][..], &item, &["--format", "yaml"]].concat(),
            Some("port: 81\n"),
        )
        .await,
        "publish from stdin",
    );
    let content = ok(
        &run(&[&["config", "get"][..], &item].concat(), None).await,
        "get",
    );
    assert_eq!(content, "port: 81\n");

    let refused = run(
        &[&["config", "publish"][..], &item, &["--format", "json"]].concat(),
        Some("{\"a\":"),
    )
    .await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("not valid json") && stderr.contains("line 1"),
        "{stderr}"
    );

    let history = ok(
        &run(&[&["config", "history"][..], &item].concat(), None).await,
        "history",
    );
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(
        lines[0].starts_with("VERSION") && lines[0].ends_with("ROLLBACK-OF"),
        "{history}"
    );
    assert!(
        lines[1].starts_with("2 ") && lines[1].contains("cli-user"),
        "{history}"
    );

    let diff = ok(
        &run(
            &[
                &["config", "diff"][..],
                &item,
                &["--from", "1", "--to", "2"],
            ]
            .concat(),
            None,
        )
        .await,
        "diff",
    );
    assert!(diff.contains("-port: 80\n+port: 81\n"), "{diff}");

    ok(
        &run(&[&["config", "rollback"][..], &item, &["1"]].concat(), None).await,
        "rollback",
    );
    let content = ok(
        &run(&[&["config", "get"][..], &item].concat(), None).await,
        "get",
    );
    assert_eq!(content, "port: 80\n");
    let history = ok(
        &run(&[&["config", "history"][..], &item].concat(), None).await,
        "history",
    );
    let newest = history.lines().nth(1).unwrap().trim_end();
    assert!(
        newest.starts_with("3 ") && newest.ends_with("cli-user  1"),
        "{history}"
    );

    ok(
        &run(
            &[
                &["config", "gray", "set"][..],
                &item,
                &["--selector", "canary=true"],
            ]
            .concat(),
            Some("port: 82\n"),
        )
        .await,
        "gray set",
    );
    let gray = ok(
        &run(
            &[&["config", "get"][..], &item, &["--labels", "canary=true"]].concat(),
            None,
        )
        .await,
        "get with labels",
    );
    assert_eq!(gray, "port: 82\n");
    let json = ok(
        &run(
            &[&["-o", "json", "config", "get"][..], &item].concat(),
            None,
        )
        .await,
        "get json",
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["content"], "port: 80\n");
    assert_eq!(value["gray"]["selector"]["canary"], "true");
    ok(
        &run(&[&["config", "gray", "promote"][..], &item].concat(), None).await,
        "promote",
    );
    let content = ok(
        &run(&[&["config", "get"][..], &item].concat(), None).await,
        "get",
    );
    assert_eq!(content, "port: 82\n");
    ok(
        &run(&[&["config", "delete"][..], &item].concat(), None).await,
        "delete",
    );
    let missing = run(&[&["config", "get"][..], &item].concat(), None).await;
    assert!(!missing.status.success());
}
