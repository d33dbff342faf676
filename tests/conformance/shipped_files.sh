#!/usr/bin/env bash
# The files the bundles ship in their ConfigMaps, checked by the programs that will run
# them: start.sh by `bash -n` and shellcheck, sshd_config by OpenSSH's own `sshd -t`
# (with a throw-away host key in place of the box's), authorized_keys by `ssh-keygen -l`
# (every line must be a public key OpenSSH reads). Of an autostopping box: idle-stop.sh,
# which the curl image's busybox sh runs, and the wake CronJob's `sh -c` script by dash's
# `-n` and `shellcheck -s sh` (POSIX sh, no bashisms); idle.py compiled by python3 (the
# devbox image's python runs it); idle.json parsed as JSON (idle.py reads it with json.load).
#
#   shipped_files.sh OUT_DIR
set -euo pipefail
out="${1:?usage: shipped_files.sh OUT_DIR}"
sshd="$(command -v sshd || echo /usr/sbin/sshd)"
for tool in "$sshd" shellcheck ssh-keygen python3 dash; do
    command -v "$tool" > /dev/null || { echo "$tool is not installed" >&2; exit 2; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# One copy of each distinct file: start.sh and sshd_config are mostly the same in every
# bundle; authorized_keys differ.
python3 - "$out" "$tmp" << 'PY'
import hashlib, sys
from pathlib import Path
out, tmp = Path(sys.argv[1]), Path(sys.argv[2])
import yaml
seen = set()
def keep(key, value, path):
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    if (key, digest) in seen:
        return
    seen.add((key, digest))
    (tmp / f"{key}.{digest}").write_text(value)
    (tmp / f"{key}.{digest}.from").write_text(str(path.relative_to(out)))
for path in sorted(out.rglob("configmap-*.yaml")):
    doc = yaml.safe_load(path.read_text())
    for key, value in (doc.get("data") or {}).items():
        if key in ("start.sh", "sshd_config", "authorized_keys", "idle-stop.sh", "idle.py", "idle.json"):
            keep(key, value, path)
for path in sorted(out.rglob("cronjob-*.yaml")):
    doc = yaml.safe_load(path.read_text())
    spec = (((doc.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec") or {}
    for c in spec.get("containers") or []:
        command = list(c.get("command") or []) + list(c.get("args") or [])
        if len(command) >= 3 and command[0].endswith("sh") and command[1] == "-c":
            keep("cronjob.sh", command[2], path)
PY

failed=0
count() { find "$tmp" -maxdepth 1 -name "$1.*" ! -name '*.from' | wc -l; }
[ "$(count start.sh)" -gt 0 ] || { echo "FAIL no ConfigMap ships start.sh"; failed=1; }
[ "$(count sshd_config)" -gt 0 ] || { echo "FAIL no ConfigMap ships sshd_config"; failed=1; }

for f in "$tmp"/start.sh.*; do
    [ "${f%.from}" = "$f" ] || continue
    from="$(cat "$f.from")"
    bash -n "$f" || { echo "FAIL $from: start.sh is not valid bash"; failed=1; }
    shellcheck -s bash "$f" || { echo "FAIL $from: shellcheck on start.sh"; failed=1; }
done

for f in "$tmp"/idle-stop.sh.* "$tmp"/cronjob.sh.*; do
    if [ ! -e "$f" ] || [ "${f%.from}" != "$f" ]; then continue; fi
    from="$(cat "$f.from")"
    what="$(basename "$f" | cut -d. -f1-2)"
    dash -n "$f" || { echo "FAIL $from: $what is not valid POSIX sh"; failed=1; }
    shellcheck -s sh "$f" || { echo "FAIL $from: shellcheck -s sh on $what"; failed=1; }
done
for f in "$tmp"/idle.py.*; do
    if [ ! -e "$f" ] || [ "${f%.from}" != "$f" ]; then continue; fi
    python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' "$f" ||
        { echo "FAIL $(cat "$f.from"): idle.py does not compile"; failed=1; }
done
for f in "$tmp"/idle.json.*; do
    if [ ! -e "$f" ] || [ "${f%.from}" != "$f" ]; then continue; fi
    python3 -c 'import json, sys; assert isinstance(json.load(open(sys.argv[1])), dict)' "$f" ||
        { echo "FAIL $(cat "$f.from"): idle.json is not a JSON object"; failed=1; }
done
# idle.py reads idle.json and asks idle-stop.sh to act: one of the three without the others
# never stops the box.
python3 - "$out" << 'PY' || failed=1
import sys
from pathlib import Path
import yaml
bad = 0
for path in sorted(Path(sys.argv[1]).rglob("configmap-*.yaml")):
    keys = set((yaml.safe_load(path.read_text()).get("data") or {}))
    idle = keys & {"idle.json", "idle.py", "idle-stop.sh"}
    if idle and len(idle) != 3:
        print(f"FAIL {path}: ships {sorted(idle)} of idle.json, idle.py and idle-stop.sh")
        bad = 1
sys.exit(bad)
PY

ssh-keygen -q -t ed25519 -N '' -f "$tmp/hostkey" -C ci
[ "$(id -u)" -ne 0 ] || mkdir -p /run/sshd # sshd -t as root wants its privilege-separation directory
for f in "$tmp"/sshd_config.*; do
    [ "${f%.from}" = "$f" ] || continue
    from="$(cat "$f.from")"
    sed "s#^HostKey .*#HostKey $tmp/hostkey#" "$f" > "$tmp/sshd_test_config"
    "$sshd" -t -f "$tmp/sshd_test_config" || { echo "FAIL $from: sshd -t refuses sshd_config"; failed=1; }
done

keys=0
for f in "$tmp"/authorized_keys.*; do
    [ "${f%.from}" = "$f" ] || continue
    from="$(cat "$f.from")"
    lines="$(grep -c . "$f" || true)"
    read_back="$(ssh-keygen -l -f "$f" 2> /dev/null | grep -c . || true)"
    if [ "$lines" -eq 0 ] || [ "$lines" -ne "$read_back" ]; then
        echo "FAIL $from: OpenSSH reads $read_back of the $lines keys in authorized_keys"
        failed=1
    fi
    keys=$((keys + lines))
done

version="$("$sshd" -V 2>&1 | head -n1 || true)"
if [ "$failed" -ne 0 ]; then
    echo "shipped files: FAILED"
    exit 1
fi
idle="$(count idle-stop.sh) idle-stop.sh, $(count idle.py) idle.py, $(count idle.json) idle.json, $(count cronjob.sh) CronJob scripts"
echo "shipped files: $(count start.sh) start.sh, $(count sshd_config) sshd_config ($version), $keys authorized keys in $(count authorized_keys) files, $idle: all accepted"
