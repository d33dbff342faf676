#!/usr/bin/env bash
# yamllint, the YAML linter config repos run in pre-commit, on every file under OUT with the
# settings docs/examples/yamllint.yaml recommends to teams: the rules that find real problems
# (YAML 1.1 booleans and octals, duplicate keys, anchors, whitespace, indentation), not the
# ones that only disagree with kubectl's layout.
#
#   yamllint.sh OUT    exit 0 clean, 1 a problem found, 2 no yamllint, config or OUT
set -euo pipefail
out="${1:?usage: yamllint.sh OUT}"
command -v yamllint > /dev/null || { echo "yamllint is not installed" >&2; exit 2; }
config="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/docs/examples/yamllint.yaml"
[ -f "$config" ] || { echo "no $config" >&2; exit 2; }
[ -d "$out" ] || { echo "no directory $out" >&2; exit 2; }
files=$(find "$out" -type f -name '*.yaml' | wc -l)
[ "$files" -gt 0 ] || { echo "no YAML file under $out" >&2; exit 1; }
# --strict: a warning is a finding too (every rule above is an error; this keeps it so if
# yamllint adds a rule to `default` at warning level). yamllint exits 1 for errors, 2 for
# warnings under --strict: both are findings here.
status=0
yamllint --strict --format parsable --config-file "$config" "$out" || status=$?
case "$status" in
    0) echo "yamllint: $files files clean" ;;
    1 | 2) echo "FAIL yamllint found the problems above in $out" >&2; exit 1 ;;
    *) echo "yamllint failed to run (exit $status)" >&2; exit 2 ;;
esac
