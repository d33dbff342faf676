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

Then the merge request's note, with DEVBOX_BOT_TOKEN set, against a stand-in for GitLab's
notes API (GET, POST and PUT on /projects/:id/merge_requests/:iid/notes, paginated with
`page` and `per_page`, the token in PRIVATE-TOKEN): no note while there is nothing to report;
one note posted at the first change; the same note edited at the next push, and again when
the change is gone; at a push whose out/ is stale the job fails, yet the note still tells the
change, behind a warning; at a push the diff refuses, the note says it failed; a teammate's
notes left alone, however many pages they fill, one quoting the report's marker included.

usage: gitlab_job.py DEVBOX_GEN
"""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from typing import ClassVar

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


TOKEN = "glpat-devbox-bot"
BOT = 42
NOTES = "/api/v4/projects/7/merge_requests/3/notes"


class NotesApi(http.server.BaseHTTPRequestHandler):
    """GitLab's merge request notes, as far as the job uses them."""

    notes: ClassVar[list[dict]] = []
    calls: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorised(self) -> bool:
        if self.headers.get("PRIVATE-TOKEN") == TOKEN:
            return True
        self.reply(401, {"message": "401 Unauthorized"})
        return False

    def body(self) -> str:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))["body"]

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/api/v4/user" and self.authorised():
            return self.reply(200, {"id": BOT, "username": "devbox-bot"})
        if url.path != NOTES or not self.authorised():
            return self.reply(404, {}) if url.path != NOTES else None
        query = urllib.parse.parse_qs(url.query)
        page, per_page = int(query["page"][0]), int(query["per_page"][0])
        self.calls.append(f"GET page {page}")
        self.reply(200, self.notes[(page - 1) * per_page : page * per_page])

    def do_POST(self) -> None:
        if self.path != NOTES or not self.authorised():
            return None
        note = {"id": 1000 + len(self.notes), "body": self.body(), "author": {"id": BOT}, "system": False}
        self.notes.append(note)
        self.calls.append(f"POST {note['id']}")
        return self.reply(201, note)

    def do_PUT(self) -> None:
        head, _, note_id = self.path.rpartition("/")
        if head != NOTES or not self.authorised():
            return None
        note = next(n for n in self.notes if str(n["id"]) == note_id)
        note["body"] = self.body()
        self.calls.append(f"PUT {note_id}")
        return self.reply(200, note)


def run_job(repo: pathlib.Path, binary: pathlib.Path, api: str | None = None) -> tuple[int, list[dict], str]:
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
        # Where the merge request's branch left main: main itself here.
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "main"], check=True, capture_output=True, text=True
        ).stdout.strip(),
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    env.pop("DEVBOX_BOT_TOKEN", None)
    if api:
        env.update({"DEVBOX_BOT_TOKEN": TOKEN, "CI_API_V4_URL": f"{api}/api/v4", "CI_PROJECT_ID": "7", "CI_MERGE_REQUEST_IID": "3"})
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
        notes = check_the_note(repo, binary)
    print(
        f"the GitLab job, run by dash: a broken user file fails it with one blocker at {where[1]}:{where[2]} in {REPORT}; a clean merge request passes with []; {notes}"
    )


def check_the_note(repo: pathlib.Path, binary: pathlib.Path) -> str:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotesApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{server.server_address[1]}"
    # A busy merge request: a teammate's 150 notes come first, over two pages.
    NotesApi.notes = [{"id": n, "body": f"looks good {n}", "author": {"id": 7}, "system": False} for n in range(150)]
    # A teammate quoting an old report: not the bot's note, never edited.
    NotesApi.notes[3]["body"] = "<!-- devbox-gen diff -->\n> quoted by a teammate"
    quoted = NotesApi.notes[3]["body"]
    try:
        code, _, stderr = run_job(repo, binary, api)
        if code != 0 or any(not call.startswith("GET") for call in NotesApi.calls):
            sys.exit(f"nothing to report: the job exited {code} and called {NotesApi.calls}:\n{stderr}")
        # The merge request adds carol, with the out/ `build` makes of her.
        (repo / "users" / "carol.toml").write_text(user("carol@example.com"))
        subprocess.run([str(binary), "-C", str(repo), "build"], check=True, capture_output=True)
        for push in ("first change", "second push"):
            NotesApi.calls.clear()
            code, _, stderr = run_job(repo, binary, api)
            ours = [n for n in NotesApi.notes if n["author"]["id"] == BOT]
            if code != 0 or len(ours) != 1 or "carol (new user)" not in ours[0]["body"]:
                sys.exit(f"{push}: exit {code}, our notes {[n['id'] for n in ours]}, calls {NotesApi.calls}:\n{stderr}")
        if NotesApi.calls[-1] != f"PUT {ours[0]['id']}":
            sys.exit(f"a second push posted anew instead of editing note {ours[0]['id']}: {NotesApi.calls}")
        (repo / "users" / "carol.toml").unlink()
        subprocess.run([str(binary), "-C", str(repo), "build"], check=True, capture_output=True)
        code, _, stderr = run_job(repo, binary, api)
        ours = [n for n in NotesApi.notes if n["author"]["id"] == BOT]
        if code != 0 or len(ours) != 1 or "No changes" not in ours[0]["body"]:
            sys.exit(f"the change undone: exit {code}, our notes {[(n['id'], n['body'][:80]) for n in ours]}:\n{stderr}")
        # A push that forgets to rebuild out/: the job fails at `build --check`, but the note
        # still tells the change, behind a warning.
        (repo / "users" / "dave.toml").write_text(user("dave@example.com"))
        code, _, stderr = run_job(repo, binary, api)
        ours = [n for n in NotesApi.notes if n["author"]["id"] == BOT]
        body = ours[0]["body"] if len(ours) == 1 else ""
        if code != 1 or "> [!WARNING]\n> out/ in this branch is not what users/ compiles to" not in body:
            sys.exit(f"a stale out/: exit {code}, note {body[:300]!r}:\n{stderr}")
        if "dave (new user)" not in body:
            sys.exit(f"a stale out/: the note does not tell the change: {body[:600]!r}")
        (repo / "users" / "dave.toml").unlink()
        # A push the diff refuses (a home cannot shrink): the note says the diff failed, and
        # where, rather than keep an older report.
        (repo / "users" / "bob.toml").write_text(user("bob@example.com") + '\n[home]\nsize = "20Gi"\n')
        code, _, stderr = run_job(repo, binary, api)
        ours = [n for n in NotesApi.notes if n["author"]["id"] == BOT]
        if code != 2 or len(ours) != 1 or "> [!CAUTION]\n> `devbox-gen diff` failed at" not in ours[0]["body"]:
            sys.exit(f"a refused change: exit {code}, our notes {[(n['id'], n['body'][:200]) for n in ours]}:\n{stderr}")
        # A push whose user file does not validate: the note says so, not the older report.
        (repo / "users" / "bob.toml").write_text(user("bob"))
        code, _, stderr = run_job(repo, binary, api)
        ours = [n for n in NotesApi.notes if n["author"]["id"] == BOT]
        if code != 2 or len(ours) != 1 or "> [!CAUTION]\n> `devbox-gen validate` failed at" not in ours[0]["body"]:
            sys.exit(f"an invalid user file: exit {code}, our notes {[(n['id'], n['body'][:200]) for n in ours]}:\n{stderr}")
        (repo / "users" / "bob.toml").write_text(user("bob@example.com"))
        if any(n["body"] != f"looks good {n['id']}" for n in NotesApi.notes if n not in ours and n["id"] != 3):
            sys.exit("a teammate's note was changed")
        if NotesApi.notes[3]["body"] != quoted:
            sys.exit("a teammate's note that quotes the marker was taken for the bot's")
    finally:
        server.shutdown()
    return "with a bot token, one note is posted at the first change and edited at every push after, past 150 other notes and a teammate's quote of the marker, still at a push whose out/ is stale (the job failing), and says so when the diff fails or the user files do not validate"


if __name__ == "__main__":
    main()
