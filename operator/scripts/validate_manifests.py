#!/usr/bin/env python3
"""Validates everything the operator and its chart produce:

- the objects the operator builds (`muster-operator render`) for every
  fixture, as created and as after bootstrap with one more pod,
- the generated CRDs,
- the chart rendered with default and non-default values,

with `kubernetes-validate --strict` for Kubernetes 1.30 and the latest it
knows; the chart with Helm lint in strict mode (helm-python-sdk, the real
Helm engine); the CRD schemas with check_structural.py; and every
RegistryCluster (fixtures, chart) against the CRD schema.

Usage: validate_manifests.py [--operator PATH]   (run from anywhere)
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile

import helm_python as helm
import kubernetes_validate.utils as kv
import yaml

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
import check_structural  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "charts", "muster-operator")
FIXTURES = os.path.join(ROOT, "operator", "tests", "fixtures")
OLDEST = "1.30.0"
LATEST = kv.latest_version()
INVALID_FIXTURE = "invalid.yaml"

NON_DEFAULT_VALUES = {
    "replicaCount": 2,
    "clusterDomain": "corp.internal",
    "logLevel": "debug",
    "image": {"repository": "registry.example.com/muster-operator", "tag": "0.1.0-rc1", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "pull-secret"}],
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
    "podAnnotations": {"prometheus.io/scrape": "true"},
    "podLabels": {"team": "platform"},
    "serviceAccount": {"create": True, "name": "muster-op", "annotations": {"example.com/role": "operator"}},
    "metrics": {"port": 9090, "service": {"enabled": True}},
    "cluster": {
        "create": True,
        "name": "registry",
        "replicas": 5,
        "version": "0.1.0",
        "storage": {"size": "10Gi", "storageClassName": "fast"},
        "tls": {"mode": "OperatorIssued"},
    },
}
MINIMAL_VALUES = {"serviceAccount": {"create": False, "name": "existing"}, "rbac": {"create": False},
                  "metrics": {"port": 8080, "service": {"enabled": False}}}

failures = []
passes = []


def fail(message):
    failures.append(message)
    print(f"FAIL {message}")


def ok(message):
    passes.append(message)
    print(message)


def render_operator(operator, out_dir):
    files = []
    for fixture in sorted(glob.glob(os.path.join(FIXTURES, "*.yaml"))):
        if os.path.basename(fixture) == INVALID_FIXTURE:
            continue
        replicas = yaml.safe_load(open(fixture))["spec"].get("replicas", 3)
        for label, extra in (("new", []), ("existing", ["--existing", "--pods", str(replicas + 1)])):
            target = os.path.join(out_dir, f"operator-{os.path.basename(fixture)[:-5]}-{label}.yaml")
            result = subprocess.run([operator, "render", fixture, *extra], capture_output=True, text=True)
            if result.returncode != 0:
                fail(f"render {fixture}: {result.stderr.strip()}")
                continue
            with open(target, "w") as handle:
                handle.write(result.stdout)
            files.append(target)
    return files


def render_chart(values, label, out_dir):
    chart = helm.Chart.load(CHART)
    rendered = chart.render(values, name="muster", namespace="muster-system", is_install=True)
    target = os.path.join(out_dir, f"chart-{label}.yaml")
    with open(target, "w") as handle:
        for template, text in sorted(rendered.items()):
            if template.endswith("NOTES.txt") or not text.strip():
                continue
            handle.write(f"---\n# {template}\n{text}\n")
    return target


def kubernetes_validate(files):
    command = ["kubernetes-validate", "--strict", "-k", OLDEST, "-k", LATEST, *files]
    result = subprocess.run(command, capture_output=True, text=True)
    output = result.stdout + result.stderr
    passed = output.count(" passed for resource ")
    ok(f"kubernetes-validate --strict ({OLDEST}, {LATEST}): {passed} resource checks passed")
    for line in output.splitlines():
        if line.startswith("INFO"):
            continue
        # Our own kind is checked against the CRD schema below instead.
        if "Couldn't find schema for kind RegistryCluster" in line:
            continue
        fail(f"kubernetes-validate: {line}")
    if result.returncode != 0:
        fail(f"kubernetes-validate exited {result.returncode}")


def helm_lint():
    for label, values in (("default", None), ("non-default", NON_DEFAULT_VALUES), ("minimal", MINIMAL_VALUES)):
        for version in (OLDEST, LATEST):
            report = helm.lint(CHART, values, strict=True, kube_version=f"v{version}")
            problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
            if problems:
                fail(f"helm lint --strict ({label}, {version}): {problems}")
            else:
                ok(f"helm lint --strict ({label} values, Kubernetes {version}): clean")
    try:
        helm.Chart.load(CHART).validate_schema({"cluster": {"create": True, "replicas": 4}})
        fail("values.schema.json accepted cluster.replicas: 4")
    except helm.HelmError:
        ok("values.schema.json rejects cluster.replicas: 4")


def check_crds(chart_files):
    crd_files = sorted(glob.glob(os.path.join(ROOT, "crds", "*.yaml")))
    schemas = {}
    for path in crd_files:
        for name, schema in check_structural.crd_schemas(path):
            problems = check_structural.violations(schema)
            for problem in problems:
                fail(f"{path}: {name}: {problem}")
            if not problems:
                ok(f"{os.path.relpath(path, ROOT)}: {name}: structural")
            schemas[name] = schema
    schema = schemas["registryclusters.muster.dev@v1alpha1"]
    instances = [(f, yaml.safe_load(open(f))) for f in sorted(glob.glob(os.path.join(FIXTURES, "*.yaml")))]
    for chart_file in chart_files:
        for document in yaml.safe_load_all(open(chart_file)):
            if document and document.get("kind") == "RegistryCluster":
                instances.append((chart_file, document))
    for source, instance in instances:
        errors = check_structural.validate_instance(instance, schema)
        name = os.path.relpath(source, ROOT) if source.startswith(ROOT) else os.path.basename(source)
        if os.path.basename(source) == INVALID_FIXTURE:
            if not errors:
                fail(f"{name}: the CRD schema accepted an invalid RegistryCluster")
            else:
                ok(f"{name}: rejected by the CRD schema, as it should ({len(errors)} errors)")
        elif errors:
            fail(f"{name}: {errors}")
        else:
            ok(f"{name}: valid against the CRD schema")
    return crd_files


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operator", default=os.path.join(ROOT, "target", "debug", "muster-operator"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out_dir:
        operator_files = render_operator(args.operator, out_dir)
        chart_files = [
            render_chart(None, "default", out_dir),
            render_chart(NON_DEFAULT_VALUES, "non-default", out_dir),
            render_chart(MINIMAL_VALUES, "minimal", out_dir),
        ]
        crd_files = check_crds(chart_files)
        kubernetes_validate(operator_files + chart_files + crd_files)
        helm_lint()
    print(f"validate_manifests: {len(passes)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
