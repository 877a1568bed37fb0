//! Shared by the operator's test files: the YAML fixtures.
#![allow(dead_code)] // each test file uses a different part

use std::path::PathBuf;

use muster_operator::crd::RegistryCluster;
use muster_operator::validate::{OperatorSettings, ValidCluster, validate};

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> RegistryCluster {
    let path = fixture_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|err| panic!("parsing {name}: {err}"))
}

pub fn valid(name: &str) -> ValidCluster {
    validate(&fixture(name), &OperatorSettings::default())
        .unwrap_or_else(|err| panic!("{name}: {err}"))
}
