#!/usr/bin/env python3
"""Render the same embedded template over the same resolved boxes with go-jsonnet.

    python3 bench/gojsonnet_render.py --binary target/release/devbox-gen --repo DIR --out OUT
        [--eval-only] [--jobs N] [--one-vm]

The boxes come from `devbox-gen show --input` (exactly what devbox-gen's template receives);
the template files are this repository's src/render/template/, served to go-jsonnet under the
same `devbox-gen/` import prefix. This is the engine of Tanka and Kapitan (PyPI `gojsonnet`).

By default it runs the way those tools run it: one evaluation per box, single-threaded, and
every object written to OUT/<user>/<kind>-<name>.yaml (PyYAML), one file per object as
devbox-gen does. The other modes isolate go-jsonnet itself, for an honest anchor:

- `--eval-only`: evaluate only, keeping go-jsonnet's JSON text: no parsing, no PyYAML (in the
  default mode dumping YAML in Python costs about as much as the evaluation), no files;
- `--jobs N`: N processes, as Tanka's `export --parallel` runs environments side by side;
- `--one-vm`: one evaluation per process over all its boxes (`std.map` of the template over
  them), instead of one evaluation per box: the cost of starting an evaluation is paid once.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import _gojsonnet  # PyPI gojsonnet
import yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "src" / "render" / "template"
ENTRY = TEMPLATE / "default.jsonnet"


def import_callback(_dir: str, rel: str):
    if rel.startswith("devbox-gen/"):
        path = TEMPLATE / rel.removeprefix("devbox-gen/")
        return str(path), path.read_bytes()
    if rel == str(ENTRY):
        return rel, ENTRY.read_bytes()
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


def write(out: Path, name: str, rendered) -> None:
    bundle = out / name
    bundle.mkdir(parents=True, exist_ok=True)
    for obj in objects(rendered):
        file = f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        (bundle / file).write_text(yaml.safe_dump(obj, sort_keys=True))


def render(job: tuple[list[dict], str, bool, bool]) -> int:
    """Renders one share of the boxes; returns how many it rendered."""
    boxes, out, eval_only, one_vm = job
    if one_vm:
        snippet = f"local template = import {json.dumps(str(ENTRY))};\nfunction(boxes) std.map(template, boxes)"
        text = _gojsonnet.evaluate_snippet("all-boxes", snippet, tla_codes={"boxes": json.dumps(boxes)}, import_callback=import_callback)
        if eval_only:
            return len(boxes) if text else 0
        results = json.loads(text)
    else:
        texts = (_gojsonnet.evaluate_file(str(ENTRY), tla_codes={"box": json.dumps(box)}, import_callback=import_callback) for box in boxes)
        if eval_only:
            # The evaluation alone: go-jsonnet's output is kept as the JSON text it returns.
            return sum(1 for text in texts if text)
        results = (json.loads(text) for text in texts)
    made = 0
    for box, rendered in zip(boxes, results):
        write(Path(out), box["name"], rendered)
        made += 1
    return made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--eval-only", action="store_true", help="evaluate only: no YAML, no files")
    parser.add_argument("--jobs", type=int, default=1, help="processes, each taking an equal share of the boxes")
    parser.add_argument("--one-vm", action="store_true", help="one evaluation per process over all its boxes")
    args = parser.parse_args()
    boxes = json.loads(subprocess.run([args.binary, "-C", args.repo, "show", "--input"], check=True, capture_output=True).stdout)
    shares = [boxes[i :: args.jobs] for i in range(args.jobs)]
    jobs = [(share, args.out, args.eval_only, args.one_vm) for share in shares if share]
    if len(jobs) == 1:
        made = render(jobs[0])
    else:
        # spawn, not fork: go-jsonnet's Go runtime, already loaded here, does not survive a fork.
        with ProcessPoolExecutor(max_workers=len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
            made = sum(pool.map(render, jobs))
    if made == 0 and boxes:
        raise SystemExit("go-jsonnet rendered nothing")


if __name__ == "__main__":
    main()
