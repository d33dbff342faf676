#!/usr/bin/env python3
"""Turn an upstream CRD's openAPIV3Schema into the JSON Schema tests/integration/delivery.rs
validates against, as openapi2jsonschema --strict does (see README.md beside this file):
`additionalProperties: false` on every object with `properties` (the API server prunes or,
with strict field validation, refuses unknown fields of a structural CRD), descriptions
removed, `status` left out (never emitted).

    from_crd.py CRD.yaml VERSION > OUT.json
"""

import json
import sys

import yaml


def strict(schema):
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if k != "description"}
    if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def main() -> None:
    with open(sys.argv[1]) as file:
        crd = yaml.safe_load(file)
    version = sys.argv[2]
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
    schema = strict(schema)
    schema.pop("additionalProperties", None)  # the top level, as the catalog's files have it
    schema["properties"]["metadata"] = {"type": "object"}
    if "status" in schema["properties"]:
        schema["properties"]["status"] = {"type": "object", "x-devbox-gen-omitted": "status: not emitted by devbox-gen"}
    json.dump(schema, sys.stdout, indent=2, sort_keys=True)
    print()


main()
