#!/usr/bin/env bash
# `kubectl kustomize` on every bundle (every directory with a kustomization.yaml) under
# OUT_DIR: it must build, and emit exactly as many objects as the bundle has files.
#
#   kustomize.sh OUT_DIR
set -euo pipefail
out="${1:?usage: kustomize.sh OUT_DIR}"
command -v kubectl > /dev/null || { echo "kubectl is not installed" >&2; exit 2; }

mapfile -t bundles < <(find "$out" -name kustomization.yaml -type f -printf '%h\n' | LC_ALL=C sort)
if [ "${#bundles[@]}" -eq 0 ]; then
    echo "no kustomization.yaml under $out" >&2
    exit 1
fi
failed=0
objects=0
for dir in "${bundles[@]}"; do
    if ! built="$(kubectl kustomize "$dir" 2>&1)"; then
        echo "FAIL kubectl kustomize $dir:"
        printf '%s\n' "$built" | head -10
        failed=$((failed + 1))
        continue
    fi
    expected="$(find "$dir" -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml -type f | wc -l)"
    got="$(printf '%s\n' "$built" | grep -c '^kind: ' || true)"
    if [ "$got" -ne "$expected" ]; then
        echo "FAIL kubectl kustomize $dir: $got objects, the bundle has $expected files"
        failed=$((failed + 1))
    fi
    objects=$((objects + got))
done
version="$(kubectl version --client 2>/dev/null | grep -i kustomize || kubectl version --client 2>/dev/null | head -1)"
if [ "$failed" -ne 0 ]; then
    echo "kubectl kustomize: $failed of ${#bundles[@]} bundles FAILED ($version)"
    exit 1
fi
echo "kubectl kustomize: ${#bundles[@]} bundles build, $objects objects ($version)"
