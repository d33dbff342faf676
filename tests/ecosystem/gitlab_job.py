"""Runs the GitLab job of ci-templates/gitlab/.gitlab-ci.yml as a runner would, on a config
repo with a merge request, and checks the Code Quality report it uploads.

The job's `script` lines run in one POSIX shell with `set -e`, as GitLab's runner runs them
(alpine's busybox ash in the template's image; dash here, which is as strict a POSIX shell),
with the variables GitLab sets for a merge request pipeline: CI_PROJECT_DIR and
CI_MERGE_REQUEST_TARGET_BRANCH_NAME. The target branch is a local branch, not `origin/...`:
the job's `before_script` only installs devbox-gen and fetches it.

Two merge requests:
  - one that breaks a user file: the job fails (exit 2) and the report holds one issue, a
    blocker at the file and line, in the shape GitLab accepts
    (gitlabhq app/validators/json_schemas/codeclimate.json);
  - one that is fine: the job passes and the report is `[]`, which tells GitLab the problems of
    an earlier pipeline are fixed.

usage: gitlab_job.py DEVBOX_GEN
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "ci-templates" / "gitlab" / ".gitlab-ci.yml"
REPORT = "gl-code-quality-report.json"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO2DHPT+6KPMKbEw5IrfG11A8Vz6y61TuSHbix+l2RTJ bob@laptop"
SETTINGS = """[defaults]
image = "ghcr.io/acme/devbox:1.0"

[tailscale]
image = "ghcr.io/tailscale/tailscale:v1.80.3"
auth_key_secret = "tailscale-auth"
"""


def user(email: str) -> str:
    return f'email = "{email}"\n\n[ssh]\nauthorized_keys = ["{KEY}"]\n'


def git(repo: pathlib.Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def run_job(repo: pathlib.Path, binary: pathlib.Path) -> tuple[int, list[dict], str]:
    job = yaml.safe_load(TEMPLATE.read_text())["devboxes"]
    report = job["artifacts"]["reports"]["codequality"]
    if report != REPORT:
        sys.exit(f"the job uploads {report!r}, not {REPORT!r}")
    script = "\n".join(["set -e", *job["script"]]).replace(
        "origin/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"
    )
    bin_dir = repo.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    shutil.copy(binary, bin_dir / "devbox-gen")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CI_PROJECT_DIR": str(repo),
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    env.pop("DEVBOX_BOT_TOKEN", None)
    (repo / REPORT).unlink(missing_ok=True)
    done = subprocess.run(["dash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, check=False)
    if not (repo / REPORT).exists():
        sys.exit(f"the job wrote no {REPORT} (exit {done.returncode}):\n{done.stderr}")
    return done.returncode, json.loads((repo / REPORT).read_text()), done.stderr


def accepted_by_gitlab(issue: dict) -> bool:
    strings = all(isinstance(issue.get(key), str) for key in ("description", "fingerprint", "severity"))
    location = issue.get("location") or {}
    return (
        strings
        and issue["severity"] in ("info", "minor", "major", "critical", "blocker")
        and isinstance(location.get("path"), str)
        and isinstance((location.get("lines") or {}).get("begin"), int)
    )


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = pathlib.Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        repo = pathlib.Path(tmp) / "devboxes"
        (repo / "users").mkdir(parents=True)
        (repo / "devbox.toml").write_text(SETTINGS)
        (repo / "users" / "bob.toml").write_text(user("bob@example.com"))
        git(repo, "init", "-q", "-b", "main")
        git(repo, "-c", "user.name=ci", "-c", "user.email=ci@example.com", "commit", "-q", "--allow-empty", "-m", "empty")
        subprocess.run([str(binary), "-C", str(repo), "build"], check=True, capture_output=True)
        git(repo, "add", "-A")
        git(repo, "-c", "user.name=ci", "-c", "user.email=ci@example.com", "commit", "-q", "-m", "bob")
        git(repo, "checkout", "-q", "-b", "merge-request")

        # A merge request that breaks bob's file on line 1.
        (repo / "users" / "bob.toml").write_text(user("bob"))
        code, issues, stderr = run_job(repo, binary)
        if code != 2:
            sys.exit(f"a broken user file: the job exited {code}, not 2:\n{stderr}")
        if len(issues) != 1 or not accepted_by_gitlab(issues[0]):
            sys.exit(f"a broken user file: expected one issue GitLab accepts, got {json.dumps(issues, indent=2)}")
        issue = issues[0]
        where = (issue["severity"], issue["location"]["path"], issue["location"]["lines"]["begin"])
        if where != ("blocker", "users/bob.toml", 1) or "not an email address" not in issue["description"]:
            sys.exit(f"a broken user file: the issue is {json.dumps(issue, indent=2)}")

        # A merge request that is fine: its file fixed and out/ unchanged.
        (repo / "users" / "bob.toml").write_text(user("bob@example.com"))
        code, issues, stderr = run_job(repo, binary)
        if code != 0 or issues != []:
            sys.exit(f"a clean merge request: the job exited {code} with {issues}:\n{stderr}")
    print(
        f"the GitLab job, run by dash: a broken user file fails it with one blocker at {where[1]}:{where[2]} in {REPORT}; a clean merge request passes with []"
    )


if __name__ == "__main__":
    main()
