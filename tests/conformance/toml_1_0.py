"""devbox-gen and the TOML 1.0 tools around a config repo agree on what is a valid file.

devbox-gen's TOML parser reads TOML 1.1; taplo (the editors' check of the `#:schema` line, and
the pre-commit hook) and Python's tomllib read TOML 1.0 and refuse a whole file that uses what
1.1 added. Each case below is run through all three:
  - what TOML 1.1 added (line breaks and a trailing comma in inline tables, the `\\e` and `\\x`
    escapes): taplo and tomllib refuse it, and so must `devbox-gen validate`, saying why
    (exit 2);
  - a byte order mark, which taplo and tomllib refuse too: devbox-gen reads past it, as people
    do not see it, and warns;
  - the TOML 1.0 ways to write the same (and look-alikes: a multi-line array, a literal
    string holding `\\e`, an escaped backslash): all three accept them.

Then the patterns schema/ gives `[env]` names, as taplo applies them, against devbox-gen's
own rule: each name is accepted by both or refused by both.

usage: toml_1_0.py DEVBOX_GEN REPO   (REPO: a config repo with schema/ and devbox.toml)
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tempfile
import tomllib

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO2DHPT+6KPMKbEw5IrfG11A8Vz6y61TuSHbix+l2RTJ t@laptop"
HEAD = f'#:schema ../schema/user.schema.json\nemail = "t@example.com"\nssh.authorized_keys = ["{KEY}"]\n'

NEWER = {
    "line break in an inline table": HEAD + 'resources = {\n  cpu = "4", memory = "16Gi" }\n',
    "trailing comma in an inline table": HEAD + 'resources = { cpu = "4", memory = "16Gi", }\n',
    "escape \\e": HEAD + 'env.PS1 = "\\e[1m$ "\n',
    "escape \\x": HEAD + 'env.GREETING = "caf\\xe9"\n',
}
BYTE_ORDER_MARK = "\ufeff" + HEAD
ENV_NAMES = {
    "A": True,
    "_x": True,
    "PIP_INDEX_2": True,
    "lower_case": True,
    "1A": False,
    "MY-VAR": False,
    "A.B": False,
    "É": False,
    "A B": False,
}
OLDER = {
    "inline table on one line": HEAD + 'resources = { cpu = "4", memory = "16Gi" }\n',
    "a table of its own": HEAD + '[resources]\ncpu = "4"\nmemory = "16Gi"\n',
    "escape \\u001b": HEAD + 'env.PS1 = "\\u001b[1m$ "\n',
    "literal string with \\e": HEAD + "env.PATTERN = 'a\\e\\x'\n",
    "escaped backslash before e": HEAD + 'env.PATTERN = "a\\\\e\\\\x"\n',
    "multi-line array with a trailing comma": HEAD.replace(f'["{KEY}"]', f'[\n  "{KEY}",\n]'),
}


def verdicts(binary: pathlib.Path, repo: pathlib.Path, taplo: str, text: str) -> tuple[bool, bool, bool, str]:
    """Whether taplo, tomllib and devbox-gen accept `text` as users/t.toml; devbox-gen's stderr."""
    path = repo / "users" / "t.toml"
    path.write_text(text, encoding="utf-8")
    taplo_ok = (
        subprocess.run([taplo, "check", "--colors", "never", "--no-auto-config", str(path)], capture_output=True, check=False).returncode
        == 0
    )
    try:
        tomllib.loads(path.read_bytes().decode("utf-8"))
        tomllib_ok = True
    except tomllib.TOMLDecodeError:
        tomllib_ok = False
    ours = subprocess.run([str(binary), "-C", str(repo), "validate", "users/t.toml"], capture_output=True, text=True, check=False)
    if ours.returncode not in (0, 2):
        sys.exit(f"devbox-gen validate exited {ours.returncode}:\n{ours.stderr}")
    return taplo_ok, tomllib_ok, ours.returncode == 0, ours.stderr


def main() -> None:
    binary, source = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2]).resolve()
    taplo = shutil.which("taplo")
    if taplo is None:
        sys.exit("taplo is missing: pip install taplo (see .ci/requirements.txt)")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = pathlib.Path(tmp)
        shutil.copytree(source / "schema", repo / "schema")
        shutil.copy(source / "devbox.toml", repo / "devbox.toml")
        (repo / "users").mkdir()
        for name, text in NEWER.items():
            taplo_ok, tomllib_ok, ours_ok, stderr = verdicts(binary, repo, taplo, text)
            if taplo_ok or tomllib_ok:
                failures.append(f"{name}: taplo {taplo_ok}, tomllib {tomllib_ok}: the case is not TOML 1.1-only")
            if ours_ok:
                failures.append(f"{name}: devbox-gen accepts what taplo and tomllib refuse")
            elif "is TOML 1.1" not in stderr:
                failures.append(f"{name}: devbox-gen refuses it without saying why:\n{stderr}")
        taplo_ok, tomllib_ok, ours_ok, stderr = verdicts(binary, repo, taplo, BYTE_ORDER_MARK)
        if taplo_ok or tomllib_ok or not ours_ok or "warning: the file starts with a byte order mark" not in stderr:
            failures.append(f"byte order mark: taplo {taplo_ok}, tomllib {tomllib_ok}, devbox-gen {ours_ok}, warned: {stderr!r}")
        for name, text in OLDER.items():
            taplo_ok, tomllib_ok, ours_ok, stderr = verdicts(binary, repo, taplo, text)
            if not (taplo_ok and tomllib_ok and ours_ok):
                failures.append(f"{name}: taplo {taplo_ok}, tomllib {tomllib_ok}, devbox-gen {ours_ok}: all should accept it\n{stderr}")
        for env_name, valid in ENV_NAMES.items():
            taplo_ok, _, ours_ok, stderr = verdicts(binary, repo, taplo, HEAD + f'env."{env_name}" = "1"\n')
            if taplo_ok != valid or ours_ok != valid:
                failures.append(f"[env] name {env_name!r}: taplo {taplo_ok}, devbox-gen {ours_ok}, expected {valid}\n{stderr}")
    if failures:
        sys.exit("\n".join(f"FAIL {failure}" for failure in failures))
    print(
        f"TOML 1.0: {len(NEWER)} files of TOML 1.1 syntax refused by taplo, tomllib and devbox-gen alike; "
        f"{len(OLDER)} TOML 1.0 files accepted by all three; a byte order mark refused by taplo and tomllib, warned of by devbox-gen; "
        f"schema/ and devbox-gen agree on {len(ENV_NAMES)} [env] names"
    )


if __name__ == "__main__":
    main()
