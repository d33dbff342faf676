#!/usr/bin/env bash
# checkov's Kubernetes checks on every object under OUT_DIR: 0 failed, skips only by
# annotation with a reason, at most 3 per bundle (checkov_report.py judges the report).
#
#   checkov.sh OUT_DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(cd "${1:?usage: checkov.sh OUT_DIR}" && pwd)"
command -v checkov > /dev/null || { echo "checkov is not installed" >&2; exit 2; }

report="$(mktemp)"
log="$(mktemp)"
trap 'rm -f "$report" "$log"' EXIT
# --skip-download and BC_SKIP_MAPPING: no Prisma Cloud account, no network; the checks
# themselves ship with checkov. Absolute -d: checkov misreports file paths of a relative one.
status=0
BC_SKIP_MAPPING=TRUE checkov --framework kubernetes --directory "$out" --skip-download --compact \
    --output json > "$report" 2> "$log" || status=$?
# checkov exits 1 when a check fails; that is judged below from the report.
if [ "$status" -gt 1 ] || [ ! -s "$report" ]; then
    echo "checkov did not run (exit $status):" >&2
    tail -20 "$log" >&2
    exit 2
fi
python3 "$here/checkov_report.py" "$report" "$out"
