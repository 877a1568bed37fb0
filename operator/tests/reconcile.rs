//! The reconciler against a mocked API server (tower-test) and a scripted
//! registry: every Kubernetes call is checked in order (method, path,
//! body), and one log records Kubernetes and registry calls together so
//! the tests can assert that membership changes come before StatefulSet
//! changes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fixture;
use http::{Request, Response};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, Pod, PodCondition, PodStatus, Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use muster_operator::build::tls::{IssuedTls, operator_issued};
use muster_operator::controller::{Context, Error, error_policy, reconcile};
use muster_operator::crd::{RegistryCluster, RegistryClusterStatus, TlsMode};
use muster_operator::metrics::Metrics;
use muster_operator::registry::{Members, Registry, RegistryError};
use muster_operator::validate::{OperatorSettings, validate};
use muster_types::cluster::{AddMemberRequest, Member, MemberList, MemberRole, NodeRole, Status};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(5);

type Log = Arc<Mutex<Vec<String>>>;

fn log_entry(log: &Log, entry: String) {
    log.lock().unwrap().push(entry);
}

fn index_of(log: &Log, prefix: &str) -> usize {
    let entries = log.lock().unwrap();
    entries
        .iter()
        .position(|entry| entry.starts_with(prefix))
        .unwrap_or_else(|| panic!("{prefix:?} not in {entries:#?}"))
}

// ---- the registry, scripted ----

/// Each registry call (its name) with the CA it was told to trust.
type Trusted = Arc<Mutex<Vec<(&'static str, Option<Vec<u8>>)>>>;

struct ScriptedRegistry {
    log: Log,
    trusted: Trusted,
    members: Option<MemberList>,
    refuse_changes: bool,
    /// This member's pod reports a new Raft id (its volume was wiped).
    wiped: Option<&'static str>,
}

impl ScriptedRegistry {
    /// Records the trust of a call, and checks the URLs agree with it:
    /// https exactly when a CA is given.
    fn trust(&self, call: &'static str, members: &Members, urls: &[&str]) {
        let scheme = if members.ca_pem.is_some() {
            "https://"
        } else {
            "http://"
        };
        for url in urls
            .iter()
            .copied()
            .chain(members.urls.iter().map(String::as_str))
        {
            assert!(url.starts_with(scheme), "{call}: {url} with {members:?}");
        }
        self.trusted
            .lock()
            .unwrap()
            .push((call, members.ca_pem.clone()));
    }

    fn change(&self, entry: String) -> Result<(), RegistryError> {
        log_entry(&self.log, entry);
        if self.refuse_changes {
            Err(RegistryError::Refused(
                "membership changed meanwhile".into(),
            ))
        } else {
            Ok(())
        }
    }
}

impl Registry for ScriptedRegistry {
    async fn members(&self, members: &Members) -> Result<MemberList, RegistryError> {
        self.trust("members", members, &[]);
        assert!(
            members.urls[0].ends_with("://demo-0.demo-peer.default.svc.cluster.local:7001"),
            "{members:?}"
        );
        self.members
            .clone()
            .ok_or_else(|| RegistryError::Failed("connection refused".into()))
    }

    async fn add_learner(
        &self,
        members: &Members,
        request: AddMemberRequest,
    ) -> Result<Member, RegistryError> {
        let client_url = request.client_url.clone().unwrap_or_default();
        self.trust("add_learner", members, &[&request.peer_url, &client_url]);
        self.change(format!(
            "registry add {} {} {}{}",
            request.name,
            request.peer_url,
            request.client_url.clone().unwrap_or_default(),
            if request.replace { " (replace)" } else { "" }
        ))?;
        Ok(member(3, MemberRole::Learner, false))
    }

    async fn promote(&self, members: &Members, name: &str) -> Result<(), RegistryError> {
        self.trust("promote", members, &[]);
        self.change(format!("registry promote {name}"))
    }

    async fn remove(&self, members: &Members, name: &str) -> Result<(), RegistryError> {
        self.trust("remove", members, &[]);
        self.change(format!("registry remove {name}"))
    }

    async fn transfer_leader(&self, members: &Members, to: &str) -> Result<(), RegistryError> {
        self.trust("transfer_leader", members, &[]);
        self.change(format!("registry transfer-leader {to}"))
    }

    async fn node_status(
        &self,
        members: &Members,
        endpoint: &str,
    ) -> Result<Status, RegistryError> {
        self.trust("node_status", members, &[endpoint]);
        let name = endpoint
            .split_once("://")
            .and_then(|(_, rest)| rest.split('.').next())
            .unwrap_or_else(|| panic!("{endpoint}"))
            .to_string();
        let id = match self
            .members
            .iter()
            .flat_map(|l| &l.members)
            .find(|m| m.name == name)
        {
            Some(_) if Some(name.as_str()) == self.wiped => 12345,
            Some(member) => member.id,
            None => 777,
        };
        Ok(Status {
            name,
            id,
            cluster_id: "c1".into(),
            role: NodeRole::Follower,
            leader: None,
            leader_id: None,
            term: 1,
            revision: 1,
            compacted_revision: 0,
            commit_index: 1,
            applied_index: 1,
            last_log_index: 1,
            snapshot_index: None,
            keys: 0,
            version: "0.1.0".into(),
        })
    }
}

fn member(ordinal: i32, role: MemberRole, is_leader: bool) -> Member {
    let host = format!("demo-{ordinal}.demo-peer.default.svc.cluster.local");
    Member {
        name: format!("demo-{ordinal}"),
        id: 7_000_000_000_000_000_000 + ordinal as u64,
        peer_url: format!("http://{host}:7101"),
        client_url: format!("http://{host}:7001"),
        role,
        is_leader,
        lag: Some(0),
    }
}

fn voters(count: i32) -> MemberList {
    MemberList {
        members: (0..count)
            .map(|ordinal| member(ordinal, MemberRole::Voter, ordinal == 0))
            .collect(),
        membership_id: 42,
    }
}

// ---- the API server, mocked ----

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

struct ApiServer {
    handle: Handle,
    log: Log,
    /// The RegistryCluster under test: patches of it answer with it.
    resource: Value,
}

/// One request as the test sees it.
struct Call {
    method: String,
    path: String,
    query: String,
    body: Value,
    respond: tower_test::mock::SendResponse<Response<Body>>,
}

impl Call {
    fn reply(self, body: Value) {
        self.respond.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
    }

    /// Answers a server-side apply or a create with what was sent.
    fn echo(self) -> Value {
        let body = self.body.clone();
        self.reply(body.clone());
        body
    }

    fn not_found(self) {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "not found", "reason": "NotFound", "code": 404
        });
        self.respond.send_response(
            Response::builder()
                .status(404)
                .body(Body::from(serde_json::to_vec(&status).unwrap()))
                .unwrap(),
        );
    }
}

impl ApiServer {
    async fn next(&mut self) -> Call {
        let (request, respond) = tokio::time::timeout(TIMEOUT, self.handle.next_request())
            .await
            .expect("the reconciler made no further call in time")
            .expect("the client is gone");
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        log_entry(&self.log, format!("{method} {path}"));
        Call {
            method,
            path,
            query,
            body,
            respond,
        }
    }

    async fn expect(&mut self, method: &str, path: &str) -> Call {
        let call = self.next().await;
        assert_eq!(
            (call.method.as_str(), call.path.as_str()),
            (method, path),
            "unexpected call"
        );
        call
    }

    /// A server-side apply under the operator's field manager; returns
    /// the applied object.
    async fn expect_apply(&mut self, path: &str) -> Value {
        let call = self.expect("PATCH", path).await;
        assert!(
            call.query.contains("fieldManager=muster-operator")
                && call.query.contains("force=true"),
            "{path}: {}",
            call.query
        );
        call.echo()
    }

    /// An Event about the cluster; returns its reason and note.
    async fn expect_event(&mut self, reason: &str) -> Value {
        let call = self
            .expect("POST", "/apis/events.k8s.io/v1/namespaces/default/events")
            .await;
        assert_eq!(call.body["reason"], reason, "{:#}", call.body);
        assert_eq!(call.body["regarding"]["kind"], "RegistryCluster");
        call.echo()
    }

    /// The orphan check, config, Services, budget and StatefulSet, in that
    /// order; returns the applied StatefulSet and ConfigMap.
    async fn expect_objects(&mut self) -> Applied {
        let list = self
            .expect("GET", "/api/v1/namespaces/default/secrets")
            .await;
        assert!(list.query.contains("labelSelector="), "{}", list.query);
        list.reply(json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []}));
        let config_map = self
            .expect_apply("/api/v1/namespaces/default/configmaps/demo-config")
            .await;
        self.expect_apply("/api/v1/namespaces/default/services/demo-peer")
            .await;
        self.expect_apply("/api/v1/namespaces/default/services/demo")
            .await;
        let budget = self
            .expect_apply("/apis/policy/v1/namespaces/default/poddisruptionbudgets/demo")
            .await;
        let stateful_set = self
            .expect_apply("/apis/apps/v1/namespaces/default/statefulsets/demo")
            .await;
        Applied {
            config_map,
            budget,
            stateful_set,
        }
    }

    async fn expect_status(&mut self) -> Value {
        let call = self
            .expect(
                "PATCH",
                "/apis/muster.dev/v1alpha1/namespaces/default/registryclusters/demo/status",
            )
            .await;
        assert!(
            call.query.contains("fieldManager=muster-operator"),
            "{}",
            call.query
        );
        let status = call.body["status"].clone();
        let mut resource = self.resource.clone();
        resource["status"] = status.clone();
        call.reply(resource);
        status
    }

    async fn expect_stateful_set(&mut self, set: Option<StatefulSet>) {
        let call = self
            .expect("GET", "/apis/apps/v1/namespaces/default/statefulsets/demo")
            .await;
        match set {
            Some(set) => call.reply(serde_json::to_value(set).unwrap()),
            None => call.not_found(),
        }
    }

    async fn expect_pods(&mut self, pods: Vec<Pod>) {
        let call = self.expect("GET", "/api/v1/namespaces/default/pods").await;
        assert!(
            call.query
                .contains("labelSelector=app.kubernetes.io%2Finstance%3Ddemo"),
            "{}",
            call.query
        );
        call.reply(json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}));
    }
}

struct Applied {
    config_map: Value,
    budget: Value,
    stateful_set: Value,
}

// ---- fixtures ----

struct Harness {
    server: ApiServer,
    ctx: Arc<Context<ScriptedRegistry>>,
    log: Log,
}

fn harness(members: Option<MemberList>, refuse_changes: bool) -> Harness {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let log = Log::default();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "muster-operator".into(),
            instance: None,
        },
    );
    let registry = ScriptedRegistry {
        log: log.clone(),
        trusted: Trusted::default(),
        members,
        refuse_changes,
        wiped: None,
    };
    let ctx = Context::new(
        client,
        registry,
        recorder,
        Arc::new(Metrics::new().unwrap()),
        OperatorSettings::default(),
    );
    Harness {
        server: ApiServer {
            handle,
            log: log.clone(),
            resource: Value::Null,
        },
        ctx: Arc::new(ctx),
        log,
    }
}

/// The three-member fixture, with our finalizer, asking for `replicas`.
fn cluster(replicas: i32, bootstrapped: bool) -> RegistryCluster {
    let mut cluster = fixture("three-members.yaml");
    cluster.spec.replicas = replicas;
    cluster.metadata.finalizers = Some(vec!["muster.dev/cleanup".into()]);
    cluster.status = Some(RegistryClusterStatus {
        bootstrapped,
        ..RegistryClusterStatus::default()
    });
    cluster
}

fn stateful_set(replicas: i32, update_revision: &str) -> StatefulSet {
    let mut set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/instance": "demo"}},
            "serviceName": "demo-peer",
            "template": {}
        }
    }))
    .unwrap();
    set.status = Some(StatefulSetStatus {
        replicas,
        update_revision: Some(update_revision.into()),
        ..StatefulSetStatus::default()
    });
    set
}

fn pod(ordinal: i32, running: bool, ready: bool, revision: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("demo-{ordinal}")),
            namespace: Some("default".into()),
            labels: Some(
                [
                    ("app.kubernetes.io/instance".to_string(), "demo".to_string()),
                    ("controller-revision-hash".to_string(), revision.to_string()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..PodCondition::default()
            }]),
            container_statuses: Some(vec![ContainerStatus {
                name: "registry".into(),
                state: Some(ContainerState {
                    running: running.then(|| ContainerStateRunning {
                        started_at: Some(Time(Timestamp::now())),
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

fn ready_pods(count: i32, revision: &str) -> Vec<Pod> {
    (0..count).map(|o| pod(o, true, true, revision)).collect()
}

async fn run(
    harness: Harness,
    cluster: RegistryCluster,
    script: impl AsyncFnOnce(&mut ApiServer),
) -> (Result<Action, Error>, Log) {
    let Harness {
        mut server,
        ctx,
        log,
    } = harness;
    server.resource = serde_json::to_value(&cluster).unwrap();
    // One task polls both sides: the script answers what reconcile asks.
    let verifier = async {
        tokio::time::timeout(TIMEOUT, script(&mut server))
            .await
            .expect("the script finished in time");
    };
    let reconciler = async {
        tokio::time::timeout(TIMEOUT, reconcile(Arc::new(cluster), ctx))
            .await
            .expect("reconcile finished in time")
    };
    let (result, ()) = tokio::join!(reconciler, verifier);
    // No call beyond the script.
    let extra = tokio::time::timeout(Duration::from_millis(50), server.handle.next_request()).await;
    if let Ok(Some((request, _))) = extra {
        panic!(
            "an unexpected extra call: {} {}",
            request.method(),
            request.uri()
        );
    }
    (result, log)
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status:#}"))
}

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

// ---- the tests ----

#[tokio::test]
async fn the_finalizer_is_added_first() {
    init();
    let mut fresh = cluster(3, false);
    fresh.metadata.finalizers = None;
    let (result, _) = run(harness(None, false), fresh, async |server| {
        let call = server
            .expect(
                "PATCH",
                "/apis/muster.dev/v1alpha1/namespaces/default/registryclusters/demo",
            )
            .await;
        assert_eq!(
            call.body,
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["muster.dev/cleanup"]}
            ])
        );
        call.reply(server.resource.clone());
    })
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_new_cluster_is_applied_in_order_and_reported() {
    init();
    let (result, _) = run(harness(None, false), cluster(3, false), async |server| {
        server.expect_stateful_set(None).await;
        let applied = server.expect_objects().await;
        assert_eq!(
            applied.config_map["data"]["MUSTER_INITIAL_CLUSTER_STATE"],
            "new"
        );
        assert_eq!(applied.stateful_set["spec"]["replicas"], 3);
        assert_eq!(
            applied.stateful_set["metadata"]["ownerReferences"][0]["kind"],
            "RegistryCluster"
        );
        assert_eq!(applied.budget["spec"]["minAvailable"], 2);
        let event = server.expect_event("Creating").await;
        assert!(
            event["note"]
                .as_str()
                .unwrap()
                .contains("demo-0 initializes")
        );
        let status = server.expect_status().await;
        assert_eq!(status["replicas"], 3);
        assert_eq!(status["observedGeneration"], 2);
        assert_eq!(status["bootstrapped"], false);
        assert_eq!(
            status["selector"],
            "app.kubernetes.io/instance=demo,app.kubernetes.io/name=muster"
        );
        assert_eq!(condition(&status, "Progressing")["reason"], "Creating");
        assert_eq!(condition(&status, "Available")["status"], "False");
        assert_eq!(condition(&status, "Available")["reason"], "Forming");
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(5)));
}

#[tokio::test]
async fn an_invalid_spec_is_reported_once_and_waits_for_a_change() {
    init();
    let mut invalid = cluster(3, false);
    invalid.spec.replicas = 4;
    let (result, _) = run(harness(None, false), invalid.clone(), async |server| {
        let event = server.expect_event("InvalidSpec").await;
        assert_eq!(event["type"], "Warning");
        assert!(
            event["note"]
                .as_str()
                .unwrap()
                .contains("1, 3, 5 or 7, not 4")
        );
        let status = server.expect_status().await;
        assert_eq!(condition(&status, "Degraded")["reason"], "InvalidSpec");
        assert_eq!(condition(&status, "Degraded")["status"], "True");
    })
    .await;
    assert_eq!(result.unwrap(), Action::await_change());

    // Reconciled again (e.g. after a restart): no second Event.
    let previous = muster_operator::status::invalid_status(
        &muster_operator::validate::validate(&invalid, &OperatorSettings::default()).unwrap_err(),
        Some(2),
        None,
        Timestamp::now(),
    );
    invalid.status = Some(previous);
    let (result, _) = run(harness(None, false), invalid, async |server| {
        server.expect_status().await;
    })
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_formed_cluster_is_recorded_as_bootstrapped() {
    init();
    let harness = harness(Some(voters(3)), false);
    let trusted = harness.ctx.registry.trusted.clone();
    let (result, _) = run(harness, cluster(3, false), async |server| {
        server
            .expect_stateful_set(Some(stateful_set(3, "r1")))
            .await;
        server.expect_pods(ready_pods(3, "r1")).await;
        let applied = server.expect_objects().await;
        assert_eq!(
            applied.config_map["data"]["MUSTER_INITIAL_CLUSTER_STATE"],
            "existing"
        );
        server.expect_event("ClusterFormed").await;
        let status = server.expect_status().await;
        assert_eq!(status["bootstrapped"], true);
        assert_eq!(status["leader"], "demo-0");
        assert_eq!(status["readyReplicas"], 3);
        assert_eq!(status["currentVersion"], "0.1.0");
        let members = status["members"].as_array().unwrap();
        assert_eq!(members.len(), 3);
        assert_eq!(members[1]["id"], "7000000000000000001");
        assert_eq!(members[1]["role"], "Voter");
        assert_eq!(members[1]["healthy"], true);
        assert_eq!(condition(&status, "Available")["status"], "True");
        assert_eq!(condition(&status, "Progressing")["status"], "False");
        assert_eq!(condition(&status, "Degraded")["status"], "False");
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(300)));
    // TLS off: plain http, no CA, for every call.
    let seen = cas_seen(&trusted);
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.iter().all(|(_, ca)| ca.is_none()), "{seen:?}");
}

#[tokio::test]
async fn scale_up_grows_the_stateful_set_then_adds_then_promotes() {
    init();
    // 1. A pod is created for the next member.
    let (_, log) = run(
        harness(Some(voters(3)), false),
        cluster(5, true),
        async |server| {
            server
                .expect_stateful_set(Some(stateful_set(3, "r1")))
                .await;
            server.expect_pods(ready_pods(3, "r1")).await;
            let applied = server.expect_objects().await;
            assert_eq!(applied.stateful_set["spec"]["replicas"], 4);
            assert!(
                applied.config_map["data"]["MUSTER_INITIAL_CLUSTER"]
                    .as_str()
                    .unwrap()
                    .ends_with("demo-3=http://demo-3.demo-peer.default.svc.cluster.local:7101")
            );
            assert_eq!(applied.budget["spec"]["minAvailable"], 3);
            server.expect_event("ScalingUp").await;
            let status = server.expect_status().await;
            assert_eq!(condition(&status, "Progressing")["reason"], "ScalingUp");
        },
    )
    .await;
    assert!(
        !log.lock()
            .unwrap()
            .iter()
            .any(|e| e.starts_with("registry"))
    );

    // 2. It runs: it is added as a learner before anything is applied.
    let mut pods = ready_pods(3, "r1");
    pods.push(pod(3, true, false, "r1"));
    let (result, log) = run(
        harness(Some(voters(3)), false),
        cluster(5, true),
        async |server| {
            server
                .expect_stateful_set(Some(stateful_set(4, "r1")))
                .await;
            server.expect_pods(pods).await;
            let event = server.expect_event("MemberAdded").await;
            assert!(event["note"].as_str().unwrap().contains("learner"));
            let applied = server.expect_objects().await;
            assert_eq!(applied.stateful_set["spec"]["replicas"], 4);
            server.expect_status().await;
        },
    )
    .await;
    result.unwrap();
    assert_eq!(
        log.lock().unwrap()[2],
        "registry add demo-3 http://demo-3.demo-peer.default.svc.cluster.local:7101 \
         http://demo-3.demo-peer.default.svc.cluster.local:7001"
    );

    // 3. Ready (caught up): promoted.
    let mut members = voters(3);
    members.members.push(member(3, MemberRole::Learner, false));
    let mut pods = ready_pods(3, "r1");
    pods.push(pod(3, true, true, "r1"));
    let (_, log) = run(
        harness(Some(members), false),
        cluster(5, true),
        async |server| {
            server
                .expect_stateful_set(Some(stateful_set(4, "r1")))
                .await;
            server.expect_pods(pods).await;
            server.expect_event("MemberPromoted").await;
            server.expect_objects().await;
            let status = server.expect_status().await;
            assert_eq!(status["members"][3]["role"], "Learner");
        },
    )
    .await;
    assert!(index_of(&log, "registry promote demo-3") < index_of(&log, "PATCH /apis/apps"));
}

#[tokio::test]
async fn scale_down_removes_the_member_before_shrinking_the_stateful_set() {
    init();
    let (result, log) = run(
        harness(Some(voters(5)), false),
        cluster(3, true),
        async |server| {
            server
                .expect_stateful_set(Some(stateful_set(5, "r1")))
                .await;
            server.expect_pods(ready_pods(5, "r1")).await;
            server.expect_event("MemberRemoved").await;
            let applied = server.expect_objects().await;
            assert_eq!(applied.stateful_set["spec"]["replicas"], 4);
            let status = server.expect_status().await;
            assert_eq!(condition(&status, "Progressing")["reason"], "ScalingDown");
        },
    )
    .await;
    result.unwrap();
    assert!(
        index_of(&log, "registry remove demo-4")
            < index_of(
                &log,
                "PATCH /apis/apps/v1/namespaces/default/statefulsets/demo"
            )
    );
}

#[tokio::test]
async fn a_refused_removal_keeps_the_stateful_set() {
    init();
    let (result, _) = run(
        harness(Some(voters(5)), true),
        cluster(3, true),
        async |server| {
            server
                .expect_stateful_set(Some(stateful_set(5, "r1")))
                .await;
            server.expect_pods(ready_pods(5, "r1")).await;
            let event = server.expect_event("ChangeRefused").await;
            assert_eq!(event["type"], "Warning");
            let applied = server.expect_objects().await;
            assert_eq!(applied.stateful_set["spec"]["replicas"], 5);
            server.expect_status().await;
        },
    )
    .await;
    result.unwrap();
}

#[tokio::test]
async fn an_unhealthy_member_blocks_scaling_and_says_why() {
    init();
    let mut pods = ready_pods(3, "r1");
    pods[1] = pod(1, true, false, "r1");
    let (result, log) = run(
        harness(Some(voters(3)), false),
        cluster(5, true),
        async |server| {
            server
                .expect_stateful_set(Some(stateful_set(3, "r1")))
                .await;
            server.expect_pods(pods).await;
            let applied = server.expect_objects().await;
            assert_eq!(applied.stateful_set["spec"]["replicas"], 3);
            let event = server.expect_event("MemberUnhealthy").await;
            assert_eq!(event["type"], "Warning");
            assert!(event["note"].as_str().unwrap().contains("demo-1"));
            let status = server.expect_status().await;
            let degraded = condition(&status, "Degraded");
            assert_eq!(degraded["status"], "True");
            assert_eq!(degraded["reason"], "MemberUnhealthy");
            assert_eq!(status["members"][1]["healthy"], false);
        },
    )
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(15)));
    assert!(
        !log.lock()
            .unwrap()
            .iter()
            .any(|e| e.starts_with("registry"))
    );
}

#[tokio::test]
async fn upgrade_restarts_an_outdated_follower_after_applying_the_template() {
    init();
    let (result, log) = run(
        harness(Some(voters(3)), false),
        cluster(3, true),
        async |server| {
            server
                .expect_stateful_set(Some(stateful_set(3, "r2")))
                .await;
            server.expect_pods(ready_pods(3, "r1")).await;
            server.expect_objects().await;
            let delete = server
                .expect("DELETE", "/api/v1/namespaces/default/pods/demo-2")
                .await;
            delete.reply(serde_json::to_value(pod(2, true, true, "r1")).unwrap());
            let event = server.expect_event("PodRestarted").await;
            assert!(
                event["note"]
                    .as_str()
                    .unwrap()
                    .contains("outdated follower")
            );
            let status = server.expect_status().await;
            assert_eq!(condition(&status, "Progressing")["reason"], "Upgrading");
        },
    )
    .await;
    result.unwrap();
    assert!(
        !log.lock()
            .unwrap()
            .iter()
            .any(|e| e.starts_with("registry"))
    );
}

#[tokio::test]
async fn upgrade_hands_leadership_away_before_the_leader_restarts() {
    init();
    let mut pods = ready_pods(3, "r2");
    pods[0] = pod(0, true, true, "r1");
    let (result, log) = run(
        harness(Some(voters(3)), false),
        cluster(3, true),
        async |server| {
            server
                .expect_stateful_set(Some(stateful_set(3, "r2")))
                .await;
            server.expect_pods(pods).await;
            let event = server.expect_event("LeaderTransferred").await;
            assert!(
                event["note"]
                    .as_str()
                    .unwrap()
                    .contains("from demo-0 to demo-1")
            );
            server.expect_objects().await;
            server.expect_status().await;
        },
    )
    .await;
    result.unwrap();
    assert_eq!(
        log.lock().unwrap()[2],
        "registry transfer-leader demo-1",
        "the transfer comes right after observing"
    );
}

#[tokio::test]
async fn operator_issued_certificates_are_applied_before_the_pods() {
    init();
    let mut secure = cluster(3, false);
    secure.spec.tls.mode = muster_operator::crd::TlsMode::OperatorIssued;
    let (result, log) = run(harness(None, false), secure, async |server| {
        // Certificates come first: the CA must exist before any pod starts,
        // and every registry call trusts it.
        server
            .expect("GET", "/api/v1/namespaces/default/secrets/demo-ca")
            .await
            .not_found();
        server
            .expect("GET", "/api/v1/namespaces/default/secrets/demo-tls")
            .await
            .not_found();
        let event = server.expect_event("CertificateIssued").await;
        assert_eq!(event["note"], "issued a CA; issued the member certificate");
        server.expect_stateful_set(None).await;
        let ca = server
            .expect_apply("/api/v1/namespaces/default/secrets/demo-ca")
            .await;
        assert!(ca["data"]["ca.key"].is_string());
        let tls = server
            .expect_apply("/api/v1/namespaces/default/secrets/demo-tls")
            .await;
        assert_eq!(tls["type"], "kubernetes.io/tls");
        let applied = server.expect_objects().await;
        let args = applied.stateful_set["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .clone();
        assert!(args.contains(&json!("--cert-file=/etc/muster/tls/tls.crt")));
        server.expect_event("Creating").await;
        server.expect_status().await;
    })
    .await;
    result.unwrap();
    assert!(
        index_of(&log, "GET /api/v1/namespaces/default/secrets/demo-ca")
            < index_of(
                &log,
                "GET /apis/apps/v1/namespaces/default/statefulsets/demo"
            )
    );
}

/// A cluster with `tls: OperatorIssued` (the three-member fixture).
fn operator_issued_cluster(replicas: i32, bootstrapped: bool) -> RegistryCluster {
    let mut secure = cluster(replicas, bootstrapped);
    secure.spec.tls.mode = TlsMode::OperatorIssued;
    secure
}

/// A cluster with `tls: Secrets`, the user's Secret being `demo-cert`.
fn user_tls_cluster(replicas: i32, bootstrapped: bool) -> RegistryCluster {
    let mut secure = cluster(replicas, bootstrapped);
    secure.spec.tls.mode = TlsMode::Secrets;
    secure.spec.tls.secret_name = Some("demo-cert".into());
    secure
}

/// Certificates as the operator would have issued them for `resource`.
fn issued_for(resource: &RegistryCluster) -> IssuedTls {
    let mut issuing = resource.clone();
    issuing.spec.tls.mode = TlsMode::OperatorIssued;
    issuing.spec.tls.secret_name = None;
    let valid = validate(&issuing, &OperatorSettings::default()).unwrap();
    operator_issued(&valid, None, None, time::OffsetDateTime::now_utc()).unwrap()
}

fn secret(name: &str, data: &[(&str, &[u8])]) -> Value {
    serde_json::to_value(Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(
            data.iter()
                .map(|(key, value)| (key.to_string(), ByteString(value.to_vec())))
                .collect(),
        ),
        ..Secret::default()
    })
    .unwrap()
}

fn cas_seen(trusted: &Trusted) -> Vec<(&'static str, Option<Vec<u8>>)> {
    trusted.lock().unwrap().clone()
}

#[tokio::test]
async fn operator_issued_tls_trusts_the_issued_ca_for_every_registry_call() {
    init();
    let secure = operator_issued_cluster(5, true);
    let issued = issued_for(&secure);
    let ca_pem = issued.ca_pem();
    assert!(String::from_utf8_lossy(&ca_pem).contains("BEGIN CERTIFICATE"));
    let harness = harness(Some(voters(3)), false);
    let trusted = harness.ctx.registry.trusted.clone();
    let mut pods = ready_pods(3, "r1");
    pods.push(pod(3, true, false, "r1"));
    let (result, log) = run(harness, secure, async |server| {
        // The existing certificates are read and kept (no event).
        server
            .expect("GET", "/api/v1/namespaces/default/secrets/demo-ca")
            .await
            .reply(serde_json::to_value(&issued.ca).unwrap());
        server
            .expect("GET", "/api/v1/namespaces/default/secrets/demo-tls")
            .await
            .reply(serde_json::to_value(&issued.server).unwrap());
        server
            .expect_stateful_set(Some(stateful_set(4, "r1")))
            .await;
        server.expect_pods(pods).await;
        server.expect_event("MemberAdded").await;
        let ca = server
            .expect_apply("/api/v1/namespaces/default/secrets/demo-ca")
            .await;
        assert_eq!(ca, serde_json::to_value(&issued.ca).unwrap(), "kept");
        server
            .expect_apply("/api/v1/namespaces/default/secrets/demo-tls")
            .await;
        server.expect_objects().await;
        server.expect_status().await;
    })
    .await;
    result.unwrap();
    assert_eq!(
        log.lock().unwrap()[4],
        "registry add demo-3 https://demo-3.demo-peer.default.svc.cluster.local:7101 \
         https://demo-3.demo-peer.default.svc.cluster.local:7001"
    );
    let seen = cas_seen(&trusted);
    let calls: Vec<&str> = seen.iter().map(|(call, _)| *call).collect();
    assert_eq!(
        calls,
        [
            "members",
            "node_status",
            "node_status",
            "node_status",
            "node_status",
            "add_learner"
        ]
    );
    for (call, ca) in &seen {
        assert_eq!(ca.as_ref(), Some(&ca_pem), "{call} trusts the issued CA");
    }
}

#[tokio::test]
async fn a_user_tls_secret_is_read_and_its_ca_trusted() {
    init();
    let secure = user_tls_cluster(3, true);
    let issued = issued_for(&secure);
    let ca_pem = issued.ca_pem();
    let user_secret = secret(
        "demo-cert",
        &[
            ("tls.crt", b"(the member certificate)"),
            ("tls.key", b"(its key)"),
            ("ca.crt", &ca_pem),
        ],
    );
    let harness = harness(Some(voters(3)), false);
    let trusted = harness.ctx.registry.trusted.clone();
    let (result, log) = run(harness, secure, async |server| {
        server
            .expect("GET", "/api/v1/namespaces/default/secrets/demo-cert")
            .await
            .reply(user_secret);
        server
            .expect_stateful_set(Some(stateful_set(3, "r1")))
            .await;
        server.expect_pods(ready_pods(3, "r1")).await;
        let applied = server.expect_objects().await;
        assert_eq!(
            applied.stateful_set["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v["secret"]["secretName"].as_str())
                .collect::<Vec<_>>(),
            ["demo-cert"]
        );
        let status = server.expect_status().await;
        assert_eq!(condition(&status, "Available")["status"], "True");
        assert_eq!(status["currentVersion"], "0.1.0");
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(300)));
    assert_eq!(
        log.lock().unwrap()[0],
        "GET /api/v1/namespaces/default/secrets/demo-cert"
    );
    let seen = cas_seen(&trusted);
    assert_eq!(seen.len(), 4, "members, then each pod's status: {seen:?}");
    for (call, ca) in &seen {
        assert_eq!(
            ca.as_ref(),
            Some(&ca_pem),
            "{call} trusts the Secret's ca.crt"
        );
    }
}

#[tokio::test]
async fn an_unusable_tls_secret_is_reported_and_nothing_else_is_done() {
    init();
    let cases: [(Option<Value>, &str); 3] = [
        (
            None,
            "the TLS Secret \"demo-cert\" (spec.tls.secretName) does not exist",
        ),
        (
            Some(secret(
                "demo-cert",
                &[("tls.crt", b"(a certificate)"), ("tls.key", b"(a key)")],
            )),
            "the TLS Secret \"demo-cert\" has no ca.crt",
        ),
        (
            Some(secret("demo-cert", &[("ca.crt", b"not a certificate")])),
            "ca.crt in the TLS Secret \"demo-cert\" is not a PEM certificate",
        ),
    ];
    let mut last_status = None;
    for (found, expected) in cases {
        let harness = harness(Some(voters(3)), false);
        let trusted = harness.ctx.registry.trusted.clone();
        let (result, log) = run(harness, user_tls_cluster(3, true), async |server| {
            let get = server
                .expect("GET", "/api/v1/namespaces/default/secrets/demo-cert")
                .await;
            match found {
                Some(secret) => get.reply(secret),
                None => get.not_found(),
            }
            let event = server.expect_event("TLSSecretInvalid").await;
            assert_eq!(event["type"], "Warning");
            let note = event["note"].as_str().unwrap();
            assert!(note.contains(expected), "{note}");
            let status = server.expect_status().await;
            let degraded = condition(&status, "Degraded");
            assert_eq!(degraded["status"], "True");
            assert_eq!(degraded["reason"], "TLSSecretInvalid");
            assert!(degraded["message"].as_str().unwrap().contains(expected));
            assert_eq!(condition(&status, "Progressing")["status"], "False");
            assert_eq!(status["bootstrapped"], true, "what was observed stays");
            last_status = Some(status);
        })
        .await;
        // Secrets are not watched: look again soon.
        assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(15)));
        assert!(cas_seen(&trusted).is_empty(), "no registry call");
        assert_eq!(log.lock().unwrap().len(), 3, "nothing observed or applied");
    }

    // Reconciled again with the problem already reported: no second Event.
    let mut again = user_tls_cluster(3, true);
    again.status = Some(serde_json::from_value(last_status.unwrap()).unwrap());
    let (result, _) = run(harness(None, false), again, async |server| {
        server
            .expect("GET", "/api/v1/namespaces/default/secrets/demo-cert")
            .await
            .reply(secret("demo-cert", &[("ca.crt", b"not a certificate")]));
        server.expect_status().await;
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(15)));
}

#[tokio::test]
async fn deletion_publishes_an_event_and_removes_the_finalizer() {
    init();
    let mut deleting = cluster(3, true);
    deleting.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let (result, _) = run(harness(None, false), deleting, async |server| {
        let event = server.expect_event("Deleting").await;
        assert!(
            event["note"]
                .as_str()
                .unwrap()
                .contains("kept (retention: Retain)")
        );
        let call = server
            .expect(
                "PATCH",
                "/apis/muster.dev/v1alpha1/namespaces/default/registryclusters/demo",
            )
            .await;
        assert_eq!(
            call.body,
            json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": "muster.dev/cleanup"},
                {"op": "remove", "path": "/metadata/finalizers/0"}
            ])
        );
        call.reply(server.resource.clone());
    })
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn failures_are_counted_and_backed_off() {
    init();
    let harness = harness(None, false);
    let ctx = harness.ctx.clone();
    let resource = Arc::new(cluster(3, true));
    let error = Error::Registry(RegistryError::Failed("boom".into()));
    let delays: Vec<Action> = (0..3)
        .map(|_| error_policy(resource.clone(), &error, ctx.clone()))
        .collect();
    assert_eq!(
        delays,
        [5, 10, 20].map(|s| Action::requeue(Duration::from_secs(s)))
    );
    let metrics = ctx.metrics.encode().unwrap();
    assert!(
        metrics.contains("muster_operator_reconcile_failures_total{reason=\"registry\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_missing_crd_is_reported_plainly() {
    init();
    let Harness {
        mut server, ctx, ..
    } = harness(None, false);
    let client = ctx.client.clone();
    let check = muster_operator::controller::check_crd_installed(&client);
    let answer = async {
        server
            .expect("GET", "/apis/muster.dev/v1alpha1/registryclusters")
            .await
            .not_found();
    };
    let (result, ()) = tokio::join!(check, answer);
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("CRD (registryclusters.muster.dev) is not installed"),
        "{message}"
    );
}

#[tokio::test]
async fn a_member_back_with_an_empty_volume_is_replaced_before_anything_else() {
    init();
    let mut harness = harness(Some(voters(3)), false);
    Arc::get_mut(&mut harness.ctx).unwrap().registry.wiped = Some("demo-2");
    let mut pods = ready_pods(3, "r1");
    pods[2] = pod(2, true, false, "r1");
    let (result, log) = run(harness, cluster(3, true), async |server| {
        server
            .expect_stateful_set(Some(stateful_set(3, "r1")))
            .await;
        server.expect_pods(pods).await;
        let event = server.expect_event("MemberReplaced").await;
        let note = event["note"].as_str().unwrap();
        assert!(
            note.contains("demo-2 came back with an empty volume (new Raft id 12345)"),
            "{note}"
        );
        let applied = server.expect_objects().await;
        assert_eq!(applied.stateful_set["spec"]["replicas"], 3, "the pod stays");
        let status = server.expect_status().await;
        assert_eq!(
            condition(&status, "Progressing")["reason"],
            "ReplacingMember"
        );
    })
    .await;
    result.unwrap();
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|line| line.starts_with("registry add demo-2 ") && line.ends_with("(replace)")),
        "the pod is added as the replacement of its old self: {log:?}"
    );
    assert!(
        index_of(&log, "registry add demo-2 ")
            < index_of(
                &log,
                "PATCH /apis/apps/v1/namespaces/default/statefulsets/demo"
            )
    );
}
