#!/usr/bin/env python3
"""Judges checkov's JSON report of out/ (see checkov.sh).

  - 0 failed checks, 0 parsing errors, and checkov saw every workload;
  - every skip comes from a `checkov.io/skipN: CKV_ID=reason` annotation of the object
    it skips, with a non-empty reason;
  - at most 3 such skip annotations per bundle.

Prints the summary: passed / failed / skipped, and each skipped check with its reason.

    checkov_report.py REPORT.json OUT_DIR
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundles import Report, bundle_dirs, dig, load_all, pod_spec

MAX_SKIPS_PER_BUNDLE = 3


def skip_annotations(obj: dict) -> dict[str, str]:
    """checkov.io/skip* annotations of an object: check id -> reason."""
    skips = {}
    for key, value in (dig(obj, "metadata", "annotations") or {}).items():
        if key.startswith("checkov.io/skip"):
            check_id, _, reason = str(value).partition("=")
            skips[check_id.strip()] = reason.strip()
    return skips


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    raw = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2]).resolve()
    report = Report("checkov")
    runs = raw if isinstance(raw, list) else [raw]
    kube = [r for r in runs if r.get("check_type") == "kubernetes"]
    if not kube:
        # checkov prints a bare summary when it found nothing to check
        report.fail(f"checkov checked no Kubernetes resources: {raw}")
        return report.finish("nothing checked")
    summary = kube[0]["summary"]
    results = kube[0].get("results", {})
    passed = results.get("passed_checks", [])
    failed = results.get("failed_checks", [])
    skipped = results.get("skipped_checks", [])

    print(
        f"checkov {summary.get('checkov_version')}: passed {summary['passed']}, failed {summary['failed']}, "
        f"skipped {summary['skipped']}, parsing errors {summary['parsing_errors']}, resources {summary['resource_count']}"
    )
    for f in failed:
        report.fail(f"{f['check_id']} ({f['check_name']}) failed on {f['resource']} in {f['file_path']}")
    report.check(summary["failed"] == 0 and not failed, f"{summary['failed']} failed checks")
    report.check(summary["parsing_errors"] == 0, f"{summary['parsing_errors']} files checkov could not parse")

    # Every workload file was seen by checkov.
    seen = {Path(r["file_abs_path"]).resolve() for r in passed + failed + skipped if r.get("file_abs_path")}
    annotations_per_bundle: dict[Path, int] = collections.Counter()
    skips_by_file: dict[Path, dict[str, str]] = {}
    for bundle in bundle_dirs(out):
        for path in sorted(bundle.glob("*.yaml")):
            for doc in load_all(path):
                if not isinstance(doc, dict):
                    continue
                skips = skip_annotations(doc)
                annotations_per_bundle[bundle] += len(skips)
                if skips:
                    skips_by_file[path.resolve()] = skips
                if pod_spec(doc) is not None and path.resolve() not in seen:
                    report.fail(f"checkov reported nothing for {path.relative_to(out)}")
    for bundle, count in sorted(annotations_per_bundle.items()):
        report.check(
            count <= MAX_SKIPS_PER_BUNDLE, f"{bundle.relative_to(out)}: {count} checkov skip annotations (at most {MAX_SKIPS_PER_BUNDLE})"
        )

    reasons: dict[tuple[str, str], int] = collections.Counter()
    for s in skipped:
        path = Path(s.get("file_abs_path", "")).resolve()
        comment = (dig(s, "check_result", "suppress_comment") or "").strip()
        annotated = skips_by_file.get(path, {})
        if s["check_id"] not in annotated:
            report.fail(f"{s['check_id']} skipped on {s['resource']} without a checkov.io/skip annotation of its own")
        elif not annotated[s["check_id"]] or not comment:
            report.fail(f"{s['check_id']} skipped on {s['resource']} without a reason")
        reasons[(s["check_id"], comment)] += 1
    for (check_id, comment), count in sorted(reasons.items()):
        print(f"  skipped {count:>5} x {check_id}: {comment}")
    return report.finish(
        f"{summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped (all by annotation, with reasons)"
    )


if __name__ == "__main__":
    sys.exit(main())
