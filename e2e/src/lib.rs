//! Runs what the operator builds, for real: the StatefulSet's pod template
//! becomes one container per ordinal on a Docker network, where each
//! container answers to its pod's headless-Service DNS name.
#![forbid(unsafe_code)]
#![deny(warnings)]

pub mod docker;
pub mod pod;
