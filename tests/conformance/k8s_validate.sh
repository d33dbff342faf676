#!/usr/bin/env bash
# Strict schema validation of every generated object under OUT_DIR with
# kubernetes-validate, against each Kubernetes VERSION given.
#
#   k8s_validate.sh OUT_DIR VERSION...
#
# kustomization.yaml is not a Kubernetes object and is left out. kubernetes-validate only
# warns (exit 0) about a kind it has no schema for; here that is a failure, except for the
# GitOps CRDs (Argo CD, Flux) whose schemas it does not ship: those are listed as not
# validated.
set -euo pipefail
out="${1:?usage: k8s_validate.sh OUT_DIR VERSION...}"
shift
[ "$#" -gt 0 ] || { echo "usage: k8s_validate.sh OUT_DIR VERSION..." >&2; exit 2; }
command -v kubernetes-validate > /dev/null || { echo "kubernetes-validate is not installed" >&2; exit 2; }

mapfile -t files < <(find "$out" -name '*.yaml' ! -name kustomization.yaml -type f | LC_ALL=C sort)
if [ "${#files[@]}" -eq 0 ]; then
    echo "no objects under $out" >&2
    exit 1
fi
versions=()
for v in "$@"; do versions+=(-k "$v"); done

# kubernetes-validate re-reads its schemas for every object: one process per core.
jobs="$(nproc 2> /dev/null || echo 2)"
chunk=$(((${#files[@]} + jobs - 1) / jobs))
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
pids=()
for ((i = 0; i < ${#files[@]}; i += chunk)); do
    kubernetes-validate --strict --quiet "${versions[@]}" "${files[@]:i:chunk}" > "$logs/$i.log" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
done
log="$logs/all"
cat "$logs"/*.log > "$log"

crd='(argoproj\.io|fluxcd\.io)/'
problems="$(grep -Ev "^WARN .*Couldn't find schema for kind [A-Za-z]+ with api version [a-z.]*${crd}" "$log" || true)"
unvalidated="$(grep -Ec "^WARN .*Couldn't find schema for kind [A-Za-z]+ with api version [a-z.]*${crd}" "$log" || true)"
if [ "$status" -ne 0 ] || [ -n "$problems" ]; then
    printf '%s\n' "$problems" | head -50
    echo "kubernetes-validate --strict: FAILED on $(printf '%s\n' "$problems" | grep -c . || true) line(s) (exit $status), ${#files[@]} files, Kubernetes $*"
    exit 1
fi
note=""
if [ "$unvalidated" -gt 0 ]; then
    note=" ($unvalidated GitOps CRD objects not validated: kubernetes-validate has no schema for them)"
fi
echo "kubernetes-validate --strict: ${#files[@]} objects valid against Kubernetes $*$note"
