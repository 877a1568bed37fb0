//! The generated CRD: committed copies match the types, and the schema
//! says what `kubectl explain` and the API server need.

use kube::CustomResourceExt;
use muster_operator::crd::RegistryCluster;
use muster_operator::crdgen::{CRD_FILES, crd_yaml};

#[test]
fn committed_crd_files_match_the_types() {
    let expected = crd_yaml().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in CRD_FILES {
        let committed =
            std::fs::read_to_string(root.join(file)).unwrap_or_else(|err| panic!("{file}: {err}"));
        assert!(
            committed == expected,
            "{file} is stale: run `cargo run -p muster-operator --bin crdgen`"
        );
    }
}

#[test]
fn crd_has_names_columns_and_subresources() {
    let crd = RegistryCluster::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("registryclusters.muster.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    let short = crd.spec.names.short_names.clone().unwrap();
    // Built-in short names the ours must not shadow.
    for taken in ["rc", "rs", "cm", "svc", "sts", "po", "pdb"] {
        assert!(!short.contains(&taken.to_string()));
    }
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Replicas", "Ready", "Leader", "Version", "Age"]);
    let subresources = version.subresources.as_ref().unwrap();
    assert!(subresources.status.is_some());
    let scale = subresources.scale.as_ref().unwrap();
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
}

/// Every property of our own types has a description (what
/// `kubectl explain` shows).
#[test]
fn every_field_is_documented() {
    let crd = RegistryCluster::crd();
    let schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    let mut missing = Vec::new();
    undocumented(&schema, "", &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}

fn undocumented(schema: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
    let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) else {
        if let Some(items) = schema.get("items") {
            undocumented(items, &format!("{path}[]"), missing);
        }
        return;
    };
    for (name, property) in properties {
        let here = format!("{path}.{name}");
        // metadata, apiVersion and kind are Kubernetes' own.
        if path.is_empty() && ["metadata", "apiVersion", "kind"].contains(&name.as_str()) {
            continue;
        }
        if property.get("description").is_none() {
            missing.push(here.clone());
        }
        undocumented(property, &here, missing);
    }
}
