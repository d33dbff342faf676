#!/usr/bin/env python3
"""Render the same embedded template over the same resolved boxes with go-jsonnet.

    python3 bench/gojsonnet_render.py --binary target/release/devbox-gen --repo DIR --out OUT

The boxes come from `devbox-gen show --input` (exactly what devbox-gen's template receives);
the template files are this repository's src/render/template/, served to go-jsonnet under the
same `devbox-gen/` import prefix. Every object is written to OUT/<user>/<kind>-<name>.yaml
(PyYAML), one file per object as devbox-gen does, so both write the same number of files.
This is the engine of Tanka and Kapitan (PyPI `gojsonnet`), run the way those tools run it:
one evaluation per box, single-threaded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import _gojsonnet  # PyPI gojsonnet
import yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "src" / "render" / "template"


def import_callback(_dir: str, rel: str):
    if rel.startswith("devbox-gen/"):
        path = TEMPLATE / rel.removeprefix("devbox-gen/")
        return str(path), path.read_bytes()
    raise RuntimeError(f"unexpected import {rel}")


def objects(value):
    """Tanka's extraction rule, as devbox-gen applies it."""
    if isinstance(value, dict):
        if "apiVersion" in value and "kind" in value:
            yield value
        else:
            for child in value.values():
                yield from objects(child)
    elif isinstance(value, list):
        for child in value:
            yield from objects(child)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    boxes = json.loads(subprocess.run([args.binary, "-C", args.repo, "show", "--input"], check=True, capture_output=True).stdout)
    out = Path(args.out)
    entry = str(TEMPLATE / "default.jsonnet")
    for box in boxes:
        rendered = _gojsonnet.evaluate_file(entry, tla_codes={"box": json.dumps(box)}, import_callback=import_callback)
        bundle = out / box["name"]
        bundle.mkdir(parents=True, exist_ok=True)
        for obj in objects(json.loads(rendered)):
            name = f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
            (bundle / name).write_text(yaml.safe_dump(obj, sort_keys=True))


if __name__ == "__main__":
    main()
