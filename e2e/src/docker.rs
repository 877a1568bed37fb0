//! A thin, bounded wrapper over the `docker` CLI. Everything created here
//! is removed by id when its guard drops.

use std::process::Command;
use std::time::Duration;

use crate::pod::PodRun;

#[derive(Debug, thiserror::Error)]
#[error("docker {args}: {message}")]
pub struct DockerError {
    args: String,
    message: String,
}

/// Runs `docker args...` and returns its trimmed stdout.
pub fn docker(args: &[&str]) -> Result<String, DockerError> {
    let output = Command::new("docker")
        .args(args)
        .output()
        .map_err(|err| DockerError {
            args: args.join(" "),
            message: err.to_string(),
        })?;
    if !output.status.success() {
        return Err(DockerError {
            args: args.join(" "),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// A user-defined network (it gives containers DNS names).
pub struct Network {
    pub name: String,
    id: String,
}

impl Network {
    pub fn create(name: &str) -> Result<Self, DockerError> {
        let id = docker(&["network", "create", name])?;
        Ok(Network {
            name: name.to_string(),
            id,
        })
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", &self.id]);
    }
}

pub struct Container {
    pub id: String,
    pub pod_name: String,
}

impl Container {
    /// Runs a pod as Kubernetes would: its command and arguments, its
    /// environment, its user, a read-only root, empty volumes owned by the
    /// pod's group (fsGroup), reachable by its headless-Service DNS name;
    /// `publish` ports are also published on 127.0.0.1.
    pub fn run(
        pod: &PodRun,
        network: &Network,
        prefix: &str,
        publish: &[i32],
    ) -> Result<Self, DockerError> {
        let name = format!("{prefix}-{}", pod.pod_name);
        let mut args: Vec<String> = vec![
            "run".into(),
            "--detach".into(),
            "--name".into(),
            name,
            "--network".into(),
            network.name.clone(),
            "--network-alias".into(),
            pod.dns_name.clone(),
            "--hostname".into(),
            pod.pod_name.clone(),
            "--cap-drop".into(),
            "ALL".into(),
            "--security-opt".into(),
            "no-new-privileges".into(),
        ];
        let owner = pod.run_as.map(|(uid, gid)| format!(",uid={uid},gid={gid}"));
        if let Some((uid, gid)) = pod.run_as {
            args.extend(["--user".into(), format!("{uid}:{gid}")]);
        }
        if pod.read_only_root {
            args.push("--read-only".into());
        }
        for path in &pod.volume_paths {
            args.extend([
                "--tmpfs".into(),
                format!("{path}:rw,mode=0770{}", owner.clone().unwrap_or_default()),
            ]);
        }
        for port in publish {
            args.extend(["--publish".into(), format!("127.0.0.1::{port}")]);
        }
        for (key, value) in &pod.env {
            args.extend(["--env".into(), format!("{key}={value}")]);
        }
        if let Some((entrypoint, rest)) = pod.command.split_first() {
            args.extend(["--entrypoint".into(), entrypoint.clone()]);
            args.push(pod.image.clone());
            args.extend(rest.iter().cloned());
        } else {
            args.push(pod.image.clone());
        }
        args.extend(pod.args.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = docker(&refs)?;
        Ok(Container {
            id,
            pod_name: pod.pod_name.clone(),
        })
    }

    /// `127.0.0.1:<port>` where the container's `port` is published.
    pub fn published(&self, port: i32) -> Result<String, DockerError> {
        let text = docker(&["port", &self.id, &format!("{port}/tcp")])?;
        let first = text
            .lines()
            .find(|l| l.starts_with("127.0.0.1:"))
            .unwrap_or_default();
        Ok(first.to_string())
    }

    pub fn logs(&self) -> String {
        docker(&["logs", "--tail", "40", &self.id]).unwrap_or_else(|err| err.to_string())
    }

    /// Stops the container (SIGTERM, then SIGKILL after `grace`).
    pub fn stop(&self, grace: Duration) -> Result<(), DockerError> {
        docker(&["stop", "--time", &grace.as_secs().to_string(), &self.id]).map(|_| ())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "--force", "--volumes", &self.id]);
    }
}
