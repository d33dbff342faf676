#!/usr/bin/env python3
"""`devbox-gen show NAME` prints the bundle that `build` wrote to out/NAME/: the same
objects, in the same order as the files, for every user (or the first --limit users).

    show_matches_out.py REPO DEVBOX_GEN [--limit N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundles import Repo, Report, SafeLoader, load_all


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("repo", type=Path)
    parser.add_argument("binary")
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    repo = Repo(args.repo)
    names = list(repo.users)[: args.limit or None]
    report = Report("devbox-gen show")
    report.check(bool(names), "no users")
    objects = 0
    for name in names:
        run = subprocess.run([args.binary, "-C", str(args.repo), "show", name], capture_output=True, text=True, check=False)
        if run.returncode != 0:
            report.fail(f"show {name}: exit {run.returncode}: {run.stderr.strip()[:300]}")
            continue
        shown = [d for d in yaml.load_all(run.stdout, Loader=SafeLoader) if d is not None]
        files = sorted(repo.bundle(name).glob("*.yaml"))
        written = [doc for f in files for doc in load_all(f)]
        # kustomization.yaml may or may not be part of what show prints
        bare = [d for d in written if d.get("kind") != "Kustomization"]
        if shown != written and shown != bare:
            kinds = lambda docs: [f"{d.get('kind')}/{(d.get('metadata') or {}).get('name')}" for d in docs]  # noqa: E731
            report.fail(f"show {name} prints {kinds(shown)}; out/{name}/ holds {kinds(written)} (or the contents differ)")
        objects += len(shown)
    return report.finish(f"show prints out/NAME/ for {len(names)} users ({objects} objects)")


if __name__ == "__main__":
    sys.exit(main())
