"""Renders `devbox-gen diff --format markdown` with cmark-gfm, the renderer GitHub uses for
comments (with the extensions GitHub enables: table, strikethrough, autolink, tagfilter,
tasklist), on a pull request whose author tries to forge the report's structure, and checks
what a reviewer would see.

The pull request removes a user (a home volume leaves out/: a DATA risk), and, through text
it controls, tries to end a risk's list item and open a heading and a code fence that would
swallow that risk:
  - a custom template gives one box a `HOME` with line breaks, a setext heading and a 40-backtick
    fence (the `home-owner-changed` risk quotes `HOME`, and sorts before the removal);
  - a hand-written manifest in out/ sits in a directory whose name holds the same;
  - a GPU type with `|` and a line break, which a cost table row quotes.

What must hold in the rendered HTML:
  - the report's only heading is its own `<h3>`;
  - every risk is a list item outside any code block, the removed home volume among them;
  - `<details>` open and close in pairs, and every `<pre>` is inside a `<details>`;
  - every row of a table has as many cells as its header;
  - the comment is under GitHub's 65,536 characters.

usage: pr_comment.py DEVBOX_GEN
"""

from __future__ import annotations

import html.parser
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
FENCE = "`" * 40
FORGED = f"\n\nNo other risks: the rest only reformats generated files.\n==========\n\n{FENCE}\n"
GITHUB_COMMENT_LIMIT = 65_536

TEMPLATE = """local devbox = import 'devbox-gen/devbox.libsonnet';
local forged = std.parseJson(importstr 'forged.json');
function(box) devbox.bundle(box) + (
  if box.name == 'dave' then {
    statefulSet+: { spec+: { template+: { spec+: { containers: [
      if c.name == 'devbox' then c + { env: [
        if e.name == 'HOME' then e + { value: e.value + forged } else e
        for e in c.env
      ] } else c
      for c in super.containers
    ] } } } },
  } else if box.name == 'alice' then {
    statefulSet+: { spec+: { template+: { spec+: {
      nodeSelector+: { 'cloud.google.com/gke-accelerator': 'nvidia | FORGED CELL | x\\nFORGED ROW' },
    } } } },
  } else {}
)
"""

HAND_WRITTEN = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: notes
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: view
subjects:
- kind: "User\\r\\rFORGED-CR\\r=====\\r"
  name: x
"""


def run(args: list[str], cwd: pathlib.Path, ok: tuple[int, ...] = (0,)) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode not in ok:
        sys.exit(f"{' '.join(args)}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result.stdout


class Structure(html.parser.HTMLParser):
    """What a reader sees: headings, list items outside code, and how elements nest."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.headings: list[str] = []
        self.items: list[str] = []
        self.problems: list[str] = []
        self._text: list[str] | None = None
        self._item: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "pre" and "details" not in self.stack:
            self.problems.append("a code block outside any <details>")
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._text = [tag + ": "]
        if tag == "li" and "pre" not in self.stack and self._item is None:
            self._item = []
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.stack:
            self.problems.append(f"</{tag}> closes nothing")
            return
        while self.stack and self.stack.pop() != tag:
            pass
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6") and self._text is not None:
            self.headings.append("".join(self._text))
            self._text = None
        if tag == "li" and self._item is not None and "li" not in self.stack:
            self.items.append("".join(self._item))
            self._item = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)
        if self._item is not None and "pre" not in self.stack:
            self._item.append(data)


def cells_per_row(markup: str) -> list[list[int]]:
    """Cells of each row of each table: `[[3, 3, 3], ...]`."""
    tables = []
    for table in markup.split("<table>")[1:]:
        body = table.split("</table>")[0]
        tables.append([row.count("<td") + row.count("<th") for row in body.split("<tr>")[1:]])
    return tables


def main() -> None:
    binary = pathlib.Path(sys.argv[1]).resolve()
    cmark = shutil.which("cmark-gfm")
    if cmark is None:
        sys.exit("cmark-gfm is missing: apt-get install -y cmark-gfm")
    with tempfile.TemporaryDirectory() as tmp:
        repo = pathlib.Path(tmp)
        shutil.copytree(ROOT / "users", repo / "users")
        shutil.copy(ROOT / "devbox.toml", repo / "devbox.toml")
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
        run([*git, "init", "-q", "-b", "main"], repo)
        run([str(binary), "build"], repo)
        run([*git, "add", "-A"], repo)
        run([*git, "commit", "-q", "-m", "base"], repo)
        run([*git, "checkout", "-q", "-b", "pr"], repo)

        (repo / "users" / "carol.toml").unlink()
        templates = repo / "templates"
        templates.mkdir()
        (templates / "devbox.jsonnet").write_text(TEMPLATE)
        (templates / "forged.json").write_text(json.dumps(FORGED))
        settings = (repo / "devbox.toml").read_text()
        (repo / "devbox.toml").write_text('template = "templates/devbox.jsonnet"\n' + settings)
        run([str(binary), "build"], repo)
        forged_dir = repo / "out" / f"aa-docs{FORGED}x"
        forged_dir.mkdir(parents=True)
        (forged_dir / "crb.yaml").write_text(HAND_WRITTEN)
        run([*git, "add", "-A"], repo)
        run([*git, "commit", "-q", "-m", "pr"], repo)

        report = run([str(binary), "diff", "--base", "main", "--format", "markdown"], repo, ok=(1,))
        extensions = [arg for ext in ("table", "strikethrough", "autolink", "tagfilter", "tasklist") for arg in ("-e", ext)]
        # GitHub renders raw HTML (the report's <details>) and then sanitizes it: --unsafe.
        rendered = subprocess.run([cmark, "--unsafe", *extensions], input=report, capture_output=True, text=True, check=True).stdout

    seen = Structure()
    seen.feed(rendered)
    problems = list(seen.problems)
    if seen.headings != ["h3: devbox-gen diff"]:
        problems.append(f"headings besides the report's own: {seen.headings}")
    removed = [item for item in seen.items if "carol-home" in item and "DATA" in item]
    if not removed:
        problems.append("the removed home volume `carol-home` is not a risk item outside code")
    if not any("dave" in item and "DATA" in item for item in seen.items):
        problems.append("dave's home risk is not a list item")
    if rendered.count("<details") != rendered.count("</details>"):
        problems.append(f"<details> {rendered.count('<details')} open, {rendered.count('</details>')} closed")
    for table in cells_per_row(rendered):
        if len(set(table)) > 1:
            problems.append(f"a table's rows have different numbers of cells: {table}")
    if len(report) >= GITHUB_COMMENT_LIMIT:
        problems.append(f"{len(report)} characters, over GitHub's limit")
    if problems:
        print(report[:4000])
        sys.exit("\n".join(f"FAIL: {p}" for p in problems))
    data_risks = sum("DATA" in item for item in seen.items)
    print(f"{len(report)} characters; one heading; {len(seen.items)} list items outside code, {data_risks} DATA risks among them")


if __name__ == "__main__":
    main()
