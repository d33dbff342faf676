#!/usr/bin/env python3
"""YAML 1.1 safety of a config repo's out/.

Kubernetes tooling has read YAML 1.1 (go-yaml v2, PyYAML), where unquoted `on`, `yes`,
`n`, `~`, `0755`, `1.20` or `12:30` are booleans, nulls and numbers, while YAML 1.2 and
JSON readers see strings or other numbers. Rule 4 of docs/design.md: such strings are quoted.

For every file of out/:
  1. PyYAML (YAML 1.1) and ruamel.yaml (YAML 1.2) must read the same documents, type for
     type (True is not 1, "0755" is not 493 is not 755).
  2. Wherever Kubernetes expects a string (labels, annotations, selectors, nodeSelector,
     ConfigMap data, env[].value, command, args), PyYAML must give a `str`.
  3. Every environment variable a user (or devbox.toml's [defaults.env]) wrote must reach
     the main container with exactly the value written in the TOML, as PyYAML reads it.

    yaml_safety.py REPO [--require-ambiguous]

--require-ambiguous fails the check when no env value of the repo is one YAML 1.1 would
misread (so a generated test repo cannot silently stop testing what it is for).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundles import Repo, Report, SafeLoader, bundle_dirs, containers, pod_spec

STRING_MAPS = {"labels", "annotations", "matchLabels", "nodeSelector", "data", "stringData"}
STRING_LISTS = {"command", "args"}


def strict_diff(a: Any, b: Any, path: str = "") -> str | None:
    """Where a and b differ, by value or by type; None if they are the same."""
    if type(a) is not type(b):
        return f"{path or '/'}: YAML 1.1 reads {a!r} ({type(a).__name__}), YAML 1.2 reads {b!r} ({type(b).__name__})"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{path or '/'}: keys differ: {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for key in a:
            found = strict_diff(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            found = strict_diff(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def non_strings(node: Any, path: str = "") -> list[str]:
    """Paths where Kubernetes expects a string but the YAML 1.1 reading is not one."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            if not isinstance(key, str):
                found.append(f"{here}: key {key!r} is a {type(key).__name__}")
            if key in STRING_MAPS and isinstance(value, dict):
                for k, v in value.items():
                    if not isinstance(k, str) or not isinstance(v, str):
                        found.append(f"{here}.{k}: {v!r} is a {type(v).__name__}, not a string")
            elif key in STRING_LISTS and isinstance(value, list):
                for i, v in enumerate(value):
                    if not isinstance(v, str):
                        found.append(f"{here}[{i}]: {v!r} is a {type(v).__name__}, not a string")
            elif key == "env" and isinstance(value, list):
                for i, var in enumerate(value):
                    if isinstance(var, dict) and "value" in var and not isinstance(var["value"], str):
                        found.append(f"{here}[{var.get('name')}].value: {var['value']!r} is a {type(var['value']).__name__}, not a string")
            found += non_strings(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found += non_strings(item, f"{path}[{i}]")
    return found


def main_container(spec: dict) -> dict | None:
    named = {c.get("name"): c for _, c in containers(spec)}
    if "devbox" in named:
        return named["devbox"]
    for _, c in containers(spec):
        if any(v.get("name") == "DEVBOX_NAME" for v in c.get("env") or []):
            return c
    return None


def ambiguous_in_yaml11(value: str) -> bool:
    try:
        return yaml.load(value, Loader=SafeLoader) != value
    except yaml.YAMLError:
        return True


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("repo", type=Path)
    parser.add_argument("--require-ambiguous", action="store_true")
    args = parser.parse_args()
    repo = Repo(args.repo)
    out = args.repo / "out"
    report = Report("yaml 1.1 safety")
    yaml12 = YAML(typ="safe", pure=True)
    yaml12.version = (1, 2)

    files = sorted(out.rglob("*.yaml"))
    report.check(bool(files), f"no YAML files under {out}")
    compared = ambiguous = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(out)
        try:
            docs11 = [d for d in yaml.load_all(text, Loader=SafeLoader) if d is not None]
            docs12 = [d for d in yaml12.load_all(text) if d is not None]
        except Exception as e:  # noqa: BLE001 - any parse failure is a finding
            report.fail(f"out/{rel}: cannot be read: {e}")
            continue
        diff = strict_diff(docs11, docs12)
        if diff:
            report.fail(f"out/{rel}: {diff}")
        for problem in non_strings(docs11):
            report.fail(f"out/{rel}: {problem}")

    for bundle in bundle_dirs(out):
        name = bundle.name
        if name not in repo.users:
            continue
        workloads = []
        for path in sorted(bundle.glob("*.yaml")):
            for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=SafeLoader):
                # The box's own pod: the wake CronJob's pods run curl, not the person's env.
                if isinstance(doc, dict) and doc.get("kind") == "StatefulSet" and pod_spec(doc) is not None:
                    workloads.append((path, doc))
        state = repo.pick(name, "state") or "running"
        expected = repo.env(name)
        if state == "archived":
            continue
        if not workloads:
            report.fail(f"out/{name}: a {state} box has no workload to carry its env")
            continue
        for path, doc in workloads:
            container = main_container(pod_spec(doc))
            if container is None:
                report.fail(f"out/{name}/{path.name}: no main container (name `devbox`) found")
                continue
            actual: dict[str, Any] = {}
            for var in container.get("env") or []:
                if var.get("name") in actual:
                    report.fail(f"out/{name}/{path.name}: env {var.get('name')} appears twice")
                actual[var.get("name")] = var.get("value")
            for key, value in expected.items():
                compared += 1
                ambiguous += ambiguous_in_yaml11(value)
                if key not in actual:
                    report.fail(f"out/{name}/{path.name}: env {key} from users/{name}.toml is missing")
                elif actual[key] != value or not isinstance(actual[key], str):
                    report.fail(f"out/{name}/{path.name}: env {key}: users/{name}.toml says {value!r}, YAML 1.1 reads {actual[key]!r}")
    if args.require_ambiguous:
        report.check(ambiguous > 0, "the repo has no env value that YAML 1.1 would misread: nothing was tested")
    return report.finish(
        f"{len(files)} files read by YAML 1.1 and 1.2 alike; {compared} env values equal to the TOML, {ambiguous} of them ambiguous in YAML 1.1"
    )


if __name__ == "__main__":
    sys.exit(main())
