//! The part of the kubelet the operator's pods rely on: per-ordinal pod
//! names, the environment (downward API, ConfigMap references, `envFrom`)
//! and `$(VAR)` expansion in arguments, turned into a container to run.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar};

/// One pod of the StatefulSet, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRun {
    pub pod_name: String,
    /// `<pod>.<service>.<namespace>.svc.<domain>`.
    pub dns_name: String,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// In definition order (the order `$(VAR)` expansion sees).
    pub env: Vec<(String, String)>,
    pub run_as: Option<(i64, i64)>,
    pub read_only_root: bool,
    /// Mount paths of volumes (the PVC and Secrets), as empty directories.
    pub volume_paths: Vec<String>,
    /// Container ports by name.
    pub ports: BTreeMap<String, i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("the StatefulSet has no {0}")]
    Missing(&'static str),
    #[error("env {name}: {reason}")]
    Env { name: String, reason: String },
}

/// Resolves pod `ordinal` of `set`, whose ConfigMaps are `config_maps`.
pub fn pod_run(
    set: &StatefulSet,
    config_maps: &[ConfigMap],
    ordinal: i32,
    cluster_domain: &str,
) -> Result<PodRun, PodError> {
    let name = set
        .metadata
        .name
        .as_deref()
        .ok_or(PodError::Missing("name"))?;
    let namespace = set.metadata.namespace.as_deref().unwrap_or("default");
    let spec = set.spec.as_ref().ok_or(PodError::Missing("spec"))?;
    let service = spec
        .service_name
        .as_deref()
        .ok_or(PodError::Missing("serviceName"))?;
    let pod_spec = spec
        .template
        .spec
        .as_ref()
        .ok_or(PodError::Missing("pod template"))?;
    let container: &Container = pod_spec
        .containers
        .first()
        .ok_or(PodError::Missing("container"))?;
    let pod_name = format!("{name}-{ordinal}");
    let env = resolve_env(container, config_maps, &pod_name, namespace)?;
    let lookup: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let security = pod_spec.security_context.as_ref();
    let run_as = security.and_then(|s| s.run_as_user.zip(s.run_as_group.or(s.run_as_user)));
    Ok(PodRun {
        dns_name: format!("{pod_name}.{service}.{namespace}.svc.{cluster_domain}"),
        pod_name,
        image: container.image.clone().ok_or(PodError::Missing("image"))?,
        command: container.command.clone().unwrap_or_default(),
        args: container
            .args
            .iter()
            .flatten()
            .map(|arg| expand(arg, &lookup))
            .collect(),
        env,
        run_as,
        read_only_root: container
            .security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        volume_paths: container
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.clone())
            .collect(),
        ports: container
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Some((p.name.clone()?, p.container_port)))
            .collect(),
    })
}

/// `envFrom` first, then `env` (which wins), as the kubelet does.
fn resolve_env(
    container: &Container,
    config_maps: &[ConfigMap],
    pod_name: &str,
    namespace: &str,
) -> Result<Vec<(String, String)>, PodError> {
    let find = |name: &str| {
        config_maps
            .iter()
            .find(|cm| cm.metadata.name.as_deref() == Some(name))
    };
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, key: String, value: String| {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    };
    for source in container.env_from.iter().flatten() {
        let Some(reference) = &source.config_map_ref else {
            continue;
        };
        let config_map = find(&reference.name).ok_or_else(|| PodError::Env {
            name: format!("envFrom {}", reference.name),
            reason: "no such ConfigMap".into(),
        })?;
        for (key, value) in config_map.data.iter().flatten() {
            set(&mut env, key.clone(), value.clone());
        }
    }
    for var in container.env.iter().flatten() {
        let value = env_value(var, &env, &find, pod_name, namespace)?;
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

fn env_value<'a>(
    var: &EnvVar,
    defined: &[(String, String)],
    find: &impl Fn(&str) -> Option<&'a ConfigMap>,
    pod_name: &str,
    namespace: &str,
) -> Result<String, PodError> {
    let error = |reason: String| PodError::Env {
        name: var.name.clone(),
        reason,
    };
    if let Some(value) = &var.value {
        let lookup: BTreeMap<&str, &str> = defined
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        return Ok(expand(value, &lookup));
    }
    let Some(source) = &var.value_from else {
        return Ok(String::new());
    };
    if let Some(field) = &source.field_ref {
        return match field.field_path.as_str() {
            "metadata.name" => Ok(pod_name.to_string()),
            "metadata.namespace" => Ok(namespace.to_string()),
            other => Err(error(format!("field {other} is not simulated"))),
        };
    }
    if let Some(key) = &source.config_map_key_ref {
        let config_map =
            find(&key.name).ok_or_else(|| error(format!("no ConfigMap {}", key.name)))?;
        return config_map
            .data
            .as_ref()
            .and_then(|data| data.get(&key.key))
            .cloned()
            .ok_or_else(|| error(format!("no key {} in {}", key.key, key.name)));
    }
    Err(error(
        "only fieldRef and configMapKeyRef are simulated".into(),
    ))
}

/// Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$`
/// is a literal `$`, anything else stays as written.
pub fn expand(text: &str, env: &BTreeMap<&str, &str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(index) = rest.find('$') {
        out.push_str(&rest[..index]);
        let after = &rest[index + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(value) = env.get(&inner[..end])
        {
            out.push_str(value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes() {
        let env = BTreeMap::from([("POD_NAME", "demo-1"), ("NS", "default")]);
        assert_eq!(expand("--name=$(POD_NAME)", &env), "--name=demo-1");
        assert_eq!(expand("$(POD_NAME).x.$(NS)", &env), "demo-1.x.default");
        assert_eq!(expand("$$(POD_NAME)", &env), "$(POD_NAME)");
        assert_eq!(expand("$(UNKNOWN) $ $(", &env), "$(UNKNOWN) $ $(");
    }
}
