//! The Muster operator: the `RegistryCluster` controller.
//!
//! The reconcile is a pipeline of steps, one module each:
//! [`validate`] (spec → checked settings, pure) → [`build`] (settings →
//! Kubernetes objects, pure) → [`apply`] (server-side apply, in a fixed
//! order) → [`status`]. Membership and upgrade decisions are made by
//! [`plan`], also pure; [`registry`] carries them out through the
//! registry's own API.
#![forbid(unsafe_code)]
#![deny(warnings)]

pub mod apply;
pub mod build;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod crdgen;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod observe;
pub mod plan;
pub mod registry;
pub mod status;
pub mod validate;
