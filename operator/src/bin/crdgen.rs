//! Writes the generated CRD files (run from anywhere in the workspace).
#![forbid(unsafe_code)]

use std::path::Path;

use anyhow::Context as _;
use muster_operator::crdgen::{CRD_FILES, crd_yaml};

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let yaml = crd_yaml().context("serializing the CRD")?;
    for file in CRD_FILES {
        let path = root.join(file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, &yaml).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {file}");
    }
    Ok(())
}
