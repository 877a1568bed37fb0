//! The Muster operator. The `RegistryCluster` controller and the sidecar
//! webhook land here (issue 4); the crate exists so the workspace layout is
//! settled.
#![forbid(unsafe_code)]
