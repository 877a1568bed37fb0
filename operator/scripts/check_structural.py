#!/usr/bin/env python3
"""Checks that CRD schemas are structural, as the API server requires
(https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema),
and that defaults are valid against their own schema.

Usage: check_structural.py CRD.yaml...      (exit 1 on any violation)
       check_structural.py --self-test      (the checker rejects bad schemas)
"""

import sys

import jsonschema
import yaml

JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
# Inside a junctor only value validations may appear.
FORBIDDEN_IN_JUNCTOR = ("description", "type", "default", "additionalProperties", "nullable")
INT_OR_STRING_JUNCTORS = [
    {"anyOf": [{"type": "integer"}, {"type": "string"}]},
    {"allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {}]},
]


def _exempt_from_type(node):
    return node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")


def _junctor_fields(node):
    """Properties and items named anywhere inside the node's junctors."""
    fields, has_items = set(), False
    stack = []
    for junctor in JUNCTORS:
        value = node.get(junctor)
        if value is None:
            continue
        stack.extend(value if isinstance(value, list) else [value])
    while stack:
        inner = stack.pop()
        fields.update((inner.get("properties") or {}).keys())
        has_items = has_items or "items" in inner
        for junctor in JUNCTORS:
            value = inner.get(junctor)
            if value is not None:
                stack.extend(value if isinstance(value, list) else [value])
    return fields, has_items


def _check_junctor(node, path, problems):
    for junctor in JUNCTORS:
        value = node.get(junctor)
        if value is None:
            continue
        if node.get("x-kubernetes-int-or-string") and {junctor: value} in INT_OR_STRING_JUNCTORS:
            continue
        for index, inner in enumerate(value if isinstance(value, list) else [value]):
            where = f"{path}.{junctor}[{index}]"
            for key in FORBIDDEN_IN_JUNCTOR:
                if key in inner:
                    problems.append(f"{where}: '{key}' is not allowed inside {junctor}")
            for name, prop in (inner.get("properties") or {}).items():
                _check_junctor({k: v for k, v in prop.items() if k in JUNCTORS}, f"{where}.{name}", problems)


def violations(schema, path="<root>", problems=None, is_root=True):
    """Every structural-schema violation under `schema`."""
    if problems is None:
        problems = []
    if not isinstance(schema, dict):
        problems.append(f"{path}: a schema must be an object")
        return problems
    if not schema.get("type") and not _exempt_from_type(schema):
        problems.append(f"{path}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: properties and additionalProperties are mutually exclusive")
    if "items" in schema and not isinstance(schema["items"], dict):
        problems.append(f"{path}: items must be one schema")
    _check_junctor(schema, path, problems)
    named, names_items = _junctor_fields(schema)
    properties = schema.get("properties") or {}
    for name in sorted(named - set(properties)):
        problems.append(f"{path}: '{name}' is named inside a junctor but not in properties")
    if names_items and "items" not in schema:
        problems.append(f"{path}: items are named inside a junctor but not outside")
    if "default" in schema:
        try:
            jsonschema.validate(schema["default"], _as_json_schema(schema))
        except jsonschema.ValidationError as err:
            problems.append(f"{path}: default {schema['default']!r} is invalid: {err.message}")
    for name, prop in properties.items():
        child = f"{path}.{name}"
        if is_root and name == "metadata":
            allowed = {"name", "generateName"}
            extra = set((prop.get("properties") or {}).keys()) - allowed
            if extra or set(prop) - {"type", "properties", "description"}:
                problems.append(f"{child}: only metadata.name and metadata.generateName may be restricted")
        violations(prop, child, problems, is_root=False)
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        violations(additional, f"{path}.*", problems, is_root=False)
    if isinstance(schema.get("items"), dict):
        violations(schema["items"], f"{path}[]", problems, is_root=False)
    return problems


def _as_json_schema(schema):
    """The OpenAPI schema as JSON Schema (nullable and the Kubernetes
    extensions have no JSON Schema meaning; int-or-string is either)."""
    if isinstance(schema, list):
        return [_as_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "format"):
            continue
        if key == "properties" and isinstance(value, dict):
            converted[key] = {name: _as_json_schema(prop) for name, prop in value.items()}
        else:
            converted[key] = _as_json_schema(value)
    if schema.get("nullable") and "type" in converted:
        converted["type"] = [converted["type"], "null"]
    if schema.get("x-kubernetes-int-or-string"):
        converted.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    return converted


def crd_schemas(path):
    """(name@version, openAPIV3Schema) of every CRD in a YAML file."""
    with open(path) as handle:
        for document in yaml.safe_load_all(handle):
            if not document or document.get("kind") != "CustomResourceDefinition":
                continue
            for version in document["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                yield f"{document['metadata']['name']}@{version['name']}", schema


def validate_instance(instance, schema):
    """Errors of a custom resource against its CRD schema (apiVersion,
    kind and metadata are the API server's own)."""
    body = {k: v for k, v in instance.items() if k not in ("apiVersion", "kind", "metadata")}
    checked = dict(_as_json_schema(schema))
    checked["properties"] = {
        k: v for k, v in checked.get("properties", {}).items() if k not in ("apiVersion", "kind", "metadata")
    }
    validator = jsonschema.Draft7Validator(checked)
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(body)]


def self_test():
    bad = {
        "type": "object",
        "properties": {
            "untyped": {"description": "no type"},
            "both": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}},
            "junctor": {"type": "object", "anyOf": [{"type": "object", "properties": {"hidden": {"type": "string"}}}]},
            "badDefault": {"type": "integer", "default": "three"},
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
            "list": {"type": "array", "items": {"properties": {"x": {"type": "string"}}}},
            "intOrString": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        },
    }
    found = "\n".join(violations(bad))
    expected = [
        "<root>.untyped: no type",
        "<root>.both: properties and additionalProperties are mutually exclusive",
        "<root>.junctor.anyOf[0]: 'type' is not allowed inside anyOf",
        "<root>.junctor: 'hidden' is named inside a junctor but not in properties",
        "<root>.badDefault: default 'three' is invalid",
        "<root>.metadata: only metadata.name and metadata.generateName may be restricted",
        "<root>.list[]: no type",
    ]
    missing = [line for line in expected if line not in found]
    assert not missing, f"the checker missed {missing}; it found:\n{found}"
    assert "intOrString" not in found, f"int-or-string is structural:\n{found}"
    good = {"type": "object", "properties": {"n": {"type": "integer", "default": 3, "enum": [1, 3]}}}
    assert violations(good) == [], violations(good)
    assert validate_instance({"n": 2}, good) and not validate_instance({"n": 3}, good)
    print("self-test: 2 passed, 0 failed")


def main(argv):
    if argv == ["--self-test"]:
        self_test()
        return 0
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    failed = False
    for path in argv:
        for name, schema in crd_schemas(path):
            problems = violations(schema)
            for problem in problems:
                print(f"{path}: {name}: {problem}")
            failed = failed or bool(problems)
            print(f"{path}: {name}: {'NOT structural' if problems else 'structural'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
