//! `muster status`: every endpoint's view of the cluster.

use anyhow::bail;
use muster_types::cluster::{NodeRole, Status};
use serde::Serialize;

use crate::Ctx;
use crate::output::{Format, Table, or_dash, print_json};

#[derive(Debug, Serialize)]
struct EndpointStatus {
    endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let asks = ctx.client.endpoints().iter().map(|endpoint| async move {
        let answer = ctx.client.status_of(endpoint).await;
        EndpointStatus {
            endpoint: endpoint.clone(),
            error: answer.as_ref().err().map(ToString::to_string),
            status: answer.ok(),
        }
    });
    let rows = futures::future::join_all(asks).await;
    match ctx.format {
        Format::Json => print_json(&rows)?,
        Format::Table => status_table(&rows).print(),
    }
    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        bail!("{failed} of {} endpoint(s) did not answer", rows.len());
    }
    Ok(())
}

/// An ERROR column is added only when some endpoint failed.
fn status_table(rows: &[EndpointStatus]) -> Table {
    let mut headers = vec![
        "ENDPOINT", "NAME", "ID", "ROLE", "LEADER", "TERM", "REVISION", "COMMIT", "APPLIED",
    ];
    let any_error = rows.iter().any(|r| r.error.is_some());
    if any_error {
        headers.push("ERROR");
    }
    let mut table = Table::new(&headers);
    for row in rows {
        let mut cells = vec![row.endpoint.clone()];
        match &row.status {
            Some(s) => cells.extend([
                s.name.clone(),
                s.id.to_string(),
                role_name(s.role).to_string(),
                or_dash(s.leader.as_ref()),
                s.term.to_string(),
                s.revision.to_string(),
                s.commit_index.to_string(),
                s.applied_index.to_string(),
            ]),
            None => cells.extend(std::iter::repeat_n("-".to_string(), 8)),
        }
        if any_error {
            cells.push(or_dash(row.error.as_ref()));
        }
        table.row(cells);
    }
    table
}

fn role_name(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Leader => "leader",
        NodeRole::Follower => "follower",
        NodeRole::Candidate => "candidate",
        NodeRole::Learner => "learner",
        NodeRole::Shutdown => "shutdown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_for_answers_and_errors() {
        let status = Status {
            name: "a".into(),
            id: 1,
            cluster_id: "c".into(),
            role: NodeRole::Leader,
            leader: Some("a".into()),
            leader_id: Some(1),
            term: 3,
            revision: 40,
            compacted_revision: 0,
            commit_index: 50,
            applied_index: 49,
            last_log_index: 50,
            snapshot_index: None,
            keys: 7,
            version: "0.1.0".into(),
        };
        let rows = [
            EndpointStatus {
                endpoint: "http://a:7001".into(),
                status: Some(status),
                error: None,
            },
            EndpointStatus {
                endpoint: "http://b:7001".into(),
                status: None,
                error: Some("cannot reach http://b:7001: refused".into()),
            },
        ];
        let text = status_table(&rows).render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ENDPOINT       NAME"), "{text}");
        assert!(lines[0].ends_with("APPLIED  ERROR"), "{text}");
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "http://a:7001",
                "a",
                "1",
                "leader",
                "a",
                "3",
                "40",
                "50",
                "49",
                "-"
            ]
        );
        assert!(lines[2].starts_with("http://b:7001  -"), "{text}");
        assert!(
            lines[2].ends_with("-        cannot reach http://b:7001: refused"),
            "{text}"
        );
        // Without failures there is no ERROR column.
        let text = status_table(&rows[..1]).render();
        assert!(text.lines().next().unwrap().ends_with("APPLIED"), "{text}");
    }
}
