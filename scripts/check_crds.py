#!/usr/bin/env python3
"""Validate custom resources (KEDA, Prometheus Operator, Strimzi) against their CRD schemas.

usage: check_crds.py SCHEMA_DIR FILE... ('-' reads stdin; each FILE may hold several documents)

SCHEMA_DIR holds the openAPIV3Schema of each served CRD version as GROUP_VERSION_KIND.json
(deploy/k8s/crds; its README names the sources). An object of a group that has a schema there
is validated the way the API server prunes and validates it, but strictly: every key must be
in its schema's `properties` unless the schema has `additionalProperties` or says
`x-kubernetes-preserve-unknown-fields: true` (the server would silently drop an unknown key: a
typo'd field is a setting that never takes effect), and types, enums and required fields are
checked by jsonschema. An object of such a group whose version or kind has no schema fails.
Objects of other groups (core kinds) are left to kubernetes-validate. Exit 1 on any error.
"""

import copy
import json
import os
import sys

import jsonschema
import yaml

# The keys of metadata a manifest may set (the server would refuse or drop others).
METADATA_KEYS = {"name", "namespace", "labels", "annotations", "generateName", "finalizers"}


def strict(schema, path=""):
    """The openAPIV3Schema as a JSON Schema that rejects unknown keys."""
    s = copy.copy(schema)
    for k in [k for k in s if k.startswith("x-kubernetes-")]:
        del s[k]
    if schema.get("x-kubernetes-int-or-string"):
        s.pop("type", None)
        s.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable"):
        del s["nullable"]
        if "type" in s:
            s["type"] = [s["type"], "null"]
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in s:
        s["properties"] = {
            k: strict(v, f"{path}.{k}") for k, v in s["properties"].items()
        }
    if schema.get("x-kubernetes-embedded-resource"):
        props = s.setdefault("properties", {})
        for k in ("apiVersion", "kind", "metadata"):
            props.setdefault(k, {})
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = strict(s["additionalProperties"], f"{path}.*")
    if "items" in s and isinstance(s["items"], dict):
        s["items"] = strict(s["items"], f"{path}[]")
    for combinator in ("allOf", "anyOf", "oneOf"):
        if combinator in s and combinator in schema:
            # Structural schemas repeat in these branches only value checks of properties
            # declared at this level, so the branches get no key restriction of their own.
            s[combinator] = [
                {k: v for k, v in strict(b, path).items() if k != "additionalProperties"}
                for b in s[combinator]
            ]
    if "not" in s:
        s["not"] = strict(s["not"], path)
    is_object = schema.get("type") == "object" or "properties" in schema
    # The root's metadata is ObjectMeta, which CRD schemas leave open: checked separately.
    if is_object and not preserve and "additionalProperties" not in s and path != ".metadata":
        s["additionalProperties"] = False
    return s


def load_schemas(directory):
    schemas = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        group, version, kind = name[: -len(".json")].split("_")
        with open(os.path.join(directory, name)) as f:
            schemas[(group, version, kind)] = strict(json.load(f))
    return schemas


def documents(filename):
    text = sys.stdin.read() if filename == "-" else open(filename).read()
    return [d for d in yaml.safe_load_all(text) if d]


def where(error):
    return "." + ".".join(str(p) for p in error.absolute_path) if error.absolute_path else "(root)"


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    schemas = load_schemas(argv[1])
    groups = {g for g, _, _ in schemas}
    failures = checked = 0
    for filename in argv[2:]:
        label = "stdin" if filename == "-" else filename
        for doc in documents(filename):
            api_version = doc.get("apiVersion", "")
            kind = doc.get("kind", "")
            name = (doc.get("metadata") or {}).get("name", "?")
            group, _, version = api_version.rpartition("/")
            if group not in groups:
                continue
            what = f"{label}: {kind}/{name} ({api_version})"
            schema = schemas.get((group, version, kind))
            if schema is None:
                print(f"ERROR {what}: no schema for {group}/{version} {kind} in {argv[1]}")
                failures += 1
                continue
            checked += 1
            errors = sorted(
                jsonschema.Draft7Validator(schema).iter_errors(doc),
                key=lambda e: list(map(str, e.absolute_path)),
            )
            unknown_meta = sorted(set(doc.get("metadata") or {}) - METADATA_KEYS)
            for key in unknown_meta:
                print(f"ERROR {what}: .metadata: unknown field {key!r}")
            for e in errors:
                print(f"ERROR {what}: {where(e)}: {e.message}")
            if errors or unknown_meta:
                failures += 1
            else:
                print(f"OK    {what}")
    print(f"check_crds: {checked} custom resources checked, {failures} failed")
    if checked == 0:
        print("check_crds: no custom resource found: nothing was checked", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
