#!/usr/bin/env bash
# The files the bundles ship in their ConfigMaps (each box's own, and the scripts ConfigMap
# every box of a namespace shares, in out/_gitops/namespace/<cluster>/: every configmap-*.yaml
# under OUT_DIR), checked by the programs that will run them: start.sh by `bash -n` and shellcheck, sshd_config by OpenSSH's own `sshd -t`
# (with a throw-away host key in place of the box's), authorized_keys by `ssh-keygen -l`
# (every line must be a public key OpenSSH reads). Of an autostopping box: idle-stop.sh,
# which the curl image's busybox sh runs, and the wake CronJob's `sh -c` script by dash's
# `-n` and `shellcheck -s sh` (POSIX sh, no bashisms); idle.py compiled by python3 (the
# devbox image's python runs it); idle.json parsed as JSON (idle.py reads it with json.load).
# Then, per StatefulSet, what its pod really gets (see below).
#
#   shipped_files.sh OUT_DIR
set -euo pipefail
out="${1:?usage: shipped_files.sh OUT_DIR}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
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
    if [ ! -e "$f" ] || [ "${f%.from}" != "$f" ]; then continue; fi
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
# What the kubelet gives each pod: the files of the ConfigMaps its volumes mount (configMap
# volumes, the configMap sources of projected volumes, merged into one directory), found in
# its bundle or in its cluster's out/_gitops/namespace/<cluster>/. idle.py reads idle.json
# and asks idle-stop.sh to act: a pod that gets idle.json without the other two never
# stops. A script a container runs from such a mount (its command or args naming a path
# under it), or a subPath of such a volume, must be a file the volume gives; the idle
# container's command must name one (it runs the shipped stopper, nothing else).
python3 - "$out" "$here" "$tmp/pods" << 'PY' || failed=1
import sys
from pathlib import Path
out, here = Path(sys.argv[1]), sys.argv[2]
sys.path.insert(0, here)
from bundles import GITOPS_DIR, KUSTOMIZATION, config_maps_in, containers, load_all, namespace_dir, pod_spec, volume_files
IDLE = {"idle.json", "idle.py", "idle-stop.sh"}
bad = pods = with_idle = 0
bundles = sorted(p.parent for p in out.rglob(KUSTOMIZATION) if GITOPS_DIR not in p.relative_to(out).parts)
for bundle in bundles:
    config_maps = config_maps_in(bundle, namespace_dir(out, bundle))
    for path in sorted(bundle.glob("statefulset-*.yaml")):
        for sts in load_all(path):
            spec = pod_spec(sts) if isinstance(sts, dict) and sts.get("kind") == "StatefulSet" else None
            if spec is None:
                continue
            pods += 1
            where = f"{path.relative_to(out)}"
            volumes = {}
            for v in spec.get("volumes") or []:
                got = volume_files(v, config_maps)
                if got is None:
                    continue
                files, missing = got
                volumes[v.get("name")] = files
                for name in missing:
                    print(f"FAIL {where}: volume {v.get('name')} mounts ConfigMap {name}, found neither in {bundle.relative_to(out)}/ nor in {namespace_dir(out, bundle).relative_to(out)}/")
                    bad = 1
            gets = set().union(*volumes.values()) if volumes else set()
            idle = gets & IDLE
            with_idle += idle == IDLE
            if "idle.json" in idle and idle != IDLE:
                print(f"FAIL {where}: the pod gets idle.json but not {sorted(IDLE - idle)} (its ConfigMaps give {sorted(gets)})")
                bad = 1
            for cwhere, c in containers(spec):
                mounted = []
                for m in c.get("volumeMounts") or []:
                    if m.get("name") not in volumes:
                        continue
                    if m.get("subPath"):
                        if m["subPath"] not in volumes[m["name"]]:
                            print(f"FAIL {where}: {cwhere} mounts subPath {m['subPath']} of volume {m['name']}, which gives {sorted(volumes[m['name']])}")
                            bad = 1
                    else:
                        mounted.append((m.get("mountPath", "").rstrip("/") + "/", volumes[m["name"]]))
                runs = []
                for word in [str(w) for w in (c.get("command") or []) + (c.get("args") or [])]:
                    for prefix, files in mounted:
                        if word.startswith(prefix):
                            runs.append(word)
                            if word[len(prefix):] not in files:
                                print(f"FAIL {where}: {cwhere} runs {word}, which the pod does not get ({prefix} holds {sorted(files)})")
                                bad = 1
                if c.get("name") == "idle" and not runs:
                    print(f"FAIL {where}: {cwhere}'s command {c.get('command')!r} names no file of its ConfigMap mounts {[p for p, _ in mounted]}")
                    bad = 1
Path(sys.argv[3]).write_text(f"{pods} pod templates' mounted files ({with_idle} with idle.json, idle.py and idle-stop.sh)")
sys.exit(bad)
PY

ssh-keygen -q -t ed25519 -N '' -f "$tmp/hostkey" -C ci
[ "$(id -u)" -ne 0 ] || mkdir -p /run/sshd # sshd -t as root wants its privilege-separation directory
for f in "$tmp"/sshd_config.*; do
    if [ ! -e "$f" ] || [ "${f%.from}" != "$f" ]; then continue; fi
    from="$(cat "$f.from")"
    sed "s#^HostKey .*#HostKey $tmp/hostkey#" "$f" > "$tmp/sshd_test_config"
    "$sshd" -t -f "$tmp/sshd_test_config" || { echo "FAIL $from: sshd -t refuses sshd_config"; failed=1; }
done

keys=0
for f in "$tmp"/authorized_keys.*; do
    if [ ! -e "$f" ] || [ "${f%.from}" != "$f" ]; then continue; fi
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
echo "shipped files: $(count start.sh) start.sh, $(count sshd_config) sshd_config ($version), $keys authorized keys in $(count authorized_keys) files, $idle, $(cat "$tmp/pods"): all accepted"
