//! The `RegistryCluster` controller: the reconcile that drives the pipeline
//! validate → certificates (and the CA the operator trusts when it talks to
//! the members) → observe → plan → registry step → build → apply → status, the
//! finalizer, the error policy, and the watch loop.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use muster_types::cluster::{AddMemberRequest, MemberList};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::apply::{apply, patch_params};
use crate::build::tls::{
    IssuedTls, TlsError, UserSecretError, ca_secret_name, operator_issued, secret_name, user_ca,
};
use crate::build::{
    LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGER, build, client_url, peer_url, pod_name,
    selector_string,
};
use crate::crd::{RegistryCluster, RegistryClusterStatus};
use crate::metrics::Metrics;
use crate::observe::{member_views, pod_views};
use crate::plan::{Observed, Step, plan};
use crate::registry::{Members, Registry, RegistryError};
use crate::status::{DEGRADED, PROGRESSING, blocked_status, invalid_status, ready_status};
use crate::validate::{OperatorSettings, Tls, ValidCluster, validate};

pub const FINALIZER: &str = "muster.dev/cleanup";

/// The event and condition reason when the user's TLS Secret is unusable.
pub const TLS_SECRET_INVALID: &str = "TLSSecretInvalid";

/// Requeue while something is moving (a pod starting, a learner catching up).
pub const REQUEUE_PROGRESS: Duration = Duration::from_secs(5);
/// Requeue while degraded.
pub const REQUEUE_DEGRADED: Duration = Duration::from_secs(15);
/// Requeue when steady: refreshes member health, versions and certificates.
pub const REQUEUE_STEADY: Duration = Duration::from_secs(300);
/// First and longest delay after a failed reconcile (doubling between).
pub const BACKOFF_MIN: Duration = Duration::from_secs(5);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

pub struct Context<R> {
    pub client: Client,
    pub registry: R,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: OperatorSettings,
    /// Consecutive failures per object, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl<R> Context<R> {
    pub fn new(
        client: Client,
        registry: R,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        settings: OperatorSettings,
    ) -> Self {
        Context {
            client,
            registry,
            recorder,
            metrics,
            settings,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// The `reason` label of the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
            Error::Registry(_) => "registry",
            Error::Tls(_) => "tls",
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(err) | finalizer::Error::CleanupFailed(err) => {
                    err.metric_label()
                }
                _ => "finalizer",
            },
        }
    }
}

fn key(cluster: &RegistryCluster) -> String {
    format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    )
}

#[instrument(skip(cluster, ctx), fields(cluster = %key(&cluster)))]
pub async fn reconcile<R: Registry>(
    cluster: Arc<RegistryCluster>,
    ctx: Arc<Context<R>>,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    let namespace = cluster.namespace().unwrap_or_default();
    let api: Api<RegistryCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let object_key = key(&cluster);
    let action = finalizer(&api, FINALIZER, cluster, |event| async {
        match event {
            finalizer::Event::Apply(cluster) => apply_cluster(cluster, &ctx).await,
            finalizer::Event::Cleanup(cluster) => cleanup(cluster, &ctx).await,
        }
    })
    .await
    .map_err(|err| Error::Finalizer(Box::new(err)))?;
    ctx.failures().remove(&object_key);
    Ok(action)
}

/// Logs, counts, and retries with a doubling delay.
pub fn error_policy<R>(
    cluster: Arc<RegistryCluster>,
    error: &Error,
    ctx: Arc<Context<R>>,
) -> Action {
    warn!(cluster = %key(&cluster), %error, "reconcile failed");
    ctx.metrics.reconcile_failed(error.metric_label());
    let mut failures = ctx.failures();
    let count = failures.entry(key(&cluster)).or_insert(0);
    let delay = BACKOFF_MIN
        .saturating_mul(1 << (*count).min(16))
        .min(BACKOFF_MAX);
    *count += 1;
    Action::requeue(delay)
}

async fn publish<R>(
    ctx: &Context<R>,
    cluster: &RegistryCluster,
    type_: EventType,
    reason: &str,
    note: String,
) -> Result<(), Error> {
    info!(reason, %note, "event");
    ctx.recorder
        .publish(
            &Event {
                type_,
                reason: reason.to_string(),
                note: Some(note),
                action: reason.to_string(),
                secondary: None,
            },
            &cluster.object_ref(&()),
        )
        .await?;
    Ok(())
}

async fn patch_status<R>(
    ctx: &Context<R>,
    cluster: &RegistryCluster,
    status: &RegistryClusterStatus,
) -> Result<(), Error> {
    let api: Api<RegistryCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "muster.dev/v1alpha1",
        "kind": "RegistryCluster",
        "status": status,
    });
    api.patch_status(&cluster.name_any(), &patch_params(), &Patch::Apply(&patch))
        .await?;
    Ok(())
}

/// The condition of `type_` in the previous status, as (reason, message).
fn previous_condition<'a>(
    previous: Option<&'a RegistryClusterStatus>,
    type_: &str,
) -> Option<(&'a str, &'a str)> {
    previous?
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| (c.reason.as_str(), c.message.as_str()))
}

async fn apply_cluster<R: Registry>(
    resource: Arc<RegistryCluster>,
    ctx: &Context<R>,
) -> Result<Action, Error> {
    let now = Timestamp::now();
    let previous = resource.status.as_ref();
    let cluster = match validate(&resource, &ctx.settings) {
        Ok(cluster) => cluster,
        Err(invalid) => {
            ctx.metrics.reconcile_failed("invalid_spec");
            let message = invalid.to_string();
            if previous_condition(previous, DEGRADED) != Some(("InvalidSpec", message.as_str())) {
                publish(ctx, &resource, EventType::Warning, "InvalidSpec", message).await?;
            }
            let status = invalid_status(&invalid, resource.metadata.generation, previous, now);
            patch_status(ctx, &resource, &status).await?;
            // Retrying cannot help: wait for the user to change the spec.
            return Ok(Action::await_change());
        }
    };

    // Certificates first: the members serve the cluster's certificate, so
    // every registry call below must trust its CA (and an issued CA must
    // exist before any pod can start).
    let (tls, ca_pem) = match &cluster.tls {
        Tls::Disabled => (None, None),
        Tls::OperatorIssued => {
            let issued = issue_certificates(ctx, &resource, &cluster, now).await?;
            let ca_pem = issued.ca_pem();
            (Some(issued), Some(ca_pem))
        }
        Tls::Secrets { secret } => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &cluster.namespace);
            let found = secrets.get_opt(secret).await?;
            match user_ca(secret, found.as_ref()) {
                Ok(ca_pem) => (None, Some(ca_pem)),
                Err(problem) => return tls_secret_unusable(ctx, &resource, problem, now).await,
            }
        }
    };

    // Observe.
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &cluster.namespace);
    let set = sets.get_opt(&cluster.name).await?;
    let pods = match &set {
        Some(_) => {
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &cluster.namespace);
            let selector = selector_string(&cluster);
            api.list(&ListParams::default().labels(&selector))
                .await?
                .items
        }
        None => Vec::new(),
    };
    let set_pods = set
        .as_ref()
        .and_then(|set| set.spec.as_ref())
        .and_then(|spec| spec.replicas);
    let members = Members::new(
        (0..set_pods.unwrap_or(0))
            .map(|ordinal| client_url(&cluster, &pod_name(&cluster, ordinal)))
            .collect(),
        ca_pem,
    );
    let member_list = if members.is_empty() {
        None
    } else {
        match ctx.registry.members(&members).await {
            Ok(list) => Some(list),
            Err(err) => {
                info!(%err, "no member answered");
                None
            }
        }
    };
    // What each running pod's registry says of itself: its Raft id (to
    // spot a pod back with an empty volume) and its version.
    let mut node_ids = BTreeMap::new();
    let mut versions = BTreeMap::new();
    if member_list.is_some() {
        for pod in &pods {
            let Some(name) = pod.metadata.name.as_deref() else {
                continue;
            };
            let endpoint = client_url(&cluster, name);
            match ctx.registry.node_status(&members, &endpoint).await {
                Ok(status) => {
                    node_ids.insert(name.to_string(), status.id);
                    versions.insert(name.to_string(), status.version);
                }
                Err(err) => info!(pod = name, %err, "no status"),
            }
        }
    }
    let observed = Observed {
        desired: cluster.replicas,
        set_pods,
        bootstrapped: previous.is_some_and(|status| status.bootstrapped),
        pods: pod_views(&cluster, set.as_ref(), &pods, &node_ids),
        members: member_list
            .as_ref()
            .map(|list| member_views(&cluster, list)),
    };
    let plan = plan(&observed, |ordinal| pod_name(&cluster, ordinal));
    info!(step = ?plan.step, pods = plan.shape.pods, "plan");

    // Membership changes come before the StatefulSet changes.
    let mut shape = plan.shape;
    let refused =
        match registry_step(ctx, &cluster, &plan.step, &members, member_list.as_ref()).await {
            Ok(None) => false,
            Ok(Some((reason, note))) => {
                publish(ctx, &resource, EventType::Normal, reason, note).await?;
                false
            }
            Err(RegistryError::Refused(message)) => {
                publish(ctx, &resource, EventType::Warning, "ChangeRefused", message).await?;
                // Never shrink the StatefulSet past a member still in the membership.
                shape.pods = set_pods.unwrap_or(shape.pods);
                true
            }
            Err(err) => return Err(err.into()),
        };

    let objects = build(&cluster, shape);
    let applied = apply(&ctx.client, &cluster, shape, &objects, tls.as_ref()).await?;

    if !refused {
        after_apply_step(ctx, &resource, &cluster, &plan.step, previous).await?;
    }

    let status = ready_status(
        &cluster, &applied, &observed, &plan, &versions, previous, now,
    );
    if status.bootstrapped && !previous.is_some_and(|p| p.bootstrapped) {
        publish(
            ctx,
            &resource,
            EventType::Normal,
            "ClusterFormed",
            format!(
                "the cluster has formed; pods with an empty volume now wait to be added \
                 (initial cluster state: existing); leader: {}",
                status.leader.as_deref().unwrap_or("unknown")
            ),
        )
        .await?;
    }
    patch_status(ctx, &resource, &status).await?;
    Ok(match &plan.step {
        Step::Steady => Action::requeue(REQUEUE_STEADY),
        Step::Wait { reason, .. } if reason.is_degraded() => Action::requeue(REQUEUE_DEGRADED),
        _ => Action::requeue(REQUEUE_PROGRESS),
    })
}

/// The user's TLS Secret is missing or has no usable `ca.crt`: nothing can
/// be done safely without trusting the members, so say why (once) and look
/// again later (Secrets are not watched).
async fn tls_secret_unusable<R>(
    ctx: &Context<R>,
    resource: &RegistryCluster,
    problem: UserSecretError,
    now: Timestamp,
) -> Result<Action, Error> {
    ctx.metrics.reconcile_failed("tls_secret");
    let previous = resource.status.as_ref();
    let message = problem.to_string();
    if previous_condition(previous, DEGRADED) != Some((TLS_SECRET_INVALID, message.as_str())) {
        publish(
            ctx,
            resource,
            EventType::Warning,
            TLS_SECRET_INVALID,
            message.clone(),
        )
        .await?;
    }
    let status = blocked_status(
        TLS_SECRET_INVALID,
        "waiting for a usable TLS Secret",
        message,
        resource.metadata.generation,
        previous,
        now,
    );
    patch_status(ctx, resource, &status).await?;
    Ok(Action::requeue(REQUEUE_DEGRADED))
}

/// The operator's own certificates (kept while valid), for `OperatorIssued`.
async fn issue_certificates<R>(
    ctx: &Context<R>,
    resource: &RegistryCluster,
    cluster: &ValidCluster,
    now: Timestamp,
) -> Result<IssuedTls, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &cluster.namespace);
    let ca = secrets.get_opt(&ca_secret_name(cluster)).await?;
    let server = match secret_name(cluster) {
        Some(name) => secrets.get_opt(&name).await?,
        None => None,
    };
    let now = time::OffsetDateTime::from_unix_timestamp(now.as_second())
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let issued = operator_issued(cluster, ca.as_ref(), server.as_ref(), now)?;
    if !issued.issued.is_empty() {
        publish(
            ctx,
            resource,
            EventType::Normal,
            "CertificateIssued",
            issued.issued.join("; "),
        )
        .await?;
    }
    Ok(issued)
}

/// Carries out a membership step; returns the event to publish.
async fn registry_step<R: Registry>(
    ctx: &Context<R>,
    cluster: &ValidCluster,
    step: &Step,
    members: &Members,
    list: Option<&MemberList>,
) -> Result<Option<(&'static str, String)>, RegistryError> {
    let registry = &ctx.registry;
    let (reason, note) = match step {
        Step::AddLearner { pod } => {
            let member = registry
                .add_learner(
                    members,
                    AddMemberRequest {
                        name: pod.clone(),
                        peer_url: peer_url(cluster, pod),
                        client_url: Some(client_url(cluster, pod)),
                        expect_membership: list.map(|list| list.membership_id),
                        replace: false,
                    },
                )
                .await?;
            (
                "MemberAdded",
                format!("added {pod} as a learner (Raft id {})", member.id),
            )
        }
        Step::Promote { member } => {
            registry.promote(members, member).await?;
            ("MemberPromoted", format!("promoted {member} to voter"))
        }
        Step::ReplaceMember {
            member,
            old_id,
            new_id,
        } => {
            registry
                .add_learner(
                    members,
                    AddMemberRequest {
                        name: member.clone(),
                        peer_url: peer_url(cluster, member),
                        client_url: Some(client_url(cluster, member)),
                        expect_membership: list.map(|list| list.membership_id),
                        replace: true,
                    },
                )
                .await?;
            (
                "MemberReplaced",
                format!(
                    "{member} came back with an empty volume (new Raft id {new_id}); it joined \
                     as a learner and replaces its old self (id {old_id}) once caught up"
                ),
            )
        }
        Step::RemoveMember { member } => {
            registry.remove(members, member).await?;
            (
                "MemberRemoved",
                format!("removed {member} from the membership before shrinking the StatefulSet"),
            )
        }
        Step::TransferLeader { from, to } => {
            registry.transfer_leader(members, to).await?;
            (
                "LeaderTransferred",
                format!("handed leadership from {from} to {to}"),
            )
        }
        _ => return Ok(None),
    };
    Ok(Some((reason, note)))
}

async fn after_apply_step<R>(
    ctx: &Context<R>,
    resource: &RegistryCluster,
    cluster: &ValidCluster,
    step: &Step,
    previous: Option<&RegistryClusterStatus>,
) -> Result<(), Error> {
    let (type_, reason, note) = match step {
        Step::Create => (
            EventType::Normal,
            "Creating",
            format!(
                "created the StatefulSet with {} pods; {} initializes the cluster",
                cluster.replicas,
                pod_name(cluster, 0)
            ),
        ),
        Step::GrowSet { pod } => (
            EventType::Normal,
            "ScalingUp",
            format!("creating pod {pod}; it joins as a learner once it runs"),
        ),
        Step::ShrinkSet { pods } => (
            EventType::Normal,
            "ScalingDown",
            format!("shrinking the StatefulSet to the {pods} members"),
        ),
        Step::RestartPod { pod, why } => {
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &cluster.namespace);
            pods.delete(pod, &DeleteParams::default()).await?;
            (
                EventType::Normal,
                "PodRestarted",
                format!("deleted {pod} ({why}) so it restarts with the new template"),
            )
        }
        Step::Wait { reason, message } => {
            let condition = if reason.is_degraded() {
                DEGRADED
            } else {
                PROGRESSING
            };
            // Say it once, not on every requeue.
            if previous_condition(previous, condition) == Some((reason.as_str(), message.as_str()))
            {
                return Ok(());
            }
            let type_ = if reason.is_degraded() {
                EventType::Warning
            } else {
                EventType::Normal
            };
            (type_, reason.as_str(), message.clone())
        }
        _ => return Ok(()),
    };
    publish(ctx, resource, type_, reason, note).await
}

async fn cleanup<R>(resource: Arc<RegistryCluster>, ctx: &Context<R>) -> Result<Action, Error> {
    let volumes = match resource.spec.storage.retention.when_deleted {
        crate::crd::Retention::Retain => "kept (retention: Retain)",
        crate::crd::Retention::Delete => "deleted (retention: Delete)",
    };
    publish(
        ctx,
        &resource,
        EventType::Normal,
        "Deleting",
        format!(
            "the StatefulSet, Services, ConfigMap, budget and issued Secrets go with the \
             RegistryCluster (owner references); member volumes are {volumes}"
        ),
    )
    .await?;
    Ok(Action::await_change())
}

/// Fails with a plain message when the CRD is not installed.
pub async fn check_crd_installed(client: &Client) -> Result<(), CrdMissing> {
    let api: Api<RegistryCluster> = Api::all(client.clone());
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(CrdMissing::NotInstalled),
        Err(err) => Err(CrdMissing::Unreachable(err)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CrdMissing {
    #[error(
        "the RegistryCluster CRD (registryclusters.muster.dev) is not installed: \
         install the chart, or `kubectl apply -f crds/registryclusters.muster.dev.yaml`"
    )]
    NotInstalled,
    #[error("cannot list RegistryClusters: {0}")]
    Unreachable(kube::Error),
}

/// Runs the controller until the stream ends (on shutdown signals).
pub async fn run<R: Registry>(ctx: Arc<Context<R>>) {
    let client = ctx.client.clone();
    let clusters: Api<RegistryCluster> = Api::all(client.clone());
    let sets: Api<StatefulSet> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let ours = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
    Controller::new(clusters, watcher::Config::default())
        .owns(sets, ours.clone())
        // Pod readiness gates every step; pods are owned by the StatefulSet,
        // so map them to their cluster by label.
        .watches(pods, ours, |pod: Pod| {
            let name = pod.labels().get(LABEL_INSTANCE)?.clone();
            Some(ObjectRef::new(&name).within(&pod.namespace()?))
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(%err, "controller event");
            }
        })
        .await;
}
